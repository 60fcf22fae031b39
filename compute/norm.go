package compute

import "math"

// BatchNormStats computes, for each of groups groups of n samples (x is
// [groups·n, c, hw]), each channel's mean and biased variance into mean
// and variance ([groups, c]), in float64: the sum of x, then of (x − mean)²
// (bnSums).
func (ks *kernelSet) BatchNormStats(groups, n, c, hw int, x, mean, variance []float32) {
	m := float64(n * hw)
	mu := make([]float64, c)
	sums := make([]float64, c)
	for g := 0; g < groups; g++ {
		xg := x[g*n*c*hw : (g+1)*n*c*hw]
		ks.bnSums(n, c, hw, xg, nil, sums)
		for ch, sum := range sums {
			mu[ch] = sum / m
		}
		ks.bnSums(n, c, hw, xg, mu, sums)
		for ch := 0; ch < c; ch++ {
			mean[g*c+ch], variance[g*c+ch] = float32(mu[ch]), float32(sums[ch]/m)
		}
	}
}

// bnSums writes each channel's sum over n samples of x (mu nil) or of
// (x − mu[channel])², in float64: each sample's leaf summed over its
// pixels in the sums kernel's 32 lanes, the leaves combined by the batch
// reduction rule (reduce.go), so that shares of a batch give the whole
// batch's sums.
func (ks *kernelSet) bnSums(n, c, hw int, x []float32, mu []float64, sums []float64) {
	batchTree(n, maxWorkers(), 1, sums, func(_, s, _ int, leaf []float64) {
		for ch := range leaf {
			plane := x[(s*c+ch)*hw : (s*c+ch+1)*hw]
			if mu == nil {
				leaf[ch] = ks.sums(plane, 0, false)
			} else {
				leaf[ch] = ks.sums(plane, mu[ch], true)
			}
		}
	}, addF64, nil)
}

