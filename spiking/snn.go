// Package spiking builds the integrate-and-fire network that shares an nn
// network's parameters, and simulates it in discrete time (DESIGN.md §1).
//
// Everything before the ANN's first ReLU is the static input layer: it runs
// once on the analog input, and its output is a constant input current at
// every time step. Every ReLU becomes an IF layer, one more IF layer
// follows the last layer, and the output is that layer's spike count summed
// over the T steps.
package spiking

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
)

// Config holds the IF neurons' settings and the simulation length.
type Config struct {
	Timesteps int     // T, the number of time steps
	Threshold float32 // v_th: a neuron spikes when v >= v_th
	Reset     float32 // v_reset: start value and hard-reset value of v
}

// DefaultConfig is the reference's setting: T = 15, v_th = 2, v_reset = 0.
func DefaultConfig() Config { return Config{Timesteps: 15, Threshold: 2, Reset: 0} }

// Validate checks the settings.
func (c Config) Validate() error {
	if c.Timesteps < 1 {
		return fmt.Errorf("timesteps must be at least 1, got %d", c.Timesteps)
	}
	if !(c.Threshold > c.Reset) {
		return fmt.Errorf("threshold (%g) must be above the reset potential (%g)", c.Threshold, c.Reset)
	}
	return nil
}

// IF marks an integrate-and-fire layer in the SNN's layer list. Its
// membrane potentials live in the simulation, not here.
type IF struct {
	// LayerName is the name of the ReLU it replaces, or "output" for the IF
	// layer after the last layer.
	LayerName string
}

// Network is the SNN twin of an ANN.
type Network struct {
	// ANN is the network whose parameters this one shares.
	ANN *nn.Network
	// Static are the layers before the first IF layer, run once per input.
	Static []nn.Layer
	// Dynamic are the layers run at every time step; *IF entries are IF layers.
	Dynamic []any
	// Dropped names the ANN's output activation left out of the SNN, if any.
	Dropped string
	// Config is the neuron setting and T.
	Config Config
}

// New builds the SNN of ann. Its layers are the ANN's own layers (same
// parameter memory), except BatchNorm2d layers, which share γ and β but get
// their own copy of the running statistics.
func New(ann *nn.Network, cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := ann.Shapes(); err != nil {
		return nil, err
	}
	s := &Network{ANN: ann, Config: cfg}
	layers := ann.Layers
	if n := len(layers); n > 0 {
		if sm, ok := layers[n-1].(*nn.Softmax); ok {
			s.Dropped = sm.Kind()
			layers = layers[:n-1]
		}
	}
	static := true
	for i, l := range layers {
		if _, ok := l.(*nn.Softmax); ok {
			return nil, fmt.Errorf("layer %d (%s %q): a softmax may only end the network", i, l.Kind(), l.Name())
		}
		if bn, ok := l.(*nn.BatchNorm2d); ok {
			l = bn.CloneWithOwnStats()
		}
		if r, ok := l.(*nn.ReLU); ok {
			static = false
			s.Dynamic = append(s.Dynamic, &IF{LayerName: r.Name()})
			continue
		}
		if static {
			s.Static = append(s.Static, l)
		} else {
			s.Dynamic = append(s.Dynamic, l)
		}
	}
	s.Dynamic = append(s.Dynamic, &IF{LayerName: "output"})
	return s, nil
}

// BatchNorms returns the SNN's own BatchNorm2d layers, in order.
func (s *Network) BatchNorms() []*nn.BatchNorm2d {
	var out []*nn.BatchNorm2d
	for _, l := range s.Static {
		if bn, ok := l.(*nn.BatchNorm2d); ok {
			out = append(out, bn)
		}
	}
	for _, l := range s.Dynamic {
		if bn, ok := l.(*nn.BatchNorm2d); ok {
			out = append(out, bn)
		}
	}
	return out
}

