package compute

// ConvGeom describes a 2-D convolution on NCHW data. With G groups the
// input channels split into G blocks of C/G and the output channels into
// G blocks of O/G; output block g sees input block g only, and the weight
// is [O, C/G, KH, KW] (G = C = O: depthwise). G = 0 means 1.
type ConvGeom struct {
	C, H, W        int // input channels, height, width
	O, KH, KW      int // output channels, kernel height and width
	SH, SW         int // strides
	PT, PL, PB, PR int // zero padding: top, left, bottom, right
	DH, DW         int // dilations
	G              int // groups
}

// Groups is the number of groups, at least 1.
func (g ConvGeom) Groups() int { return max(g.G, 1) }

// GroupPatch is (C/G)·KH·KW, the weights of one output channel.
func (g ConvGeom) GroupPatch() int { return g.C / g.Groups() * g.KH * g.KW }

// OutH is the output height.
func (g ConvGeom) OutH() int { return (g.H+g.PT+g.PB-g.DH*(g.KH-1)-1)/g.SH + 1 }

// OutW is the output width.
func (g ConvGeom) OutW() int { return (g.W+g.PL+g.PR-g.DW*(g.KW-1)-1)/g.SW + 1 }

// PatchLen is C·KH·KW, the length of one im2col patch over all channels
// (G groups take G consecutive blocks of GroupPatch rows of it).
func (g ConvGeom) PatchLen() int { return g.C * g.KH * g.KW }

// taps calls fn(k, p) for every kernel tap k = (kh, kw) offset within a
// channel's patch and output position p that read input pixel (ih, iw).
// It inverts ih = y·SH − PT + kh·DH and iw = x·SW − PL + kw·DW.
func (g ConvGeom) taps(ih, iw, oh, ow int, fn func(k, p int)) {
	for kh := 0; kh < g.KH; kh++ {
		ny := ih + g.PT - kh*g.DH
		if ny < 0 || ny%g.SH != 0 {
			continue
		}
		y := ny / g.SH
		if y >= oh {
			continue
		}
		for kw := 0; kw < g.KW; kw++ {
			nx := iw + g.PL - kw*g.DW
			if nx < 0 || nx%g.SW != 0 {
				continue
			}
			xo := nx / g.SW
			if xo >= ow {
				continue
			}
			fn(kh*g.KW+kw, y*ow+xo)
		}
	}
}

// Conv2dForward computes out[n,o,y,x] = bias[o] + Σ_{c,kh,kw} w[o,c,kh,kw]·x[n,c,y·SH−PT+kh·DH, x·SW−PL+kw·DW]
// for a batch of n samples, c running over the C/G input channels of o's
// group. bias may be nil. out must hold n·O·OutH·OutW values.
//
// It scatters each non-zero input pixel into the outputs it reaches:
// outᵀ[p, :] += x·wᵀ[(c,kh,kw), :], a contiguous row of O weights. Zero
// inputs cost nothing, so a layer fed by spikes does work in proportion to
// its spikes.
func Conv2dForward(g ConvGeom, n int, x, w, bias, out []float32) {
	Conv2dForwardT(g, n, x, ConvWeightT(g, w), bias, out)
}

// ConvWeightT is the convolution weight transposed group by group: group
// j's block [O/G, (C/G)·KH·KW] becomes [(C/G)·KH·KW, O/G], the blocks one
// after the other — the form the scatter kernels read (one contiguous row
// of O/G weights per input channel and tap).
func ConvWeightT(g ConvGeom, w []float32) []float32 {
	kk, og := g.GroupPatch(), g.O/g.Groups()
	wT := make([]float32, len(w))
	for j := 0; j < g.Groups(); j++ {
		Transpose(og, kk, w[j*og*kk:(j+1)*og*kk], wT[j*og*kk:(j+1)*og*kk])
	}
	return wT
}

// row is the transposed weights' row for input channel c and tap k: the
// O/G weights from (c, k) to the outputs of c's group, and where those
// outputs start among the O channels.
func (g ConvGeom) row(wT []float32, c, k int) (ws []float32, first int) {
	cg, og := g.C/g.Groups(), g.O/g.Groups()
	j := c / cg
	taps := g.KH * g.KW
	r := (j*cg+c%cg)*taps + k
	return wT[r*og : (r+1)*og], j * og
}

