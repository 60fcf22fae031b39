package train

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
)

// ParseTimesteps reads a list of simulation lengths such as
// "1,2,4,8,16" or "1-10,16,32-64:8" (a range lo-hi, every step-th value
// with :step) and returns them sorted, without repeats.
func ParseTimesteps(s string) ([]int, error) {
	var ts []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		rng, st, hasStep := strings.Cut(part, ":")
		step := 1
		if hasStep {
			v, err := strconv.Atoi(st)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("timesteps %q: step %q must be a positive integer", s, st)
			}
			step = v
		}
		l, h, isRange := strings.Cut(rng, "-")
		if !isRange {
			if hasStep {
				return nil, fmt.Errorf("timesteps %q: a step needs a range, as in 8-64:8", s)
			}
			h = l
		}
		lo, err1 := strconv.Atoi(l)
		hi, err2 := strconv.Atoi(h)
		if err1 != nil || err2 != nil || lo > hi {
			return nil, fmt.Errorf("timesteps %q: %q is neither an integer nor a range lo-hi with lo <= hi", s, part)
		}
		if lo < 1 {
			return nil, fmt.Errorf("timesteps %q: every T must be at least 1", s)
		}
		if hi > MaxTimesteps {
			return nil, fmt.Errorf("timesteps %q: %d is above the limit of %d steps", s, hi, MaxTimesteps)
		}
		if n := (hi-lo)/step + 1; n > results.MaxSweepPoints || len(ts)+n > results.MaxSweepPoints {
			return nil, fmt.Errorf("timesteps %q: more than %d values of T (a figure cannot show more; give a step, as in 1-10000:10)", s, results.MaxSweepPoints)
		}
		for t := lo; ; t += step {
			ts = append(ts, t)
			if hi-t < step {
				break
			}
		}
	}
	slices.Sort(ts)
	return slices.Compact(ts), nil
}

// MaxTimesteps bounds a simulation's length (spiking.MaxTimesteps).
const MaxTimesteps = spiking.MaxTimesteps

// SweepOptions say which simulation lengths a results.Sweep reads and how it
// reports progress.
type SweepOptions struct {
	// Timesteps are the lengths to read, ascending; the engine's SNN must
	// be configured for at least the largest.
	Timesteps []int
	// OnBatch, if set, is called after each batch with the images done.
	OnBatch func(done, total int)
	// Progress, if set, shows the images done (ProgressLine), cleared at
	// the end.
	Progress io.Writer
	// Model, if set, is the evaluated model's file: the sweep names it by
	// its base name (results.Sweep.Model).
	Model string
}

