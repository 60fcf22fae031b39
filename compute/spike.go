package compute

import "math"

// IFForward runs integrate-and-fire neurons as IFArgs describes, on host
// slices, with ks's step kernel: for each neuron j and step t, u =
// in[t,j] (in[j] when constant), mapped by scale/shift when given (a
// bias, shift alone, when scale is nil); v += u;
// spike = v >= vth; a spiking neuron's v is reset to vreset; counts[j]
// (if given) adds the spike. The steps of one neuron run in order;
// neurons are independent, split across cores in planes of HW neurons
// (one channel of one sample, where scale and shift are constant).
func (ks *kernelSet) IFForward(a IFArgs, in, scale, shift, v, spikes, counts []float32) {
	plane := 4096 // without an affine map, any split will do
	if shift != nil {
		plane = a.HW
	}
	planes := (a.N + plane - 1) / plane
	// at least 64 Ki neurons a goroutine
	workers := max(1, min(maxWorkers(), a.N>>16))
	parallelFor(planes, workers, func(_, lo, hi int) {
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
				var sc, sh float32 = 1, 0 // a bias alone: u·1 + sh is u + sh, exactly
				if shift != nil {
					c := pl % a.C
					sh = shift[g0+c]
					if scale != nil {
						sc = scale[g0+c]
					}
				}
				ks.ifPlane(src[j0:j1], v[j0:j1], out[j0:j1], cnt, shift != nil, sc, sh, a.Threshold, a.Reset)
			}
		}
	})
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
