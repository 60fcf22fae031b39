package compute

import "math"

// PoolGeom describes a 2-D pooling window; Layout is how its input and
// output are laid out (NCHW or "", or NHWC).
type PoolGeom struct {
	C, H, W        int // channels, input height and width
	KH, KW         int // window
	SH, SW         int // strides
	PT, PL, PB, PR int // padding: top, left, bottom, right
	Ceil           bool
	Layout         Layout
}

// pooledSize is PyTorch's output size rule: floor (or ceil) of
// (in + pads − k)/s + 1, where with ceil the last window must start inside
// the input or the leading padding.
func pooledSize(in, k, s, padBefore, padAfter int, ceil bool) int {
	span := in + padBefore + padAfter - k
	if s < 1 || span < 0 {
		return 0 // no window fits
	}
	out := span/s + 1
	if ceil {
		out = (span+s-1)/s + 1
		if (out-1)*s >= in+padBefore {
			out--
		}
	}
	return out
}

// OutH is the output height (0 where no window fits, or a stride below 1).
func (g PoolGeom) OutH() int { return pooledSize(g.H, g.KH, g.SH, g.PT, g.PB, g.Ceil) }

// OutW is the output width (0 where no window fits, or a stride below 1).
func (g PoolGeom) OutW() int { return pooledSize(g.W, g.KW, g.SW, g.PL, g.PR, g.Ceil) }

// maxWindow is output (y, xo)'s window clipped to the input: [h0, h1) × [w0, w1).
func (g PoolGeom) maxWindow(y, xo int) (h0, h1, w0, w1 int) {
	h0, w0 = y*g.SH-g.PT, xo*g.SW-g.PL
	return max(h0, 0), min(h0+g.KH, g.H), max(w0, 0), min(w0+g.KW, g.W)
}

// firstMax is the index within plane of the first maximum of a window, as
// PyTorch picks it (a NaN wins), or -1 for an empty window.
func firstMax(plane []float32, width, h0, h1, w0, w1 int) (float32, int) {
	best := float32(math.Inf(-1))
	bi := -1
	for ih := h0; ih < h1; ih++ {
		for iw := w0; iw < w1; iw++ {
			v := plane[ih*width+iw]
			if v > best || bi < 0 || v != v {
				best, bi = v, ih*width+iw
			}
		}
	}
	return best, bi
}

// max2x2 reports whether g is a 2×2 window with stride 2 and no padding
// whose windows all lie inside the input: the common case, with a loop
// of its own.
func (g PoolGeom) max2x2() bool {
	return g.KH == 2 && g.KW == 2 && g.SH == 2 && g.SW == 2 && g.PT == 0 && g.PL == 0 && g.PB == 0 && g.PR == 0 &&
		2*g.OutH() <= g.H && 2*g.OutW() <= g.W
}

// firstMax4 is firstMax of a 2×2 window a b / c d (row-major).
func firstMax4(a, b, c, d float32) (float32, int) {
	best, bi := a, 0
	for i, v := range [3]float32{b, c, d} {
		if v > best || v != v {
			best, bi = v, i+1
		}
	}
	return best, bi
}

