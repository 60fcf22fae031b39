package compute

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestVectorKernels holds Axpy and Dot (SIMD where the CPU has AVX2 and
// FMA) to plain float64 loops, for every length across the 8- and 32-lane
// boundaries.
func TestVectorKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	t.Logf("SIMD kernels in use: %v", useSIMD)
	for n := 0; n < 80; n++ {
		x, y := make([]float32, n+3), make([]float32, n)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		for i := range y {
			y[i] = rng.Float32()*2 - 1
		}
		a := rng.Float32()
		want := make([]float64, n)
		var dot float64
		for i := range y {
			want[i] = float64(y[i]) + float64(a)*float64(x[i])
			dot += float64(x[i]) * float64(y[i])
		}
		got := Dot(x[:n], y)
		if math.Abs(float64(got)-dot) > 1e-5*(1+math.Abs(dot)) {
			t.Errorf("Dot n=%d: %g, want %g", n, got, dot)
		}
		Axpy(a, x, y)
		for i := range y {
			if math.Abs(float64(y[i])-want[i]) > 1e-6 {
				t.Fatalf("Axpy n=%d, element %d: %g, want %g", n, i, y[i], want[i])
			}
		}
	}
}

func BenchmarkAxpy128(b *testing.B) {
	x, y := make([]float32, 128), make([]float32, 128)
	for i := 0; i < b.N; i++ {
		Axpy(0.5, x, y)
	}
	b.ReportMetric(float64(b.N*2*128)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
