package model_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/internal/hdf5"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/spiking"
)

// TestNIRReadBack writes each dyadic fixture's SNN as NIR (every form the
// exporter has: max pooling as SumPool2d + IF or + Threshold, average
// pooling as AvgPool2d or as a convolution; a residual graph's joins as
// edges), reads the file back as a model and simulates it: its setting
// (T, v_th, v_reset) is the original's and its counts and final output
// potentials equal the original SNN's, at the default setting and at T =
// 8, v_th = 1.5, v_reset = 0.5.
func TestNIRReadBack(t *testing.T) {
	dir := t.TempDir()
	total := 0
	names := []string{"fmnist_w8_bn", "fmnist_w8_folded", "lenet_opset11", "gapnet_opset9", "groupnet_opset13", "graph/resnet_add"}
	for _, o := range []exporter.NIROptions{{}, {MaxPoolThreshold: true}, {AvgPoolAsConv: true}} {
		for _, name := range names {
			m, err := model.Load(testutil.Path(name + ".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			x := testutil.Array(t, name+".x.npy")
			for _, cfg := range []spiking.Config{spiking.DefaultConfig(), {Timesteps: 8, Threshold: 1.5, Reset: 0.5}} {
				snn, err := m.SNN(cfg)
				if err != nil {
					t.Fatal(err)
				}
				want, err := snn.Run(x)
				if err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(dir, filepath.Base(name)+".nir")
				if err := exporter.WriteNIR(p, snn, o); err != nil {
					t.Fatal(err)
				}
				back, err := model.Load(p)
				if err != nil {
					t.Fatalf("%s %+v: %v", name, o, err)
				}
				got, ok := back.SNNDefaults()
				if back.Format != model.NIR || !ok || got != cfg {
					t.Fatalf("%s %+v: read back as %s with setting %+v, want %+v", name, o, back.Format, got, cfg)
				}
				snn2, err := back.SNN(got)
				if err != nil {
					t.Fatalf("%s %+v: %v", name, o, err)
				}
				res, err := snn2.Run(x)
				if err != nil {
					t.Fatal(err)
				}
				d := testutil.Differing(res.Counts.Data, want.Counts.Data) + testutil.Differing(res.Potentials.Data, want.Potentials.Data)
				total += 2 * len(want.Counts.Data)
				if d != 0 {
					t.Errorf("%s %+v %+v: %d of %d counts and potentials differ from the original SNN's", name, o, cfg, d, 2*len(want.Counts.Data))
				}
			}
		}
	}
	t.Logf("%d counts and final potentials compared, read back from proxykit's NIR files", total)
}

// TestUnrolledSNNRecognised: proxykit's unrolled SNN ONNX is named as such
// when read, not refused for an operator it uses.
func TestUnrolledSNNRecognised(t *testing.T) {
	m, err := model.Load(testutil.Path("lenet_opset11.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	snn, err := m.SNN(spiking.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "snn.onnx")
	if err := exporter.WriteSNN(p, snn, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = model.Load(p)
	if err == nil || !strings.Contains(err.Error(), "proxykit's unrolled SNN export (15 time steps") || !strings.Contains(err.Error(), "as NIR") {
		t.Errorf("loading proxykit's unrolled SNN: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

// TestNIRWrittenByNIRsPackage reads the NIR files that NIR's own Python
// package wrote from a PyTorch ReLU network's weights
// (scripts/make_nir_fixtures.py, NIR 7232ada): the rebuilt ANN gives
// torch's outputs and its SNN torch's spike counts; the file whose IF
// neurons have r = 2 and per-neuron thresholds (2 and 4) gives the counts
// torch simulates for those neurons, folded into the weights; a threshold
// no weight can take exactly and a LIF node are refused naming the node.
func TestNIRWrittenByNIRsPackage(t *testing.T) {
	x := testutil.Array(t, "nir/x.npy")
	m, err := model.Load(testutil.Path("nir/relu_net.nir"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rel := testutil.RelErr(y.Data, testutil.Array(t, "nir/ann.npy").Data); rel > 1e-6 {
		t.Errorf("the ANN rebuilt from NIR's file differs from torch's by %.3g", rel)
	}
	for _, c := range []struct{ file, counts string }{{"relu_net.nir", "snn.npy"}, {"folded.nir", "folded_snn.npy"}} {
		m, err := model.Load(testutil.Path("nir/" + c.file))
		if err != nil {
			t.Fatal(err)
		}
		cfg, ok := m.SNNDefaults()
		if !ok || cfg != spiking.DefaultConfig() {
			t.Fatalf("%s: setting %+v, want T = 15 (NIR has no T), v_th = 2, v_reset = 0", c.file, cfg)
		}
		snn, err := m.SNN(cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := snn.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		want := testutil.Array(t, "nir/"+c.counts)
		d := testutil.Differing(res.Counts.Data, want.Data)
		t.Logf("%s: %d of %d counts differ from torch's; IF rates %.3f; notes %q", c.file, d, len(want.Data), res.Rates, m.NIR.Notes)
		if d != 0 {
			t.Errorf("%s: %d of %d counts differ from torch's", c.file, d, len(want.Data))
		}
	}
	for file, want := range map[string][]string{
		"bad_threshold.nir": {"NIR node if4 (IF): neuron 5", "factor r·θ/θ_i = 0.666667", "powers of two"},
		"lif.nir":           {"NIR node if4 is a LIF layer", "only IF neurons"},
	} {
		_, err := model.Load(testutil.Path("nir/" + file))
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want one with %q", file, err, w)
			}
		}
	}
}

// TestDamagedNIRRefused: every truncation of a NIR file, an HDF5 file
// that holds no NIR graph, and a graph that does not end in IF neurons are
// refused with an error naming the file, not a crash. (Bytes changed
// inside a file can crash the HDF5 C library itself, as they crash h5py:
// docs/guide.md, Limits.)
func TestDamagedNIRRefused(t *testing.T) {
	seed := testutil.ReadFile(t, "nir/relu_net.nir")
	dir := t.TempDir()
	p := filepath.Join(dir, "cut.nir")
	n := 0
	for cut := 1; cut < len(seed); cut += 997 {
		if err := os.WriteFile(p, seed[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := model.Load(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("the first %d bytes of a NIR file: %v", cut, err)
		}
		n++
	}
	plain := filepath.Join(dir, "plain.h5")
	f, err := hdf5.Create(plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Root().String("version", "1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Load(plain); err == nil || !strings.Contains(err.Error(), "not a NIR file") {
		t.Errorf("an HDF5 file without a graph: %v", err)
	}
	t.Logf("%d truncations refused", n)
}
