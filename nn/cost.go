package nn

// FanOut gives, for a layer with weights (Conv2d or Linear) and a
// per-sample input shape, the number of connections that leave each
// input position: how many additions one spike there triggers. For a
// convolution this counts, per input pixel, the output positions and
// kernel taps that read it (fewer at the borders) times the output
// channels; for a linear layer it is the number of outputs. ok is false for
// layers without weights.
func FanOut(l Layer, in []int) (fan []float32, ok bool) {
	switch l := l.(type) {
	case *Linear:
		fan = make([]float32, Numel(in))
		for i := range fan {
			fan[i] = float32(l.Weight.Shape[0])
		}
		return fan, true
	case *Conv2d:
		out, err := l.OutputShape(in)
		if err != nil || len(in) != 3 {
			return nil, false
		}
		c, h, w := in[0], in[1], in[2]
		// a pixel feeds only the output channels of its group
		o, kh, kw := l.Weight.Shape[0]/l.groups(), l.Weight.Shape[2], l.Weight.Shape[3]
		rows := taps(h, out[1], kh, l.SH, l.PT, l.DH)
		cols := taps(w, out[2], kw, l.SW, l.PL, l.DW)
		fan = make([]float32, c*h*w)
		for ci := 0; ci < c; ci++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					fan[(ci*h+y)*w+x] = float32(o * rows[y] * cols[x])
				}
			}
		}
		return fan, true
	}
	return nil, false
}

// taps counts, for each of n input positions along one axis, the pairs
// (output position, kernel tap) that read it.
func taps(n, outN, k, stride, pad, dil int) []int {
	t := make([]int, n)
	for o := 0; o < outN; o++ {
		for j := 0; j < k; j++ {
			if i := o*stride - pad + j*dil; i >= 0 && i < n {
				t[i]++
			}
		}
	}
	return t
}

// MACs is the number of multiply-accumulates a layer with weights does on
// one sample of shape in (0 for other layers): what an ANN spends where an
// SNN spends synaptic operations.
func MACs(l Layer, in []int) int64 {
	switch l := l.(type) {
	case *Linear:
		return int64(l.Weight.Shape[0]) * int64(l.Weight.Shape[1])
	case *Conv2d:
		out, err := l.OutputShape(in)
		if err != nil {
			return 0
		}
		return int64(Numel(out)) * int64(Numel(l.Weight.Shape[1:]))
	}
	return 0
}