// Conv2dForwardT is Conv2dForward given ConvWeightT(g, w).
func Conv2dForwardT(g ConvGeom, n int, x, wT, bias, out []float32) {
	oh, ow := g.OutH(), g.OutW()
	p := oh * ow
	inSize, outSize := g.C*g.H*g.W, g.O*p
	og := g.O / g.Groups()
	ParallelFor(n, func(lo, hi int) {
		outT := make([]float32, p*g.O)
		for s := lo; s < hi; s++ {
			clear(outT)
			xs := x[s*inSize : (s+1)*inSize]
			for c := 0; c < g.C; c++ {
				for ih := 0; ih < g.H; ih++ {
					for iw := 0; iw < g.W; iw++ {
						v := xs[(c*g.H+ih)*g.W+iw]
						if v == 0 {
							continue
						}
						g.taps(ih, iw, oh, ow, func(k, q int) {
							ws, first := g.row(wT, c, k)
							Axpy(v, ws, outT[q*g.O+first:q*g.O+first+og])
						})
					}
				}
			}
			dst := out[s*outSize : (s+1)*outSize]
			Transpose(p, g.O, outT, dst)
			if bias != nil {
				for o := 0; o < g.O; o++ {
					plane := dst[o*p : (o+1)*p]
					for i := range plane {
						plane[i] += bias[o]
					}
				}
			}
		}
	})
}

// Conv2dBackward computes a convolution's gradients from dout, the
// gradient at its output, for n samples:
//
//	dw[o,c,kh,kw] += Σ_{s,p} dout[s,o,p]·x[s,c,pixel(p,kh,kw)]    dbias[o] += Σ_{s,p} dout[s,o,p]
//	dx[s,c,ih,iw]  = Σ_{o,kh,kw} w[o,c,kh,kw]·dout[s,o,p(ih,iw,kh,kw)]
//
// with the same scatter/gather walk over input pixels as the forward pass
// (zero inputs add nothing to dw). dx (overwritten), dw and dbias
// (accumulated) may each be nil to skip.
func Conv2dBackward(g ConvGeom, n int, x, w, dout, dx, dw, dbias []float32) {
	Conv2dBackwardT(g, n, x, ConvWeightT(g, w), dout, dx, dw, dbias)
}

// convGradBlock is how many samples share one partial weight gradient in
// Conv2dBackwardT. The partials are added in block order, so the result
// does not depend on how many cores ran the blocks.
const convGradBlock = 4

// Conv2dBackwardT is Conv2dBackward given ConvWeightT(g, w).
func Conv2dBackwardT(g ConvGeom, n int, x, wT, dout, dx, dw, dbias []float32) {
	oh, ow := g.OutH(), g.OutW()
	p := oh * ow
	og := g.O / g.Groups()
	inSize, outSize := g.C*g.H*g.W, g.O*p
	blocks := (n + convGradBlock - 1) / convGradBlock
	partDW := make([][]float32, blocks) // per block, laid out as ConvWeightT
	partDB := make([][]float32, blocks)
	ParallelFor(blocks, func(blo, bhi int) {
		doutT := make([]float32, p*g.O)
		for blk := blo; blk < bhi; blk++ {
			myDWT := make([]float32, len(wT))
			myDB := make([]float32, g.O)
			for s := blk * convGradBlock; s < min(n, (blk+1)*convGradBlock); s++ {
				d := dout[s*outSize : (s+1)*outSize] // [O, P]
				Transpose(g.O, p, d, doutT)          // [P, O]
				if dbias != nil {
					for o := 0; o < g.O; o++ {
						var sum float32
						for _, v := range d[o*p : (o+1)*p] {
							sum += v
						}
						myDB[o] += sum
					}
				}
				xs := x[s*inSize : (s+1)*inSize]
				var dxs []float32
				if dx != nil {
					dxs = dx[s*inSize : (s+1)*inSize]
				}
				for c := 0; c < g.C; c++ {
					for ih := 0; ih < g.H; ih++ {
						for iw := 0; iw < g.W; iw++ {
							i := (c*g.H+ih)*g.W + iw
							v := xs[i]
							var acc float32
							g.taps(ih, iw, oh, ow, func(k, q int) {
								ws, first := g.row(wT, c, k)
								dr := doutT[q*g.O+first : q*g.O+first+og]
								if dw != nil && v != 0 {
									dws, _ := g.row(myDWT, c, k)
									Axpy(v, dr, dws)
								}
								if dxs != nil {
									acc += Dot(ws, dr)
								}
							})
							if dxs != nil {
								dxs[i] = acc
							}
						}
					}
				}
			}
			partDW[blk], partDB[blk] = myDWT, myDB
		}
	})
	if dw != nil && blocks > 0 {
		dwT := partDW[0]
		for _, part := range partDW[1:] {
			for i, v := range part {
				dwT[i] += v
			}
		}
		kk := g.GroupPatch()
		tmp := make([]float32, len(dwT))
		for j := 0; j < g.Groups(); j++ {
			Transpose(kk, og, dwT[j*og*kk:(j+1)*og*kk], tmp[j*og*kk:(j+1)*og*kk])
		}
		for i, v := range tmp {
			dw[i] += v
		}
	}
	if dbias != nil {
		for _, part := range partDB {
			for i, v := range part {
				dbias[i] += v
			}
		}
	}
}
