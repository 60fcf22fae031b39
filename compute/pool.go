package compute

import "math"

// PoolGeom describes a 2-D pooling window on NCHW data.
type PoolGeom struct {
	C, H, W        int // channels, input height and width
	KH, KW         int // window
	SH, SW         int // strides
	PT, PL, PB, PR int // padding: top, left, bottom, right
	Ceil           bool
}

// pooledSize is PyTorch's output size rule: floor (or ceil) of
// (in + pads − k)/s + 1, where with ceil the last window must start inside
// the input or the leading padding.
func pooledSize(in, k, s, padBefore, padAfter int, ceil bool) int {
	span := in + padBefore + padAfter - k
	out := span/s + 1
	if ceil {
		out = (span+s-1)/s + 1
		if (out-1)*s >= in+padBefore {
			out--
		}
	}
	return out
}

// OutH is the output height.
func (g PoolGeom) OutH() int { return pooledSize(g.H, g.KH, g.SH, g.PT, g.PB, g.Ceil) }

// OutW is the output width.
func (g PoolGeom) OutW() int { return pooledSize(g.W, g.KW, g.SW, g.PL, g.PR, g.Ceil) }

// MaxPool2dForward writes the maximum of each window (padding never wins)
// for n samples. If argmax is non-nil it receives, per output, the index
// within the input plane of the first maximum, as PyTorch picks it.
func MaxPool2dForward(g PoolGeom, n int, x, out []float32, argmax []int32) {
	oh, ow := g.OutH(), g.OutW()
	ParallelFor(n*g.C, func(lo, hi int) {
		for pc := lo; pc < hi; pc++ {
			plane := x[pc*g.H*g.W : (pc+1)*g.H*g.W]
			dst := out[pc*oh*ow : (pc+1)*oh*ow]
			for y := 0; y < oh; y++ {
				h0 := y*g.SH - g.PT
				h1 := min(h0+g.KH, g.H)
				h0 = max(h0, 0)
				for xo := 0; xo < ow; xo++ {
					w0 := xo*g.SW - g.PL
					w1 := min(w0+g.KW, g.W)
					w0 = max(w0, 0)
					best := float32(math.Inf(-1))
					bi := int32(-1)
					for ih := h0; ih < h1; ih++ {
						for iw := w0; iw < w1; iw++ {
							v := plane[ih*g.W+iw]
							if v > best || bi < 0 || v != v {
								best, bi = v, int32(ih*g.W+iw)
							}
						}
					}
					dst[y*ow+xo] = best
					if argmax != nil {
						argmax[pc*oh*ow+y*ow+xo] = bi
					}
				}
			}
		}
	})
}

// avgWindow is output (y, xo)'s window clipped to the input, [h0, h1) ×
// [w0, w1), and its divisor: with countPad the window's area up to the
// padded border (PyTorch's count_include_pad=True), else the real inputs.
func (g PoolGeom) avgWindow(y, xo int, countPad bool) (h0, h1, w0, w1, div int) {
	h0, w0 = y*g.SH-g.PT, xo*g.SW-g.PL
	h1, w1 = min(h0+g.KH, g.H+g.PB), min(w0+g.KW, g.W+g.PR)
	padArea := (h1 - h0) * (w1 - w0)
	h0, w0 = max(h0, 0), max(w0, 0)
	h1, w1 = min(h1, g.H), min(w1, g.W)
	div = padArea
	if !countPad {
		div = (h1 - h0) * (w1 - w0)
	}
	return h0, h1, w0, w1, div
}

// AvgPool2dForward writes the mean of each window for n samples. With
// countPad the divisor counts padded positions (up to the padded border),
// as PyTorch's count_include_pad=True; without it only real inputs count.
func AvgPool2dForward(g PoolGeom, n int, countPad bool, x, out []float32) {
	oh, ow := g.OutH(), g.OutW()
	ParallelFor(n*g.C, func(lo, hi int) {
		for pc := lo; pc < hi; pc++ {
			plane := x[pc*g.H*g.W : (pc+1)*g.H*g.W]
			dst := out[pc*oh*ow : (pc+1)*oh*ow]
			for y := 0; y < oh; y++ {
				for xo := 0; xo < ow; xo++ {
					h0, h1, w0, w1, div := g.avgWindow(y, xo, countPad)
					var sum float32
					for ih := h0; ih < h1; ih++ {
						for iw := w0; iw < w1; iw++ {
							sum += plane[ih*g.W+iw]
						}
					}
					if div > 0 {
						dst[y*ow+xo] = sum / float32(div)
					} else {
						dst[y*ow+xo] = 0
					}
				}
			}
		}
	})
}

// GlobalAvgPoolForward averages each of the n·c planes of size hw.
func GlobalAvgPoolForward(nc, hw int, x, out []float32) {
	for i := 0; i < nc; i++ {
		var sum float32
		for _, v := range x[i*hw : (i+1)*hw] {
			sum += v
		}
		out[i] = sum / float32(hw)
	}
}

// Pad2dForward copies n·c planes of h×w into (h+t+b)×(w+l+r) planes filled with value.
func Pad2dForward(nc, h, w, t, l, b, r int, value float32, x, out []float32) {
	oh, ow := h+t+b, w+l+r
	for i := 0; i < nc; i++ {
		dst := out[i*oh*ow : (i+1)*oh*ow]
		for j := range dst {
			dst[j] = value
		}
		src := x[i*h*w : (i+1)*h*w]
		for y := 0; y < h; y++ {
			copy(dst[(y+t)*ow+l:(y+t)*ow+l+w], src[y*w:(y+1)*w])
		}
	}
}

// MaxPool2dBackward routes each output gradient to the input its forward
// pass picked (argmax, as MaxPool2dForward recorded it). dx is overwritten.
func MaxPool2dBackward(g PoolGeom, n int, argmax []int32, dout, dx []float32) {
	oh, ow := g.OutH(), g.OutW()
	clear(dx)
	ParallelFor(n*g.C, func(lo, hi int) {
		for pc := lo; pc < hi; pc++ {
			plane := dx[pc*g.H*g.W : (pc+1)*g.H*g.W]
			for i := pc * oh * ow; i < (pc+1)*oh*ow; i++ {
				if a := argmax[i]; a >= 0 {
					plane[a] += dout[i]
				}
			}
		}
	})
}

// AvgPool2dBackward spreads each output gradient evenly over its window,
// divided as the forward pass divided. dx is overwritten.
func AvgPool2dBackward(g PoolGeom, n int, countPad bool, dout, dx []float32) {
	oh, ow := g.OutH(), g.OutW()
	clear(dx)
	ParallelFor(n*g.C, func(lo, hi int) {
		for pc := lo; pc < hi; pc++ {
			plane := dx[pc*g.H*g.W : (pc+1)*g.H*g.W]
			src := dout[pc*oh*ow : (pc+1)*oh*ow]
			for y := 0; y < oh; y++ {
				for xo := 0; xo < ow; xo++ {
					h0, h1, w0, w1, div := g.avgWindow(y, xo, countPad)
					if div == 0 {
						continue
					}
					gv := src[y*ow+xo] / float32(div)
					for ih := h0; ih < h1; ih++ {
						for iw := w0; iw < w1; iw++ {
							plane[ih*g.W+iw] += gv
						}
					}
				}
			}
		}
	})
}
