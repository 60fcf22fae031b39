// Package spiking builds the integrate-and-fire network that shares an nn
// network's parameters, and simulates it in discrete time (docs/design.md §1).
//
// Everything before the ANN's first ReLU is the static input layer: it runs
// once on the analog input, and its output is a constant input current at
// every time step. Every ReLU and clipped ReLU (ReLU6; its IF layer's
// threshold tied to its ceiling or not, as Config.Clip says) becomes an IF
// layer, one more IF layer follows the last layer, and the output is that
// layer's spike count summed over the T steps.
package spiking

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
)

// errNoSNN is the error of a nil Network's methods.
var errNoSNN = errors.New("no SNN (nil)")

// Node is one node of the SNN's graph: a layer, or an IF layer (whose
// Layer is the ReLU it replaces, a ReLU named "output" for the IF layer
// after the last layer, whose name and export forms it takes).
type Node = lower.Node

// Network is the SNN twin of an ANN: the ANN's graph (without a final
// softmax) in which every ReLU is an IF layer and one more IF layer reads
// the last layer. Node i is the ANN's layer i; the last node is the output
// IF layer. Nodes[:Static] are the static input layer: the layers before
// the first ReLU, run once per input; the others run at every time step.
type Network struct {
	// ANN is the network whose parameters this one shares.
	ANN *nn.Network
	// Nodes are the SNN's layers in a topological order.
	Nodes []Node
	// Static is the number of nodes of the static input layer.
	Static int
	// Dropped names the ANN's output activation left out of the SNN, if any.
	Dropped string
	// Config is the neuron setting and T.
	Config Config
}

// New builds the SNN of ann. Its layers are the ANN's own layers (same
// parameter memory), except stateful layers (nn.Stateful.WithOwnState):
// BatchNorm2d layers share γ and β but get their own copy of the running
// statistics; Affine layers share their constants but bind them apart. An IF layer may read the
// static input layer (a constant current); every other layer running at
// each step must read layers that do too, so that the static part's
// outputs need not be repeated at every step.
func New(ann *nn.Network, cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := ann.Shapes(); err != nil {
		return nil, err
	}
	body, head := ann.Body()
	if len(body.Layers) == 0 {
		return nil, fmt.Errorf("the network has no layers before its output to make an SNN of")
	}
	s := &Network{ANN: ann, Config: cfg, Dropped: head}
	layers := body.Layers
	s.Static = len(layers)
	for i, l := range layers {
		if r := nn.RoleOf(l); r.Head {
			return nil, fmt.Errorf("layer %d (%s %q): a %s may only end the network", i, nn.KindOf(l), nn.NameOf(l), nn.KindOf(l))
		} else if r.Neuron && s.Static == len(layers) {
			s.Static = i
		}
	}
	for i, l := range layers {
		nd := Node{Layer: l, IF: nn.RoleOf(l).Neuron, Inputs: body.InputsOf(i)}
		if st, ok := l.(nn.Stateful); ok {
			nd.Layer = st.WithOwnState()
		}
		if nd.IF {
			nd.Threshold = cfg.NeuronThreshold(l)
			if f := float64(nd.Threshold); !(nd.Threshold > cfg.Reset) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("layer %d (%s %q): its IF threshold v_reset + %s = %g is not a finite float32 above v_reset (%g)",
					i, nn.KindOf(l), nn.NameOf(l), l.Info().Summary, nd.Threshold, cfg.Reset)
			}
		}
		if i > s.Static && !nd.IF {
			for _, j := range nd.Inputs {
				if j < s.Static {
					return nil, fmt.Errorf("layer %d (%s %q) reads the static input layer (before the first ReLU) and runs at every step; proxykit's SNN lets only IF layers read the static part", i, nn.KindOf(l), nn.NameOf(l))
				}
			}
		}
		s.Nodes = append(s.Nodes, nd)
	}
	s.Nodes = append(s.Nodes, Node{Layer: &nn.ReLU{LayerName: "output"}, IF: true, Inputs: []int{len(layers) - 1},
		Threshold: cfg.Threshold})
	l := s.Lowering()
	for _, nd := range s.Nodes { // a start that rounds up to v_th would fire before any input
		if !nd.IF {
			continue
		}
		if v := l.StartPotential(nd); !(v < nd.Threshold) {
			return nil, fmt.Errorf("IF layer %q: initial charge %g starts it at %g, which float32 rounds to its v_th %g or above: "+
				"it would fire at the first step without input; give a smaller charge, or v_th and v_reset nearer 0",
				nd.Name(), cfg.InitialCharge, v, nd.Threshold)
		}
	}
	return s, nil
}

