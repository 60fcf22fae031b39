package plots

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/results"
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
