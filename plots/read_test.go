package plots

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/proxykit/proxykit/results"
)

// FuzzRead feeds plot's readers what a hand-edited eval --json or train
// --json file may hold: each is refused with an error, or drawn — never a
// panic, never a hang.
func FuzzRead(f *testing.F) {
	sw := results.Sweep{N: 10, ANN: 0.9, Threshold: 2, IFLayers: []string{"a", "output"}, SynOpLayers: []string{"fc"}, ANNMACs: 100,
		Points: []results.SweepPoint{{T: 1, SNNStrict: 0.5, SNNTies: 0.6, Rates: []float64{0.1, 0.2}, SynOps: 0, LayerSynOps: []float64{0}},
			{T: 4, SNNStrict: 0.7, SNNTies: 0.8, TieShare: 0.1, Rates: []float64{0.1, 0.3}, SynOps: 50, LayerSynOps: []float64{50}}}}
	b, _ := json.Marshal(sw)
	f.Add(string(b))
	e := results.EpochStats{Epoch: 0, BNMode: "train", TrainLoss: 0.2, TrainANN: 0.5, TrainSNN: 0.4,
		Test: results.Accuracy{N: 10, ANN: 0.5, SNNStrict: 0.4, SNNTies: 0.6}, Seconds: 1, ImagesPerSec: 10}
	b1, _ := json.Marshal(e)
	e.Epoch = 1
	b2, _ := json.Marshal(e)
	f.Add(string(b1) + "\n" + string(b2) + "\n")
	f.Add("{}")
	f.Add(`{"points":[{"t":1e12}]}`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text string) {
		in := filepath.Join(dir, "in.json")
		if err := os.WriteFile(in, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		sw, hist, err := Read(in)
		if err != nil {
			return
		}
		fig := filepath.Join(dir, "fig.svg")
		if sw != nil {
			err = Sweeps(fig, []results.Sweep{*sw})
		} else {
			err = Training(fig, "fuzz", hist)
		}
		if err != nil {
			t.Fatalf("read, then refused to draw: %v", err)
		}
	})
}
