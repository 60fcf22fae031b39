package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/results"
)

// TestBenchModel: bench MODEL measures a trained checkpoint as given — its
// own T, its weights before the training steps change them — so its
// firing rates on a data set's first test images are eval's on the same
// images at the same T. Without --dataset it says that it times random
// images and which data set the checkpoint names; the registry's sizing
// flags are refused with a model.
func TestBenchModel(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "run.ckpt")
	data := testutil.Path("proxy")
	if out, err := run(t, "train", testutil.Path("proxy/net.onnx"), "--data", data, "--dataset", "mnist",
		"-o", ck, "--epochs", "1", "--batch-size", "50", "--timesteps", "6"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	const n = 40
	out, err := run(t, "bench", ck, "--data", data, "--dataset", "mnist", "--batch-size", "20", "--infer-batch-size", "40",
		"--seconds", "0", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var b results.Bench
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if b.Timesteps != 6 || b.Model != ck || b.Images != "mnist test images" {
		t.Errorf("bench measured T=%d of %q on %q; want the checkpoint's T=6 of %s on mnist test images", b.Timesteps, b.Model, b.Images, ck)
	}
	out, err = run(t, "eval", ck, "--data", data, "--timesteps", "3,6", "--max-test", "40", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var sw results.Sweep
	if err := json.Unmarshal([]byte(out), &sw); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if sw.N != n || len(sw.Points) != 2 || sw.Points[1].T != 6 {
		t.Fatalf("eval's sweep: %d images, points %+v", sw.N, sw.Points)
	}
	want, got := sw.Points[1].Rates, b.Result.FiringRates
	if len(got) != len(want) || !slices.Equal(b.Result.IFLayers, sw.IFLayers) {
		t.Fatalf("bench's rates %v of %v; eval's %v of %v", got, b.Result.IFLayers, want, sw.IFLayers)
	}
	silent := true
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9*math.Max(1, want[i]) {
			t.Errorf("layer %s fires at %.6f in bench, %.6f in eval", sw.IFLayers[i], got[i], want[i])
		}
		silent = silent && want[i] == 0
	}
	if silent {
		t.Errorf("the trained network is silent: %v", want)
	}
	// no data set: random images, said so
	text, err := run(t, "bench", ck, "--batch-size", "20", "--infer-batch-size", "20", "--seconds", "0")
	if err != nil || !strings.Contains(text, "note: timing "+ck+" on random images") || !strings.Contains(text, "--dataset mnist (the checkpoint's)") ||
		!strings.Contains(text, "T=6, on random images") {
		t.Errorf("bench without a data set (%v):\n%s", err, text)
	}
	for _, flag := range []string{"--width=8", "--blocks=2", "--input=1x28x28", "--seed=3"} {
		if _, err := run(t, "bench", ck, flag); err == nil || !strings.Contains(err.Error(), strings.SplitN(flag, "=", 2)[0]) ||
			!strings.Contains(err.Error(), ck) {
			t.Errorf("bench MODEL %s: %v", flag, err)
		}
	}
	// the model's own setting gives way to a flag
	if out, err := run(t, "bench", ck, "--timesteps", "3", "--batch-size", "20", "--infer-batch-size", "20", "--seconds", "0", "--dataset", "mnist",
		"--data", data, "--json"); err != nil || json.Unmarshal([]byte(out), &b) != nil || b.Timesteps != 3 {
		t.Errorf("bench MODEL --timesteps 3 measured T=%d (%v):\n%s", b.Timesteps, err, out)
	}
}
