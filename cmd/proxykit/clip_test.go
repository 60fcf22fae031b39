package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
)

// TestClipTwinFlag: --clip-twin chooses what a clipped ReLU becomes, and
// a checkpoint's own twin is used where the flag is left out. The counts
// are PyTorch's under each twin (scripts/make_zoo_fixtures.py: T = 8,
// v_th = 1), which differ from each other.
func TestClipTwinFlag(t *testing.T) {
	dir := t.TempDir()
	onnx, x := testutil.Path("zoo/relu6net.onnx"), testutil.Path("zoo/relu6net.x.npy")
	counts := relu6Counts(t, dir)
	torch := func(twin spiking.ClipTwin) []float32 {
		return testutil.Array(t, "zoo/relu6net.snn_"+string(twin)+".npy").Data
	}
	for _, twin := range spiking.ClipTwins() {
		got := counts(onnx, "--timesteps", "8", "--threshold", "1", "--clip-twin", string(twin))
		if d := testutil.Differing(got, torch(twin)); d != 0 {
			t.Errorf("--clip-twin %s: %d counts differ from PyTorch's", twin, d)
		}
	}
	if d := testutil.Differing(counts(onnx, "--timesteps", "8", "--threshold", "1"), torch(spiking.DefaultClip)); d != 0 {
		t.Errorf("no --clip-twin: %d counts differ from PyTorch's under the default twin %s", d, spiking.DefaultClip)
	}

	// a checkpoint that records the other twin
	ckpt := relu6Checkpoint(t, filepath.Join(dir, "saturate.ckpt"), spiking.Config{Timesteps: 8, Threshold: 1, Clip: spiking.ClipSaturate})
	if d := testutil.Differing(counts(ckpt), torch(spiking.ClipSaturate)); d != 0 {
		t.Errorf("a checkpoint of the saturating twin: %d counts differ from PyTorch's under it", d)
	}
	if d := testutil.Differing(counts(ckpt, "--clip-twin", "relu"), torch(spiking.ClipAsReLU)); d != 0 {
		t.Errorf("a checkpoint of the saturating twin with --clip-twin relu: %d counts differ from PyTorch's under relu", d)
	}

	if _, err := run(t, "infer", onnx, "--input", x, "--output", filepath.Join(dir, "bad.npy"), "--clip-twin", "half"); err == nil ||
		!strings.Contains(err.Error(), `--clip-twin "half"`) {
		t.Errorf("--clip-twin half: %v, want a refusal naming the flag", err)
	}
}

// relu6Counts runs zoo/relu6net's SNN with infer on its inputs: the
// counts of model (the ONNX file or a checkpoint of it) under args.
func relu6Counts(t *testing.T, dir string) func(model string, args ...string) []float32 {
	return func(model string, args ...string) []float32 {
		t.Helper()
		out := filepath.Join(dir, "counts.npy")
		x := testutil.Path("zoo/relu6net.x.npy")
		if msg, err := run(t, append([]string{"infer", model, "--input", x, "--output", out, "--network", "snn"}, args...)...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, msg)
		}
		c, err := npy.ReadFile(out, false)
		if err != nil {
			t.Fatal(err)
		}
		return c.Data
	}
}

// relu6Checkpoint writes zoo/relu6net as a checkpoint to path, recording
// the SNN setting cfg; it returns path.
func relu6Checkpoint(t *testing.T, path string, cfg spiking.Config) string {
	t.Helper()
	m, err := model.Load(testutil.Path("zoo/relu6net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s := recipe.Default()
	s.Config = cfg
	snn, err := spiking.New(m.ANN, s.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.New(m.ANN, snn, s).Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}
