package exporter_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// TestZooExports: networks with clipped ReLUs, a channel shuffle, channel
// slices, a Split and a spatial mean (scripts/make_zoo_fixtures.py)
// exported and run by onnxruntime — the ANN (BatchNorm kept and folded;
// a Clip, the shuffle as Reshape–Transpose–Reshape, Slice) within 1e-5 of
// proxykit's, and read back by proxykit as the same network; the SNN, under
// both IF twins of a clipped ReLU (each IF layer's own threshold), with
// every count proxykit's and torch's — and written as NIR (the shuffle and
// the slice as 1×1 convolutions), which scripts/nir_sim.py simulates to
// proxykit's counts and final potentials; splitnet's Concat is refused by
// NIR, naming it. Each SNN is also exported charged (charged).
func TestZooExports(t *testing.T) {
	dir := t.TempDir()
	sim := filepath.Join(testutil.Dir(), "..", "scripts", "nir_sim.py")
	for _, name := range []string{"zoo/relu6net", "zoo/splitnet", "zoo/normnet", "zoo/mlp_bn1d"} {
		base := filepath.Base(name)
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
		for _, fold := range []bool{false, true} {
			p := filepath.Join(dir, base+".ann.onnx")
			if err := exporter.WriteANN(p, m.ANN, exporter.Options{FoldBN: fold}); err != nil {
				t.Fatal(err)
			}
			checkONNX(t, p)
			if rel := testutil.RelErr(testutil.RunORT(t, p, xPath).Data, y.Data); rel > 1e-5 {
				t.Errorf("%s ANN (fold BN %v) in onnxruntime: relative error %.3g", name, fold, rel)
			}
			back, err := model.Load(p)
			if err != nil {
				t.Fatalf("%s: proxykit cannot read its own export back: %v", name, err)
			}
			if len(back.ANN.Layers) != len(m.ANN.Layers) && !fold {
				t.Errorf("%s: %d layers read back, %d exported", name, len(back.ANN.Layers), len(m.ANN.Layers))
			}
			y2, err := lower.Forward(compute.NewCPU(), back.ANN, x, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rel := testutil.RelErr(y2.Data, y.Data); rel > 1e-5 {
				t.Errorf("%s ANN (fold BN %v) read back: relative error %.3g", name, fold, rel)
			}
		}
		for _, twin := range spiking.ClipTwins() {
			snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: 8, Threshold: 1, Clip: twin})
			if err != nil {
				t.Fatal(err)
			}
			res, err := snn.Run(x)
			if err != nil {
				t.Fatal(err)
			}
			want := testutil.Array(t, name+".snn_"+string(twin)+".npy")
			p := filepath.Join(dir, base+".snn.onnx")
			if err := exporter.WriteSNN(p, snn, exporter.Options{}); err != nil {
				t.Fatal(err)
			}
			checkONNX(t, p)
			got := testutil.RunORT(t, p, xPath)
			d, dt := testutil.Differing(got.Data, res.Counts.Data), testutil.Differing(got.Data, want.Data)
			t.Logf("%s %s: onnxruntime's counts differ from proxykit's in %d, from torch's in %d of %d", name, twin, d, dt, len(want.Data))
			if d+dt != 0 {
				t.Errorf("%s %s SNN in onnxruntime: %d of %d counts differ from proxykit's, %d from torch's", name, twin, d, len(want.Data), dt)
			}
			charged(t, dir, name, m, twin)
			np := filepath.Join(dir, base+".nir")
			err = exporter.WriteNIR(np, snn, exporter.NIROptions{})
			if name == "zoo/splitnet" {
				if err == nil || !strings.Contains(err.Error(), "(Concat): NIR has no node that concatenates") {
					t.Errorf("%s: NIR export error %v, want the Concat named", name, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			out, outV := filepath.Join(dir, base+".counts.npy"), filepath.Join(dir, base+".potentials.npy")
			if b, err := exec.Command("/usr/bin/python3", sim, np, xPath, out, outV).CombinedOutput(); err != nil {
				t.Fatalf("%s: scripts/nir_sim.py rejects the file: %v\n%s", name, err, b)
			}
			c, err := npy.ReadFile(out, false)
			if err != nil {
				t.Fatal(err)
			}
			v, err := npy.ReadFile(outV, false)
			if err != nil {
				t.Fatal(err)
			}
			if d := testutil.Differing(c.Data, res.Counts.Data) + testutil.Differing(v.Data, res.Potentials.Data); d != 0 {
				t.Errorf("%s %s: NumPy's simulation of the NIR graph differs in %d of %d counts and final potentials", name, twin, d, 2*len(c.Data))
			}
		}
	}
}

// charged exports the SNN of m (fixture name) under twin with every IF
// neuron starting halfway to its own v_th (Config.InitialCharge 0.5): in
// onnxruntime its counts are torch's (scripts/make_zoo_fixtures.py), and
// NIR, which holds no initial potential, is refused, naming the setting,
// with no file left.
func charged(t *testing.T, dir, name string, m *model.Model, twin spiking.ClipTwin) {
	t.Helper()
	snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: 8, Threshold: 1, Clip: twin, InitialCharge: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.Base(name)+".charged.onnx")
	if err := exporter.WriteSNN(p, snn, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	want := testutil.Array(t, name+".charged_"+string(twin)+".npy")
	if d := testutil.Differing(testutil.RunORT(t, p, testutil.Path(name+".x.npy")).Data, want.Data); d != 0 {
		t.Errorf("%s %s charged 0.5 in onnxruntime: %d of %d counts differ from torch's", name, twin, d, len(want.Data))
	}
	np := filepath.Join(dir, "charged.nir")
	var se *setting.Error
	if err := exporter.WriteNIR(np, snn, exporter.NIROptions{}); !errors.As(err, &se) || !strings.Contains(err.Error(), "initial-charge 0.5: NIR's IF node holds no initial potential") {
		t.Errorf("%s charged to NIR: %v, want a refusal naming the setting", name, err)
	}
	if _, err := os.Stat(np); !os.IsNotExist(err) {
		t.Errorf("%s charged to NIR: a file was left (%v)", name, err)
	}
}
