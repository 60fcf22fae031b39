package lower

import (
	"fmt"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// SNN is a spiking network as the lowering reads it (package spiking
// builds it): the ANN's graph with IF nodes, of which Nodes[:Static] are
// the static input layer, run once per input; the others run at every
// time step. The last node is the output IF layer.
type SNN struct {
	Nodes      []Node
	Static     int
	InputShape []int
	// Timesteps is T; Reset is the IF neurons' v_reset (each IF node
	// holds its v_th); InitialCharge is how far from v_reset towards its
	// v_th each IF neuron starts, as a fraction (StartPotential).
	Timesteps     int
	Reset         float32
	InitialCharge float32
}

// StartPotential is the membrane potential IF node nd starts a simulation
// at: v_reset + InitialCharge·(v_th − v_reset) with nd's v_th, rounded to
// float32 after each operation; v_reset itself when InitialCharge is 0
// (so a v_reset of −0 starts at −0).
func (s SNN) StartPotential(nd Node) float32 {
	if s.InitialCharge == 0 {
		return s.Reset
	}
	return s.Reset + float32(s.InitialCharge*float32(nd.Threshold-s.Reset))
}

// SNNOptions say what an SNN program counts.
type SNNOptions struct {
	Options
	// Steps is the number of time steps one chunk runs (the backend's
	// StepsAtOnce, at most T).
	Steps int
	// Rates counts every IF layer's spikes (else the output layer's only).
	Rates bool
	// SynOps counts synaptic operations (program.Machine.SynOps).
	SynOps bool
}

// Simulation lowers an SNN's static input layer and a chunk of its time
// steps, for batches of up to opt.Capacity inputs.
func Simulation(s SNN, opt SNNOptions) (*Lowered, error) {
	if err := checkSNN(s, opt.Options, opt.Steps); err != nil {
		return nil, err
	}
	b := program.NewBuilder(program.Dims{N: opt.Capacity, Steps: opt.Steps})
	lw := newLowered(b)
	lw.Input = b.Input("input", s.InputShape, program.Batch)
	if err := lw.simulation(b, s, lw.Input, opt); err != nil {
		return nil, err
	}
	return lw, lw.rewrite(opt.Options)
}

func checkSNN(s SNN, opt Options, steps int) error {
	switch {
	case opt.Capacity < 1:
		return fmt.Errorf("batch capacity must be at least 1, got %d", opt.Capacity)
	case s.Timesteps < 1 || steps < 1 || steps > s.Timesteps:
		return fmt.Errorf("%d steps at once for T = %d", steps, s.Timesteps)
	case len(s.Nodes) == 0 || !s.Nodes[len(s.Nodes)-1].IF:
		return fmt.Errorf("the SNN must end in its output IF layer")
	case s.Static < 0 || s.Static >= len(s.Nodes):
		return fmt.Errorf("static input layer of %d nodes in an SNN of %d", s.Static, len(s.Nodes))
	}
	return nil
}

// simulation emits the SNN's two passes reading the images x: the static
// input layer with the neurons' reset, and a chunk of time steps.
func (lw *Lowered) simulation(b *program.Builder, s SNN, x program.Ref, opt SNNOptions) error {
	nodes, static, _, err := graphRules(lw, opt.Options, s.Nodes, s.Static)
	if err != nil {
		return err
	}
	s.Nodes, s.Static = nodes, static
	g, err := newGraph("snn.", s.Nodes, s.InputShape)
	if err != nil {
		return fmt.Errorf("SNN: %w", err)
	}
	S, last := s.Static, len(s.Nodes)-1
	sl := &SNNSlots{Counts: program.None, Potentials: program.None, Timesteps: s.Timesteps, Steps: opt.Steps}
	v := make([]program.Ref, len(s.Nodes))
	counts := make([]program.Ref, len(s.Nodes))
	var fanOuts []program.Ref

	lw.Static = len(b.Program().Passes)
	b.Begin(program.SNNStatic, opt.BatchStats)
	if err := g.forward(b, x, program.Batch, opt.BatchStats, &S); err != nil {
		b.End()
		return err
	}
	for i := S; i < len(s.Nodes); i++ {
		nd := s.Nodes[i]
		counts[i] = program.None
		if nd.IF {
			in := g.shape(nd.Inputs[0])
			v[i] = b.Value(g.prefix+nd.Name()+".v", in, program.Batch)
			b.Emit(&program.Fill{Dst: v[i], Value: s.StartPotential(nd)})
			if opt.Rates || i == last {
				counts[i] = b.Value(g.prefix+nd.Name()+".counts", in, program.Batch)
				b.Emit(&program.Fill{Dst: counts[i]})
				b.Keep(counts[i])
				sl.IFCounts, sl.IFNames = append(sl.IFCounts, counts[i]), append(sl.IFNames, nd.Name())
			} else {
				sl.IFCounts, sl.IFNames = append(sl.IFCounts, program.None), append(sl.IFNames, nd.Name())
			}
			continue
		}
		if !opt.SynOps {
			continue
		}
		in := g.shape(nd.Inputs[0])
		if fan, ok := nn.FanOut(nd.Layer, in); ok {
			r := b.Value(g.prefix+nd.Name()+".fan_out", []int{len(fan)}, program.Once)
			b.Emit(&program.Const{Dst: r, Data: fan})
			for len(fanOuts) <= i {
				fanOuts = append(fanOuts, program.None)
			}
			fanOuts[i] = r
		}
	}
	b.End()

	lw.Chunk = len(b.Program().Passes)
	b.Begin(program.SNNChunk, opt.BatchStats)
	binary := make([]bool, len(s.Nodes))
	value := func(j int) program.Ref {
		if j < 0 {
			return x
		}
		return g.values[j]
	}
	for i := S; i < len(s.Nodes); i++ {
		nd := s.Nodes[i]
		if nd.IF {
			src := nd.Inputs[0]
			in := g.shape(src)
			g.values[i] = b.Value(g.prefix+nd.Name(), in, program.Steps)
			b.Emit(&program.IF{N: nn.Numel(in), In: value(src), Constant: src < S, Scale: program.None, Shift: program.None,
				V: v[i], Spikes: g.values[i], Counts: counts[i], Threshold: nd.Threshold, Reset: s.Reset})
			binary[i] = true
			continue
		}
		st := g.stepSite(b, i, S, opt.BatchStats, binary, value)
		if i < len(fanOuts) && fanOuts[i] != program.None {
			k := nn.Numel(st.In[0])
			tmp := b.Value(g.prefix+nd.Name()+".synops", []int{1}, program.Steps)
			b.Emit(&program.SynOps{K: k, Rate: program.Steps, X: st.X[0], FanOut: fanOuts[i], Tmp: tmp, Spikes: st.Spikes, Node: i})
			sl.SynNodes, sl.SynNames = append(sl.SynNodes, i), append(sl.SynNames, nd.Name())
		}
		g.emit(b, i, st)
	}
	b.End()
	sl.Counts, sl.Potentials = counts[last], v[last]
	b.Keep(sl.Potentials)
	lw.SNN = sl
	return nil
}

// stepSite makes the site of node i (not an IF node) in the SNN's time
// steps, whose first S nodes are the static input layer: its rows are
// every step's, and its input is spikes where each of its inputs is an IF
// layer's spikes or keeps them (binary, which it sets for node i).
func (g *graph) stepSite(b *program.Builder, i, S int, batchStats bool, binary []bool, value func(j int) program.Ref) *nn.Site {
	st := g.site(b, i, program.Steps, batchStats, value)
	spikes := true
	for _, j := range g.nodes[i].Inputs {
		spikes = spikes && j >= S && binary[j]
	}
	st.Spikes = spikes
	binary[i] = spikes && nn.RoleOf(g.nodes[i].Layer).KeepsSpikes
	return st
}

// Step lowers one proxy-learning step of an ANN's body and its SNN
// (docs/design.md §1): the ANN's forward pass keeping its activations,
// the SNN's passes on the same images, the proxy loss's gradient from the
// counts and the labels, and the ANN's backward pass from it (the
// parameters' gradients zeroed first). The caller binds Input and Labels
// (class indices as floats) and reads Output and SNN.Counts.
func Step(body *nn.Network, s SNN, opt SNNOptions) (*Lowered, error) {
	return proxy(body, s, opt, true)
}

// Predict lowers the inference of both networks on the same images (no
// backward pass): the ANN's forward pass and the SNN's passes.
func Predict(body *nn.Network, s SNN, opt SNNOptions) (*Lowered, error) {
	return proxy(body, s, opt, false)
}

func proxy(body *nn.Network, s SNN, opt SNNOptions, step bool) (*Lowered, error) {
	if body == nil {
		return nil, fmt.Errorf("no network to lower (nil)")
	}
	if err := checkSNN(s, opt.Options, opt.Steps); err != nil {
		return nil, err
	}
	b := program.NewBuilder(program.Dims{N: opt.Capacity, Steps: opt.Steps})
	lw := newLowered(b)
	lw.Input = b.Input("input", body.InputShape, program.Batch)
	g, err := newGraph("", NodesOf(body), body.InputShape)
	if err != nil {
		return nil, err
	}
	if len(g.nodes) == 0 || len(g.shapes[len(g.shapes)-1]) != 1 {
		return nil, fmt.Errorf("the network's output must be [K] classes")
	}
	out := g.shapes[len(g.shapes)-1]
	if err := lw.annForward(b, g, opt.BatchStats); err != nil {
		return nil, err
	}
	if err := lw.simulation(b, s, lw.Input, opt); err != nil {
		return nil, err
	}
	if step {
		lw.Labels = b.Input("labels", []int{1}, program.Batch)
		dy := b.Value("loss.grad", out, program.Batch)
		lw.Loss = len(b.Program().Passes)
		b.Begin(program.Loss, opt.BatchStats)
		b.Emit(&program.ProxyLoss{K: out[0], Counts: lw.SNN.Counts, Labels: lw.Labels, DY: dy})
		b.End()
		lw.Backward = len(b.Program().Passes)
		b.Begin(program.ANNBackward, opt.BatchStats)
		lw.InputGrads, err = g.backward(b, dy, opt.BatchStats, body.Params(), nil)
		b.End()
		if err != nil {
			return nil, err
		}
	}
	return lw, lw.rewrite(opt.Options)
}
