package convert_test

import (
	"math"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// TestThresholdScalesExactly normalises the same network for v_th = 1 and
// v_th = 2: every current doubles exactly, so the two SNNs must give the
// same spike counts, bit for bit.
func TestThresholdScalesExactly(t *testing.T) {
	scales := []convert.Scale{{Layer: "", Lambda: 3.8}, {Lambda: 5.5}, {Lambda: 11}, {Layer: "output", Lambda: 11.4}}
	d, err := data.Load(testutil.MNISTDir(t), data.MNIST, false)
	if err != nil {
		t.Fatal(err)
	}
	x := &nn.Tensor{Shape: []int{50, 1, 28, 28}, Data: d.Images[:50*784]}
	var counts [2][]float32
	for i, theta := range []float32{1, 2} {
		m, err := model.Load(testutil.Path("convert/ann.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		sc := append([]convert.Scale(nil), scales...)
		names := reluNames(m.ANN)
		for j := range names {
			sc[j].Layer = names[j]
		}
		if _, err := convert.Normalize(m.ANN, sc, spiking.Config{Threshold: theta}); err != nil {
			t.Fatal(err)
		}
		snn, err := m.SNN(spiking.Config{Timesteps: 32, Threshold: theta})
		if err != nil {
			t.Fatal(err)
		}
		res, err := snn.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		counts[i] = res.Counts.Data
	}
	if d := testutil.Differing(counts[0], counts[1]); d != 0 {
		t.Errorf("%d of %d counts differ between v_th = 1 and v_th = 2", d, len(counts[0]))
	}
	total := float32(0)
	for _, c := range counts[0] {
		total += c
	}
	if total == 0 {
		t.Error("the SNN is silent: the test shows nothing")
	}
}

func reluNames(net *nn.Network) []string {
	var names []string
	for _, l := range net.Layers {
		if _, ok := l.(*nn.ReLU); ok {
			names = append(names, nn.NameOf(l))
		}
	}
	return append(names, "output")
}

func TestNormalizeRefuses(t *testing.T) {
	p := func(name string, data ...float32) *nn.Param { return nn.NewParam(name, data, len(data)) }
	lin := func(name string) *nn.Linear {
		return &nn.Linear{LayerName: name, Weight: nn.NewParam(name+".w", []float32{1, 2, 3, 4}, 2, 2)}
	}
	bn := &nn.BatchNorm2d{LayerName: "bn", Gamma: p("g", 1, 1), Beta: p("b", 0, 0), RunningMean: []float32{0, 0},
		RunningVar: []float32{1, 1}, Eps: 1e-5}
	for _, c := range []struct {
		name   string
		layers []nn.Layer
		input  []int
		scales []float64
		want   string
	}{
		{"flatten between", []nn.Layer{lin("fc1"), &nn.ReLU{LayerName: "r1"}, &nn.Flatten{LayerName: "v"}, lin("fc2")}, []int{2}, []float64{2, 3}, ""},
		{"silent layer", []nn.Layer{lin("fc1"), &nn.ReLU{LayerName: "r1"}, lin("fc2")}, []int{2}, []float64{0, 3}, "never had a positive activation"},
		{"count", []nn.Layer{lin("fc1"), &nn.ReLU{LayerName: "r1"}, lin("fc2")}, []int{2}, []float64{1}, "1 scales for 2"},
		{"padding", []nn.Layer{lin("fc1"), &nn.ReLU{LayerName: "r1"}, &nn.Pad2d{LayerName: "pad", Value: 1}, lin("fc2")}, []int{2}, []float64{1, 2}, "value 1): it does not commute with scaling"},
		{"theta", []nn.Layer{lin("fc1"), &nn.ReLU{LayerName: "r1"}, lin("fc2")}, []int{2}, []float64{1, 2}, ""},
	} {
		net := &nn.Network{InputShape: c.input, Layers: c.layers}
		var sc []convert.Scale
		for j, name := range reluNames(net) {
			if j < len(c.scales) {
				sc = append(sc, convert.Scale{Layer: name, Lambda: c.scales[j]})
			}
		}
		_, err := convert.Normalize(net, sc, spiking.Config{Threshold: 1})
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	// BatchNorm right after an IF layer has no weights to take λ.
	net := &nn.Network{InputShape: []int{2, 1, 1}, Layers: []nn.Layer{bn, &nn.ReLU{LayerName: "r1"}, bn, &nn.ReLU{LayerName: "r2"}}}
	_, err := convert.Normalize(net, []convert.Scale{{Layer: "r1", Lambda: 2}, {Layer: "r2", Lambda: 3}}, spiking.Config{Threshold: 1})
	if err == nil || !strings.Contains(err.Error(), "BatchNorm right after an IF layer") {
		t.Errorf("BN after IF: %v", err)
	}
	if _, err := convert.Normalize(net, nil, spiking.Config{}); err == nil || !strings.Contains(err.Error(), "positive") {
		t.Errorf("theta 0: %v", err)
	}
}

// TestNormalizeKnownValues checks the rule on a two-layer network by hand:
// fc1's weights and bias times θ/λ1, fc2's weights times λ1·θ/λ2 and its
// bias times θ/λ2.
func TestNormalizeKnownValues(t *testing.T) {
	fc1 := &nn.Linear{LayerName: "fc1", Weight: nn.NewParam("w1", []float32{1, -2}, 1, 2), Bias: nn.NewParam("b1", []float32{4}, 1)}
	fc2 := &nn.Linear{LayerName: "fc2", Weight: nn.NewParam("w2", []float32{3}, 1, 1), Bias: nn.NewParam("b2", []float32{-8}, 1)}
	net := &nn.Network{InputShape: []int{2}, Layers: []nn.Layer{fc1, &nn.ReLU{LayerName: "r"}, fc2}}
	if _, err := convert.Normalize(net, []convert.Scale{{Layer: "r", Lambda: 4}, {Layer: "output", Lambda: 16}}, spiking.Config{Threshold: 2}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		got, want []float32
	}{{fc1.Weight.Data, []float32{0.5, -1}}, {fc1.Bias.Data, []float32{2}}, {fc2.Weight.Data, []float32{1.5}}, {fc2.Bias.Data, []float32{-1}}} {
		if testutil.Differing(c.got, c.want) != 0 {
			t.Errorf("got %v, want %v", c.got, c.want)
		}
	}
}

// TestNormalizeClipTwins: a clipped ReLU (ReLU6) whose IF twin saturates
// at the ceiling takes λ = 6 whatever its percentile: fc1
// takes θ/λ1 = 2/6, fc2 λ1·θ/λ2 = 6·2/16, and the ceiling, scaled with its
// input, becomes θ = 2, so that its IF layer's v_th (v_reset + ceiling) is
// the network's; as a ReLU twin it takes its percentile λ1 = 3: fc1 ×2/3,
// fc2 ×3·2/16, the ceiling 6·2/3. The scales returned say which λ was
// used. With θ = 1 the normalised ANN's output is the original's divided
// by the output's λ under both twins, on inputs that drive the clip past
// its ceiling.
func TestNormalizeClipTwins(t *testing.T) {
	for twin, want := range map[spiking.ClipTwin][][]float32{
		spiking.ClipSaturate: {{1, -2}, {0.5}, {1.5}, {-1}},
		spiking.ClipAsReLU:   {{2, -4}, {1}, {0.75}, {-1}},
	} {
		fc1 := &nn.Linear{LayerName: "fc1", Weight: nn.NewParam("w1", []float32{3, -6}, 1, 2), Bias: nn.NewParam("b1", []float32{1.5}, 1)}
		fc2 := &nn.Linear{LayerName: "fc2", Weight: nn.NewParam("w2", []float32{2}, 1, 1), Bias: nn.NewParam("b2", []float32{-8}, 1)}
		net := &nn.Network{InputShape: []int{2}, Layers: []nn.Layer{fc1, &nn.Clip{LayerName: "r6", Ceiling: 6}, fc2}}
		scales := []convert.Scale{{Layer: "r6", Lambda: 3}, {Layer: "output", Lambda: 16}}
		if _, err := convert.Normalize(net, scales, spiking.Config{Threshold: 2, Clip: twin}); err != nil {
			t.Fatal(err)
		}
		for i, got := range [][]float32{fc1.Weight.Data, fc1.Bias.Data, fc2.Weight.Data, fc2.Bias.Data} {
			if testutil.Differing(got, want[i]) != 0 {
				t.Errorf("%s: parameter %d is %v, want %v", twin, i, got, want[i])
			}
		}
		if lambda := map[spiking.ClipTwin]float64{spiking.ClipSaturate: 6, spiking.ClipAsReLU: 3}[twin]; scales[0].Lambda != lambda {
			t.Errorf("%s: the clipped ReLU's scale is %g, want %g", twin, scales[0].Lambda, lambda)
		}
		if c, want := net.Layers[1].(*nn.Clip).Ceiling, map[spiking.ClipTwin]float32{spiking.ClipSaturate: 2, spiking.ClipAsReLU: 4}[twin]; c != want {
			t.Errorf("%s: the ceiling is %g after normalisation, want %g", twin, c, want)
		}
		snn, err := spiking.New(net, spiking.Config{Timesteps: 4, Threshold: 2, Clip: twin})
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range snn.Nodes {
			if nd.IF && nd.Threshold != 2 {
				t.Errorf("%s: the converted SNN's IF layer %s has v_th %g, want the network's 2", twin, nd.Name(), nd.Threshold)
			}
		}
	}
	for _, twin := range spiking.ClipTwins() {
		fc1 := &nn.Linear{LayerName: "fc1", Weight: nn.NewParam("w1", []float32{3, -6}, 1, 2), Bias: nn.NewParam("b1", []float32{1.5}, 1)}
		fc2 := &nn.Linear{LayerName: "fc2", Weight: nn.NewParam("w2", []float32{2}, 1, 1), Bias: nn.NewParam("b2", []float32{-8}, 1)}
		net := &nn.Network{InputShape: []int{2}, Layers: []nn.Layer{fc1, &nn.Clip{LayerName: "r6", Ceiling: 6}, fc2}}
		x := &nn.Tensor{Shape: []int{4, 2}, Data: []float32{3, 0, 1, 0, 0.5, 0.25, 2.5, 0.125}} // z = 10.5, 4.5, 1.5, 8.25
		before, err := lower.Forward(compute.NewCPU(), net, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		scales := []convert.Scale{{Layer: "r6", Lambda: 5}, {Layer: "output", Lambda: 4}}
		if _, err := convert.Normalize(net, scales, spiking.Config{Threshold: 1, Clip: twin}); err != nil {
			t.Fatal(err)
		}
		after, err := lower.Forward(compute.NewCPU(), net, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range after.Data {
			if want := before.Data[i] / 4; math.Abs(float64(after.Data[i]-want)) > 1e-6 {
				t.Errorf("%s, θ = 1: the normalised ANN gives %g for input %d, want the original's %g / 4", twin, after.Data[i], i, before.Data[i])
			}
		}
	}
}

// TestNormalizeBranching: with θ = 1 the normalised network computes the
// original's activations divided by λ, so its output is the original's
// divided by the output's λ — through residual Adds (identity shortcuts
// get a scaling convolution), projection shortcuts, a Concat and grouped
// convolutions, for arbitrary scales. A wrong scale anywhere shows.
func TestNormalizeBranching(t *testing.T) {
	resnet, err := nn.ResNet([]int{1, 12, 12}, 4, 1, 10, 7)
	if err != nil {
		t.Fatal(err)
	}
	tiny, err := model.Load(testutil.Path("graph/resnet_tiny.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, net := range []*nn.Network{resnet, tiny.ANN} {
		x, err := nn.NewTensor(append([]int{3}, net.InputShape...)...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range x.Data {
			x.Data[i] = float32((i*37)%11) / 11
		}
		before, err := lower.Forward(compute.NewCPU(), net, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		layers := len(net.Layers)
		var sc []convert.Scale
		for j, name := range reluNames(net) {
			sc = append(sc, convert.Scale{Layer: name, Lambda: 0.5 + float64((j*7)%5)})
		}
		if _, err := convert.Normalize(net, sc, spiking.Config{Threshold: 1}); err != nil {
			t.Fatal(err)
		}
		after, err := lower.Forward(compute.NewCPU(), net, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		lam := float32(sc[len(sc)-1].Lambda)
		want := make([]float32, len(before.Data))
		for i, v := range before.Data {
			want[i] = v / lam
		}
		if rel := testutil.RelErr(after.Data, want); rel > 1e-5 {
			t.Errorf("%s: normalised output differs from the original's / λ by %.3g", net.Name, rel)
		}
		t.Logf("%s: %d scaling layers inserted, output relative error %.2g", net.Name, len(net.Layers)-layers, testutil.RelErr(after.Data, want))
		if net == resnet && len(net.Layers) == layers {
			t.Errorf("%s: identity shortcuts but no scaling layer", net.Name)
		}
		if _, err := spiking.New(net, spiking.Config{Timesteps: 4, Threshold: 1}); err != nil {
			t.Errorf("%s: the normalised network has no SNN: %v", net.Name, err)
		}
	}
}

// TestNormalizeAffine: conversion normalises through Affine layers (an
// exported network's arithmetic with constants, zoo/normnet: its input
// normalised, a convolution's output halved and shifted): with θ = 1 and
// powers of two for λ, the normalised ANN's output is the original's
// divided by the output layer's λ, exactly.
func TestNormalizeAffine(t *testing.T) {
	m, x, before := normnet(t)
	var scales []convert.Scale
	lambda := 2.0
	for _, l := range m.ANN.Layers {
		if nn.RoleOf(l).Neuron {
			scales = append(scales, convert.Scale{Layer: nn.NameOf(l), Lambda: lambda})
			lambda *= 4
		}
	}
	scales = append(scales, convert.Scale{Layer: "output", Lambda: lambda})
	if _, err := convert.Normalize(m.ANN, scales, spiking.Config{Threshold: 1, Clip: spiking.ClipAsReLU}); err != nil {
		t.Fatal(err)
	}
	after, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range before.Data {
		if w := before.Data[i] / float32(lambda); after.Data[i] != w {
			t.Fatalf("output %d: %g after normalising, want %g / %g = %g", i, after.Data[i], before.Data[i], lambda, w)
		}
	}
}

// TestNormalizeAffineOverflow: a λ that scales an Affine layer's constants
// past float32 is refused, naming the layer, and leaves the network as it
// was — its weights and its Affine layers' constants — so that it computes
// the same outputs, bit for bit.
func TestNormalizeAffineOverflow(t *testing.T) {
	m, x, before := normnet(t)
	var scales []convert.Scale
	for _, l := range m.ANN.Layers {
		if nn.RoleOf(l).Neuron {
			scales = append(scales, convert.Scale{Layer: nn.NameOf(l), Lambda: 2})
		}
	}
	scales[1].Lambda = 1e-39 // the clipped ReLU's input, an Affine's output, scaled by 10^39
	scales = append(scales, convert.Scale{Layer: "output", Lambda: 2})
	_, err := convert.Normalize(m.ANN, scales, spiking.Config{Threshold: 1, Clip: spiking.ClipAsReLU})
	if err == nil || !strings.Contains(err.Error(), "Affine") || !strings.Contains(err.Error(), "overflow") {
		t.Fatalf("Normalize: %v, want the Affine layer's overflow named", err)
	}
	after, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := testutil.Differing(after.Data, before.Data); d != 0 {
		t.Errorf("%d of %d outputs changed by a refused normalisation", d, len(before.Data))
	}
}

// normnet is zoo/normnet's model, its inputs and its ANN's outputs on them.
func normnet(t *testing.T) (*model.Model, *nn.Tensor, *nn.Tensor) {
	t.Helper()
	m, err := model.Load(testutil.Path("zoo/normnet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	x := testutil.Array(t, "zoo/normnet.x.npy")
	y, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, x, y
}
