package lower

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/proxykit/proxykit/compute"
	. "github.com/proxykit/proxykit/nn"
)

// runLayer runs l's forward and backward pass through an Executor on the
// CPU backend, behind a 1×1 identity convolution (whose input gradient the
// executor skips), and returns l's output and its input gradient.
func runLayer(t *testing.T, l Layer, shape []int, x, dy []float32) (y, dx []float32) {
	t.Helper()
	be := compute.NewCPU()
	in := shape[1:]
	var layers []Layer
	if len(in) == 3 {
		c := in[0]
		w := make([]float32, c*c)
		for i := 0; i < c; i++ {
			w[i*c+i] = 1
		}
		layers = append(layers, &Conv2d{LayerName: "id", Weight: NewParam("id.weight", w, c, c, 1, 1), SH: 1, SW: 1, DH: 1, DW: 1})
	} else {
		k := in[0]
		w := make([]float32, k*k)
		for i := 0; i < k; i++ {
			w[i*k+i] = 1
		}
		layers = append(layers, &Linear{LayerName: "id", Weight: NewParam("id.weight", w, k, k)})
	}
	layers = append(layers, l)
	net := &Network{InputShape: in, Layers: layers}
	if err := net.Bind(be); err != nil {
		t.Fatal(err)
	}
	e, err := NewExecutor(be, net, Options{Capacity: shape[0], Backward: true})
	if err != nil {
		t.Fatal(err)
	}
	xb, err := be.Adopt(x)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Forward(Value{Shape: shape, Buf: xb})
	if err != nil {
		t.Fatal(err)
	}
	y = make([]float32, out.Buf.Len())
	if err := be.Download(y, out.Buf); err != nil {
		t.Fatal(err)
	}
	dyb, err := be.Adopt(dy)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Backward(Value{Shape: out.Shape, Buf: dyb}); err != nil {
		t.Fatal(err)
	}
	dx = make([]float32, len(x))
	if err := be.Download(dx, e.InputGrad(1).Buf); err != nil {
		t.Fatal(err)
	}
	return y, dx
}

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
	layers := map[string]Layer{
		"Softmax": &Softmax{}, "LogSoftmax": &Softmax{Log: true}, "GlobalAvgPool": &GlobalAvgPool{},
		"Pad2d": &Pad2d{PT: 0, PB: 3, PL: 1, PR: 2, Value: 0.5}, "ReLU": &ReLU{},
		"ReLU6": &Clip{Ceiling: 6}, "Hardtanh": &Clip{Ceiling: 2.5}, "ChannelShuffle": &ChannelShuffle{Groups: 3},
		"ChannelSlice": &ChannelSlice{Start: 2, Stop: 5},
	}
	seen := 0
	for _, c := range f.Cases {
		if c.Op != "layer" {
			continue
		}
		seen++
		// The layer between two identity-like neighbours, so that the
		// executor computes its input gradient: an executor skips the
		// first layer's.
		l := layers[c.Layer]
		y, dx := runLayer(t, l, c.X.Shape, c.X.Data, c.DY.Data)
		if rel := relErr(y, c.Y.Data); rel > 1e-6 {
			t.Errorf("%s forward: relative error %g", c.Layer, rel)
		}
		if rel := relErr(dx, c.DX.Data); rel > 1e-5 {
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
