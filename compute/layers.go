package compute

import "math"

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

// ReLUForward writes max(x, 0); out may be x.
func ReLUForward(x, out []float32) {
	for i, v := range x {
		if v > 0 {
			out[i] = v
		} else {
			out[i] = 0
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

// SoftmaxBackward computes dx from the forward output y and dy, row by row:
// softmax dx = y·(dy − Σ dy·y); log-softmax dx = dy − exp(y)·Σ dy.
func SoftmaxBackward(n, k int, log bool, y, dy, dx []float32) {
	for b := 0; b < n; b++ {
		yr, gr, dr := y[b*k:(b+1)*k], dy[b*k:(b+1)*k], dx[b*k:(b+1)*k]
		if log {
			var sum float32
			for _, g := range gr {
				sum += g
			}
			for i := range dr {
				dr[i] = gr[i] - float32(math.Exp(float64(yr[i])))*sum
			}
		} else {
			var dot float32
			for i := range gr {
				dot += gr[i] * yr[i]
			}
			for i := range dr {
				dr[i] = yr[i] * (gr[i] - dot)
			}
		}
	}
}

// CopyChannels copies, for each of n samples, channels [srcOff, srcOff+c)
// of src (srcC channels of hw values a sample) to channels [dstOff,
// dstOff+c) of dst (dstC channels a sample).
func CopyChannels(n, c, hw int, src []float32, srcC, srcOff int, dst []float32, dstC, dstOff int) {
	for s := 0; s < n; s++ {
		from := src[(s*srcC+srcOff)*hw : (s*srcC+srcOff+c)*hw]
		copy(dst[(s*dstC+dstOff)*hw:(s*dstC+dstOff+c)*hw], from)
	}
}
