// Package refmath is the definition of every kernel of compute.Backend
// written as plainly as possible, in float64, sharing nothing with any
// backend: the oracle the conformance suite holds backends to on random
// inputs, and the float64 math of nn's layer kinds (Layer.Reference).
//
// Being the oracle, the references trust their arguments and check
// nothing: sizes and geometries must be ones a backend's kernel accepts
// (compute.CPU checks them: compute.Elements, a geometry with an output)
// and the slices must hold what they describe. Other arguments may panic
// (an index out of range) or, for sizes no memory holds, fail to
// allocate; no size (n = 0, or a geometry without output) gives empty
// results.
package refmath

import (
	"math"

	"github.com/proxykit/proxykit/compute"
)

// Real is an element type of the references' inputs.
type Real interface{ ~float32 | ~float64 }

// Conv is Conv2dForward: y = bias + Σ w·x over each output's window and
// its group's channels.
func Conv[X, W Real](g compute.ConvGeom, n int, x []X, w, bias []W) []float64 {
	oh, ow := g.OutH(), g.OutW()
	y := make([]float64, n*g.O*oh*ow)
	for s := 0; s < n; s++ {
		for o := 0; o < g.O; o++ {
			for yy := 0; yy < oh; yy++ {
				for xx := 0; xx < ow; xx++ {
					var acc float64
					if bias != nil {
						acc = float64(bias[o])
					}
					cg := g.C / g.Groups()
					first := o / (g.O / g.Groups()) * cg // the first input channel of o's group
					for cl := 0; cl < cg; cl++ {
						c := first + cl
						for kh := 0; kh < g.KH; kh++ {
							for kw := 0; kw < g.KW; kw++ {
								ih, iw := yy*g.SH-g.PT+kh*g.DH, xx*g.SW-g.PL+kw*g.DW
								if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
									continue
								}
								acc += float64(w[((o*cg+cl)*g.KH+kh)*g.KW+kw]) * float64(x[((s*g.C+c)*g.H+ih)*g.W+iw])
							}
						}
					}
					y[((s*g.O+o)*oh+yy)*ow+xx] = acc
				}
			}
		}
	}
	return y
}

// ConvBackward returns Conv's dx, dw and db for dy.
func ConvBackward[T Real](g compute.ConvGeom, n int, x, w, dy []T) (dx, dw, db []float64) {
	oh, ow := g.OutH(), g.OutW()
	dx = make([]float64, len(x))
	dw = make([]float64, len(w))
	db = make([]float64, g.O)
	for s := 0; s < n; s++ {
		for o := 0; o < g.O; o++ {
			for yy := 0; yy < oh; yy++ {
				for xx := 0; xx < ow; xx++ {
					d := float64(dy[((s*g.O+o)*oh+yy)*ow+xx])
					db[o] += d
					cg := g.C / g.Groups()
					first := o / (g.O / g.Groups()) * cg
					for cl := 0; cl < cg; cl++ {
						c := first + cl
						for kh := 0; kh < g.KH; kh++ {
							for kw := 0; kw < g.KW; kw++ {
								ih, iw := yy*g.SH-g.PT+kh*g.DH, xx*g.SW-g.PL+kw*g.DW
								if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
									continue
								}
								xi := ((s*g.C+c)*g.H+ih)*g.W + iw
								wi := ((o*cg+cl)*g.KH+kh)*g.KW + kw
								dx[xi] += float64(w[wi]) * d
								dw[wi] += float64(x[xi]) * d
							}
						}
					}
				}
			}
		}
	}
	return dx, dw, db
}

// Linear is LinearForward: y = bias + x·wᵀ.
func Linear[X, W Real](n, in, out int, x []X, w, bias []W) []float64 {
	y := make([]float64, n*out)
	for b := 0; b < n; b++ {
		for o := 0; o < out; o++ {
			var acc float64
			if bias != nil {
				acc = float64(bias[o])
			}
			for i := 0; i < in; i++ {
				acc += float64(x[b*in+i]) * float64(w[o*in+i])
			}
			y[b*out+o] = acc
		}
	}
	return y
}

