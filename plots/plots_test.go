package plots

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/results"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	vgdraw "gonum.org/v1/plot/vg/draw"
)

func TestSweepRecordsAndRefusals(t *testing.T) {
	sw := results.Sweep{Model: "m", ANN: 0.5, IFLayers: []string{"r1", "output"}, ANNMACs: 7,
		Points: []results.SweepPoint{{T: 1, SNNStrict: 0.25, Rates: []float64{0.1, 0}, SynOps: 3}, {T: 4, SNNStrict: 0.5, Rates: []float64{0.2, 0.05}, SynOps: 12}}}
	rec := SweepRecords([]results.Sweep{sw})
	if len(rec) != 1+2*2 {
		t.Fatalf("%d records", len(rec))
	}
	if got := strings.Join(rec[4], ","); got != "m,4,0.5,0.5,0,0,12,7,output,0.05" {
		t.Errorf("last record %s", got)
	}
	dir := t.TempDir()
	if err := Sweeps(filepath.Join(dir, "x.png"), nil); err == nil {
		t.Error("an empty figure was drawn")
	}
	if err := Sweeps(filepath.Join(dir, "x.gif"), []results.Sweep{sw}); err == nil || !strings.Contains(err.Error(), ".png, .svg or .pdf") {
		t.Errorf("a .gif figure: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.csv")); err == nil {
		t.Error("a refused figure left its CSV")
	}
	if err := Training(filepath.Join(dir, "c.png"), "run", nil); err == nil {
		t.Error("a curve of no epochs was drawn")
	}
	// a silent SNN: no synaptic operations, a log axis must not panic
	silent := sw
	silent.ANNMACs = 0
	silent.Points = []results.SweepPoint{{T: 1, Rates: []float64{0, 0}}, {T: 2, Rates: []float64{0, 0}}}
	if err := Sweeps(filepath.Join(dir, "s.svg"), []results.Sweep{silent}); err != nil {
		t.Errorf("a silent SNN: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "s.csv")); err != nil {
		t.Errorf("no CSV beside the figure: %v", err)
	}
}

// TestLegendsBesideTheCurves: every panel's legend lies in a strip below
// its data area, so it covers no curve however many entries it has (it
// covered the curves at the corner it was drawn in before), and within
// the figure.
func TestLegendsBesideTheCurves(t *testing.T) {
	sw := results.Sweep{Model: "m", ANN: 0.9, IFLayers: []string{"relu1", "relu2", "relu3", "relu4", "output"}, ANNMACs: 7,
		Points: []results.SweepPoint{{T: 1, SNNStrict: 0.1, SNNTies: 1, Rates: []float64{0.1, 0, 0, 0, 0}, SynOps: 3},
			{T: 8, SNNStrict: 0.9, SNNTies: 0.95, Rates: []float64{0.2, 0.1, 0.1, 0.1, 0.05}, SynOps: 12}}}
	other := sw
	other.Model = "n"
	h := []results.EpochStats{{Epoch: 0, TrainLoss: 0.2, Test: results.Accuracy{ANN: 0.9, SNNStrict: 0.5, SNNTies: 0.9}},
		{Epoch: 1, TrainLoss: 0.1, Test: results.Accuracy{ANN: 0.95, SNNStrict: 0.9, SNNTies: 0.97}}}
	dir := t.TempDir()
	for name, draw := range map[string]func(string) error{
		"sweeps":   func(p string) error { return Sweeps(p, []results.Sweep{sw, other}) },
		"training": func(p string) error { return Training(p, "run", h) },
	} {
		// the figure is drawn, and its panels as save lays them out
		if err := draw(filepath.Join(dir, name+".png")); err != nil {
			t.Fatal(err)
		}
		var panels []*plot.Plot
		var err error
		if name == "sweeps" {
			panels, err = sweepPanels([]results.Sweep{sw, other})
		} else {
			panels, _, err = trainingPanels("run", h)
		}
		if err != nil {
			t.Fatal(err)
		}
		rows := [][]*plot.Plot{panels}
		c, err := vgdraw.NewFormattedCanvas(33*vg.Centimeter, 12*vg.Centimeter, "png")
		if err != nil {
			t.Fatal(err)
		}
		dc := vgdraw.New(c)
		plots, legends := layout(rows, dc)
		for j, p := range rows[0] {
			data := p.DataCanvas(plots[0][j]).Rectangle
			leg := p.Legend.Rectangle(legends[0][j])
			if leg.Max.Y-leg.Min.Y <= 0 {
				t.Fatalf("%s panel %d: no legend", name, j)
			}
			if leg.Max.Y > data.Min.Y || leg.Min.Y < dc.Min.Y || leg.Min.X < dc.Min.X || leg.Max.X > dc.Max.X {
				t.Errorf("%s panel %d: legend %v, data area %v, figure %v: the legend is not in its strip below the curves",
					name, j, leg, data, dc.Rectangle)
			}
		}
	}
}

// TestTrainingCountsEpochsFromOne: the curve and its CSV count epochs as
// train prints them, from 1 (the log's index 0 is epoch 1), so that the
// figure, the CSV and the epoch lines agree.
func TestTrainingCountsEpochsFromOne(t *testing.T) {
	h := []results.EpochStats{{Epoch: 0, BNMode: "train", TrainLoss: 0.2}, {Epoch: 1, BNMode: "eval", TrainLoss: 0.1}}
	var line strings.Builder
	if err := h[0].WriteText(&line); err != nil || !strings.HasPrefix(line.String(), "epoch 1 (BN train)") {
		t.Fatalf("the epoch line of index 0 reads %q (%v)", line.String(), err)
	}
	panels, records, err := trainingPanels("run", h)
	if err != nil {
		t.Fatal(err)
	}
	if records[1][0] != "1" || records[2][0] != "2" {
		t.Errorf("CSV epochs %q, %q; want 1, 2", records[1][0], records[2][0])
	}
	if x := panels[0].X; x.Min != 1 || x.Max != 2 {
		t.Errorf("the accuracy panel's epochs run from %g to %g, want 1 to 2", x.Min, x.Max)
	}
}
