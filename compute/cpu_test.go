package compute_test

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/conformance"
)

// TestConformance holds the CPU backend to PyTorch's kernel results and to
// the suite's float64 references, on every kernel set this CPU runs (the
// pure-Go reference, AVX2, AVX-512), whichever a new backend would pick.
func TestConformance(t *testing.T) {
	for _, name := range compute.KernelSets() {
		t.Run(name, func(t *testing.T) {
			be, err := compute.NewCPUKernels(name)
			if err != nil {
				t.Fatal(err)
			}
			conformance.Test(t, be, conformance.FP32)
		})
	}
}

// TestConformanceOneCore runs the suite with one core, where every
// parallel kernel takes its serial path.
func TestConformanceOneCore(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	conformance.Test(t, compute.NewCPU(), conformance.FP32)
}

// TestSgemm holds the emulated cuBLAS GEMM to its definition on every
// combination of transposes, with leading dimensions wider than the rows.
func TestSgemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m, n, k := 7, 5, 9
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			lda, ldb, ldc := k+2, n+3, n+1
			if ta {
				lda = m + 2
			}
			if tb {
				ldb = k + 3
			}
			a := make([]float32, 20*lda)
			b := make([]float32, 20*ldb)
			c := make([]float32, m*ldc)
			for _, v := range [][]float32{a, b, c} {
				for i := range v {
					v[i] = float32(rng.IntN(9) - 4)
				}
			}
			c0 := append([]float32(nil), c...)
			compute.Sgemm(ta, tb, m, n, k, 2, a, lda, b, ldb, 0.5, c, ldc)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					var sum float32
					for p := 0; p < k; p++ {
						av, bv := a[i*lda+p], b[p*ldb+j]
						if ta {
							av = a[p*lda+i]
						}
						if tb {
							bv = b[j*ldb+p]
						}
						sum += av * bv
					}
					if want := 2*sum + 0.5*c0[i*ldc+j]; c[i*ldc+j] != want {
						t.Fatalf("transA=%v transB=%v: C[%d,%d] = %g, want %g", ta, tb, i, j, c[i*ldc+j], want)
					}
				}
			}
		}
	}
}
