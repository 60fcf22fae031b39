package exporter_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
)

// checkONNX runs ONNX's own checker (Debian's python3-onnx) on a file.
func checkONNX(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c",
		"import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", path).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx.checker rejects %s (python3-onnx is installed by scripts/setup.sh): %v\n%s", filepath.Base(path), err, out)
	}
}

// TestANNRoundTrip exports every fixture's ANN, checks the file with ONNX's
// checker and imports it again: same layers, same outputs.
func TestANNRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, name := range append(testutil.Models, testutil.Graphs...) {
		m, err := model.Load(testutil.Path(name + ".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.Base(name)+".onnx")
		if err := exporter.WriteANN(path, m.ANN, exporter.Options{Metadata: map[string]string{"source": name}}); err != nil {
			t.Fatal(err)
		}
		checkONNX(t, path)
		back, err := model.Load(path)
		if err != nil {
			t.Fatalf("%s: re-import: %v", name, err)
		}
		if len(back.ANN.Layers) != len(m.ANN.Layers) {
			t.Fatalf("%s: %d layers after the round trip, %d before", name, len(back.ANN.Layers), len(m.ANN.Layers))
		}
		x := testutil.Array(t, name+".x.npy")
		y0, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		y1, err := lower.Forward(compute.NewCPU(), back.ANN, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d := testutil.Differing(y0.Data, y1.Data); d != 0 {
			t.Errorf("%s: %d outputs differ after the round trip", name, d)
		}
		for i, p := range back.ANN.Params() {
			if want := m.ANN.Params()[i].Name; p.Name != want {
				t.Errorf("%s: parameter %d named %q, want %q", name, i, p.Name, want)
			}
		}
	}
}
