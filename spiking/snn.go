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
	"github.com/proxykit/proxykit/setting"
)

// Config holds the IF neurons' settings and the simulation length.
type Config struct {
	Timesteps int     `json:"timesteps"` // T, the number of time steps
	Threshold float32 `json:"threshold"` // v_th: a neuron spikes when v >= v_th
	Reset     float32 `json:"reset"`     // v_reset: hard-reset value of v
	// InitialCharge is where every IF neuron starts, as the fraction of
	// the way from v_reset to its v_th: v(0) = v_reset + InitialCharge·(v_th −
	// v_reset), in [0, 1). 0, the paper's, starts at v_reset; 0.5 halfway,
	// as Bu et al. (ICLR 2022) start converted SNNs to halve the expected
	// error of a count at short T (docs/design.md §1).
	InitialCharge float32 `json:"initial_charge,omitempty"`
	// Clip is the IF twin of a clipped ReLU (ReLU6, Clip(0, c)); empty
	// means DefaultClip (docs/design.md §1, "ReLU6").
	Clip ClipTwin `json:"clip,omitempty"`
}

// ClipTwin says what a clipped ReLU min(max(x, 0), c) becomes in the SNN.
type ClipTwin string

// The two IF twins of a clipped ReLU. An IF neuron's rate saturates at
// one spike per step; ClipSaturate maps the ceiling c to that saturation
// (the layer's v_th is v_reset + c, so that a constant current of c or
// more fires at every step), ClipAsReLU ignores the ceiling (an IF layer
// as for a ReLU, v_th as set).
const (
	ClipSaturate ClipTwin = "saturate"
	ClipAsReLU   ClipTwin = "relu"
)

// DefaultClip is the twin a Config without one uses: the one of the two
// that converted a ReLU6 network better against T, on MNIST and
// Fashion-MNIST (docs/results.md, "ReLU6").
const DefaultClip = ClipAsReLU

// ClipTwins lists the twins, the default first.
func ClipTwins() []ClipTwin { return []ClipTwin{DefaultClip, other(DefaultClip)} }

func other(t ClipTwin) ClipTwin {
	if t == ClipSaturate {
		return ClipAsReLU
	}
	return ClipSaturate
}

// ClipTwin is the twin the setting uses (DefaultClip where unset).
func (c Config) ClipTwin() ClipTwin {
	if c.Clip == "" {
		return DefaultClip
	}
	return c.Clip
}

// NeuronThreshold is the v_th of the IF layer that replaces neuron layer
// l (a ReLU, a Clip, or the output layer's stand-in): v_reset plus l's
// ceiling for a clipped ReLU with ClipSaturate, else Threshold.
func (c Config) NeuronThreshold(l nn.Layer) float32 {
	if s, ok := l.(nn.Saturating); ok && c.ClipTwin() == ClipSaturate {
		return c.Reset + s.Saturation()
	}
	return c.Threshold
}

// DefaultConfig is the reference's setting: T = 15, v_th = 2, v_reset = 0.
func DefaultConfig() Config { return Config{Timesteps: 15, Threshold: 2, Reset: 0} }

// MaxTimesteps bounds a simulation's length: 2^20 steps. A million steps
// of even the smallest network take hours; a larger T is a typo or a
// hostile file.
const MaxTimesteps = 1 << 20

// Validate checks the settings.
func (c Config) Validate() error {
	if c.Timesteps < 1 || c.Timesteps > MaxTimesteps {
		return fmt.Errorf("timesteps must lie between 1 and %d, got %d", MaxTimesteps, c.Timesteps)
	}
	if math.IsNaN(float64(c.Threshold)) || math.IsInf(float64(c.Threshold), 0) || math.IsNaN(float64(c.Reset)) || math.IsInf(float64(c.Reset), 0) {
		return fmt.Errorf("threshold (%g) and reset (%g) must be finite", c.Threshold, c.Reset)
	}
	if !(c.Threshold > c.Reset) {
		return fmt.Errorf("threshold (%g) must be above the reset potential (%g)", c.Threshold, c.Reset)
	}
	if d := c.Threshold - c.Reset; math.IsInf(float64(d), 0) {
		return fmt.Errorf("threshold (%g) and reset (%g) are too far apart: v_th − v_reset is not a finite float32", c.Threshold, c.Reset)
	}
	if c.Clip != "" && c.Clip != ClipSaturate && c.Clip != ClipAsReLU {
		return fmt.Errorf("the clip twin must be %q or %q, got %q", ClipSaturate, ClipAsReLU, c.Clip)
	}
	if !(c.InitialCharge >= 0 && c.InitialCharge < 1) {
		return fmt.Errorf("the initial charge must be a fraction of v_th − v_reset in [0, 1), got %g (0: start at v_reset; 1 or more fires before any input)", c.InitialCharge)
	}
	return nil
}

// InitialCharge names Config.InitialCharge in errors (setting.Error).
const InitialCharge setting.Name = "initial-charge"

// CheckGiven checks the parts of c that were given — given says which, by
// setting name: "timesteps", "threshold", "reset", "clip-twin", InitialCharge — before
// the others are known (a model file may supply them; Validate checks the
// whole once it is made): a T out of range, a clip twin other than
// ClipAsReLU and ClipSaturate, an initial charge outside [0, 1), a v_th or v_reset that is not finite and,
// when both are given, a v_th not above v_reset. An error names a setting
// by that name (setting.Error).
func (c Config) CheckGiven(given func(setting.Name) bool) error {
	probe := DefaultConfig() // valid: each part given replaces its own
	if given("timesteps") {
		probe.Timesteps = c.Timesteps
	}
	if err := probe.Validate(); err != nil {
		return err
	}
	if given(InitialCharge) {
		if probe.InitialCharge = c.InitialCharge; probe.Validate() != nil {
			return setting.Errorf("%s %g: want a fraction of v_th − v_reset in [0, 1)", InitialCharge, c.InitialCharge)
		}
	}
	if given("clip-twin") {
		if probe.Clip = c.Clip; probe.Validate() != nil {
			return setting.Errorf("%s %q: want %s or %s", setting.Name("clip-twin"), c.Clip, ClipAsReLU, ClipSaturate)
		}
	}
	if given("threshold") && given("reset") {
		probe.Threshold, probe.Reset = c.Threshold, c.Reset
		return probe.Validate()
	}
	for _, v := range []struct {
		name  setting.Name
		value float32
	}{{"threshold", c.Threshold}, {"reset", c.Reset}} {
		if given(v.name) && (math.IsNaN(float64(v.value)) || math.IsInf(float64(v.value), 0)) {
			return setting.Errorf("%s %g: it must be finite", v.name, v.value)
		}
	}
	return nil
}

// Fill is c with each part that was not given — given says which, by
// setting name, as for CheckGiven — taken from own: a model file's
// setting (a checkpoint's, an SNN module's) under the parts a user gave.
func (c Config) Fill(own Config, given func(setting.Name) bool) Config {
	if !given("timesteps") {
		c.Timesteps = own.Timesteps
	}
	if !given("threshold") {
		c.Threshold = own.Threshold
	}
	if !given("reset") {
		c.Reset = own.Reset
	}
	if !given("clip-twin") {
		c.Clip = own.Clip
	}
	if !given(InitialCharge) {
		c.InitialCharge = own.InitialCharge
	}
	return c
}

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
