package compute

import "math"

// Surrogate-gradient training (docs/design.md §1, "Surrogate gradients"):
// the IF recurrence run forward keeping each step's potential before the
// spike, and its backward pass through time, the Heaviside step's
// derivative replaced by a sigmoid's.

// IFGradArgs describe one backward pass of IF neurons through Steps time
// steps: the gradient at their input currents from the gradient at their
// spikes, through the recurrence IFRecord ran. For each neuron, from the
// last step back to the first, with dv the gradient at the potential
// after step t (0 after the last step):
//
//	g  = ds[t] + dv·(Reset − h[t])     (dv·… left out with DetachReset)
//	dh = g·σ'(h[t] − Threshold)  + (dv where h[t] < Threshold)
//	du[t] = dh; dv = dh
//
// σ' is SigmoidSurrogate. Each operation is rounded to float32 (no fused
// multiply-add).
type IFGradArgs struct {
	Steps, N int
	// H is each step's potential before the spike and the reset, [Steps,
	// N], as IFRecord wrote it.
	H Buffer
	// DS is the gradient at the spikes, [Steps, N]; with ConstantGrad [N],
	// the same at every step (the output layer, whose counts sum its
	// spikes).
	DS           Buffer
	ConstantGrad bool
	// DU receives the gradient at the input current, [Steps, N]
	// (overwritten); with ConstantInput, [N], summed over the steps from
	// the last to the first (an input that is the same at every step: the
	// static input layer's output).
	DU            Buffer
	ConstantInput bool
	// Threshold and Reset are v_th and v_reset.
	Threshold, Reset float32
	// Alpha is the sigmoid surrogate's sharpness; DetachReset leaves the
	// reset out of the gradient (the spike's effect on the potential).
	Alpha       float32
	DetachReset bool
}

// SigmoidSurrogate is the derivative the surrogate gradient puts in place
// of the Heaviside step's at x = h − v_th: α·σ(αx)·(1 − σ(αx)), σ the
// logistic function, SpikingJelly's surrogate.Sigmoid. It is computed in
// float64 and rounded once to float32.
func SigmoidSurrogate(x, alpha float32) float32 {
	s := 1 / (1 + math.Exp(-float64(alpha)*float64(x)))
	return float32(float64(alpha) * s * (1 - s))
}

// ifChunk is how many neurons a goroutine of the IF kernels takes at a
// time: their steps run one after the other over the chunk, so that each
// step's rows are read and written in order.
const ifChunk = 4096

// ifRecord runs IF neurons as IFArgs describes (the same bits as IF) and
// writes each step's potential before the spike and the reset into h,
// [Steps, N]. Neurons are independent, split across cores in chunks; each
// one's steps run in order.
func ifRecord(a IFArgs, in, scale, shift, v, spikes, counts, h []float32) {
	chunks := (a.N + ifChunk - 1) / ifChunk
	parallelFor(chunks, max(1, min(maxWorkers(), a.N>>14)), func(_, c0, c1 int) {
		for c := c0; c < c1; c++ {
			lo, hi := c*ifChunk, min((c+1)*ifChunk, a.N)
			for t := 0; t < a.Steps; t++ {
				src := in
				if !a.Constant {
					src = in[t*a.N : (t+1)*a.N]
				}
				hs, out := h[t*a.N:(t+1)*a.N], spikes[t*a.N:(t+1)*a.N]
				for j := lo; j < hi; j++ {
					u := src[j]
					if shift != nil {
						g := (j / a.HW) % a.C
						if a.PerStep {
							g += t * a.C
						}
						if scale != nil {
							u = float32(u * scale[g])
						}
						u += shift[g]
					}
					p := v[j] + u
					hs[j] = p
					if p >= a.Threshold {
						out[j], v[j] = 1, a.Reset
						if counts != nil {
							counts[j]++
						}
					} else {
						out[j], v[j] = 0, p
					}
				}
			}
		}
	})
}

// ifSurrogateGrad is the backward pass IFGradArgs describes, on host
// slices. Neurons are independent, split across cores in chunks; the
// steps run from the last back over each chunk.
func ifSurrogateGrad(a IFGradArgs, h, ds, du []float32) {
	chunks := (a.N + ifChunk - 1) / ifChunk
	parallelFor(chunks, max(1, min(maxWorkers(), a.N>>14)), func(_, c0, c1 int) {
		dv := make([]float32, ifChunk) // the gradient at each neuron's potential after the step
		for c := c0; c < c1; c++ {
			lo, hi := c*ifChunk, min((c+1)*ifChunk, a.N)
			clear(dv)
			if a.ConstantInput {
				clear(du[lo:hi])
			}
			for t := a.Steps - 1; t >= 0; t-- {
				hs := h[t*a.N : (t+1)*a.N]
				g := ds
				if !a.ConstantGrad {
					g = ds[t*a.N : (t+1)*a.N]
				}
				out := du
				if !a.ConstantInput {
					out = du[t*a.N : (t+1)*a.N]
				}
				for j := lo; j < hi; j++ {
					hv, d := hs[j], dv[j-lo]
					gj := g[j]
					if !a.DetachReset {
						gj += float32(d * (a.Reset - hv))
					}
					dh := float32(gj * SigmoidSurrogate(hv-a.Threshold, a.Alpha))
					if !(hv >= a.Threshold) { // no spike: the potential carries on
						dh += d
					}
					if a.ConstantInput {
						out[j] += dh
					} else {
						out[j] = dh
					}
					dv[j-lo] = dh
				}
			}
		}
	})
}

// IFRecord implements Backend: IF's arguments (without Pool, which would
// drop spikes the backward pass reads, and Start) and h, [Steps, N].
func (c *CPU) IFRecord(f IFArgs, h Buffer) {
	a := args{kernel: "IFRecord"}
	steps, in, scale, shift := a.ifInputs(f)
	if f.Pool != nil || f.Start {
		a.fail("pooling or starting in the kernel: the backward pass reads every spike, and the potentials are filled before")
	}
	v, spikes, counts := a.buf("V", f.V, a.size(f.N)), a.buf("Spikes", f.Spikes, steps), a.opt("Counts", f.Counts, f.N)
	hs := a.buf("H", h, steps)
	if !c.ok(&a) {
		return
	}
	ifRecord(f, in, scale, shift, v, spikes, counts, hs)
}

// IFSurrogateGrad implements Backend.
func (c *CPU) IFSurrogateGrad(f IFGradArgs) {
	a := args{kernel: "IFSurrogateGrad"}
	steps := a.size(f.Steps, f.N)
	dsN, duN := steps, steps
	if f.ConstantGrad {
		dsN = a.size(f.N)
	}
	if f.ConstantInput {
		duN = a.size(f.N)
	}
	h, ds, du := a.buf("H", f.H, steps), a.buf("DS", f.DS, dsN), a.buf("DU", f.DU, duN)
	if !c.ok(&a) {
		return
	}
	ifSurrogateGrad(f, h, ds, du)
}