// LinearBackward returns Linear's dx, dw and db for dy.
func LinearBackward[T Real](n, in, out int, x, w, dy []T) (dx, dw, db []float64) {
	dx, dw, db = make([]float64, n*in), make([]float64, out*in), make([]float64, out)
	for b := 0; b < n; b++ {
		for o := 0; o < out; o++ {
			d := float64(dy[b*out+o])
			db[o] += d
			for i := 0; i < in; i++ {
				dx[b*in+i] += d * float64(w[o*in+i])
				dw[o*in+i] += d * float64(x[b*in+i])
			}
		}
	}
	return dx, dw, db
}

// PoolWindow is output (y, x)'s window clipped to the input, with the
// average pool's divisor.
func PoolWindow(g compute.PoolGeom, y, x int, countPad bool) (h0, h1, w0, w1, div int) {
	h0, w0 = y*g.SH-g.PT, x*g.SW-g.PL
	h1, w1 = h0+g.KH, w0+g.KW
	ph1, pw1 := min(h1, g.H+g.PB), min(w1, g.W+g.PR)
	div = (ph1 - h0) * (pw1 - w0)
	h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, g.H), min(w1, g.W)
	if !countPad {
		div = (h1 - h0) * (w1 - w0)
	}
	return
}

// MaxPool returns the outputs and, per output, the input index of the
// first maximum of its window (-1 for none).
func MaxPool[T Real](g compute.PoolGeom, n int, x []T) ([]float64, []int) {
	oh, ow := g.OutH(), g.OutW()
	y := make([]float64, n*g.C*oh*ow)
	arg := make([]int, len(y))
	for p := 0; p < n*g.C; p++ {
		for yy := 0; yy < oh; yy++ {
			for xx := 0; xx < ow; xx++ {
				h0, h1, w0, w1, _ := PoolWindow(g, yy, xx, false)
				best, bi := math.Inf(-1), -1
				for ih := h0; ih < h1; ih++ {
					for iw := w0; iw < w1; iw++ {
						i := (p*g.H+ih)*g.W + iw
						if v := float64(x[i]); bi < 0 || v > best {
							best, bi = v, i
						}
					}
				}
				o := (p*oh+yy)*ow + xx
				y[o], arg[o] = best, bi
			}
		}
	}
	return y, arg
}

// AvgPool is AvgPool2dForward.
func AvgPool[T Real](g compute.PoolGeom, n int, countPad bool, x []T) []float64 {
	oh, ow := g.OutH(), g.OutW()
	y := make([]float64, n*g.C*oh*ow)
	for p := 0; p < n*g.C; p++ {
		for yy := 0; yy < oh; yy++ {
			for xx := 0; xx < ow; xx++ {
				h0, h1, w0, w1, div := PoolWindow(g, yy, xx, countPad)
				var sum float64
				for ih := h0; ih < h1; ih++ {
					for iw := w0; iw < w1; iw++ {
						sum += float64(x[(p*g.H+ih)*g.W+iw])
					}
				}
				if div > 0 {
					y[(p*oh+yy)*ow+xx] = sum / float64(div)
				}
			}
		}
	}
	return y
}

// AvgPoolBackward is AvgPool2dBackward.
func AvgPoolBackward[T Real](g compute.PoolGeom, n int, countPad bool, dy []T) []float64 {
	oh, ow := g.OutH(), g.OutW()
	dx := make([]float64, n*g.C*g.H*g.W)
	for p := 0; p < n*g.C; p++ {
		for yy := 0; yy < oh; yy++ {
			for xx := 0; xx < ow; xx++ {
				h0, h1, w0, w1, div := PoolWindow(g, yy, xx, countPad)
				if div == 0 {
					continue
				}
				d := float64(dy[(p*oh+yy)*ow+xx]) / float64(div)
				for ih := h0; ih < h1; ih++ {
					for iw := w0; iw < w1; iw++ {
						dx[(p*g.H+ih)*g.W+iw] += d
					}
				}
			}
		}
	}
	return dx
}

// BNStats returns per (group, channel) mean and biased variance.
func BNStats[T Real](groups, n, c, hw int, x []T) (mean, variance []float64) {
	mean, variance = make([]float64, groups*c), make([]float64, groups*c)
	for g := 0; g < groups; g++ {
		for ch := 0; ch < c; ch++ {
			var s, sq float64
			for b := 0; b < n; b++ {
				for i := 0; i < hw; i++ {
					v := float64(x[((g*n+b)*c+ch)*hw+i])
					s += v
					sq += v * v
				}
			}
			m := float64(n * hw)
			mean[g*c+ch] = s / m
			variance[g*c+ch] = sq/m - (s/m)*(s/m)
		}
	}
	return
}

