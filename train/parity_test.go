package train_test

import (
	"context"
	"math"
	"testing"

	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/train"
)

// runProxy trains testdata/proxy/net.onnx as scripts/make_train_fixtures.py
// did in PyTorch and returns the ANN's outputs on the fixed batch.
func runProxy(t *testing.T, epochs, maxTrain, freezeBNAfter int) (before, after []float32) {
	t.Helper()
	s := train.DefaultSettings()
	s.Dataset, s.Epochs, s.BatchSize, s.LR = train.MNIST, epochs, 100, 1e-3
	s.Shuffle, s.Augment, s.FreezeBNAfter, s.MaxTrain = false, false, freezeBNAfter, maxTrain
	tr := proxyTrainer(t, testutil.Path("proxy/net.onnx"), s)
	x := testutil.Array(t, "proxy/x.npy")
	y0, err := tr.ANN.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	y1, err := tr.ANN.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	return y0.Data, y1.Data
}

func dist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// TestProxyLearningMatchesPyTorch: from the same ONNX file and data,
// proxykit must land on the same ANN as torch:
// ‖y_proxykit − y_torch‖ ≤ 2 % of ‖y_torch − y_before‖.
func TestProxyLearningMatchesPyTorch(t *testing.T) {
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
		before, after := runProxy(t, c.epochs, c.max, c.freezeBNAfter)
		if rel := testutil.RelErr(before, wantBefore); rel > 1e-5 {
			t.Fatalf("%s: outputs before training differ from torch's (relative %g)", c.name, rel)
		}
		want := testutil.Array(t, c.want).Data
		moved := dist(want, wantBefore)
		off := dist(after, want)
		t.Logf("%s: torch moved the outputs by %.4g; proxykit lands %.4g from torch (%.2f %%)", c.name, moved, off, 100*off/moved)
		if moved == 0 {
			t.Fatalf("%s: the fixture's training did not move the outputs", c.name)
		}
		if off > 0.02*moved {
			t.Errorf("%s: proxykit is %.2f %% of torch's change away from torch (allowed 2 %%)", c.name, 100*off/moved)
		}
	}
}
