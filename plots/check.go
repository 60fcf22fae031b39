package plots

import (
	"fmt"
	"math"

	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
)

// Limits on what a figure draws, from what can be drawn: a sweep holds at
// most results.MaxSweepPoints values of T (each at most
// spiking.MaxTimesteps, the longest simulation), and a training log at most
// MaxEpochs epochs numbered below MaxEpochs.
const (
	MaxEpochs = 100000
	maxLayers = 100000
)

// CheckSweep refuses a sweep a figure cannot show or that no evaluation
// can have produced: it says which field of which point is wrong.
func CheckSweep(s results.Sweep) error {
	if len(s.Points) == 0 || len(s.Points) > results.MaxSweepPoints {
		return fmt.Errorf("%d points: a sweep holds 1 to %d values of T", len(s.Points), results.MaxSweepPoints)
	}
	if len(s.IFLayers) == 0 || len(s.IFLayers) > maxLayers || len(s.SynOpLayers) > maxLayers {
		return fmt.Errorf("%d IF layers and %d layers with weights: want 1 to %d of each (if_layers, synop_layers)", len(s.IFLayers), len(s.SynOpLayers), maxLayers)
	}
	if err := checkFields(map[string]float64{"n": float64(s.N), "ann": s.ANN, "ann_macs_per_image": float64(s.ANNMACs),
		"static_macs_per_image": float64(s.StaticMACs)}, map[string]bool{"ann": true}); err != nil {
		return err
	}
	if !finite(float64(s.Threshold)) || !finite(float64(s.Reset)) {
		return fmt.Errorf("threshold %g and reset %g must be finite", s.Threshold, s.Reset)
	}
	prev := 0
	for i, p := range s.Points {
		if p.T <= prev || p.T > spiking.MaxTimesteps {
			return fmt.Errorf("point %d: T = %d; the values of T ascend from 1 to at most %d", i, p.T, spiking.MaxTimesteps)
		}
		prev = p.T
		if len(p.Rates) != len(s.IFLayers) || len(p.LayerSynOps) != len(s.SynOpLayers) {
			return fmt.Errorf("point %d (T = %d): %d rates for %d IF layers, %d synaptic-operation counts for %d layers",
				i, p.T, len(p.Rates), len(s.IFLayers), len(p.LayerSynOps), len(s.SynOpLayers))
		}
		fields := map[string]float64{"snn_strict": p.SNNStrict, "snn_ties": p.SNNTies, "tie_share": p.TieShare, "synops_per_image": p.SynOps}
		for k, r := range p.Rates {
			fields[fmt.Sprintf("rates[%d]", k)] = r
		}
		for k, o := range p.LayerSynOps {
			fields[fmt.Sprintf("layer_synops_per_image[%d]", k)] = o
		}
		shares := map[string]bool{"snn_strict": true, "snn_ties": true, "tie_share": true}
		for k := range p.Rates {
			shares[fmt.Sprintf("rates[%d]", k)] = true // at most one spike per neuron per step
		}
		if err := checkFields(fields, shares); err != nil {
			return fmt.Errorf("point %d (T = %d): %w", i, p.T, err)
		}
	}
	return nil
}

// CheckHistory refuses a training log a figure cannot show or that no run
// can have produced.
func CheckHistory(h []results.EpochStats) error {
	if len(h) == 0 || len(h) > MaxEpochs {
		return fmt.Errorf("%d epochs: a training log holds 1 to %d", len(h), MaxEpochs)
	}
	prev := -1
	for i, e := range h {
		if e.Epoch <= prev || e.Epoch >= MaxEpochs {
			return fmt.Errorf("line %d: epoch %d; epochs ascend from 0 to below %d", i+1, e.Epoch, MaxEpochs)
		}
		prev = e.Epoch
		err := checkFields(map[string]float64{"train_loss": e.TrainLoss, "train_ann_acc": e.TrainANN, "train_snn_acc": e.TrainSNN,
			"test.ann": e.Test.ANN, "test.snn_strict": e.Test.SNNStrict, "test.snn_ties": e.Test.SNNTies, "test.tie_share": e.Test.TieShare,
			"test.n": float64(e.Test.N), "seconds": e.Seconds, "images_per_sec": e.ImagesPerSec},
			map[string]bool{"train_ann_acc": true, "train_snn_acc": true, "test.ann": true, "test.snn_strict": true, "test.snn_ties": true, "test.tie_share": true})
		if err != nil {
			return fmt.Errorf("epoch %d: %w", e.Epoch, err)
		}
	}
	return nil
}

// checkFields checks that every value is finite and not negative, and the
// shares (accuracies, rates) at most 1.
func checkFields(fields map[string]float64, shares map[string]bool) error {
	for name, v := range fields {
		switch {
		case !finite(v) || v < 0:
			return fmt.Errorf("%s is %g; want a finite value of at least 0", name, v)
		case shares[name] && v > 1:
			return fmt.Errorf("%s is %g; a share lies in [0, 1]", name, v)
		}
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