// Graph is the SNN as an nn graph: each node's layer
// (an IF node's ReLU) and inputs.
func (s *Network) Graph() ([]nn.Layer, [][]int) {
	layers := make([]nn.Layer, len(s.Nodes))
	inputs := make([][]int, len(s.Nodes))
	for i, nd := range s.Nodes {
		layers[i], inputs[i] = nd.Layer, nd.Inputs
	}
	return layers, inputs
}

// Stateful returns the SNN's own stateful layers (its BatchNorm layers,
// with running statistics of their own), in order.
func (s *Network) Stateful() []nn.Stateful {
	layers, _ := s.Graph()
	return nn.StatefulLayers(layers)
}

// Lowering is the SNN as package lower reads it (without an input shape
// for a Network without its ANN, which lower refuses).
func (s *Network) Lowering() lower.SNN {
	l := lower.SNN{Nodes: s.Nodes, Static: s.Static, Timesteps: s.Config.Timesteps, Reset: s.Config.Reset, InitialCharge: s.Config.InitialCharge}
	if s.ANN != nil {
		l.InputShape = s.ANN.InputShape
	}
	return l
}

// Bind puts the SNN on be: the ANN's parameters (shared) and the SNN's own
// state (BatchNorm statistics).
func (s *Network) Bind(be compute.Backend) error {
	if s == nil {
		return errNoSNN
	}
	if err := s.ANN.Bind(be); err != nil {
		return err
	}
	for _, st := range s.Stateful() {
		if err := st.BindState(be); err != nil {
			return err
		}
	}
	return nil
}

// Sync copies the SNN's own state from its backend into host memory (the
// shared parameters are synced by the ANN's Sync).
func (s *Network) Sync() error {
	if s == nil {
		return errNoSNN
	}
	for _, st := range s.Stateful() {
		if err := st.SyncState(); err != nil {
			return fmt.Errorf("SNN: %w", err)
		}
	}
	return nil
}

// Release brings the SNN (the ANN's parameters and the SNN's own state)
// back into host memory and frees their backend buffers.
func (s *Network) Release() error {
	if s == nil {
		return errNoSNN
	}
	if err := s.ANN.Release(); err != nil {
		return err
	}
	for _, st := range s.Stateful() {
		if err := st.ReleaseState(); err != nil {
			return fmt.Errorf("SNN: %w", err)
		}
	}
	return nil
}

// Upload tells the bound backend that the SNN's own state changed in host
// memory.
func (s *Network) Upload() {
	for _, st := range s.Stateful() {
		st.UploadState()
	}
}

// Result is the outcome of a simulation.
type Result struct {
	// Counts are the output layer's spikes summed over T: [B, K].
	Counts *nn.Tensor
	// Potentials are the output layer's membrane potentials after the
	// last step: [B, K] (Simulator.OutputPotentials).
	Potentials *nn.Tensor
	// Rates is each IF layer's mean firing rate (spikes per neuron per step).
	Rates []float64
}

