package train

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// Sweep is an evaluation of the SNN at several simulation lengths, read
// off one simulation of the longest: accuracy, firing rates and synaptic
// operations against T, beside the ANN's accuracy.
type Sweep struct {
	// Model names the evaluated file, for legends; the caller sets it.
	Model string `json:"model,omitempty"`
	// N is the number of test images.
	N int `json:"n"`
	// ANN is the ANN's accuracy (BatchNorm in eval mode).
	ANN float64 `json:"ann"`
	// Threshold and Reset are the IF neurons' v_th and v_reset.
	Threshold float32 `json:"threshold"`
	Reset     float32 `json:"reset"`
	// IFLayers names the IF layers (the ReLUs they replace, then
	// "output"), in the order of SweepPoint.Rates.
	IFLayers []string `json:"if_layers"`
	// SynOpLayers names the layers with weights run at every step, in the
	// order of SweepPoint.LayerSynOps.
	SynOpLayers []string `json:"synop_layers"`
	// ANNMACs is the ANN's multiply-accumulates per image; StaticMACs
	// those of the SNN's static input layer, run once per image.
	ANNMACs    int64 `json:"ann_macs_per_image"`
	StaticMACs int64 `json:"static_macs_per_image"`
	// Points holds one entry per simulation length, ascending.
	Points []SweepPoint `json:"points"`
}

// SweepPoint is the SNN after T steps.
type SweepPoint struct {
	T int `json:"t"`
	// SNNStrict, SNNTies and TieShare are as in Accuracy.
	SNNStrict float64 `json:"snn_strict"`
	SNNTies   float64 `json:"snn_ties"`
	TieShare  float64 `json:"tie_share"`
	// Rates is each IF layer's firing rate: spikes per neuron per step,
	// averaged over the T steps and the test images.
	Rates []float64 `json:"rates"`
	// SynOps is the synaptic operations per image over the T steps (see
	// spiking.Simulator.CountSynOps); LayerSynOps splits it by layer.
	SynOps      float64   `json:"synops_per_image"`
	LayerSynOps []float64 `json:"layer_synops_per_image"`
}

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
		for t := lo; t <= hi; t += step {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return slices.Compact(ts), nil
}

// MaxTimesteps bounds a simulation's length (spiking.MaxTimesteps).
const MaxTimesteps = spiking.MaxTimesteps

// SweepOptions say which simulation lengths a Sweep reads and how it
// reports progress.
type SweepOptions struct {
	// Timesteps are the lengths to read, ascending; the engine's SNN must
	// be configured for at least the largest.
	Timesteps []int
	// OnBatch, if set, is called after each batch with the images done.
	OnBatch func(done, total int)
}

