package compute

// GemmAcc computes C += A·B for row-major A [m,k], B [k,n] and C [m,n].
//
// The loop order is i-p-j: each non-zero A[i,p] scales row p of B into row
// i of C. Zero entries of A are skipped, so a spike matrix (mostly zeros)
// costs only as much as its spikes; this is why the kernels that take
// activations put them in A.
func GemmAcc(m, n, k int, a, b, c []float32) {
	for i := 0; i < m; i++ {
		ci := c[i*n : i*n+n]
		ai := a[i*k : i*k+k]
		for p, av := range ai {
			if av == 0 {
				continue
			}
			Axpy(av, b[p*n:p*n+n], ci)
		}
	}
}

// GemmAccParallel is GemmAcc with the rows of A split across cores.
func GemmAccParallel(m, n, k int, a, b, c []float32) {
	if m*n*k < 1<<16 {
		GemmAcc(m, n, k, a, b, c)
		return
	}
	ParallelFor(m, func(lo, hi int) {
		GemmAcc(hi-lo, n, k, a[lo*k:hi*k], b, c[lo*n:hi*n])
	})
}

// Transpose writes the transpose of the row-major [rows, cols] matrix src
// into dst, shaped [cols, rows]. It works in 32×32 tiles so that both
// sides stay in cache for large matrices.
func Transpose(rows, cols int, src, dst []float32) {
	const tile = 32
	for r0 := 0; r0 < rows; r0 += tile {
		r1 := min(r0+tile, rows)
		for c0 := 0; c0 < cols; c0 += tile {
			c1 := min(c0+tile, cols)
			for r := r0; r < r1; r++ {
				row := src[r*cols : r*cols+cols]
				for c := c0; c < c1; c++ {
					dst[c*rows+r] = row[c]
				}
			}
		}
	}
}
