package nn

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// The oracle: PyTorch's forward and backward results in
// testdata/kernels.json (scripts/make_kernel_fixtures.py), for the layers
// whose gradients are computed here rather than in compute/.
func TestLayerGradientsAgainstPyTorch(t *testing.T) {
	b, err := os.ReadFile("../testdata/kernels.json")
	if err != nil {
		t.Fatal(err)
	}
	type arr struct {
		Shape []int
		Data  []float32
	}
	var f struct {
		Cases []struct {
			Op, Layer    string
			X, Y, DY, DX *arr
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	layers := map[string]Trainable{
		"Softmax": &Softmax{}, "LogSoftmax": &Softmax{Log: true}, "GlobalAvgPool": &GlobalAvgPool{},
		"Pad2d": &Pad2d{PT: 0, PB: 3, PL: 1, PR: 2, Value: 0.5}, "ReLU": &ReLU{},
	}
	seen := 0
	for _, c := range f.Cases {
		if c.Op != "layer" {
			continue
		}
		seen++
		l := layers[c.Layer]
		y, cache := l.ForwardTrain(&Tensor{Shape: c.X.Shape, Data: c.X.Data}, Mode{})
		if rel := relErr(y.Data, c.Y.Data); rel > 1e-6 {
			t.Errorf("%s forward: relative error %g", c.Layer, rel)
		}
		dx := l.Backward(cache, &Tensor{Shape: y.Shape, Data: c.DY.Data})
		if rel := relErr(dx.Data, c.DX.Data); rel > 1e-5 {
			t.Errorf("%s backward: relative error %g", c.Layer, rel)
		}
	}
	if seen != len(layers) {
		t.Fatalf("%d layer cases in the fixture, want %d", seen, len(layers))
	}
}

func relErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range want {
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / math.Max(den, 1e-30))
}
