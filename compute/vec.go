package compute

// Axpy computes y[i] += a·x[i] for i < len(y); x must be at least as long.
// On amd64 machines with AVX2 and FMA it runs 8 lanes at a time (vec_amd64.s).
func Axpy(a float32, x, y []float32) {
	x = x[:len(y)]
	n := 0
	if useSIMD && len(y) >= 8 {
		n = len(y) &^ 7
		axpySIMD(a, x[:n], y[:n])
	}
	for i := n; i < len(y); i++ {
		y[i] += a * x[i]
	}
}

// Dot is Σ x[i]·y[i] over the length of x; y must be at least as long.
func Dot(x, y []float32) float32 {
	y = y[:len(x)]
	n := 0
	var s float32
	if useSIMD && len(x) >= 8 {
		n = len(x) &^ 7
		s = dotSIMD(x[:n], y[:n])
	}
	for i := n; i < len(x); i++ {
		s += x[i] * y[i]
	}
	return s
}
