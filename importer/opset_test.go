package importer_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
)

// matchesORT imports path and holds its ANN's output on input to onnxruntime's.
func matchesORT(t *testing.T, path, input string) {
	t.Helper()
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := readArray(input)
	if err != nil {
		t.Fatal(err)
	}
	y, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := testutil.RunORT(t, path, input).Data
	rel := testutil.RelErr(y.Data, want)
	t.Logf("%s (opset %d): relative error %.2g against onnxruntime", filepath.Base(path), m.ONNX.Opset, rel)
	if rel > 1e-5 {
		t.Errorf("%s: relative error %g against onnxruntime", filepath.Base(path), rel)
	}
}

// TestOldOpsets: opsets 7 and 8, with the ONNX model zoo's MNIST layout
// (a CNTK export: weights among the graph inputs, IR 3, Conv + Add of a
// [C,1,1] bias, SAME_UPPER padding, a reshaped dense weight) and an opset-7
// network with BatchNormalization, AveragePool counting padding and Gemm.
// Written by scripts/make_opset_fixtures.py; onnxruntime is the oracle.
func TestOldOpsets(t *testing.T) {
	for _, name := range []string{"zoo_mnist_opset8", "bn_pool_opset7"} {
		matchesORT(t, testutil.Path(name+".onnx"), testutil.Path(name+".x.npy"))
	}
}

// TestLargeFullyConnected: a 4096 × 4200 weight (17 M values, beyond the
// 2^24 elements a declared activation may have) that the file holds and
// lists among the graph inputs imports, as VGG's 4096 × 25088 layer must;
// a small file declaring such a weight without holding it is refused.
func TestLargeFullyConnected(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(testutil.Dir(), "..", "scripts", "make_opset_fixtures.py")
	if b, err := exec.Command("/usr/bin/python3", script, "--large", dir).CombinedOutput(); err != nil {
		t.Fatalf("scripts/make_opset_fixtures.py --large: %v\n%s", err, b)
	}
	matchesORT(t, filepath.Join(dir, "large_fc.onnx"), filepath.Join(dir, "large_fc.x.npy"))
	_, err := model.Load(filepath.Join(dir, "claims_too_much.onnx"))
	if err == nil || !strings.Contains(err.Error(), `"fc6_w" declares a shape too large`) {
		t.Errorf("a file claiming a weight it does not hold: error %v", err)
	}
}

// TestEmptyTensorNamesTheNode: ONNX's conformance cases with empty tensors
// once ended in a leaked "index out of range" from the decoder.
func TestEmptyTensorNamesTheNode(t *testing.T) {
	_, err := model.Load(testutil.Path("empty_tensor.onnx"))
	if err == nil || !strings.Contains(err.Error(), "node sum_nothing (ReduceSum)") || !strings.Contains(err.Error(), "empty tensor") {
		t.Errorf("error %v, want one naming node sum_nothing and the empty tensor", err)
	}
}

// TestConstantBomb imports testdata/hostile/concat_bomb.onnx: 2 KB that
// ask, through ConstantOfShape and 39 Concats, for gigabytes of constants.
// The constants computed at import are bounded in all, not one by one.
func TestConstantBomb(t *testing.T) {
	_, err := model.Load(testutil.Path("hostile/concat_bomb.onnx"))
	if err == nil || !strings.Contains(err.Error(), "constants computed at import") {
		t.Errorf("got %v", err)
	}
}
