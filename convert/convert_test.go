package convert_test

import (
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// reference is testdata/convert/reference.json, the conversion done in
// PyTorch by scripts/make_conversion_fixtures.py.
type reference struct {
	Percentile  float64              `json:"percentile"`
	CalibImages int                  `json:"calib_images"`
	TestImages  int                  `json:"test_images"`
	ANN         float64              `json:"ann"`
	Normalised  float64              `json:"normalised_ann"`
	Scales      []convert.Scale      `json:"scales"`
	Points      []results.SweepPoint `json:"points"`
}

func loadReference(t *testing.T, dir string) reference {
	t.Helper()
	var ref reference
	if err := json.Unmarshal(testutil.ReadFile(t, dir+"/reference.json"), &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestConversionMatchesPyTorch calibrates and normalises the fixtures' ANNs
// (trained in PyTorch on real MNIST: a chain, and a residual network with
// an identity and a projection shortcut) and holds the scales, the
// accuracies at every T, the firing rates and the synaptic operations to
// the conversion and IF simulation written independently in PyTorch.
func TestConversionMatchesPyTorch(t *testing.T) {
	// minAt: the SNN's accuracy at the largest T at least this far below the
	// ANN's. The residual network converts worse: hard reset loses the
	// charge above threshold at every spike, and the error grows with depth
	// (PyTorch's simulation finds the same).
	for _, c := range []struct {
		dir   string
		minAt float64
	}{{"convert", 0.02}, {"convert/resnet", 0.35}} {
		t.Run(c.dir, func(t *testing.T) { checkConversion(t, c.dir, c.minAt) })
	}
}

// loadMNIST reads real MNIST's training and test sets.
func loadMNIST(t *testing.T) (trainSet, testSet *data.Dataset) {
	t.Helper()
	dir := testutil.MNISTDir(t)
	trainSet, err := data.Load(dir, data.MNIST, true)
	if err != nil {
		t.Fatal(err)
	}
	testSet, err = data.Load(dir, data.MNIST, false)
	if err != nil {
		t.Fatal(err)
	}
	return trainSet, testSet
}

func checkConversion(t *testing.T, fixture string, minAt float64) {
	ref := loadReference(t, fixture)
	trainSet, testSet := loadMNIST(t)
	m, err := model.Load(testutil.Path(fixture + "/ann.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	be := compute.NewCPU()
	scales, err := convert.Calibrate(context.Background(), be, m.ANN, trainSet, ref.CalibImages, 250, ref.Percentile)
	if err != nil {
		t.Fatal(err)
	}
	if len(scales) != len(ref.Scales) {
		t.Fatalf("%d scales, PyTorch has %d", len(scales), len(ref.Scales))
	}
	for i, s := range scales {
		r := ref.Scales[i]
		if rel := math.Abs(s.Lambda-r.Lambda) / r.Lambda; rel > 1e-5 {
			t.Errorf("layer %d (%s): λ = %.7g, PyTorch %.7g (relative error %.2g)", i, s.Layer, s.Lambda, r.Lambda, rel)
		}
		// An activation within rounding of 0 may fall either side.
		if d := s.Positive - r.Positive; d*d > (r.Positive/100000+1)*(r.Positive/100000+1) {
			t.Errorf("layer %d (%s): %d positive activations, PyTorch %d", i, s.Layer, s.Positive, r.Positive)
		}
		t.Logf("layer %-12s λ %.6g (PyTorch %.6g) over %d positive values, max %.4g", s.Layer, s.Lambda, r.Lambda, s.Positive, s.Max)
	}
	if _, err := convert.Normalize(m.ANN, scales, spiking.Config{Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	var ts []int
	for _, p := range ref.Points {
		ts = append(ts, p.T)
	}
	snn, err := m.SNN(spiking.Config{Timesteps: ts[len(ts)-1], Threshold: 1, Reset: 0})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := train.SweepModel(context.Background(), be, m.ANN, snn, testSet.Subset(ref.TestImages), 250, train.SweepOptions{Timesteps: ts})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(sw.ANN-ref.Normalised) > 0.5/float64(ref.TestImages) {
		t.Errorf("normalised ANN accuracy %.2f%%, PyTorch %.2f%%", 100*sw.ANN, 100*ref.Normalised)
	}
	if math.Abs(sw.ANN-ref.ANN) > 0.002 {
		t.Errorf("normalisation changed the ANN's accuracy: %.2f%%, before %.2f%%", 100*sw.ANN, 100*ref.ANN)
	}
	for i, p := range sw.Points {
		r := ref.Points[i]
		t.Logf("T=%3d strict %.1f%% (PyTorch %.1f%%) ties %.1f%% (%.1f%%) synops/image %.0f (%.0f) rates %.3f (%.3f)",
			p.T, 100*p.SNNStrict, 100*r.SNNStrict, 100*p.SNNTies, 100*r.SNNTies, p.SynOps, r.SynOps, p.Rates, r.Rates)
		tol := 0.01 // a point: float rounding may move a potential across the threshold
		if math.Abs(p.SNNStrict-r.SNNStrict) > tol || math.Abs(p.SNNTies-r.SNNTies) > tol {
			t.Errorf("T=%d: SNN strict/ties %.2f/%.2f%%, PyTorch %.2f/%.2f%%", p.T, 100*p.SNNStrict, 100*p.SNNTies, 100*r.SNNStrict, 100*r.SNNTies)
		}
		if rel := math.Abs(p.SynOps-r.SynOps) / max(r.SynOps, 1); rel > 0.01 {
			t.Errorf("T=%d: %.0f synaptic operations per image, PyTorch %.0f", p.T, p.SynOps, r.SynOps)
		}
		for j := range r.Rates {
			if math.Abs(p.Rates[j]-r.Rates[j]) > 0.01*max(r.Rates[j], 0.01) {
				t.Errorf("T=%d: IF layer %d fires at %.5f, PyTorch %.5f", p.T, j, p.Rates[j], r.Rates[j])
			}
		}
	}
	if last := sw.Points[len(sw.Points)-1]; last.SNNStrict < ref.ANN-minAt {
		t.Errorf("converted SNN at T=%d: %.1f%%, ANN %.1f%%: the conversion does not work", last.T, 100*last.SNNStrict, 100*ref.ANN)
	}
}

// TestConvertedResidualToNIR converts the residual fixture and writes its
// SNN as NIR: the shortcut's scaling layer is one more edge into the IF
// layer after the Add, and NumPy's simulation of the graph by NIR's rules
// (scripts/nir_sim.py, written from NIR's node definitions) gives
// proxykit's counts on real test digits.
func TestConvertedResidualToNIR(t *testing.T) {
	trainSet, testSet := loadMNIST(t)
	m, err := model.Load(testutil.Path("convert/resnet/ann.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	be := compute.NewCPU()
	scales, err := convert.Calibrate(context.Background(), be, m.ANN, trainSet, 200, 100, convert.DefaultPercentile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := convert.Normalize(m.ANN, scales, spiking.Config{Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	snn, err := m.SNN(spiking.Config{Timesteps: 32, Threshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	x := &nn.Tensor{Shape: []int{20, 1, 28, 28}, Data: testSet.Images[:20*784]}
	res, err := snn.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	xPath, nirPath, out := filepath.Join(tmp, "x.npy"), filepath.Join(tmp, "snn.nir"), filepath.Join(tmp, "counts.npy")
	if err := npy.WriteFile(xPath, x.Shape, x.Data); err != nil {
		t.Fatal(err)
	}
	if err := exporter.WriteNIR(nirPath, snn, exporter.NIROptions{}); err != nil {
		t.Fatal(err)
	}
	sim := filepath.Join(testutil.Dir(), "..", "scripts", "nir_sim.py")
	if b, err := exec.Command("/usr/bin/python3", sim, nirPath, xPath, out).CombinedOutput(); err != nil {
		t.Fatalf("scripts/nir_sim.py rejects the file: %v\n%s", err, b)
	}
	got, err := npy.ReadFile(out, false)
	if err != nil {
		t.Fatal(err)
	}
	var spikes float32
	for _, c := range res.Counts.Data {
		spikes += c
	}
	d := testutil.Differing(got.Data, res.Counts.Data)
	t.Logf("NIR simulation: %d of %d counts differ from proxykit's (%g output spikes)", d, len(got.Data), spikes)
	if d > len(got.Data)/100 || spikes == 0 {
		t.Errorf("NIR simulation: %d of %d counts differ from proxykit's (allowed 1 %%), %g output spikes", d, len(got.Data), spikes)
	}
}