// Sweep runs the ANN once and the SNN once for max(Timesteps) steps over
// d, BatchNorm in eval mode, and reads the SNN's accuracy, firing rates
// and synaptic operations after each of the Timesteps. Each point equals
// an evaluation at that T alone.
func (e *Engine) Sweep(ctx context.Context, d *Dataset, opt SweepOptions) (Sweep, error) {
	ts := opt.Timesteps
	cfg := e.SNN.Config
	sw := Sweep{N: d.N, Threshold: cfg.Threshold, Reset: cfg.Reset, IFLayers: e.sim.IFNames()}
	if len(ts) == 0 {
		return sw, fmt.Errorf("no simulation lengths to evaluate")
	}
	if top := ts[len(ts)-1]; top > cfg.Timesteps {
		return sw, fmt.Errorf("the SNN is set up for T = %d, the sweep asks for %d", cfg.Timesteps, top)
	}
	if err := e.sim.CountSynOps(); err != nil {
		return sw, err
	}
	sw.ANNMACs, sw.StaticMACs = macs(TrainedLayers(e.ANN), TrainedInputs(e.ANN), e.ANN.InputShape),
		macs(e.SNN.Static, e.SNN.StaticInputs, e.ANN.InputShape)
	type totals struct {
		strict, ties, tied int
		rates, layerOps    []float64
	}
	acc := make([]totals, len(ts))
	annOK := 0
	sz := d.C * d.H * d.W
	k := e.classes
	for lo := 0; lo < d.N; lo += e.capacity {
		if ctx.Err() != nil {
			return sw, ErrInterrupted
		}
		hi := min(lo+e.capacity, d.N)
		n := hi - lo
		xv, err := e.stage(&nn.Tensor{Shape: []int{n, d.C, d.H, d.W}, Data: d.Images[lo*sz : hi*sz]})
		if err != nil {
			return sw, err
		}
		labels := d.Labels[lo:hi]
		y := e.ann.Forward(xv, nn.Mode{})
		if err := e.Backend.Download(e.hostY[:n*k], y.Buf); err != nil {
			return sw, err
		}
		for i := 0; i < n; i++ {
			if argmax(e.hostY[i*k:(i+1)*k]) == int(labels[i]) {
				annOK++
			}
		}
		point := 0
		err = e.sim.RunAt(xv, false, true, ts, func(t int, cv nn.Value) error {
			a := &acc[point]
			point++
			hc := e.hostC[:n*k]
			if err := e.Backend.Download(hc, cv.Buf); err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				c, label := hc[i*k:(i+1)*k], int(labels[i])
				m := argmax(c)
				if m == label {
					a.strict++
				}
				if label < k && c[label] == c[m] {
					a.ties++
				}
				if shared(c, c[m]) > 1 {
					a.tied++
				}
			}
			rates, err := e.sim.RatesAt(n, t)
			if err != nil {
				return err
			}
			a.rates = addScaled(a.rates, rates, float64(n))
			names, ops := e.sim.SynOps()
			sw.SynOpLayers = names
			a.layerOps = addScaled(a.layerOps, ops, 1)
			return nil
		})
		if err != nil {
			return sw, err
		}
		if err := e.Backend.Err(); err != nil {
			return sw, err
		}
		if opt.OnBatch != nil {
			opt.OnBatch(hi, d.N)
		}
	}
	n := float64(max(d.N, 1))
	sw.ANN = float64(annOK) / n
	for i, t := range ts {
		a := acc[i]
		p := SweepPoint{T: t, SNNStrict: float64(a.strict) / n, SNNTies: float64(a.ties) / n, TieShare: float64(a.tied) / n,
			Rates: scaled(a.rates, 1/n), LayerSynOps: scaled(a.layerOps, 1/n)}
		for _, v := range p.LayerSynOps {
			p.SynOps += v
		}
		sw.Points = append(sw.Points, p)
	}
	return sw, nil
}

// SweepModel evaluates ann and snn at every T in ts on be, batch images at
// a time; snn's T is raised to the largest of ts.
func SweepModel(ctx context.Context, be compute.Backend, ann *nn.Network, snn *spiking.Network, d *Dataset, batch int, opt SweepOptions) (Sweep, error) {
	if len(opt.Timesteps) > 0 {
		snn.Config.Timesteps = opt.Timesteps[len(opt.Timesteps)-1]
	}
	e, err := NewEngine(be, ann, snn, min(batch, max(d.N, 1)))
	if err != nil {
		return Sweep{}, err
	}
	defer e.Free()
	return e.Sweep(ctx, d, opt)
}

// macs adds up the multiply-accumulates of layers (a chain, or a graph
// with inputs) on one sample.
func macs(layers []nn.Layer, inputs [][]int, in []int) int64 {
	shapes, err := nn.GraphShapes(layers, inputs, in)
	if err != nil {
		return 0
	}
	var total int64
	for i, l := range layers {
		if src := nn.NodeInputs(inputs, i)[0]; src < 0 {
			total += nn.MACs(l, in)
		} else {
			total += nn.MACs(l, shapes[src])
		}
	}
	return total
}

// shared counts the classes whose count equals top.
func shared(c []float32, top float32) int {
	k := 0
	for _, v := range c {
		if v == top {
			k++
		}
	}
	return k
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

// Reach is the first T at which the SNN's strict accuracy reaches frac of
// the ANN's, if any point does.
func (s Sweep) Reach(frac float64) (int, bool) {
	for _, p := range s.Points {
		if p.SNNStrict >= frac*s.ANN {
			return p.T, true
		}
	}
	return 0, false
}