// BNBackward is BatchNormBackward.
func BNBackward[T Real](n, c, hw int, train bool, eps float32, gamma, mean, variance, x, dy []T) (dx, dg, db []float64) {
	dx, dg, db = make([]float64, len(x)), make([]float64, c), make([]float64, c)
	m := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		is := 1 / math.Sqrt(float64(variance[ch])+float64(eps))
		mu := float64(mean[ch])
		for b := 0; b < n; b++ {
			for i := 0; i < hw; i++ {
				j := (b*c+ch)*hw + i
				db[ch] += float64(dy[j])
				dg[ch] += float64(dy[j]) * (float64(x[j]) - mu) * is
			}
		}
		for b := 0; b < n; b++ {
			for i := 0; i < hw; i++ {
				j := (b*c+ch)*hw + i
				k := float64(gamma[ch]) * is
				if train {
					xh := (float64(x[j]) - mu) * is
					dx[j] = k * (float64(dy[j]) - db[ch]/m - xh*dg[ch]/m)
				} else {
					dx[j] = k * float64(dy[j])
				}
			}
		}
	}
	return
}

// IF runs the IF recurrence in float32, as its definition states it:
// u = in (·scale + shift, each rounded to float32), v = v + u, spike when
// v >= threshold, hard reset.
func IF(a compute.IFArgs, in, scale, shift, v []float32) (spikes, counts []float32) {
	spikes, counts, _ = IFRecord(a, in, scale, shift, v)
	return spikes, counts
}

// IFRecord is IF that also returns each step's potential before the spike
// and the reset, [Steps, N] (compute.Backend.IFRecord).
func IFRecord(a compute.IFArgs, in, scale, shift, v []float32) (spikes, counts, h []float32) {
	spikes = make([]float32, a.Steps*a.N)
	counts = make([]float32, a.N)
	h = make([]float32, a.Steps*a.N)
	for t := 0; t < a.Steps; t++ {
		for j := 0; j < a.N; j++ {
			u := in[j]
			if !a.Constant {
				u = in[t*a.N+j]
			}
			if shift != nil { // with scale a fused BatchNorm, without it a bias
				g := 0
				if a.PerStep {
					g = t
				}
				c := (j / a.HW) % a.C
				if scale != nil {
					u = float32(u * scale[g*a.C+c]) // rounded: no fused multiply-add
				}
				u += shift[g*a.C+c]
			}
			p := v[j] + u
			h[t*a.N+j] = p
			if p >= a.Threshold {
				spikes[t*a.N+j] = 1
				counts[j]++
				v[j] = a.Reset
			} else {
				v[j] = p
			}
		}
	}
	return
}

// IFSurrogateGrad is compute.Backend.IFSurrogateGrad in float64: for each
// neuron, from the last step back, with v_t = (1 − s_t)·h_t + s_t·v_reset
// and s_t = [h_t ≥ v_th], whose derivative is taken to be
// α·σ(α(h_t − v_th))·(1 − σ(α(h_t − v_th))),
//
//	∂L/∂h_t = (∂L/∂s_t + ∂L/∂v_t·(v_reset − h_t))·σ'_t + ∂L/∂v_t·(1 − s_t)
//
// (the second term of the bracket left out with DetachReset), ∂L/∂u_t =
// ∂L/∂h_t and ∂L/∂v_{t−1} = ∂L/∂h_t. With ConstantInput the result is
// summed over the steps, [N].
func IFSurrogateGrad(a compute.IFGradArgs, h, ds []float32) []float64 {
	out := make([]float64, a.Steps*a.N)
	if a.ConstantInput {
		out = make([]float64, a.N)
	}
	alpha, vth, reset := float64(a.Alpha), float64(a.Threshold), float64(a.Reset)
	for j := 0; j < a.N; j++ {
		var dv float64
		for t := a.Steps - 1; t >= 0; t-- {
			hv := float64(h[t*a.N+j])
			g := float64(ds[j])
			if !a.ConstantGrad {
				g = float64(ds[t*a.N+j])
			}
			if !a.DetachReset {
				g += dv * (reset - hv)
			}
			sig := 1 / (1 + math.Exp(-alpha*(hv-vth)))
			dh := g * alpha * sig * (1 - sig)
			if !(hv >= vth) {
				dh += dv
			}
			if a.ConstantInput {
				out[j] += dh
			} else {
				out[t*a.N+j] = dh
			}
			dv = dh
		}
	}
	return out
}

