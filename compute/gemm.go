package compute

import (
	"fmt"
	"sync"
)

// GEMM blocking (Goto's scheme, as BLIS and OpenBLAS block): a kc×nc panel
// of B and an mc×kc block of A are packed into the micro-kernel's layout;
// the micro-kernel keeps an mr×nr tile of C in registers. Blocking never
// changes a result: every C element is one chain of fused multiply-adds
// over k in ascending order, continued from C between kc blocks.
const (
	gemmKC = 256
	gemmMC = 192 // a multiple of every kernel set's mr (12, 6, 4)
	gemmNC = 2048
)

// gemm computes C = op(A)·op(B), overwriting C: op(A) is [m, k] (A is
// stored [m, lda], or [k, lda] when transA), op(B) is [k, n] (B is [k,
// ldb], or [n, ldb] when transB), C is [m, ldc]. It splits the work over
// up to workers goroutines; the result does not depend on how many.
func (ks *kernelSet) gemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, workers int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
		return
	}
	if workers > 1 && m*n*k < 1<<18 {
		workers = 1
	}
	if workers <= 1 {
		ks.gemmSerial(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, nil)
		return
	}
	// split the larger of m and n into chunks of whole tiles
	if n >= m {
		chunks := (n + ks.nr - 1) / ks.nr
		parallelFor(chunks, workers, func(_, lo, hi int) {
			j0, j1 := lo*ks.nr, min(hi*ks.nr, n)
			bo := j0 // B's column j0
			if transB {
				bo = j0 * ldb
			}
			ks.gemmSerial(transA, transB, m, j1-j0, k, a, lda, b[bo:], ldb, c[j0:], ldc, nil)
		})
		return
	}
	chunks := (m + ks.mr - 1) / ks.mr
	parallelFor(chunks, workers, func(_, lo, hi int) {
		i0, i1 := lo*ks.mr, min(hi*ks.mr, m)
		ao := i0 * lda
		if transA {
			ao = i0
		}
		ks.gemmSerial(transA, transB, i1-i0, n, k, a[ao:], lda, b, ldb, c[i0*ldc:], ldc, nil)
	})
}

// packPool holds packing buffers between GEMM calls.
var packPool = sync.Pool{New: func() any { return new([]float32) }}

