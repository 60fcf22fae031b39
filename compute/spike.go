package compute

import "math"

// IFForward runs integrate-and-fire neurons as IFArgs describes, on host
// slices, with ks's step kernel: for each neuron j and step t, u =
// in[t,j] (in[j] when constant), mapped by scale/shift when given (a
// bias, shift alone, when scale is nil); v += u;
// spike = v >= vth; a spiking neuron's v is reset to vreset; counts[j]
// (if given) adds the spike. The steps of one neuron run in order;
// neurons are independent, split across cores in planes of HW neurons
// (one channel of one sample, where scale and shift are constant); planes
// smaller than smallPlane (a linear layer's bias: HW = 1) are mapped in
// blocks by mapChannels first, not handed to the step kernel one by one.
func (ks *kernelSet) IFForward(a IFArgs, in, scale, shift, v, spikes, counts []float32) {
	small := shift != nil && a.HW < smallPlane
	plane := 4096 // without an affine map, any split will do
	if shift != nil && !small {
		plane = a.HW
	}
	planes := (a.N + plane - 1) / plane
	// at least 64 Ki neurons a goroutine
	workers := max(1, min(maxWorkers(), a.N>>16))
	parallelFor(planes, workers, func(_, lo, hi int) {
		var mapped []float32
		if small {
			mapped = make([]float32, plane)
		}
		for t := 0; t < a.Steps; t++ {
			src := in
			if !a.Constant {
				src = in[t*a.N : (t+1)*a.N]
			}
			g0 := 0
			if a.PerStep {
				g0 = t * a.C
			}
			out := spikes[t*a.N : (t+1)*a.N]
			for pl := lo; pl < hi; pl++ {
				j0, j1 := pl*plane, min((pl+1)*plane, a.N)
				var cnt []float32
				if counts != nil {
					cnt = counts[j0:j1]
				}
				x, affine := src[j0:j1], shift != nil && !small
				var sc, sh float32 = 1, 0 // a bias alone: u·1 + sh is u + sh, exactly
				if affine {
					c := pl % a.C
					sh = shift[g0+c]
					if scale != nil {
						sc = scale[g0+c]
					}
				} else if small {
					mapChannels(x, mapped[:j1-j0], j0, a.HW, a.C, g0, scale, shift)
					x = mapped[:j1-j0]
				}
				ks.ifPlane(x, v[j0:j1], out[j0:j1], cnt, affine, sc, sh, a.Threshold, a.Reset)
			}
		}
	})
}

// smallPlane is the plane size below which a per-channel map is applied
// by mapChannels rather than by a vector kernel called once per plane.
const smallPlane = 64

// mapChannels writes out[i] = fl(fl(x[i]·scale[k]) + shift[k]) (scale nil:
// 1, so x[i] + shift[k] exactly rounded) with k = g0 + c for neuron j0 + i
// of channel c = ((j0 + i)/hw) mod C: the map the affine kernels apply a
// plane at a time, for planes too small for that.
func mapChannels(x, out []float32, j0, hw, C, g0 int, scale, shift []float32) {
	out = out[:len(x)]
	for i, v := range x {
		k := g0 + ((j0+i)/hw)%C
		sc := float32(1)
		if scale != nil {
			sc = scale[k]
		}
		out[i] = float32(v*sc) + shift[k]
	}
}

// proxyLossGrad writes dy = 2(counts − onehot(labels))/(n·k), the gradient
// of the proxy loss mean((counts − onehot)²) at the ANN's output: the
// whole batch as its own share (ProxyLossGradOf).
func proxyLossGrad(n, k int, counts, labels, dy []float32) {
	proxyLossGradOf(n, n, k, counts, labels, dy)
}

// Factors are Adam's bias corrections for this step: lr/(1−β1ᵗ) and
// √(1−β2ᵗ), computed in float64 and rounded once, so that every backend
// applies the same values.
func (a AdamArgs) Factors() (stepSize, sqrtBC2 float32) {
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Step))
	bc2 := 1 - math.Pow(a.Beta2, float64(a.Step))
	return float32(a.LR / bc1), float32(math.Sqrt(bc2))
}
