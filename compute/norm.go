package compute

import "math"

// BatchNormStats computes, for each of groups groups of n samples (x is
// [groups·n, c, hw]), each channel's mean and biased variance, summed in
// float64, into mean and variance ([groups, c]).
func BatchNormStats(groups, n, c, hw int, x, mean, variance []float32) {
	m := float64(n * hw)
	for g := 0; g < groups; g++ {
		xg := x[g*n*c*hw : (g+1)*n*c*hw]
		for ch := 0; ch < c; ch++ {
			var sum float64
			for s := 0; s < n; s++ {
				for _, v := range xg[(s*c+ch)*hw : (s*c+ch+1)*hw] {
					sum += float64(v)
				}
			}
			mu := sum / m
			var sq float64
			for s := 0; s < n; s++ {
				for _, v := range xg[(s*c+ch)*hw : (s*c+ch+1)*hw] {
					d := float64(v) - mu
					sq += d * d
				}
			}
			mean[g*c+ch], variance[g*c+ch] = float32(mu), float32(sq/m)
		}
	}
}

// BatchNormUpdateRunning folds groups batch statistics ([groups, c]) into
// the running statistics, one group after the other, as PyTorch's train()
// mode does once per forward pass: r = (1−m)·r + m·batch, with the
// variance made unbiased by count/(count−1).
func BatchNormUpdateRunning(groups, c, count int, momentum float32, mean, variance, runMean, runVar []float32) {
	unbias := float32(1)
	if count > 1 {
		unbias = float32(count) / float32(count-1)
	}
	for g := 0; g < groups; g++ {
		for ch := 0; ch < c; ch++ {
			runMean[ch] = (1-momentum)*runMean[ch] + momentum*mean[g*c+ch]
			runVar[ch] = (1-momentum)*runVar[ch] + momentum*variance[g*c+ch]*unbias
		}
	}
}

// BatchNormScaleShift writes the affine map that normalises with (mean,
// variance) and applies γ, β: scale = γ/√(var+eps), shift = β − mean·scale,
// for groups rows of c channels (γ and β are the same for every row).
func BatchNormScaleShift(groups, c int, eps float32, gamma, beta, mean, variance, scale, shift []float32) {
	for g := 0; g < groups; g++ {
		for ch := 0; ch < c; ch++ {
			i := g*c + ch
			s := gamma[ch] / float32(math.Sqrt(float64(variance[i]+eps)))
			scale[i] = s
			shift[i] = beta[ch] - float32(mean[i]*s)
		}
	}
}

// ChannelAffine writes out = x·scale[g,c] + shift[g,c] for groups groups of
// n samples of c channels × hw positions; out may be x.
func ChannelAffine(groups, n, c, hw int, x, scale, shift, out []float32) {
	for g := 0; g < groups; g++ {
		for s := 0; s < n; s++ {
			for ch := 0; ch < c; ch++ {
				sc, sh := scale[g*c+ch], shift[g*c+ch]
				off := ((g*n+s)*c + ch) * hw
				src, dst := x[off:off+hw], out[off:off+hw]
				for i, v := range src {
					dst[i] = float32(v*sc) + sh
				}
			}
		}
	}
}

// BatchNormBackward computes BN's gradients given the statistics the
// forward pass normalised with (mean and variance per channel; invstd =
// 1/√(var+eps)). With batch statistics (train) the mean and variance
// depend on x:
//
//	dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))
//
// with fixed statistics dx = γ·invstd·dy. dgamma += Σ dy·x̂, dbeta += Σ dy.
// dx may be nil.
func BatchNormBackward(n, c, hw int, train bool, eps float32, gamma, mean, variance, x, dy, dx, dgamma, dbeta []float32) {
	m := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		mu := float64(mean[ch])
		is := 1 / math.Sqrt(float64(variance[ch]+eps))
		var sdy, sdyx float64
		for s := 0; s < n; s++ {
			off := (s*c + ch) * hw
			for i, g := range dy[off : off+hw] {
				sdy += float64(g)
				sdyx += float64(g) * (float64(x[off+i]) - mu) * is
			}
		}
		dgamma[ch] += float32(sdyx)
		dbeta[ch] += float32(sdy)
		if dx == nil {
			continue
		}
		k := float64(gamma[ch]) * is
		for s := 0; s < n; s++ {
			off := (s*c + ch) * hw
			for i, g := range dy[off : off+hw] {
				if train {
					xh := (float64(x[off+i]) - mu) * is
					dx[off+i] = float32(k * (float64(g) - sdy/m - xh*sdyx/m))
				} else {
					dx[off+i] = float32(k * float64(g))
				}
			}
		}
	}
}
