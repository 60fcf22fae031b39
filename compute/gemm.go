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

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on row-major matrices, the
// contract of cuBLAS's SGEMM restated for row-major storage: op(A) is
// [m, k] (A is stored [m, lda], or [k, lda] when transA), op(B) is [k, n]
// (B is [k, ldb], or [n, ldb] when transB) and C is [m, ldc]. With beta = 0
// C is not read. It serves the emulated CUDA device's GEMM.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int,
	beta float32, c []float32, ldc int) {
	pa := make([]float32, m*k)
	for i := 0; i < m; i++ {
		for p := 0; p < k; p++ {
			if transA {
				pa[i*k+p] = a[p*lda+i]
			} else {
				pa[i*k+p] = a[i*lda+p]
			}
		}
	}
	pb := make([]float32, k*n)
	for p := 0; p < k; p++ {
		for j := 0; j < n; j++ {
			if transB {
				pb[p*n+j] = b[j*ldb+p]
			} else {
				pb[p*n+j] = b[p*ldb+j]
			}
		}
	}
	prod := make([]float32, m*n)
	GemmAccParallel(m, n, k, pa, pb, prod)
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			if beta == 0 {
				row[j] = alpha * prod[i*n+j]
			} else {
				row[j] = alpha*prod[i*n+j] + beta*row[j]
			}
		}
	}
}
