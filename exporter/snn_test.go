package exporter_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
)

// runORTOutputs runs a model in onnxruntime (scripts/ort/run_onnx.js) and
// returns its first n outputs (testutil.RunORT returns the first).
func runORTOutputs(t *testing.T, model, input string, n int) []*npy.Array {
	t.Helper()
	dir := t.TempDir()
	var outs []string
	for i := 0; i < n; i++ {
		outs = append(outs, filepath.Join(dir, fmt.Sprintf("ort%d.npy", i)))
	}
	script := filepath.Join(testutil.Dir(), "..", "scripts", "ort", "run_onnx.js")
	b, err := exec.Command("node", append([]string{script, model, input}, outs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("onnxruntime on %s (scripts/setup.sh installs onnxruntime-node): %v\n%s", filepath.Base(model), err, b)
	}
	var res []*npy.Array
	for _, o := range outs {
		a, err := npy.ReadFile(o, false)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, a)
	}
	return res
}

// TestExportsRunInONNXRuntime: the ANN (BN kept and folded) and the SNN,
// exported and run by onnxruntime, give proxykit's outputs: ANN within
// 1e-5 relative, SNN counts equal in ≥ 99.9 % of entries; both files pass
// ONNX's checker.
func TestExportsRunInONNXRuntime(t *testing.T) {
	dir := t.TempDir()
	totalCounts, differ, brokenByMembrane := 0, 0, 0
	for _, name := range []string{"fmnist_w8_bn", "lenet_opset11", "viewnet", "gapnet_opset9", "asym_opset21", "groupnet_opset13",
		"graph/resnet_tiny"} {
		m, err := model.Load(testutil.Path(name + ".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		xPath := testutil.Path(name + ".x.npy")
		x := testutil.Array(t, name+".x.npy")
		y, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, fold := range []bool{false, true} { // folding BatchNorm into convolutions, in chains and graphs
			p := filepath.Join(dir, filepath.Base(name)+".ann.onnx")
			if err := exporter.WriteANN(p, m.ANN, exporter.Options{FoldBN: fold}); err != nil {
				t.Fatal(err)
			}
			checkONNX(t, p)
			got := testutil.RunORT(t, p, xPath)
			if rel := testutil.RelErr(got.Data, y.Data); rel > 1e-5 {
				t.Errorf("%s ANN (fold BN %v) in onnxruntime: relative error %.3g", name, fold, rel)
			}
		}
		snn, err := spiking.New(m.ANN, spiking.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		res, err := snn.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(name)+".snn.onnx")
		if err := exporter.WriteSNN(p, snn, exporter.Options{}); err != nil {
			t.Fatal(err)
		}
		checkONNX(t, p)
		got := testutil.RunORT(t, p, xPath)
		d := testutil.Differing(got.Data, res.Counts.Data)
		totalCounts += len(res.Counts.Data)
		differ += d
		t.Logf("%s SNN in onnxruntime: %d of %d counts differ", name, d, len(res.Counts.Data))
		if want := testutil.Array(t, name+".snn.npy"); testutil.Differing(got.Data, want.Data) != 0 {
			t.Errorf("%s SNN in onnxruntime: %d of %d counts differ from PyTorch's", name, testutil.Differing(got.Data, want.Data), len(want.Data))
		}
		// with the output layer's final potentials as a second output: the
		// same counts, and the potentials and membrane tie-break predictions
		// proxykit computes
		pv := filepath.Join(dir, filepath.Base(name)+".snnv.onnx")
		if err := exporter.WriteSNN(pv, snn, exporter.Options{Potential: true}); err != nil {
			t.Fatal(err)
		}
		checkONNX(t, pv)
		both := runORTOutputs(t, pv, xPath, 2)
		if d := testutil.Differing(both[0].Data, got.Data); d != 0 {
			t.Errorf("%s SNN with potentials: %d counts differ from the export without", name, d)
		}
		if d := testutil.Differing(both[1].Data, res.Potentials.Data); d != 0 {
			t.Errorf("%s SNN in onnxruntime: %d of %d final output potentials differ from proxykit's", name, d, len(res.Potentials.Data))
		}
		k := res.Counts.Shape[1]
		for i := 0; i < res.Counts.Shape[0]; i++ {
			c, v := both[0].Data[i*k:(i+1)*k], both[1].Data[i*k:(i+1)*k]
			a, b := results.MembraneMax(c, v), results.MembraneMax(res.Counts.Data[i*k:(i+1)*k], res.Potentials.Data[i*k:(i+1)*k])
			if a != b {
				t.Errorf("%s sample %d: onnxruntime's outputs predict %d with the membrane tie-break, proxykit's %d", name, i, a, b)
			}
			if a != results.FirstMax(c) {
				brokenByMembrane++
			}
		}
	}
	if brokenByMembrane == 0 {
		t.Error("no fixture has a tie the membrane breaks otherwise than the first maximum: the potentials' check shows little")
	}
	t.Logf("%d samples whose membrane tie-break differs from the first maximum", brokenByMembrane)
	if float64(differ) > 0.001*float64(totalCounts) {
		t.Errorf("%d of %d SNN counts differ between onnxruntime and proxykit (allowed 0.1 %%)", differ, totalCounts)
	}
}

// TestSNNFileSize: the weights are stored once, so the file barely grows
// with T while its node count grows linearly.
func TestSNNFileSize(t *testing.T) {
	m, err := model.Load(testutil.Path("fmnist_w8_bn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	size := func(steps int) (int, int) {
		snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: steps, Threshold: 2})
		if err != nil {
			t.Fatal(err)
		}
		b, err := exporter.SNN(snn, exporter.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return len(b), strings.Count(string(b), "GreaterOrEqual")
	}
	s1, n1 := size(1)
	s30, n30 := size(30)
	if n30 != 30*n1 {
		t.Errorf("IF nodes: %d at T=1, %d at T=30", n1, n30)
	}
	if float64(s30) > 1.5*float64(s1) {
		t.Errorf("file grows from %d bytes at T=1 to %d at T=30: weights are not stored once", s1, s30)
	}
}

// TestResNetRunsInONNXRuntime: the ResNet-8 that init --arch resnet makes,
// exported, runs in onnxruntime with proxykit's outputs: the ANN within
// 1e-5 relative, the SNN's counts (v_th low enough for its untrained
// weights to fire) equal.
func TestResNetRunsInONNXRuntime(t *testing.T) {
	net, err := nn.ResNet([]int{1, 28, 28}, 8, 1, 10, 7)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	x := testutil.Array(t, "lenet_opset11.x.npy")
	xPath := testutil.Path("lenet_opset11.x.npy")
	y, err := lower.Forward(compute.NewCPU(), net, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "resnet.onnx")
	for _, fold := range []bool{false, true} {
		if err := exporter.WriteANN(p, net, exporter.Options{FoldBN: fold}); err != nil {
			t.Fatal(err)
		}
		checkONNX(t, p)
		if rel := testutil.RelErr(testutil.RunORT(t, p, xPath).Data, y.Data); rel > 1e-5 {
			t.Errorf("ANN (fold BN %v) in onnxruntime: relative error %.3g", fold, rel)
		}
	}
	snn, err := spiking.New(net, spiking.Config{Timesteps: 6, Threshold: 0.05, Reset: 0})
	if err != nil {
		t.Fatal(err)
	}
	res, err := snn.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	p = filepath.Join(dir, "resnet.snn.onnx")
	if err := exporter.WriteSNN(p, snn, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	checkONNX(t, p)
	got := testutil.RunORT(t, p, xPath)
	d := testutil.Differing(got.Data, res.Counts.Data)
	t.Logf("SNN in onnxruntime: %d of %d counts differ; IF rates %.3f", d, len(got.Data), res.Rates)
	if float64(d) > 0.01*float64(len(got.Data)) {
		t.Errorf("%d of %d SNN counts differ between onnxruntime and proxykit", d, len(got.Data))
	}
	for i, r := range res.Rates {
		if r == 0 {
			t.Errorf("IF layer %d is silent: the test shows nothing", i)
		}
	}
}

// TestKindFixturesRunInONNXRuntime exports the registry's kind fixtures
// (every torch.nn class proxykit reads, saved whole by torch:
// scripts/make_kind_fixtures.py): the ANN run by onnxruntime gives torch's
// outputs, and the unrolled SNN proxykit's counts.
func TestKindFixturesRunInONNXRuntime(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"kinds/kinds", "kinds/kinds_softmax"} {
		m, err := model.Load(testutil.Path(name + ".pt"))
		if err != nil {
			t.Fatal(err)
		}
		xPath := testutil.Path(name + ".x.npy")
		p := filepath.Join(dir, filepath.Base(name)+".ann.onnx")
		if err := exporter.WriteANN(p, m.ANN, exporter.Options{}); err != nil {
			t.Fatal(err)
		}
		checkONNX(t, p)
		if rel := testutil.RelErr(testutil.RunORT(t, p, xPath).Data, testutil.Array(t, name+".ann.npy").Data); rel > 1e-4 {
			t.Errorf("%s ANN in onnxruntime: relative error %.3g against torch", name, rel)
		}
		// a low threshold: the small random networks fire at every layer
		snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: 15, Threshold: 0.125})
		if err != nil {
			t.Fatal(err)
		}
		res, err := snn.Run(testutil.Array(t, name+".x.npy"))
		if err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(dir, filepath.Base(name)+".snn.onnx")
		if err := exporter.WriteSNN(p, snn, exporter.Options{}); err != nil {
			t.Fatal(err)
		}
		checkONNX(t, p)
		got := testutil.RunORT(t, p, xPath)
		if d := testutil.Differing(got.Data, res.Counts.Data); d > len(got.Data)/1000 {
			t.Errorf("%s SNN in onnxruntime: %d of %d counts differ from proxykit's", name, d, len(got.Data))
		}
		var spikes float32
		for _, c := range res.Counts.Data {
			spikes += c
		}
		if spikes == 0 {
			t.Errorf("%s: the SNN's output never fires; the comparison shows nothing", name)
		}
	}
}

