package compute

import "math"

// BatchNormTrainForward normalises with the batch's own statistics:
// mean and biased variance per channel over n samples × hw positions. It
// returns them (PyTorch normalises with the biased variance and updates its
// running variance with the unbiased one) and writes invstd = 1/√(var+eps).
func BatchNormTrainForward(n, c, hw int, eps float32, gamma, beta, x, out, mean, variance, invstd []float32) {
	m := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		var sum float64
		for s := 0; s < n; s++ {
			for _, v := range x[(s*c+ch)*hw : (s*c+ch+1)*hw] {
				sum += float64(v)
			}
		}
		mu := sum / m
		var sq float64
		for s := 0; s < n; s++ {
			for _, v := range x[(s*c+ch)*hw : (s*c+ch+1)*hw] {
				d := float64(v) - mu
				sq += d * d
			}
		}
		vr := sq / m
		is := 1 / math.Sqrt(vr+float64(eps))
		mean[ch], variance[ch], invstd[ch] = float32(mu), float32(vr), float32(is)
		scale := float32(float64(gamma[ch]) * is)
		shift := beta[ch] - float32(mu)*scale
		for s := 0; s < n; s++ {
			off := (s*c + ch) * hw
			for i, v := range x[off : off+hw] {
				out[off+i] = v*scale + shift
			}
		}
	}
}

// BatchNormBackward computes BN's gradients given the statistics the
// forward pass normalised with (mean and invstd per channel). With batch
// statistics (train) the mean and variance depend on x:
//
//	dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))
//
// with fixed statistics dx = γ·invstd·dy. dgamma += Σ dy·x̂, dbeta += Σ dy.
func BatchNormBackward(n, c, hw int, train bool, gamma, mean, invstd, x, dy, dx, dgamma, dbeta []float32) {
	m := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		mu, is := float64(mean[ch]), float64(invstd[ch])
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

// LinearBackward computes dx = dy·W (overwritten; nil to skip),
// dw += dyᵀ·x and db += Σ_b dy (nil to skip) for y = x·Wᵀ + b.
func LinearBackward(n, in, outF int, x, w, dy, dx, dw, db []float32) {
	if dx != nil {
		clear(dx)
		GemmAccParallel(n, in, outF, dy, w, dx)
	}
	dyT := make([]float32, outF*n)
	Transpose(n, outF, dy, dyT)
	GemmAccParallel(outF, in, n, dyT, x, dw)
	if db != nil {
		for b := 0; b < n; b++ {
			for o, g := range dy[b*outF : (b+1)*outF] {
				db[o] += g
			}
		}
	}
}

// ReLUBackward passes the gradient where the forward output was positive.
func ReLUBackward(y, dy, dx []float32) {
	for i, v := range y {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
}

// AdamStep is one step of PyTorch's Adam with L2 weight decay (added to the
// gradient, not decoupled) for one parameter. t is the step number, from 1.
func AdamStep(p, grad, m, v []float32, t int, lr, beta1, beta2, eps, weightDecay float64) {
	bc1 := 1 - math.Pow(beta1, float64(t))
	bc2 := 1 - math.Pow(beta2, float64(t))
	stepSize := float32(lr / bc1)
	sqrtBC2 := float32(math.Sqrt(bc2))
	b1, b2 := float32(beta1), float32(beta2)
	wd, e := float32(weightDecay), float32(eps)
	for i := range p {
		g := grad[i] + wd*p[i]
		m[i] = b1*m[i] + (1-b1)*g
		v[i] = b2*v[i] + (1-b2)*g*g
		denom := float32(math.Sqrt(float64(v[i])))/sqrtBC2 + e
		p[i] -= stepSize * m[i] / denom
	}
}