// Softmax is SoftmaxForward.
func Softmax[T Real](n, k int, log bool, x []T) []float64 {
	y := make([]float64, n*k)
	for b := 0; b < n; b++ {
		m := math.Inf(-1)
		for j := 0; j < k; j++ {
			m = math.Max(m, float64(x[b*k+j]))
		}
		var s float64
		for j := 0; j < k; j++ {
			s += math.Exp(float64(x[b*k+j]) - m)
		}
		for j := 0; j < k; j++ {
			if log {
				y[b*k+j] = float64(x[b*k+j]) - m - math.Log(s)
			} else {
				y[b*k+j] = math.Exp(float64(x[b*k+j])-m) / s
			}
		}
	}
	return y
}

// SoftmaxBackward is SoftmaxBackward.
func SoftmaxBackward[T Real](n, k int, log bool, y, dy []T) []float64 {
	dx := make([]float64, n*k)
	for b := 0; b < n; b++ {
		var s float64
		for j := 0; j < k; j++ {
			if log {
				s += float64(dy[b*k+j])
			} else {
				s += float64(dy[b*k+j]) * float64(y[b*k+j])
			}
		}
		for j := 0; j < k; j++ {
			if log {
				dx[b*k+j] = float64(dy[b*k+j]) - math.Exp(float64(y[b*k+j]))*s
			} else {
				dx[b*k+j] = float64(y[b*k+j]) * (float64(dy[b*k+j]) - s)
			}
		}
	}
	return dx
}

// Clip is ClipForward: min(max(x, 0), ceiling), a NaN giving 0.
func Clip[T Real](ceiling float64, x []T) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		if float64(v) > 0 {
			y[i] = math.Min(float64(v), ceiling)
		}
	}
	return y
}

// ClipBackward is ClipBackward: dy where the input lay strictly between
// the bounds (0 < y < ceiling), else 0.
func ClipBackward[T Real](ceiling float64, y, dy []T) []float64 {
	dx := make([]float64, len(y))
	for i, v := range y {
		if float64(v) > 0 && float64(v) < ceiling {
			dx[i] = float64(dy[i])
		}
	}
	return dx
}

// ChannelShuffle is ChannelShuffle, as ShuffleNet writes it: each
// sample's channels viewed as [groups, c/groups], transposed to
// [c/groups, groups] and read back in order.
func ChannelShuffle[T Real](n, groups, c, hw int, x []T) []float64 {
	per := c / groups
	y := make([]float64, 0, len(x))
	for s := 0; s < n; s++ {
		for i2 := 0; i2 < per; i2++ { // the transposed view's outer axis
			for i1 := 0; i1 < groups; i1++ {
				src := x[(s*c+i1*per+i2)*hw : (s*c+i1*per+i2+1)*hw]
				for _, v := range src {
					y = append(y, float64(v))
				}
			}
		}
	}
	return y
}

// Transpose is compute.Backend.Transpose: each of n rows×cols matrices of
// x transposed, y[s, j, i] = x[s, i, j] — an activation's NCHW planes
// ([C, H·W]) laid out channels-last ([H·W, C]), a convolution's weight
// [O][C/G, KH·KW] as [O][KH·KW, C/G].
func Transpose[T Real](n, rows, cols int, x []T) []T {
	y := make([]T, len(x))
	m := rows * cols
	for s := 0; s < n; s++ {
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				y[s*m+j*rows+i] = x[s*m+i*cols+j]
			}
		}
	}
	return y
}

// Half is x rounded to IEEE binary16 and back: to nearest, ties to even,
// subnormals kept (a multiple of 2^-24 below 2^-14), ±Inf from 65520 on
// (the first value past the largest finite one, 65504, that does not
// round down to it); NaN and ±Inf stay. compute.F16 stores values so.
func Half(x float32) float32 {
	f := float64(x)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return x
	}
	a := math.Abs(f)
	if a >= 65520 {
		return float32(math.Copysign(math.Inf(1), f))
	}
	e := -14 // the binade's exponent: a in [2^e, 2^(e+1)), or subnormal
	if a >= 0x1p-14 {
		_, exp := math.Frexp(a)
		e = exp - 1
	}
	q := math.Ldexp(1, e-10) // binary16's spacing there: 10 fraction bits
	return float32(math.Copysign(math.RoundToEven(a/q)*q, f))
}