// batchNormUpdateRunning folds groups batch statistics ([groups, c]) into
// the running statistics, one group after the other, as PyTorch's train()
// mode does once per forward pass: r = (1−m)·r + m·batch, with the
// variance made unbiased by count/(count−1).
func batchNormUpdateRunning(groups, c, count int, momentum float32, mean, variance, runMean, runVar []float32) {
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

// batchNormScaleShift writes the affine map that normalises with (mean,
// variance) and applies γ, β: scale = γ/√(var+eps), shift = β − mean·scale,
// for groups rows of c channels (γ and β are the same for every row).
func batchNormScaleShift(groups, c int, eps float32, gamma, beta, mean, variance, scale, shift []float32) {
	for g := 0; g < groups; g++ {
		for ch := 0; ch < c; ch++ {
			i := g*c + ch
			s := gamma[ch] / float32(math.Sqrt(float64(variance[i]+eps)))
			scale[i] = s
			shift[i] = beta[ch] - float32(mean[i]*s)
		}
	}
}

// ChannelAffine writes out = x·scale[g,c] + shift[g,c] (each operation
// rounded; scale nil is 1: x + shift exactly rounded) for groups groups of
// n samples of c channels × hw positions, then with relu max(out, 0) by
// the ReLU kernel, plane by plane (a sample at a time for planes smaller
// than smallPlane: mapChannels) while it is in cache; out may be x.
func (ks *kernelSet) ChannelAffine(groups, n, c, hw int, x, scale, shift, out []float32, relu bool) {
	parallelRange(groups*n, func(lo, hi int) {
		for gs := lo; gs < hi; gs++ {
			g := gs / n
			if hw < smallPlane {
				row := out[gs*c*hw : (gs+1)*c*hw]
				mapChannels(x[gs*c*hw:(gs+1)*c*hw], row, 0, hw, c, g*c, scale, shift)
				if relu {
					ks.relu(row, row)
				}
				continue
			}
			for ch := 0; ch < c; ch++ {
				sc, sh := float32(1), shift[g*c+ch]
				if scale != nil {
					sc = scale[g*c+ch]
				}
				off := (gs*c + ch) * hw
				ks.affine(x[off:off+hw], out[off:off+hw], sc, sh)
				if relu {
					ks.relu(out[off:off+hw], out[off:off+hw])
				}
			}
		}
	})
}

// batchNormBackward computes BN's gradients given the statistics the
// forward pass normalised with (mean and variance per channel; invstd =
// 1/√(var+eps)). With batch statistics (train) the mean and variance
// depend on x:
//
//	dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))
//
// with fixed statistics dx = γ·invstd·dy. dgamma += Σ dy·x̂, dbeta += Σ dy:
// each sample's leaf summed over its pixels in float64 and rounded, the
// leaves combined in float32 by the batch reduction rule (reduce.go), as
// every gradient is, so that shares of a batch add up to its gradient.
// dx may be nil.
func batchNormBackward(n, c, hw int, train bool, eps float32, gamma, mean, variance, x, dy, dx, dgamma, dbeta []float32) {
	is := bnInvStd(c, eps, variance)
	// sums[ch] = Σ dy, sums[c+ch] = Σ dy·x̂
	sums := make([]float32, 2*c)
	bnBackwardSums(n, c, hw, mean, is, x, dy, sums)
	for ch := 0; ch < c; ch++ {
		dgamma[ch] += sums[c+ch]
		dbeta[ch] += sums[ch]
	}
	if dx == nil {
		return
	}
	if train {
		bnBackwardData(n, c, hw, n*hw, gamma, mean, is, x, dy, sums, dx)
		return
	}
	parallelRange(n, func(lo, hi int) {
		for s := lo; s < hi; s++ {
			for ch := 0; ch < c; ch++ {
				k := float64(gamma[ch]) * is[ch]
				off := (s*c + ch) * hw
				for i, g := range dy[off : off+hw] {
					dx[off+i] = float32(k * float64(g))
				}
			}
		}
	})
}

// bnInvStd is each channel's 1/√(var+eps), in float64.
func bnInvStd(c int, eps float32, variance []float32) []float64 {
	is := make([]float64, c)
	for ch := range is {
		is[ch] = 1 / math.Sqrt(float64(variance[ch]+eps))
	}
	return is
}

// bnBackwardSums writes BatchNorm's backward sums over n samples, Σdy
// (sums[ch]) and Σdy·x̂ (sums[c+ch]): each sample's leaf summed over its
// pixels in float64 and rounded, the leaves combined in float32 by the
// batch reduction rule (reduce.go), so that shares of a batch add up to
// the batch's sums.
func bnBackwardSums(n, c, hw int, mean []float32, is []float64, x, dy, sums []float32) {
	batchTree(n, maxWorkers(), 1, sums, func(_, s, _ int, leaf []float32) {
		for ch := 0; ch < c; ch++ {
			mu := float64(mean[ch])
			off := (s*c + ch) * hw
			var sdy, sdyx float64
			for i, g := range dy[off : off+hw] {
				sdy += float64(g)
				sdyx += float64(float64(g) * (float64(x[off+i]) - mu) * is[ch]) // no fused multiply-add
			}
			leaf[ch], leaf[c+ch] = float32(sdy), float32(sdyx)
		}
	}, addGeneric, nil)
}

// bnBackwardData writes dx = γ·invstd·(dy − Σdy/count − x̂·Σdy·x̂/count)
// for n samples normalised with batch statistics over count values per
// channel, from the batch's sums (bnBackwardSums).
func bnBackwardData(n, c, hw, count int, gamma, mean []float32, is []float64, x, dy, sums, dx []float32) {
	m := float64(count)
	parallelRange(n, func(lo, hi int) {
		for s := lo; s < hi; s++ {
			for ch := 0; ch < c; ch++ {
				mu, sdy, sdyx := float64(mean[ch]), float64(sums[ch]), float64(sums[c+ch])
				k := float64(gamma[ch]) * is[ch]
				off := (s*c + ch) * hw
				for i, g := range dy[off : off+hw] {
					xh := (float64(x[off+i]) - mu) * is[ch]
					dx[off+i] = float32(k * (float64(g) - sdy/m - xh*sdyx/m))
				}
			}
		}
	})
}
