package importer_test

import (
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
)

// TestBranchingNetworkMatchesPyTorch imports testdata/graph/resnet_tiny
// (scripts/make_graph_fixtures.py: residual blocks with identity and
// projection shortcuts, a grouped and a depthwise convolution, a Concat)
// and holds its ANN to torch's outputs.
func TestBranchingNetworkMatchesPyTorch(t *testing.T) {
	m, err := model.Load(testutil.Path("graph/resnet_tiny.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	net := m.ANN
	if net.IsChain() {
		t.Fatal("imported as a chain")
	}
	joins := map[string]int{}
	for _, l := range net.Layers {
		if nn.RoleOf(l).Join {
			joins[nn.KindOf(l)]++
		}
	}
	if joins["Add"] != 2 || joins["Concat"] != 1 {
		t.Errorf("joins %v, want 2 Add and 1 Concat", joins)
	}
	y, err := lower.Forward(compute.NewCPU(), net, testutil.Array(t, "graph/resnet_tiny.x.npy"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := testutil.Array(t, "graph/resnet_tiny.ann.npy")
	if e := testutil.RelErr(y.Data, want.Data); e > 1e-5 {
		t.Errorf("relative error %.3g against torch", e)
	} else {
		t.Logf("%d layers, relative error %.2g against torch", len(net.Layers), e)
	}
}

// TestTinyResidual imports bad_residual.onnx, the residual network
// proxykit refused while it took chains only: a ReLU read by a convolution
// and by the Add after it.
func TestTinyResidual(t *testing.T) {
	m, err := model.Load(testutil.Path("bad_residual.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ANN.IsChain() {
		t.Error("imported as a chain")
	}
	if _, err := m.ANN.Shapes(); err != nil {
		t.Error(err)
	}
}
