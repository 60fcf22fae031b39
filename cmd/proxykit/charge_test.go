package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
)

// TestInitialChargeFlag: --initial-charge starts every IF neuron part of
// the way to its v_th, giving PyTorch's counts for that start
// (scripts/make_zoo_fixtures.py: T = 8, v_th = 1, charge 0.5); a
// checkpoint's own charge is used where the flag is left out, and the flag
// overrides it; an eval sweep records it; export --nir of a charged SNN is
// refused naming the flag, with nothing written.
func TestInitialChargeFlag(t *testing.T) {
	dir := t.TempDir()
	onnx := testutil.Path("zoo/relu6net.onnx")
	counts := relu6Counts(t, dir)
	charged, plain := testutil.Array(t, "zoo/relu6net.charged_relu.npy").Data, testutil.Array(t, "zoo/relu6net.snn_relu.npy").Data
	if d := testutil.Differing(counts(onnx, "--timesteps", "8", "--threshold", "1", "--initial-charge", "0.5"), charged); d != 0 {
		t.Errorf("--initial-charge 0.5: %d counts differ from PyTorch's", d)
	}

	ckpt := relu6Checkpoint(t, filepath.Join(dir, "charged.ckpt"), spiking.Config{Timesteps: 8, Threshold: 1, InitialCharge: 0.5})
	if d := testutil.Differing(counts(ckpt), charged); d != 0 {
		t.Errorf("a checkpoint charged 0.5: %d counts differ from PyTorch's", d)
	}
	if d := testutil.Differing(counts(ckpt, "--initial-charge", "0"), plain); d != 0 {
		t.Errorf("a checkpoint charged 0.5 run with --initial-charge 0: %d counts differ from PyTorch's uncharged", d)
	}
	if out, err := run(t, "import", ckpt); err != nil || !strings.Contains(out, "initial charge 0.5") {
		t.Errorf("import of a charged checkpoint: %v, want its charge printed:\n%s", err, out)
	}

	// a sweep says what it simulated
	evalArgs := []string{"eval", testutil.Path("proxy/net.onnx"), "--data", testutil.Path("proxy"), "--dataset", "mnist", "--timesteps", "1,4",
		"--max-test", "20", "--initial-charge", "0.5"}
	if out, err := run(t, evalArgs...); err != nil || !strings.Contains(out, "v_reset=0, initial charge 0.5:") {
		t.Errorf("eval sweep with --initial-charge 0.5 (%v) does not say so:\n%s", err, out)
	}
	js, err := run(t, append(evalArgs, "--json")...)
	var sw results.Sweep
	if err != nil || json.Unmarshal([]byte(js), &sw) != nil || sw.InitialCharge != 0.5 {
		t.Errorf("eval --json sweep with --initial-charge 0.5 (%v): %.200s", err, js)
	}

	nir := filepath.Join(dir, "snn.nir")
	if _, err := run(t, "export", ckpt, "--nir", nir); err == nil || !strings.Contains(err.Error(), "--initial-charge 0.5: NIR's IF node holds no initial potential") {
		t.Errorf("export --nir of a charged checkpoint: %v, want a refusal naming --initial-charge", err)
	}
	if _, err := os.Stat(nir); !os.IsNotExist(err) {
		t.Errorf("a refused NIR export left %s (%v)", nir, err)
	}
	if _, err := run(t, "export", ckpt, "--nir", nir, "--initial-charge", "0"); err != nil {
		t.Errorf("export --nir --initial-charge 0 of a charged checkpoint: %v", err)
	}
}