// Run simulates the SNN for Config.Timesteps steps on a host batch of
// analog inputs, BatchNorm layers using their running statistics (eval
// mode), on a CPU backend.
func (s *Network) Run(x *nn.Tensor) (*Result, error) {
	if s == nil {
		return nil, errNoSNN
	}
	return s.RunOn(context.Background(), compute.NewCPU(), x, false, 0)
}

// Simulate is Run with a choice of BatchNorm mode (see Simulator.Run).
func (s *Network) Simulate(x *nn.Tensor, batchStats bool) (*Result, error) {
	if s == nil {
		return nil, errNoSNN
	}
	return s.RunOn(context.Background(), compute.NewCPU(), x, batchStats, 0)
}

// RunOn simulates the SNN on be for a host batch of any size, batch inputs
// at a time (0: all at once; with batchStats each chunk is a batch), and
// returns the counts, the output layer's final membrane potentials (which
// break ties between counts: results.MembraneMax) and every IF layer's
// firing rate. Once ctx is
// cancelled it stops within a chunk of steps and returns ctx's error.
func (s *Network) RunOn(ctx context.Context, be compute.Backend, x *nn.Tensor, batchStats bool, batch int) (*Result, error) {
	if s == nil {
		return nil, errNoSNN
	}
	if ctx == nil {
		return nil, fmt.Errorf("no context (nil)")
	}
	if x == nil {
		return nil, fmt.Errorf("no input batch (nil)")
	}
	if err := s.ANN.CheckInput(x.Shape); err != nil {
		return nil, err
	}
	outShape, err := s.ANN.OutputShape()
	if err != nil {
		return nil, err
	}
	n := x.Shape[0]
	counts, err := nn.NewTensor(append([]int{n}, outShape...)...)
	if err != nil {
		return nil, err
	}
	potentials, _ := nn.NewTensor(counts.Shape...) // the same shape, accepted
	res := &Result{Counts: counts, Potentials: potentials}
	if n == 0 {
		return res, nil
	}
	if err := s.Bind(be); err != nil {
		return nil, err
	}
	s.ANN.Upload()
	s.Upload()
	sim, err := NewSimulator(be, s, nn.Chunk(n, batch))
	if err != nil {
		return nil, err
	}
	defer sim.Free()
	k := nn.Numel(outShape)
	err = nn.Chunks(be, x, sim.capacity, func(lo int, v nn.Value) error {
		counts, err := sim.Run(ctx, v, batchStats, true)
		if err != nil {
			return err
		}
		if err := be.Download(res.Counts.Data[lo*k:lo*k+counts.Buf.Len()], counts.Buf); err != nil {
			return err
		}
		if err := be.Download(res.Potentials.Data[lo*k:lo*k+counts.Buf.Len()], sim.OutputPotentials(v.N()).Buf); err != nil {
			return err
		}
		rates, err := sim.Rates(v.N())
		if err != nil {
			return err
		}
		if lo == 0 && v.N() == n {
			res.Rates = rates // one chunk: the rates as measured
			return nil
		}
		if res.Rates == nil {
			res.Rates = make([]float64, len(rates))
		}
		for i, r := range rates {
			res.Rates[i] += r * float64(v.N()) / float64(n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, be.Err()
}

// Role says what each ANN layer becomes in the SNN, for tables.
func Role(ann *nn.Network) []string {
	if ann == nil {
		return nil
	}
	roles := make([]string, len(ann.Layers))
	static := true
	for i, l := range ann.Layers {
		r := nn.RoleOf(l)
		switch {
		case r.Neuron:
			static = false
			roles[i] = "IF"
		case r.Head:
			roles[i] = "(left out: counts are the output)"
		case static:
			roles[i] = nn.KindOf(l) + " (static input, once)"
		default:
			roles[i] = nn.KindOf(l) + " (each step)"
		}
		// before the first IF layer there are no spikes to note
		if r.Note != "" && !r.Neuron && !r.Head && (!static || !r.KeepsSpikes) {
			roles[i] += ", " + r.Note
		}
	}
	return roles
}
