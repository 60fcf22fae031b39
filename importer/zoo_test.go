package importer_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
)

// TestZooLayers imports the networks with the layer kinds of MobileNetV2,
// MNASNet and ShuffleNetV2 that torch exported (scripts/
// make_zoo_fixtures.py): ReLU6 and Hardtanh(0, c) as Clip, the channel
// shuffle's Reshape–Transpose–Reshape as one ChannelShuffle, Slice and
// Split along channels as ChannelSlice, ReduceMean over H and W as global
// average pooling; at opset 13 and, where the bounds and axes are
// attributes, opset 9. Each equals torch's outputs. splitnet was
// exported on a batch of one, so its shuffle's Reshape constants hold a
// batch size of 1; it runs here on 4 inputs.
func TestZooLayers(t *testing.T) {
	cases := []struct{ file, data, kinds string }{
		{"zoo/relu6net", "zoo/relu6net", "Conv2d BatchNorm2d Clip Conv2d Clip ChannelShuffle ChannelSlice Conv2d ReLU MaxPool2d Conv2d Clip GlobalAvgPool Flatten Linear"},
		{"zoo/relu6net_opset9", "zoo/relu6net", "Conv2d BatchNorm2d Clip Conv2d Clip ChannelShuffle ChannelSlice Conv2d ReLU MaxPool2d Conv2d Clip GlobalAvgPool Flatten Linear"},
		{"zoo/splitnet", "zoo/splitnet", "Conv2d ReLU ChannelSlice ChannelSlice Conv2d Clip Concat ChannelShuffle Conv2d ReLU GlobalAvgPool Flatten Linear"},
		{"zoo/normnet", "zoo/normnet", "Affine Affine Conv2d ReLU Conv2d Affine Affine Clip MaxPool2d Flatten Linear"},
	}
	for _, c := range cases {
		m, err := model.Load(testutil.Path(c.file + ".onnx"))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		var kinds []string
		for _, l := range m.ANN.Layers {
			kinds = append(kinds, nn.KindOf(l))
		}
		if got := strings.Join(kinds, " "); got != c.kinds {
			t.Errorf("%s:\n got %s\nwant %s", c.file, got, c.kinds)
		}
		y, err := lower.Forward(compute.NewCPU(), m.ANN, testutil.Array(t, c.data+".x.npy"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if e := testutil.RelErr(y.Data, testutil.Array(t, c.data+".ann.npy").Data); e > 1e-5 {
			t.Errorf("%s: relative error %.3g against torch", c.file, e)
		} else {
			t.Logf("%s (opset %d): relative error %.2g against torch", c.file, m.ONNX.Opset, e)
		}
	}
}

// TestRefusalsSayWhy: each network proxykit cannot read is refused naming
// the node and its operator, and saying either that the operator is one
// an IF network cannot represent ("not a ReLU network", and what it
// computes) or that proxykit has not implemented it. The refused
// families are torchvision's own classes at small sizes (scripts/
// make_zoo_fixtures.py), with the operators of the full models, and
// arithmetic with constants that no Affine layer computes.
// SwinTransformer's file, valid ONNX, is one that onnx-go cannot decode:
// the message names the tensor and why, not "<nil>". Pickled modules are
// refused the same two ways.
func TestRefusalsSayWhy(t *testing.T) {
	cases := map[string][]string{
		"mobilenet_v3_small": {"HardSigmoid (HardSigmoid)", "not a ReLU network", "Hardswish", "squeeze-and-excitation"},
		"efficientnet_b0":    {"Sigmoid (Sigmoid)", "not a ReLU network", "SiLU", "squeeze-and-excitation"},
		"regnet_y":           {"se/scale_activation/Sigmoid (Sigmoid)", "not a ReLU network", "sigmoid gate", "squeeze-and-excitation"},
		"convnext":           {"features.0.1/Pow (Pow)", "not a ReLU network", "LayerNorm", "GELU"},
		"vit":                {"ln_1/Pow (Pow)", "not a ReLU network", "LayerNorm", "attention", "GELU"},
		"swin": {"onnx-go", "cannot decode node", "attn/Constant", "(Constant)", "BOOL scalar stored in 1 byte(s)",
			"besides", "not a ReLU network", "LayerNorm", "attention"},
		"clip_negative": {"/1/Clip (Clip)", "Clip(min=-1, max=1)", "not a ReLU network"},
		"upsample":      {"/2/Resize (Resize)", "proxykit has not implemented operator Resize"},
		"transpose_hw":  {"/Transpose (Transpose)", "proxykit has not implemented a Transpose (perm [0 1 3 2])"},
		// arithmetic with constants that is no Affine layer
		"div_by_activation": {"/Reciprocal (Reciprocal)", "not a ReLU network", "the reciprocal of activations (1/x)"},
		"mul_by_row":        {"/Mul (Mul)", "a constant [1 1 1 4]", "one per channel: shape [C 1 1] (or [1 C 1 1]) for a [2 4 4] activation"},
		"div_by_zero":       {"/Div (Div)", "Div by a constant holding 0 (channel 1)"},
		// pickled modules
		"silu_seq.pt":     {"module 1 (torch.nn.modules.activation.SiLU)", "not a ReLU network", "SiLU"},
		"upsample_seq.pt": {"module 2", "proxykit has not implemented torch.nn.modules.upsampling.Upsample"},
	}
	for name, want := range cases {
		file := name
		if filepath.Ext(file) == "" {
			file += ".onnx"
		}
		path := testutil.Path(filepath.Join("zoo", "refused", file))
		_, err := model.Load(path)
		if err == nil {
			t.Errorf("%s: imported", name)
			continue
		}
		msg := err.Error()
		for _, w := range append(want, file) {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: the refusal does not say %q:\n%s", name, w, msg)
			}
		}
		if strings.Contains(msg, "<nil>") {
			t.Errorf("%s: %s", name, msg)
		}
		t.Logf("%s: %s", name, msg)
	}
}
