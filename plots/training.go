package plots

import (
	"fmt"
	"math"

	"github.com/proxykit/proxykit/results"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// Training draws a proxy-learning run's curve from its per-epoch log (a
// checkpoint's history or train --json's lines): test accuracy of the ANN
// and the SNN (strict and ties) and the SNN's training accuracy in one
// panel, the training loss in the other. It writes the numbers to
// CSVPath(path) too. Epochs are counted from 1 there, as train prints them
// (results.EpochStats.Epoch is the index, from 0).
func Training(path, title string, history []results.EpochStats) error {
	if err := CheckPath(path); err != nil {
		return err
	}
	if err := CheckHistory(history); err != nil {
		return fmt.Errorf("figure %s: training log: %w", path, err)
	}
	panels, records, err := trainingPanels(title, history)
	if err != nil {
		return err
	}
	return save(path, [][]*plot.Plot{panels}, 12*vg.Centimeter, 9*vg.Centimeter, records)
}

// trainingPanels draws Training's two panels and its CSV records for a
// checked history.
func trainingPanels(title string, history []results.EpochStats) ([]*plot.Plot, [][]string, error) {
	acc := newPlot("Accuracy — "+title, "epoch", "accuracy (%)")
	loss := newPlot("Training loss — "+title, "epoch", "mean (counts − one-hot)²")
	n := len(history)
	ep := make([]float64, n)
	series := map[string][]float64{}
	keys := []string{"test SNN strict", "test SNN ties", "test ANN", "train SNN", "train ANN"}
	for _, k := range keys {
		series[k] = make([]float64, n)
	}
	lossY := make([]float64, n)
	for i, h := range history {
		ep[i] = float64(h.Epoch + 1) // counted from 1, as train prints them
		series["test SNN strict"][i] = 100 * h.Test.SNNStrict
		series["test SNN ties"][i] = 100 * h.Test.SNNTies
		series["test ANN"][i] = 100 * h.Test.ANN
		series["train SNN"][i] = 100 * h.TrainSNN
		series["train ANN"][i] = 100 * h.TrainANN
		lossY[i] = h.TrainLoss
	}
	styles := []struct {
		c    int
		dash int
	}{{0, 0}, {0, 1}, {1, 2}, {2, 0}, {3, 2}}
	for i, k := range keys {
		if k == "train ANN" && history[n-1].Method == "surrogate" {
			continue // surrogate gradients do not run the ANN in training
		}
		if err := line(acc, k, ep, series[k], colour(styles[i].c), dashes[styles[i].dash], n < 40); err != nil {
			return nil, nil, err
		}
	}
	if err := line(loss, "train loss", ep, lossY, colour(0), nil, n < 40); err != nil {
		return nil, nil, err
	}
	acc.Y.Max = 100
	loss.Y.Min = 0
	acc.X.Tick.Marker, loss.X.Tick.Marker = epochTicks{}, epochTicks{}
	records := [][]string{{"epoch", "bn_mode", "train_loss", "train_ann", "train_snn", "test_ann", "test_snn_strict", "test_snn_ties", "test_tie_share", "seconds", "images_per_sec"}}
	for _, h := range history {
		records = append(records, []string{fmt.Sprint(h.Epoch + 1), h.BNMode, f(h.TrainLoss), f(h.TrainANN), f(h.TrainSNN), f(h.Test.ANN),
			f(h.Test.SNNStrict), f(h.Test.SNNTies), f(h.Test.TieShare), f(h.Seconds), f(h.ImagesPerSec)})
	}
	return []*plot.Plot{acc, loss}, records, nil
}

// epochTicks marks whole epochs, at most about ten.
type epochTicks struct{}

// Ticks implements plot.Ticker.
func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 1
	for (hi-lo)/float64(step) > 10 {
		step *= 2
	}
	var ticks []plot.Tick
	for v := max(int(math.Ceil(lo/float64(step))), 0) * step; float64(v) <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: float64(v), Label: fmt.Sprint(v)})
	}
	return ticks
}