// results.Sweep runs the ANN once and the SNN once for max(Timesteps) steps over
// d, BatchNorm in eval mode, and reads the SNN's accuracy, firing rates
// and synaptic operations after each of the Timesteps. Each point equals
// an evaluation at that T alone.
func (e *Engine) Sweep(ctx context.Context, d *data.Dataset, opt SweepOptions) (results.Sweep, error) {
	if _, err := e.program(engineProgram{}); err != nil {
		return results.Sweep{}, err
	}
	if err := d.Check(); err != nil {
		return results.Sweep{}, err
	}
	if ctx == nil {
		return results.Sweep{}, fmt.Errorf("no context (nil)")
	}
	ts := opt.Timesteps
	cfg := e.SNN.Config
	sw := results.Sweep{N: d.N, Threshold: cfg.Threshold, Reset: cfg.Reset, InitialCharge: cfg.InitialCharge}
	if opt.Model != "" {
		sw.Model = filepath.Base(opt.Model)
	}
	if len(ts) == 0 {
		return sw, fmt.Errorf("no simulation lengths to evaluate")
	}
	if top := ts[len(ts)-1]; top > cfg.Timesteps {
		return sw, fmt.Errorf("the SNN is set up for T = %d, the sweep asks for %d", cfg.Timesteps, top)
	}
	if err := spiking.CheckSteps(ts, cfg.Timesteps); err != nil {
		return sw, err
	}
	l, err := e.program(engineProgram{rates: true, synOps: true})
	if err != nil {
		return sw, err
	}
	sw.IFLayers = l.SNN.IFNames
	sw.ANNMACs, sw.StaticMACs = macs(e.ANN, len(e.ANN.Layers)), macs(e.ANN, e.SNN.Static)
	type totals struct {
		results.Tally
		rates, layerOps []float64
	}
	acc := make([]totals, len(ts))
	annOK := 0
	sz := d.C * d.H * d.W
	k := e.classes
	prog := NewProgressLine(opt.Progress)
	defer prog.Clear()
	for lo := 0; lo < d.N; lo += e.capacity {
		if ctx.Err() != nil {
			return sw, ErrInterrupted
		}
		hi := min(lo+e.capacity, d.N)
		n := hi - lo
		if _, err := e.stage(l, &nn.Tensor{Shape: []int{n, d.C, d.H, d.W}, Data: d.Images[lo*sz : hi*sz]}); err != nil {
			return sw, err
		}
		labels := d.Labels[lo:hi]
		point := 0
		e.m.ResetSynOps()
		err = e.run(ctx, l, n, ts, func(t int) error {
			a := &acc[point]
			point++
			hc, hv := e.hostC[:n*k], e.hostV[:n*k]
			if err := e.Backend.Download(hc, spiking.Counts(e.m, l, n).Buf); err != nil {
				return err
			}
			if err := e.Backend.Download(hv, spiking.Potentials(e.m, l, n).Buf); err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				label := int(labels[i])
				a.Add(results.Read(hc[i*k:(i+1)*k], hv[i*k:(i+1)*k], label), label)
			}
			rates, err := spiking.Rates(e.m, l, n, t)
			if err != nil {
				return err
			}
			a.rates = addScaled(a.rates, rates, float64(n))
			names, ops := spiking.SynOps(e.m, l)
			sw.SynOpLayers = names
			a.layerOps = addScaled(a.layerOps, ops, 1)
			return nil
		})
		if err != nil {
			return sw, interrupted(ctx, err)
		}
		if err := e.Backend.Download(e.hostY[:n*k], e.output(l, n)); err != nil {
			return sw, err
		}
		for i := 0; i < n; i++ {
			if results.FirstMax(e.hostY[i*k:(i+1)*k]) == int(labels[i]) {
				annOK++
			}
		}
		if err := e.Backend.Err(); err != nil {
			return sw, err
		}
		if opt.OnBatch != nil {
			opt.OnBatch(hi, d.N)
		}
		prog.Show(fmt.Sprintf("%d/%d images", hi, d.N), false)
	}
	n := float64(max(d.N, 1))
	sw.ANN = float64(annOK) / n
	for i, t := range ts {
		a := acc[i]
		p := results.SweepPoint{T: t, Rates: scaled(a.rates, 1/n), LayerSynOps: scaled(a.layerOps, 1/n)}
		p.SNNStrict, p.SNNTies, p.SNNMembrane, p.TieShare = a.Shares(max(d.N, 1))
		p.SilentShare = a.SilentShare(max(d.N, 1))
		for _, v := range p.LayerSynOps {
			p.SynOps += v
		}
		sw.Points = append(sw.Points, p)
	}
	return sw, nil
}

// SweepModel evaluates ann and snn at every T in ts on be, batch images at
// a time; snn's T is raised to the largest of ts.
func SweepModel(ctx context.Context, be compute.Backend, ann *nn.Network, snn *spiking.Network, d *data.Dataset, batch int, opt SweepOptions) (results.Sweep, error) {
	if snn == nil {
		return results.Sweep{}, fmt.Errorf("no SNN (nil)")
	}
	if err := d.Check(); err != nil {
		return results.Sweep{}, err
	}
	if len(opt.Timesteps) > 0 {
		snn.Config.Timesteps = opt.Timesteps[len(opt.Timesteps)-1]
	}
	e, err := NewEngine(be, ann, snn, min(batch, max(d.N, 1)))
	if err != nil {
		return results.Sweep{}, err
	}
	defer e.Free()
	return e.Sweep(ctx, d, opt)
}

// macs adds up the multiply-accumulates of the first layers of net (a
// network's body, or its static input layer) on one sample.
func macs(net *nn.Network, layers int) int64 {
	shapes, err := net.Shapes()
	if err != nil {
		return 0
	}
	var total int64
	for i, l := range net.Layers[:min(max(layers, 0), len(net.Layers))] {
		in := net.InputShape
		if src := net.InputsOf(i)[0]; src >= 0 {
			in = shapes[src]
		}
		total += nn.MACs(l, in)
	}
	return total
}

// addScaled returns acc + f·v, acc grown to v's length.
func addScaled(acc, v []float64, f float64) []float64 {
	if acc == nil {
		acc = make([]float64, len(v))
	}
	for i := range v {
		acc[i] += f * v[i]
	}
	return acc
}

func scaled(v []float64, f float64) []float64 {
	out := make([]float64, len(v))
	for i := range v {
		out[i] = v[i] * f
	}
	return out
}
