package train_test

import (
	"context"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/recipe"
)

// runProxy trains testdata/proxy/net.onnx as scripts/make_train_fixtures.py
// did in PyTorch and returns the ANN's outputs on the fixed batch.
func runProxy(t *testing.T, be compute.Backend, epochs, maxTrain, freezeBNAfter int) (before, after []float32) {
	t.Helper()
	s := recipe.Default()
	s.Dataset, s.Epochs, s.BatchSize, s.LR = data.MNIST, epochs, 100, 1e-3
	s.Shuffle, s.Augment, s.FreezeBNAfter, s.MaxTrain = false, false, freezeBNAfter, maxTrain
	tr := proxyTrainer(t, testutil.Path("proxy/net.onnx"), s)
	tr.Backend = be
	x := testutil.Array(t, "proxy/x.npy")
	y0, err := lower.Forward(compute.NewCPU(), tr.ANN, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil { // back from the backend into host memory
		t.Fatal(err)
	}
	y1, err := lower.Forward(compute.NewCPU(), tr.ANN, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	return y0.Data, y1.Data
}

// TestProxyLearningMatchesPyTorch: from the same ONNX file and data,
// proxykit must land on the same ANN as torch:
// ‖y_proxykit − y_torch‖ ≤ 2 % of ‖y_torch − y_before‖.
func TestProxyLearningMatchesPyTorch(t *testing.T) {
	emu, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, be := range []compute.Backend{compute.NewCPU(), emu} {
		t.Run(be.Name(), func(t *testing.T) { proxyLearningMatchesPyTorch(t, be) })
	}
}

func proxyLearningMatchesPyTorch(t *testing.T, be compute.Backend) {
	wantBefore := testutil.Array(t, "proxy/before.npy").Data
	cases := []struct {
		name          string
		epochs, max   int
		freezeBNAfter int
		want          string
	}{
		{"4 steps, BN eval", 2, 200, 0, "proxy/eval4.npy"},
		{"1 step, BN training mode", 1, 100, 1, "proxy/train1.npy"},
	}
	for _, c := range cases {
		before, after := runProxy(t, be, c.epochs, c.max, c.freezeBNAfter)
		if rel := testutil.RelErr(before, wantBefore); rel > 1e-5 {
			t.Fatalf("%s: outputs before training differ from torch's (relative %g)", c.name, rel)
		}
		want := testutil.Array(t, c.want).Data
		moved := testutil.Dist(want, wantBefore)
		off := testutil.Dist(after, want)
		t.Logf("%s: torch moved the outputs by %.4g; proxykit lands %.4g from torch (%.2f %%)", c.name, moved, off, 100*off/moved)
		if moved == 0 {
			t.Fatalf("%s: the fixture's training did not move the outputs", c.name)
		}
		if off > 0.02*moved {
			t.Errorf("%s: proxykit is %.2f %% of torch's change away from torch (allowed 2 %%)", c.name, 100*off/moved)
		}
	}
}

// TestEmulatedDeviceTrainsLikeTheCPU: the narrow reference network, 4 proxy
// steps from the same start on the CPU backend and on the CUDA backend's
// emulated device. Before training the SNN's counts must agree in at least
// 99.5 % of entries; after it the ANN's outputs must lie within 2 % of the
// training's own effect of each other.
func TestEmulatedDeviceTrainsLikeTheCPU(t *testing.T) {
	x := testutil.Array(t, "proxy/x.npy")
	emu, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	var counts [2][]float32
	var before, after [2][]float32
	for i, be := range []compute.Backend{compute.NewCPU(), emu} {
		s := recipe.Default()
		s.Dataset, s.Epochs, s.BatchSize, s.LR = data.MNIST, 2, 100, 1e-3
		s.Shuffle, s.Augment, s.FreezeBNAfter, s.MaxTrain = true, true, 1, 200
		tr := proxyTrainer(t, testutil.Path("proxy/net.onnx"), s)
		r, err := tr.SNN.RunOn(context.Background(), be, x, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		counts[i] = r.Counts.Data
		y, err := lower.Forward(be, tr.ANN, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		before[i] = y.Data
		tr.Backend = be
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		y, err = lower.Forward(compute.NewCPU(), tr.ANN, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		after[i] = y.Data
	}
	same := len(counts[0]) - testutil.Differing(counts[1], counts[0])
	t.Logf("counts before training: %d of %d equal", same, len(counts[0]))
	if float64(same) < 0.995*float64(len(counts[0])) {
		t.Errorf("only %d of %d counts equal", same, len(counts[0]))
	}
	if rel := testutil.RelErr(before[1], before[0]); rel > 1e-5 {
		t.Errorf("ANN outputs before training differ by %g", rel)
	}
	moved, off := testutil.Dist(after[0], before[0]), testutil.Dist(after[1], after[0])
	t.Logf("training moved the CPU's outputs by %.4g; the emulated device lands %.4g from them (%.2f %%)", moved, off, 100*off/moved)
	if off > 0.02*moved {
		t.Errorf("the emulated device's training is %.2f %% of the training's effect away from the CPU's", 100*off/moved)
	}
}

// TestBranchingProxyLearningMatchesPyTorch: 4 proxy steps of the branching
// fixture network (scripts/make_graph_fixtures.py) land within 2 % of
// torch's change from torch, on the CPU and on the emulated CUDA device.
func TestBranchingProxyLearningMatchesPyTorch(t *testing.T) {
	emu, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	x := testutil.Array(t, "graph/resnet_tiny.x.npy")
	wantBefore := testutil.Array(t, "graph/resnet_tiny.ann.npy").Data
	want := testutil.Array(t, "graph/resnet_tiny.eval4.npy").Data
	for _, be := range []compute.Backend{compute.NewCPU(), emu} {
		s := recipe.Default()
		s.Dataset, s.Epochs, s.BatchSize, s.LR = data.MNIST, 2, 100, 1e-3
		s.Shuffle, s.Augment, s.FreezeBNAfter, s.MaxTrain = false, false, 0, 200
		tr := proxyTrainer(t, testutil.Path("graph/resnet_tiny.onnx"), s)
		tr.Backend = be
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		y, err := lower.Forward(compute.NewCPU(), tr.ANN, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		moved, off := testutil.Dist(want, wantBefore), testutil.Dist(y.Data, want)
		t.Logf("%s: torch moved the outputs by %.4g; proxykit lands %.4g from torch (%.2f %%)", be.Name(), moved, off, 100*off/moved)
		if moved == 0 || off > 0.02*moved {
			t.Errorf("%s: proxykit is %.2f %% of torch's change away from torch (allowed 2 %%)", be.Name(), 100*off/moved)
		}
	}
}
