package plots

import (
	"fmt"
	"image/color"
	"math"

	"github.com/proxykit/proxykit/results"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Sweeps draws one or more evaluations against the simulation length T
// into one figure of three panels: accuracy (the ANN as a flat line, the
// SNN's strict and ties accuracy), each IF layer's firing rate, and
// synaptic operations per image (with the ANN's multiply-accumulates as a
// flat line). It writes the numbers to CSVPath(path) too.
func Sweeps(path string, sweeps []results.Sweep) error {
	if err := CheckPath(path); err != nil {
		return err
	}
	if len(sweeps) == 0 {
		return fmt.Errorf("figure %s: nothing to plot", path)
	}
	for i, s := range sweeps {
		if err := CheckSweep(s); err != nil {
			return fmt.Errorf("figure %s: %s: %w", path, Label(s, i), err)
		}
	}
	panels, err := sweepPanels(sweeps)
	if err != nil {
		return err
	}
	// each panel's legend goes below it (save), however many lines it has
	return save(path, [][]*plot.Plot{panels}, 11*vg.Centimeter, 9*vg.Centimeter, SweepRecords(sweeps))
}

// sweepPanels draws Sweeps' three panels for checked sweeps.
func sweepPanels(sweeps []results.Sweep) ([]*plot.Plot, error) {
	lo, hi := math.MaxInt, 1
	for _, s := range sweeps {
		lo, hi = min(lo, s.Points[0].T), max(hi, s.Points[len(s.Points)-1].T)
	}
	acc := newPlot("Accuracy against simulation length", "time steps T", "test accuracy (%)")
	rates := newPlot("Firing rate per IF layer", "time steps T", "spikes per neuron per step")
	ops := newPlot("Synaptic operations per image", "time steps T", "operations")
	for _, p := range []*plot.Plot{acc, rates, ops} {
		stepsAxis(p, lo, hi)
	}
	acc.Y.Min, acc.Y.Max = 0, 100
	rates.Y.Min = 0
	ops.Y.Scale, ops.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{}
	multi := len(sweeps) > 1
	var opsMin, opsMax = math.Inf(1), 0.0
	for i, s := range sweeps {
		// with several models, colours name the models and line styles
		// the series, in one legend entry each (added below)
		name := func(what string) string {
			if multi {
				return ""
			}
			return what
		}
		ts := make([]float64, len(s.Points))
		strict, ties := make([]float64, len(ts)), make([]float64, len(ts))
		var opsT, synops []float64 // a logarithmic axis shows positive values only
		for j, p := range s.Points {
			ts[j], strict[j], ties[j] = float64(p.T), 100*p.SNNStrict, 100*p.SNNTies
			if p.SynOps > 0 {
				opsT, synops = append(opsT, float64(p.T)), append(synops, p.SynOps)
				opsMin, opsMax = min(opsMin, p.SynOps), max(opsMax, p.SynOps)
			}
		}
		c := colour(i)
		flat := func(v float64) []float64 {
			return []float64{v, v}
		}
		ends := []float64{float64(lo), float64(hi)}
		if err := line(acc, name("ANN"), ends, flat(100*s.ANN), c, dashes[2], false); err != nil {
			return nil, err
		}
		if err := line(acc, name("SNN strict"), ts, strict, c, nil, true); err != nil {
			return nil, err
		}
		if err := line(acc, name("SNN ties"), ts, ties, c, dashes[1], false); err != nil {
			return nil, err
		}
		for k, layer := range s.IFLayers {
			r := make([]float64, len(ts))
			for j, p := range s.Points {
				r[j] = p.Rates[k]
			}
			lc, dash := colour(k), dashes[0]
			if multi {
				lc, dash = colour(i), dashes[k%len(dashes)]
			}
			if err := line(rates, name(layer), ts, r, lc, dash, !multi); err != nil {
				return nil, err
			}
		}
		if err := line(ops, name("SNN synaptic ops"), opsT, synops, c, nil, true); err != nil {
			return nil, err
		}
		if s.ANNMACs > 0 {
			if err := line(ops, name("ANN MACs"), ends, flat(float64(s.ANNMACs)), c, dashes[2], false); err != nil {
				return nil, err
			}
			opsMin, opsMax = min(opsMin, float64(s.ANNMACs)), max(opsMax, float64(s.ANNMACs))
		}
	}
	if multi {
		grey := color.RGBA{90, 90, 90, 255}
		for _, p := range []*plot.Plot{acc, rates, ops} {
			for i, s := range sweeps {
				if err := legendEntry(p, Label(s, i), colour(i), nil); err != nil {
					return nil, err
				}
			}
		}
		for _, e := range []struct {
			p    *plot.Plot
			name string
			dash []vg.Length
		}{{acc, "ANN", dashes[2]}, {acc, "SNN strict", nil}, {acc, "SNN ties", dashes[1]},
			{ops, "SNN synaptic ops", nil}, {ops, "ANN MACs", dashes[2]}} {
			if err := legendEntry(e.p, e.name, grey, e.dash); err != nil {
				return nil, err
			}
		}
		for k, layer := range sweeps[0].IFLayers {
			if err := legendEntry(rates, layer, grey, dashes[k%len(dashes)]); err != nil {
				return nil, err
			}
		}
	}
	if opsMax > 0 {
		ops.Y.Min, ops.Y.Max = opsMin/1.5, opsMax*1.5
	} else {
		ops.Y.Scale, ops.Y.Tick.Marker = plot.LinearScale{}, plot.DefaultTicks{}
	}
	return []*plot.Plot{acc, rates, ops}, nil
}

// legendEntry adds a legend line of the given colour and dashes to p,
// without data.
func legendEntry(p *plot.Plot, name string, c color.Color, dash []vg.Length) error {
	l, err := plotter.NewLine(plotter.XYs{{X: 1, Y: 1}})
	if err != nil {
		return err
	}
	l.Color, l.Width, l.Dashes = c, vg.Points(1.5), dash
	p.Legend.Add(name, l)
	return nil
}

// SweepRecords are the sweeps as CSV rows, one per model and T: accuracy
// (in [0, 1]), tie share, synaptic operations per image, the ANN's MACs
// and one firing-rate column per IF layer of the first model (rates of
// other models' layers follow their own layer names).
func SweepRecords(sweeps []results.Sweep) [][]string {
	head := []string{"model", "t", "ann", "snn_strict", "snn_ties", "tie_share", "synops_per_image", "ann_macs_per_image", "layer", "rate"}
	out := [][]string{head}
	for i, s := range sweeps {
		for _, p := range s.Points {
			for k, layer := range s.IFLayers {
				rate := "" // a point without the layer's rate (CheckSweep refuses it)
				if k < len(p.Rates) {
					rate = f(p.Rates[k])
				}
				out = append(out, []string{Label(s, i), fmt.Sprint(p.T), f(s.ANN), f(p.SNNStrict), f(p.SNNTies), f(p.TieShare),
					f(p.SynOps), fmt.Sprint(s.ANNMACs), layer, rate})
			}
		}
	}
	return out
}