func getBuf(n int) *[]float32 {
	p := packPool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// packAll packs the whole of op(A) ([m, k]) into out (padTo(m, mr)·k
// values) as gemmSerial's blocks: the block of rows [ic, ic+mc) and
// inputs [pc, pc+kc) at pc·padTo(m, mr) + ic·kc. A weight that stays the
// same from call to call is packed once.
func (ks *kernelSet) packAll(trans bool, m, k int, a []float32, lda int, out []float32) {
	mPad := padTo(m, ks.mr)
	for pc := 0; pc < k; pc += gemmKC {
		kc := min(gemmKC, k-pc)
		for ic := 0; ic < m; ic += gemmMC {
			packA(trans, min(gemmMC, m-ic), kc, ks.mr, a, lda, ic, pc, out[pc*mPad+ic*kc:])
		}
	}
}

// gemmSerial is gemm on one goroutine; packed, if not nil, is op(A) as
// packAll packs it.
func (ks *kernelSet) gemmSerial(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int,
	packed []float32) {
	mr, nr := ks.mr, ks.nr
	ncMax := min(gemmNC, (n+nr-1)/nr*nr)
	kcMax := min(gemmKC, k)
	mcMax := min(gemmMC, (m+mr-1)/mr*mr)
	bpBuf, apBuf := getBuf(kcMax*ncMax), getBuf(mcMax*kcMax)
	defer packPool.Put(bpBuf)
	defer packPool.Put(apBuf)
	bp, ap := *bpBuf, *apBuf
	mPad := padTo(m, mr)
	var edge [16 * 64]float32 // an edge tile: mr·nr ≤ 16·64
	for jc := 0; jc < n; jc += gemmNC {
		nc := min(gemmNC, n-jc)
		for pc := 0; pc < k; pc += gemmKC {
			kc := min(gemmKC, k-pc)
			packB(transB, kc, nc, nr, b, ldb, pc, jc, bp)
			for ic := 0; ic < m; ic += gemmMC {
				mc := min(gemmMC, m-ic)
				if packed != nil {
					ap = packed[pc*mPad+ic*kc:]
				} else {
					packA(transA, mc, kc, mr, a, lda, ic, pc, ap)
				}
				for jr := 0; jr < nc; jr += nr {
					bPanel := bp[jr*kc : jr*kc+kc*nr]
					nw := min(nr, nc-jr)
					for ir := 0; ir < mc; ir += mr {
						aPanel := ap[ir*kc : ir*kc+kc*mr]
						mh := min(mr, mc-ir)
						ct := c[(ic+ir)*ldc+jc+jr:]
						if mh == mr && nw == nr {
							ks.micro(kc, aPanel, bPanel, ct, ldc, pc > 0)
							continue
						}
						t := edge[:mr*nr]
						if pc > 0 {
							for i := 0; i < mh; i++ {
								copy(t[i*nr:i*nr+nw], ct[i*ldc:i*ldc+nw])
							}
						}
						ks.micro(kc, aPanel, bPanel, t, nr, pc > 0)
						for i := 0; i < mh; i++ {
							copy(ct[i*ldc:i*ldc+nw], t[i*nr:i*nr+nw])
						}
					}
				}
			}
		}
	}
}

// packA packs op(A)[i0:i0+mc, p0:p0+kc] into panels of mr rows, each
// stored p-major (dst[panel·kc·mr + p·mr + i]), rows past mc zero.
func packA(trans bool, mc, kc, mr int, a []float32, lda, i0, p0 int, dst []float32) {
	for ir := 0; ir < mc; ir += mr {
		panel := dst[ir*kc : ir*kc+kc*mr]
		rows := min(mr, mc-ir)
		if rows < mr {
			clear(panel)
		}
		for i := 0; i < rows; i++ {
			if trans { // op(A)[r, p] = A[p, r]
				col := i0 + ir + i
				for p := 0; p < kc; p++ {
					panel[p*mr+i] = a[(p0+p)*lda+col]
				}
			} else {
				row := a[(i0+ir+i)*lda+p0 : (i0+ir+i)*lda+p0+kc]
				for p, v := range row {
					panel[p*mr+i] = v
				}
			}
		}
	}
}

// packB packs op(B)[p0:p0+kc, j0:j0+nc] into panels of nr columns, each
// stored p-major (dst[panel·kc·nr + p·nr + j]), columns past nc zero.
func packB(trans bool, kc, nc, nr int, b []float32, ldb, p0, j0 int, dst []float32) {
	for jr := 0; jr < nc; jr += nr {
		panel := dst[jr*kc : jr*kc+kc*nr]
		cols := min(nr, nc-jr)
		if trans { // op(B)[p, j] = B[j, p]
			if cols < nr {
				clear(panel)
			}
			for j := 0; j < cols; j++ {
				row := b[(j0+jr+j)*ldb+p0 : (j0+jr+j)*ldb+p0+kc]
				for p, v := range row {
					panel[p*nr+j] = v
				}
			}
			continue
		}
		for p := 0; p < kc; p++ {
			d := panel[p*nr : p*nr+nr]
			n := copy(d[:cols], b[(p0+p)*ldb+j0+jr:])
			clear(d[n:])
		}
	}
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on row-major matrices, the
// contract of cuBLAS's SGEMM restated for row-major storage: op(A) is
// [m, k] (A is stored [m, lda], or [k, lda] when transA), op(B) is [k, n]
// (B is [k, ldb], or [n, ldb] when transB) and C is [m, ldc]. With beta = 0
// C is not read. It serves the emulated CUDA device's GEMM, with the CPU
// backend's blocked kernels (the product is the same chain of fused
// multiply-adds on every kernel set), then alpha and beta applied. It
// refuses sizes below 0 (or whose products exceed MaxValues), leading
// dimensions shorter than the rows they lead and matrices shorter than
// those rows.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int,
	beta float32, c []float32, ldc int) error {
	arg := args{kernel: "Sgemm"}
	arg.size(m, n, k)
	// a matrix of rows×cols stored with leading dimension ld holds at
	// least (rows−1)·ld + cols values
	need := func(name string, x []float32, rows, cols, ld int) {
		if arg.err != nil || rows == 0 || cols == 0 {
			return
		}
		if ld < cols {
			arg.fail("%s's leading dimension %d is below its %d columns", name, ld, cols)
			return
		}
		if size := arg.size(rows-1, ld); arg.err == nil && len(x) < size+cols {
			arg.fail("%s holds %d values, %d needed", name, len(x), size+cols)
		}
	}
	rowsA, colsA, rowsB, colsB := m, k, k, n
	if transA {
		rowsA, colsA = k, m
	}
	if transB {
		rowsB, colsB = n, k
	}
	need("A", a, rowsA, colsA, lda)
	need("B", b, rowsB, colsB, ldb)
	need("C", c, m, n, ldc)
	if arg.err != nil {
		return fmt.Errorf("compute: Sgemm: %w", arg.err)
	}
	if m == 0 || n == 0 {
		return nil
	}
	if k == 0 {
		lda, ldb = max(lda, 1), max(ldb, 1)
	}
	prod := make([]float32, m*n)
	defaultKernels.gemm(transA, transB, m, n, k, a, lda, b, ldb, prod, n, maxWorkers())
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
	return nil
}
