package train_test

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// TestSweepEqualsSeparateRuns reads accuracies and firing rates at several
// T from one simulation and requires each to equal a separate evaluation
// at that T alone, one step at a time and all steps at once.
func TestSweepEqualsSeparateRuns(t *testing.T) {
	testSet, err := data.Load(testutil.MNISTDir(t), data.MNIST, false)
	if err != nil {
		t.Fatal(err)
	}
	testSet = testSet.Subset(300)
	ts := []int{1, 3, 8, 20}
	for _, be := range []*compute.CPU{compute.NewCPU(), {AllSteps: true}} {
		m, err := model.Load(testutil.Path("convert/ann.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := spiking.Config{Timesteps: 20, Threshold: 0.5, Reset: 0}
		snn, err := m.SNN(cfg)
		if err != nil {
			t.Fatal(err)
		}
		sw, err := train.SweepModel(context.Background(), be, m.ANN, snn, testSet, 128, train.SweepOptions{Timesteps: ts})
		if err != nil {
			t.Fatal(err)
		}
		for i, T := range ts {
			cfg.Timesteps = T
			one, err := m.SNN(cfg)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := train.Evaluate(context.Background(), be, m.ANN, one, testSet, 128)
			if err != nil {
				t.Fatal(err)
			}
			p := sw.Points[i]
			if p.T != T || p.SNNStrict != rep.SNNStrict || p.SNNTies != rep.SNNTies || p.SNNMembrane != rep.SNNMembrane ||
				p.TieShare != rep.TieShare || p.SilentShare != rep.SilentShare || sw.ANN != rep.ANN {
				t.Errorf("AllSteps=%v T=%d: sweep %+v (ANN %g), separate run %+v", be.AllSteps, T, p, sw.ANN, rep.Accuracy)
			}
			x := &nn.Tensor{Shape: []int{testSet.N, 1, 28, 28}, Data: testSet.Images}
			res, err := one.RunOn(context.Background(), be, x, false, 0)
			if err != nil {
				t.Fatal(err)
			}
			// the silent share, counted here from the simulation's counts
			silent, k := 0, len(res.Counts.Data)/testSet.N
			for j := 0; j < testSet.N; j++ {
				if slices.Max(res.Counts.Data[j*k:(j+1)*k]) == 0 {
					silent++
				}
			}
			if want := float64(silent) / float64(testSet.N); p.SilentShare != want {
				t.Errorf("AllSteps=%v T=%d: silent share %g, the counts say %g", be.AllSteps, T, p.SilentShare, want)
			}
			if T == 1 && (silent == 0 || p.Warning(testSet.N) == "") {
				t.Errorf("T=1: %d of %d images silent, warning %q: the check of silence proves nothing", silent, testSet.N, p.Warning(testSet.N))
			}
			for j := range res.Rates {
				if math.Abs(res.Rates[j]-p.Rates[j]) > 1e-9 {
					t.Errorf("AllSteps=%v T=%d: IF layer %d rate %g in the sweep, %g alone", be.AllSteps, T, j, p.Rates[j], res.Rates[j])
				}
			}
			t.Logf("AllSteps=%v T=%2d strict %.1f%% ties %.1f%% membrane %.1f%% tied %.1f%% silent %.1f%% rates %.3f synops/image %.0f",
				be.AllSteps, T, 100*p.SNNStrict, 100*p.SNNTies, 100*p.SNNMembrane, 100*p.TieShare, 100*p.SilentShare, p.Rates, p.SynOps)
		}
		if sw.Points[0].SNNStrict == sw.Points[len(ts)-1].SNNStrict {
			t.Errorf("accuracy does not change with T: the sweep reads one point")
		}
	}
}

func TestParseTimesteps(t *testing.T) {
	for in, want := range map[string][]int{
		"15":            {15},
		"1,2,4,8":       {1, 2, 4, 8},
		"8,1,8,2":       {1, 2, 8},
		"1-4,16":        {1, 2, 3, 4, 16},
		"8-32:8, 2":     {2, 8, 16, 24, 32},
		"1-1":           {1},
		" 3 , 5 ":       {3, 5},
		"128,1-3,64-64": {1, 2, 3, 64, 128},
		// a step beyond the range: its start alone, no overflow
		"1-4:9223372036854775807": {1},
		"1-1048576:1048576":       {1},
		"1-1000":                  nil,
	} {
		if want == nil {
			want = make([]int, 1000)
			for i := range want {
				want[i] = i + 1
			}
		}
		got, err := train.ParseTimesteps(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseTimesteps(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "x", "1,,2", "4-2", "1-8:0", "5:2", "1-2-3", "2e9", "1-99999999", "1.5",
		// more values of T than a figure can show
		"1-1001", "1-1048576", "1-600,700-1300"} {
		if got, err := train.ParseTimesteps(in); err == nil {
			t.Errorf("ParseTimesteps(%q) = %v, want an error", in, got)
		}
	}
}
