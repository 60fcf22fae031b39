package compute

import "math"

// BatchNormInference normalises n samples of c channels × hw positions with
// fixed statistics: y = γ·(x − mean)/√(var + eps) + β.
func BatchNormInference(n, c, hw int, eps float32, gamma, beta, mean, variance, x, out []float32) {
	for ch := 0; ch < c; ch++ {
		scale := gamma[ch] / float32(math.Sqrt(float64(variance[ch]+eps)))
		shift := beta[ch] - mean[ch]*scale
		for s := 0; s < n; s++ {
			off := (s*c + ch) * hw
			src, dst := x[off:off+hw], out[off:off+hw]
			for i, v := range src {
				dst[i] = v*scale + shift
			}
		}
	}
}

// LinearForward computes out[b, o] = bias[o] + Σ_i x[b, i]·w[o, i] for a
// batch of n rows; w is [out, in] as PyTorch stores it, bias may be nil.
// Each weight row is read once and dotted with every input row.
func LinearForward(n, in, outF int, x, w, bias, out []float32) {
	ParallelFor(outF, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			wr := w[o*in : (o+1)*in]
			var b0 float32
			if bias != nil {
				b0 = bias[o]
			}
			for b := 0; b < n; b++ {
				out[b*outF+o] = b0 + Dot(wr, x[b*in:(b+1)*in])
			}
		}
	})
}

// LinearForwardSparse is LinearForward for mostly-zero inputs (spikes),
// given the transposed weight wT [in, out]: each non-zero x[b, i] adds
// x[b, i]·wT[i, :] to row b, so absent spikes cost nothing.
func LinearForwardSparse(n, in, outF int, x, wT, bias, out []float32) {
	for b := 0; b < n; b++ {
		row := out[b*outF : (b+1)*outF]
		if bias != nil {
			copy(row, bias)
		} else {
			clear(row)
		}
	}
	GemmAccParallel(n, outF, in, x, wT, out)
}

// ReLUForward writes max(x, 0).
func ReLUForward(x, out []float32) {
	for i, v := range x {
		if v > 0 {
			out[i] = v
		} else {
			out[i] = 0
		}
	}
}

// SoftmaxForward applies softmax (or log-softmax) to each of n rows of k values.
func SoftmaxForward(n, k int, log bool, x, out []float32) {
	for b := 0; b < n; b++ {
		row, dst := x[b*k:(b+1)*k], out[b*k:(b+1)*k]
		m := row[0]
		for _, v := range row {
			m = max(m, v)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - m))
		}
		for i, v := range row {
			if log {
				dst[i] = v - m - float32(math.Log(sum))
			} else {
				dst[i] = float32(math.Exp(float64(v-m)) / sum)
			}
		}
	}
}

// IFStep advances integrate-and-fire neurons by one time step (dt = 1):
// v += in; a neuron spikes (1) where v >= vth and is then reset to vreset
// (hard reset); elsewhere its spike is 0. It returns the number of spikes.
func IFStep(in, v, spikes []float32, vth, vreset float32) int {
	v = v[:len(in)]
	spikes = spikes[:len(in)]
	n := 0
	for i, x := range in {
		u := v[i] + x
		if u >= vth {
			spikes[i] = 1
			v[i] = vreset
			n++
		} else {
			spikes[i] = 0
			v[i] = u
		}
	}
	return n
}
