package compute

import "math"

// IFForward runs integrate-and-fire neurons as IFArgs describes, on host
// slices: for each neuron j and step t, u = in[t,j] (in[j] when constant),
// mapped by scale/shift when given; v += u; spike = v >= vth; a spiking
// neuron's v is reset to vreset; counts[j] (if given) adds the spike. The
// steps of one neuron run in order; neurons are independent.
func IFForward(a IFArgs, in, scale, shift, v, spikes, counts []float32) {
	var g0 int
	for t := 0; t < a.Steps; t++ {
		src := in
		if !a.Constant {
			src = in[t*a.N : (t+1)*a.N]
		}
		if a.PerStep {
			g0 = t * a.C
		}
		out := spikes[t*a.N : (t+1)*a.N]
		for j := 0; j < a.N; j++ {
			u := src[j]
			if scale != nil {
				c := (j / a.HW) % a.C
				u = float32(u*scale[g0+c]) + shift[g0+c]
			}
			p := v[j] + u
			if p >= a.Threshold {
				out[j] = 1
				v[j] = a.Reset
			} else {
				out[j] = 0
				v[j] = p
			}
		}
		if counts != nil {
			for j, s := range out {
				counts[j] += s
			}
		}
	}
}

// ProxyLossGrad writes dy = 2(counts − onehot(labels))/(n·k), the gradient
// of the proxy loss mean((counts − onehot)²) at the ANN's output.
func ProxyLossGrad(n, k int, counts, labels, dy []float32) {
	scale := float32(2) / float32(n*k)
	for i := 0; i < n; i++ {
		label := int(labels[i])
		for j := 0; j < k; j++ {
			d := counts[i*k+j]
			if j == label {
				d--
			}
			dy[i*k+j] = scale * d
		}
	}
}

// AdamStep is one step of PyTorch's Adam with L2 weight decay (added to the
// gradient, not decoupled) for one parameter.
func AdamStep(a AdamArgs, p, grad, m, v []float32) {
	stepSize, sqrtBC2 := a.Factors()
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	wd, e := float32(a.WeightDecay), float32(a.Eps)
	for i := range p {
		g := grad[i] + wd*p[i]
		m[i] = b1*m[i] + (1-b1)*g
		v[i] = b2*v[i] + (1-b2)*g*g
		denom := float32(math.Sqrt(float64(v[i])))/sqrtBC2 + e
		p[i] -= stepSize * m[i] / denom
	}
}

// Factors are Adam's bias corrections for this step: lr/(1−β1ᵗ) and
// √(1−β2ᵗ), computed in float64 and rounded once, so that every backend
// applies the same values.
func (a AdamArgs) Factors() (stepSize, sqrtBC2 float32) {
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Step))
	bc2 := 1 - math.Pow(a.Beta2, float64(a.Step))
	return float32(a.LR / bc1), float32(math.Sqrt(bc2))
}
