package main

import (
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/npy"
)

// TestPotentialsAgreeWithONNXRuntime: infer --potentials writes the output
// layer's final membrane potentials, and export --snn-potential an ONNX SNN
// whose second output onnxruntime computes to the same values (the counts
// equal, the potentials within float32 summation-order noise), on the CPU
// and on the emulated device.
func TestPotentialsAgreeWithONNXRuntime(t *testing.T) {
	dir := t.TempDir()
	model, x := testutil.Path("lenet_opset11.onnx"), testutil.Path("lenet_opset11.x.npy")
	snnArgs := []string{"--timesteps", "15", "--threshold", "2.0"}
	onnxPath := filepath.Join(dir, "snn.onnx")
	if _, err := run(t, append([]string{"export", model, "--snn", onnxPath, "--snn-potential"}, snnArgs...)...); err != nil {
		t.Fatal(err)
	}
	ort := runORT2(t, onnxPath, x, dir)
	for _, device := range []string{"cpu", "cuda-emu"} {
		counts, pots := filepath.Join(dir, device+".counts.npy"), filepath.Join(dir, device+".v.npy")
		args := append([]string{"infer", model, "--input", x, "--output", counts, "--potentials", pots, "--network", "snn", "--device", device}, snnArgs...)
		if _, err := run(t, args...); err != nil {
			t.Fatal(err)
		}
		c, v := readNPY(t, counts), readNPY(t, pots)
		if !equalInts(c.Shape, v.Shape) || !equalInts(v.Shape, ort[1].Shape) {
			t.Fatalf("%s: shapes counts %v potentials %v onnxruntime %v", device, c.Shape, v.Shape, ort[1].Shape)
		}
		same, worst := 0, 0.0
		k := v.Shape[1]
		for i := 0; i < v.Shape[0]; i++ {
			row := true
			for j := 0; j < k; j++ {
				row = row && c.Data[i*k+j] == ort[0].Data[i*k+j]
			}
			if !row { // a near-tie decided the other way; the potentials then differ by a spike
				continue
			}
			same++
			for j := 0; j < k; j++ {
				worst = math.Max(worst, math.Abs(float64(v.Data[i*k+j]-ort[1].Data[i*k+j])))
			}
		}
		if same < v.Shape[0]-1 || worst > 1e-3 {
			t.Errorf("%s: %d of %d samples' counts equal onnxruntime's; potentials differ by up to %g", device, same, v.Shape[0], worst)
		}
	}
	if _, err := run(t, "infer", model, "--input", x, "--output", filepath.Join(dir, "a.npy"), "--potentials", filepath.Join(dir, "b.npy")); err == nil ||
		!strings.Contains(err.Error(), "--network snn") {
		t.Errorf("--potentials with the ANN: %v", err)
	}
}

// TestExportNIRFlags: --nir-avgpool-conv writes average pooling as a
// Conv2d (read back with h5py), and a non-zero --reset warns that NIR's
// consumers will not give proxykit's counts.
func TestExportNIRFlags(t *testing.T) {
	dir := t.TempDir()
	nirPath := filepath.Join(dir, "gap.nir")
	out, err := run(t, "export", testutil.Path("gapnet_opset9.onnx"), "--nir", nirPath, "--nir-avgpool-conv", "--reset", "0.05")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "warning: --nir "+nirPath+": v_reset = 0.05") {
		t.Errorf("no warning for v_reset = 0.05:\n%s", out)
	}
	b, err := exec.Command("/usr/bin/python3", filepath.Join(testutil.Dir(), "..", "scripts", "nir_layout.py"), nirPath).Output()
	if err != nil {
		t.Fatalf("scripts/nir_layout.py (python3-h5py): %v", err)
	}
	var layout struct {
		Nodes map[string]struct {
			Type string `json:"type"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(b, &layout); err != nil {
		t.Fatal(err)
	}
	conv := 0
	for name, n := range layout.Nodes {
		if strings.HasPrefix(n.Type, "AvgPool") {
			t.Errorf("node %s is still %s", name, n.Type)
		}
		if n.Type == "Conv2d" {
			conv++
		}
	}
	if conv == 0 {
		t.Errorf("no Conv2d node in %s: %s", nirPath, b)
	}
}

func runORT2(t *testing.T, model, input, dir string) [2]*npy.Array {
	t.Helper()
	outs := [2]string{filepath.Join(dir, "ort0.npy"), filepath.Join(dir, "ort1.npy")}
	script := filepath.Join(testutil.Dir(), "..", "scripts", "ort", "run_onnx.js")
	if b, err := exec.Command("node", script, model, input, outs[0], outs[1]).CombinedOutput(); err != nil {
		t.Fatalf("onnxruntime on %s (scripts/setup.sh installs onnxruntime-node): %v\n%s", model, err, b)
	}
	return [2]*npy.Array{readNPY(t, outs[0]), readNPY(t, outs[1])}
}

func readNPY(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
