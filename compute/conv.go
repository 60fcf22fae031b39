package compute

// ConvGeom describes a 2-D convolution (groups = 1) on NCHW data.
type ConvGeom struct {
	C, H, W        int // input channels, height, width
	O, KH, KW      int // output channels, kernel height and width
	SH, SW         int // strides
	PT, PL, PB, PR int // zero padding: top, left, bottom, right
	DH, DW         int // dilations
}

// OutH is the output height.
func (g ConvGeom) OutH() int { return (g.H+g.PT+g.PB-g.DH*(g.KH-1)-1)/g.SH + 1 }

// OutW is the output width.
func (g ConvGeom) OutW() int { return (g.W+g.PL+g.PR-g.DW*(g.KW-1)-1)/g.SW + 1 }

// PatchLen is C·KH·KW, the length of one im2col patch.
func (g ConvGeom) PatchLen() int { return g.C * g.KH * g.KW }

// im2colT writes one sample's patches as rows: colT[p, (c,kh,kw)] for each
// output position p, zero where the kernel reads padding.
func im2colT(g ConvGeom, x, colT []float32) {
	oh, ow := g.OutH(), g.OutW()
	kk := g.PatchLen()
	for y := 0; y < oh; y++ {
		for xo := 0; xo < ow; xo++ {
			row := colT[(y*ow+xo)*kk : (y*ow+xo+1)*kk]
			i := 0
			for c := 0; c < g.C; c++ {
				plane := x[c*g.H*g.W : (c+1)*g.H*g.W]
				for kh := 0; kh < g.KH; kh++ {
					ih := y*g.SH - g.PT + kh*g.DH
					for kw := 0; kw < g.KW; kw++ {
						iw := xo*g.SW - g.PL + kw*g.DW
						if ih >= 0 && ih < g.H && iw >= 0 && iw < g.W {
							row[i] = plane[ih*g.W+iw]
						} else {
							row[i] = 0
						}
						i++
					}
				}
			}
		}
	}
}

// Conv2dForward computes out[n,o,y,x] = bias[o] + Σ_{c,kh,kw} w[o,c,kh,kw]·x[n,c,y·SH−PT+kh·DH, x·SW−PL+kw·DW]
// for a batch of n samples. bias may be nil. out must hold n·O·OutH·OutW values.
func Conv2dForward(g ConvGeom, n int, x, w, bias, out []float32) {
	oh, ow := g.OutH(), g.OutW()
	p := oh * ow
	kk := g.PatchLen()
	wT := make([]float32, kk*g.O) // [C·KH·KW, O]
	Transpose(g.O, kk, w, wT)
	inSize, outSize := g.C*g.H*g.W, g.O*p
	ParallelFor(n, func(lo, hi int) {
		colT := make([]float32, p*kk)
		outT := make([]float32, p*g.O)
		for s := lo; s < hi; s++ {
			im2colT(g, x[s*inSize:(s+1)*inSize], colT)
			clear(outT)
			GemmAcc(p, g.O, kk, colT, wT, outT)
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