// TestTorchvisionExportsRunInONNXRuntime exports torchvision's SqueezeNet
// 1.1 (scripts/make_torchvision.py, generated by scripts/test.sh into
// $PROXYKIT_TORCHVISION): the ANN in onnxruntime gives torch's outputs,
// the unrolled SNN (Concat joins, T = 4) torch's counts.
func TestTorchvisionExportsRunInONNXRuntime(t *testing.T) {
	dir := testutil.Env(t, "PROXYKIT_TORCHVISION", "the folder scripts/make_torchvision.py wrote (scripts/test.sh generates it and sets the variable)")
	src := filepath.Join(dir, "squeezenet1_1")
	m, err := model.Load(src + ".onnx")
	if err != nil {
		t.Fatal(err)
	}
	want := func(suffix string) []float32 {
		a, err := npy.ReadFile(src+suffix, false)
		if err != nil {
			t.Fatal(err)
		}
		return a.Data
	}
	out := t.TempDir()
	p := filepath.Join(out, "ann.onnx")
	if err := exporter.WriteANN(p, m.ANN, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	if rel := testutil.RelErr(testutil.RunORT(t, p, src+".x.npy").Data, want(".ann.npy")); rel > 1e-4 {
		t.Errorf("ANN in onnxruntime: relative error %.3g against torch", rel)
	}
	snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: 4, Threshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	p = filepath.Join(out, "snn.onnx")
	if err := exporter.WriteSNN(p, snn, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	if d := testutil.Differing(testutil.RunORT(t, p, src+".x.npy").Data, want(".snn.npy")); d != 0 {
		t.Errorf("SNN in onnxruntime: %d counts differ from torch's", d)
	}
}