// Result is the outcome of a simulation.
type Result struct {
	// Counts are the output layer's spikes summed over T: [B, K].
	Counts *nn.Tensor
	// Rates is each IF layer's mean firing rate (spikes per neuron per step).
	Rates []float64
}

// Run simulates the SNN for Config.Timesteps steps on a batch of analog
// inputs, BatchNorm layers using their running statistics (eval mode).
func (s *Network) Run(x *nn.Tensor) (*Result, error) { return s.Simulate(x, false) }

// Simulate is Run with a choice of BatchNorm mode. With batchStats, each BN
// layer normalises with the statistics of what it sees and updates its own
// running statistics: once per batch in the static input layer, once per
// time step after it (PyTorch's train() in the reference's clock-driven loop).
func (s *Network) Simulate(x *nn.Tensor, batchStats bool) (*Result, error) {
	if err := s.ANN.CheckInput(x.Shape); err != nil {
		return nil, err
	}
	// Linear layers after the first IF layer see spikes: they run in the
	// sparse form, with weights transposed once for all T steps.
	transposed := map[*nn.Linear][]float32{}
	for _, l := range s.Dynamic {
		if li, ok := l.(*nn.Linear); ok {
			transposed[li] = li.TransposedWeight()
		}
	}
	forward := func(l nn.Layer, x *nn.Tensor) *nn.Tensor {
		switch l := l.(type) {
		case *nn.BatchNorm2d:
			if batchStats {
				return l.ForwardBatchStats(x)
			}
		case *nn.Linear:
			if wT, ok := transposed[l]; ok {
				return l.ForwardSparse(x, wT)
			}
		}
		return l.Forward(x)
	}
	cur := x
	for _, l := range s.Static {
		cur = forward(l, cur)
	}
	static := cur
	v := make([][]float32, len(s.Dynamic))
	spikes := make([]*nn.Tensor, len(s.Dynamic))
	fired := make([]float64, len(s.Dynamic))
	var counts *nn.Tensor
	for t := 0; t < s.Config.Timesteps; t++ {
		cur = static
		for i, l := range s.Dynamic {
			switch l := l.(type) {
			case *IF:
				if v[i] == nil {
					v[i] = make([]float32, len(cur.Data))
					for j := range v[i] {
						v[i][j] = s.Config.Reset
					}
					spikes[i] = nn.NewTensor(cur.Shape...)
				}
				fired[i] += float64(compute.IFStep(cur.Data, v[i], spikes[i].Data, s.Config.Threshold, s.Config.Reset))
				cur = spikes[i]
			case nn.Layer:
				cur = forward(l, cur)
			}
		}
		if counts == nil {
			counts = nn.NewTensor(cur.Shape...)
		}
		for j, sp := range cur.Data {
			counts.Data[j] += sp
		}
	}
	res := &Result{Counts: counts}
	for i, l := range s.Dynamic {
		if _, ok := l.(*IF); ok {
			res.Rates = append(res.Rates, fired[i]/float64(len(v[i])*s.Config.Timesteps))
		}
	}
	return res, nil
}

// Role says what each ANN layer becomes in the SNN, for tables.
func Role(ann *nn.Network) []string {
	roles := make([]string, len(ann.Layers))
	static := true
	for i, l := range ann.Layers {
		switch l.(type) {
		case *nn.ReLU:
			static = false
			roles[i] = "IF"
		case *nn.Softmax:
			roles[i] = "(left out: counts are the output)"
		default:
			if static {
				roles[i] = l.Kind() + " (static input, once)"
			} else {
				roles[i] = l.Kind() + " (each step)"
			}
			if _, ok := l.(*nn.BatchNorm2d); ok {
				roles[i] += ", own statistics"
			}
			if p, ok := l.(*nn.Pool2d); ok && p.Max && !static {
				roles[i] = "MaxPool2d on spikes (OR), each step"
			}
		}
	}
	return roles
}