// maxPool2dForward writes the maximum of each window (padding never wins)
// for n samples.
func maxPool2dForward(g PoolGeom, n int, x, out []float32) {
	oh, ow := g.OutH(), g.OutW()
	parallelRange(n*g.C, func(lo, hi int) {
		for pc := lo; pc < hi; pc++ {
			plane := x[pc*g.H*g.W : (pc+1)*g.H*g.W]
			dst := out[pc*oh*ow : (pc+1)*oh*ow]
			if g.max2x2() {
				for y := 0; y < oh; y++ {
					r0, r1 := plane[2*y*g.W:(2*y+1)*g.W], plane[(2*y+1)*g.W:(2*y+2)*g.W]
					for xo := 0; xo < ow; xo++ {
						dst[y*ow+xo], _ = firstMax4(r0[2*xo], r0[2*xo+1], r1[2*xo], r1[2*xo+1])
					}
				}
				continue
			}
			for y := 0; y < oh; y++ {
				for xo := 0; xo < ow; xo++ {
					h0, h1, w0, w1 := g.maxWindow(y, xo)
					dst[y*ow+xo], _ = firstMax(plane, g.W, h0, h1, w0, w1)
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

// avgPool2dForward writes the mean of each window for n samples. With
// countPad the divisor counts padded positions (up to the padded border),
// as PyTorch's count_include_pad=True; without it only real inputs count.
func avgPool2dForward(g PoolGeom, n int, countPad bool, x, out []float32) {
	oh, ow := g.OutH(), g.OutW()
	parallelRange(n*g.C, func(lo, hi int) {
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

// globalAvgPoolForward averages each of the n·c planes of size hw.
func globalAvgPoolForward(nc, hw int, x, out []float32) {
	for i := 0; i < nc; i++ {
		var sum float32
		for _, v := range x[i*hw : (i+1)*hw] {
			sum += v
		}
		out[i] = sum / float32(hw)
	}
}

// globalAvgPoolBackward spreads each gradient evenly over its plane.
func globalAvgPoolBackward(nc, hw int, dy, dx []float32) {
	for i, g := range dy[:nc] {
		v := g / float32(hw)
		plane := dx[i*hw : (i+1)*hw]
		for j := range plane {
			plane[j] = v
		}
	}
}

// pad2dForward copies nc planes of h×w into padded planes filled with g.Value.
func pad2dForward(g PadGeom, nc int, x, out []float32) {
	oh, ow := g.OutH(), g.OutW()
	for i := 0; i < nc; i++ {
		dst := out[i*oh*ow : (i+1)*oh*ow]
		for j := range dst {
			dst[j] = g.Value
		}
		src := x[i*g.H*g.W : (i+1)*g.H*g.W]
		for y := 0; y < g.H; y++ {
			copy(dst[(y+g.PT)*ow+g.PL:(y+g.PT)*ow+g.PL+g.W], src[y*g.W:(y+1)*g.W])
		}
	}
}

// pad2dBackward keeps the gradient of the interior; the border's is dropped.
func pad2dBackward(g PadGeom, nc int, dy, dx []float32) {
	oh, ow := g.OutH(), g.OutW()
	for i := 0; i < nc; i++ {
		src := dy[i*oh*ow : (i+1)*oh*ow]
		dst := dx[i*g.H*g.W : (i+1)*g.H*g.W]
		for y := 0; y < g.H; y++ {
			copy(dst[y*g.W:(y+1)*g.W], src[(y+g.PT)*ow+g.PL:(y+g.PT)*ow+g.PL+g.W])
		}
	}
}

// maxPool2dBackward routes each output gradient to the first maximum of
// its window in the forward input x, as PyTorch does. dx is overwritten.
func maxPool2dBackward(g PoolGeom, n int, x, dout, dx []float32) {
	oh, ow := g.OutH(), g.OutW()
	clear(dx)
	parallelRange(n*g.C, func(lo, hi int) {
		for pc := lo; pc < hi; pc++ {
			src := x[pc*g.H*g.W : (pc+1)*g.H*g.W]
			plane := dx[pc*g.H*g.W : (pc+1)*g.H*g.W]
			if g.max2x2() {
				for y := 0; y < oh; y++ {
					r0, r1 := src[2*y*g.W:(2*y+1)*g.W], src[(2*y+1)*g.W:(2*y+2)*g.W]
					for xo := 0; xo < ow; xo++ {
						_, bi := firstMax4(r0[2*xo], r0[2*xo+1], r1[2*xo], r1[2*xo+1])
						plane[(2*y+bi/2)*g.W+2*xo+bi%2] += dout[pc*oh*ow+y*ow+xo]
					}
				}
				continue
			}
			for y := 0; y < oh; y++ {
				for xo := 0; xo < ow; xo++ {
					h0, h1, w0, w1 := g.maxWindow(y, xo)
					if _, bi := firstMax(src, g.W, h0, h1, w0, w1); bi >= 0 {
						plane[bi] += dout[pc*oh*ow+y*ow+xo]
					}
				}
			}
		}
	})
}

// avgPool2dBackward spreads each output gradient evenly over its window,
// divided as the forward pass divided. dx is overwritten.
func avgPool2dBackward(g PoolGeom, n int, countPad bool, dout, dx []float32) {
	oh, ow := g.OutH(), g.OutW()
	clear(dx)
	parallelRange(n*g.C, func(lo, hi int) {
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
