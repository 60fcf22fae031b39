// Package lower turns networks into programs (docs/design.md §4): the one
// lowering of proxykit. For a network, a pass — the ANN's forward pass in
// training or eval mode, its backward pass, the SNN's static input layer,
// a chunk of SNN time steps, the proxy loss — a batch capacity and the
// number of time steps a backend runs at once, it emits each node's ops
// through its layer kind (nn.Layer.Forward, Backward), the IF layers'
// ops, views as aliases, gradients summed where a value fans out; then it
// applies the rewrite rules (Rules) and leaves the memory plan to package
// program. The programs it makes are run by program.Machine: the ANN's
// executor (Executor), the SNN's simulator (package spiking) and the
// proxy-learning engine (package train) all run programs made here.
package lower

import (
	"fmt"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Node is one node of a network's graph as the lowering reads it: a layer
// reading earlier nodes (−1: the network's input), or in an SNN an IF
// layer (Layer is then the neuron layer it replaces, Threshold its v_th).
type Node struct {
	Layer     nn.Layer
	IF        bool
	Inputs    []int
	Threshold float32
}

// Kind is the node's kind: "IF", or its layer's.
func (n Node) Kind() string {
	if n.IF {
		return "IF"
	}
	return nn.KindOf(n.Layer)
}

// Name is the node's layer's name.
func (n Node) Name() string { return nn.NameOf(n.Layer) }

// NodesOf is a network's graph as nodes (explicit inputs; none for nil).
func NodesOf(net *nn.Network) []Node {
	if net == nil {
		return nil
	}
	nodes := make([]Node, len(net.Layers))
	for i, l := range net.Layers {
		nodes[i] = Node{Layer: l, Inputs: net.InputsOf(i)}
	}
	return nodes
}

// Lowered is a program with the slots its caller binds and reads and the
// indices of its passes (−1: absent).
type Lowered struct {
	*program.Program
	// Input is the images' slot, which the caller binds; Labels the
	// labels' (a proxy step).
	Input, Labels program.Ref
	// Output is the ANN's output; Values every ANN node's value (valid
	// after the forward pass only where kept: the output, Options.Keep,
	// and all of an ANN lowered with a backward pass; a proxy step keeps
	// only its output).
	Output program.Ref
	Values []program.Ref
	// DY is the gradient at the ANN's output, which the caller binds (an
	// ANN lowered with Options.Backward); InputGrads is, per ANN node, the
	// gradient at each of its inputs the backward pass writes
	// (program.None where none is computed).
	DY         program.Ref
	InputGrads [][]program.Ref
	// SNN is the SNN's slots, where the program simulates it.
	SNN *SNNSlots
	// Passes by kind: Forward and Backward are the ANN's, or in a
	// surrogate step (SurrogateStep) the SNN's forward and backward passes
	// through time.
	Forward, Backward, Static, Chunk, Loss int
}

// SNNSlots are the SNN's slots its caller reads.
type SNNSlots struct {
	// Counts and Potentials are the output IF layer's spike counts and
	// membrane potentials.
	Counts, Potentials program.Ref
	// IFCounts are every IF layer's counts, in node order, where the
	// program counts them (program.None elsewhere); IFNames name them.
	IFCounts []program.Ref
	IFNames  []string
	// SynNodes and SynNames are the nodes whose synaptic operations the
	// program counts (program.Machine.SynOps) and their names.
	SynNodes []int
	SynNames []string
	// Timesteps is T; Steps the steps one chunk runs.
	Timesteps, Steps int
}

// Options say what a lowering makes beside the forward pass.
type Options struct {
	// Capacity is the largest batch the program runs.
	Capacity int
	// BatchStats runs BatchNorm in training mode.
	BatchStats bool
	// Backward adds the ANN's backward pass from a gradient the caller
	// binds at the output (Lowered.InputGrads; the last node's gradient
	// is an Input slot named "dy").
	Backward bool
	// Keep lists ANN nodes whose values the caller reads after the
	// forward pass (the output always).
	Keep []int
	// Rules are the rewrite rules to apply (nil: Rules()).
	Rules []Rule
	// NoRewrites applies none (the plain program, for tests).
	NoRewrites bool
	// Unshared gives every value a buffer of its own (program.Program.Unshared).
	Unshared bool
	// ChannelsLast lays the values around convolutions out channels-last
	// (NHWC), with their convolutions' weights, after the rules
	// (channelsLast; a backend asks for it: LayoutPreferrer).
	ChannelsLast bool
	// HalfSpikes stores the spikes and currents around the SNN's
	// convolutions and linear layers in 16 bits (halfSpikes, after the rules and the
	// channels-last rewrite; a backend asks for it: HalfPreferrer). It
	// changes what the SNN computes: the convolutions' weights and
	// outputs are rounded to binary16.
	HalfSpikes bool
}

func (o Options) rules() []Rule {
	switch {
	case o.NoRewrites:
		return nil
	case o.Rules != nil:
		return o.Rules
	}
	return Rules()
}

// ANN lowers a network's forward pass (and backward pass) for batches of
// up to opt.Capacity samples.
func ANN(net *nn.Network, opt Options) (*Lowered, error) {
	if net == nil {
		return nil, fmt.Errorf("no network to lower (nil)")
	}
	if opt.Capacity < 1 {
		return nil, fmt.Errorf("batch capacity must be at least 1, got %d", opt.Capacity)
	}
	b := program.NewBuilder(program.Dims{N: opt.Capacity, Steps: 1})
	lw := newLowered(b)
	lw.Input = b.Input("input", net.InputShape, program.Batch)
	if len(net.Layers) == 0 {
		return nil, fmt.Errorf("the network has no layers")
	}
	for _, j := range opt.Keep {
		if j < 0 || j >= len(net.Layers) {
			return nil, fmt.Errorf("node %d to keep is not a node of the network", j)
		}
	}
	nodes, _, at, err := graphRules(lw, opt, NodesOf(net), 0)
	if err != nil {
		return nil, err
	}
	if opt.Backward && len(nodes) != len(net.Layers) {
		return nil, fmt.Errorf("a network rewritten before lowering has parameters of its own: no backward pass")
	}
	g, err := newGraph("", nodes, net.InputShape)
	if err != nil {
		return nil, err
	}
	if err := lw.annForward(b, g, opt.BatchStats); err != nil {
		return nil, err
	}
	lw.Values = make([]program.Ref, len(at))
	for i, a := range at {
		lw.Values[i] = program.None
		if a >= 0 {
			lw.Values[i] = g.values[a]
		}
	}
	for _, j := range opt.Keep {
		if lw.Values[j] == program.None {
			return nil, fmt.Errorf("node %d to keep was folded away", j)
		}
		b.Keep(lw.Values[j])
	}
	if opt.Backward {
		lw.DY = b.Input("dy", g.shapes[len(g.shapes)-1], program.Batch)
		lw.Backward = len(b.Program().Passes)
		b.Begin(program.ANNBackward, opt.BatchStats)
		lw.InputGrads, err = g.backward(b, lw.DY, opt.BatchStats, net.Params(), nil)
		b.End()
		if err != nil {
			return nil, err
		}
	}
	return lw, lw.rewrite(opt)
}

func newLowered(b *program.Builder) *Lowered {
	return &Lowered{Program: b.Program(), Input: program.None, Labels: program.None, Output: program.None, DY: program.None,
		Forward: -1, Backward: -1, Static: -1, Chunk: -1, Loss: -1}
}

// graph is a network's nodes being lowered: shapes, the values' slots,
// the workspaces each node's forward and backward passes share.
type graph struct {
	prefix  string // of slot names: "", or "snn." for the SNN's
	nodes   []Node
	inShape []int
	shapes  [][]int
	readers [][]int
	values  []program.Ref
	temps   []map[string]program.Ref
	sites   []*nn.Site // each node's forward site
}

func newGraph(prefix string, nodes []Node, inShape []int) (*graph, error) {
	layers := make([]nn.Layer, len(nodes))
	inputs := make([][]int, len(nodes))
	for i, nd := range nodes {
		layers[i], inputs[i] = nd.Layer, nd.Inputs
	}
	shapes, err := nn.NodeShapes(layers, inputs, inShape)
	if err != nil {
		return nil, err
	}
	g := &graph{prefix: prefix, nodes: nodes, inShape: inShape, shapes: shapes, readers: nn.Readers(inputs, len(nodes)),
		values: make([]program.Ref, len(nodes)), temps: make([]map[string]program.Ref, len(nodes)), sites: make([]*nn.Site, len(nodes))}
	for i := range g.temps {
		g.temps[i] = map[string]program.Ref{}
	}
	return g, nil
}

// shape is node j's per-sample shape (−1: the input).
func (g *graph) shape(j int) []int {
	if j < 0 {
		return g.inShape
	}
	return g.shapes[j]
}

// site makes node i's site reading values by value.
func (g *graph) site(b *program.Builder, i int, rate program.Rate, batchStats bool, value func(j int) program.Ref) *nn.Site {
	nd := g.nodes[i]
	s := nn.NewSite(b, i, g.prefix+nd.Name(), g.temps[i])
	s.Rate, s.BatchStats, s.Out = rate, batchStats, g.shapes[i]
	for _, j := range nd.Inputs {
		s.X = append(s.X, value(j))
		s.In = append(s.In, g.shape(j))
	}
	return s
}

// forward emits the forward pass of the nodes [0, upto) — all when upto
// is nil — reading the pass's input x, at rate.
func (g *graph) forward(b *program.Builder, x program.Ref, rate program.Rate, batchStats bool, upto *int) error {
	n := len(g.nodes)
	if upto != nil {
		n = *upto
	}
	value := func(j int) program.Ref {
		if j < 0 {
			return x
		}
		return g.values[j]
	}
	for i := 0; i < n; i++ {
		g.emit(b, i, g.site(b, i, rate, batchStats, value))
	}
	return nil
}

// emit emits node i's forward pass at its site s: its output a view of
// its input where the kind only reshapes, else a value at s's rate.
func (g *graph) emit(b *program.Builder, i int, s *nn.Site) {
	nd := g.nodes[i]
	if nn.RoleOf(nd.Layer).View && len(s.X) == 1 {
		s.Y = b.View(g.prefix+nd.Name(), s.X[0], g.shapes[i])
	} else {
		s.Y = b.Value(g.prefix+nd.Name(), g.shapes[i], s.Rate)
	}
	g.values[i], g.sites[i] = s.Y, s
	nd.Layer.Forward(s)
}

// backward emits the backward pass from dy, the gradient at the last
// node's output: the parameters' gradients zeroed, then the nodes from
// last to first. The gradient at node j's output is written by its last
// reader (the first to run backwards) and added to by its other readers,
// which compute theirs into a scratch slot first; a view that is its
// input's only reader shares its gradient's memory. Gradients have their
// values' rates (in an SNN's time steps, a row per step and sample). An
// IF node's backward pass is neuron's (nil: the graph has none). It
// returns each node's input gradients.
func (g *graph) backward(b *program.Builder, dy program.Ref, batchStats bool, params []*nn.Param, neuron neuronGrad) ([][]program.Ref, error) {
	n := len(g.nodes)
	grads := make([]program.Ref, n)
	for i := range grads {
		grads[i] = program.None
	}
	zero := nn.NewSite(b, -1, "", nil)
	for _, p := range params {
		b.Emit(&program.Fill{Dst: zero.Grad(p)})
	}
	inputGrads := make([][]program.Ref, n)
	if n == 0 {
		return inputGrads, nil
	}
	grads[n-1] = dy
	for i := n - 1; i >= 0; i-- {
		nd := g.nodes[i]
		inputGrads[i] = make([]program.Ref, len(nd.Inputs))
		for k := range inputGrads[i] {
			inputGrads[i][k] = program.None
		}
		if grads[i] == program.None {
			continue // feeds nothing that has a gradient
		}
		type scratch struct {
			into int
			r    program.Ref
		}
		var adds []scratch
		view := nn.RoleOf(nd.Layer).View
		for k, j := range nd.Inputs {
			var rate program.Rate
			if j >= 0 {
				rate = b.Program().Slot(g.values[j]).Rate
			}
			switch {
			case j < 0: // the input's gradient is not computed
			case grads[j] != program.None || contains(nd.Inputs[:k], j):
				r := b.Value(g.prefix+g.nodes[j].Name()+".grad+", g.shapes[j], rate)
				inputGrads[i][k] = r
				adds = append(adds, scratch{j, r})
			case view && len(g.readers[j]) == 1:
				grads[j] = b.View(g.prefix+g.nodes[j].Name()+".grad", grads[i], g.shapes[j])
				inputGrads[i][k] = grads[j]
			default:
				grads[j] = b.Value(g.prefix+g.nodes[j].Name()+".grad", g.shapes[j], rate)
				inputGrads[i][k] = grads[j]
			}
		}
		needed := len(nd.Layer.Params()) > 0
		for _, r := range inputGrads[i] {
			needed = needed || r != program.None
		}
		switch {
		case !needed:
		case nd.IF:
			if neuron == nil {
				return nil, fmt.Errorf("node %d (%s): an IF layer in a graph without their backward pass", i, nd.Name())
			}
			neuron(b, i, grads[i], inputGrads[i][0])
		default:
			fs := g.sites[i]
			s := *fs
			s.DY, s.DX = grads[i], inputGrads[i]
			nd.Layer.Backward(&s)
		}
		for _, a := range adds {
			b.Emit(&program.AddTo{Dst: grads[a.into], Src: a.r})
		}
	}
	return inputGrads, nil
}

// neuronGrad emits IF node i's backward pass: dx, the gradient at its
// input current, from dy, the gradient at its spikes.
type neuronGrad func(b *program.Builder, i int, dy, dx program.Ref)

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Setting changes the Options a runner (spiking.Simulator, train.Engine)
// lowers its programs with.
type Setting func(*Options)

// WithRules lowers with rules instead of Rules() (none: the plain
// program).
func WithRules(rules ...Rule) Setting {
	return func(o *Options) {
		o.Rules, o.NoRewrites = rules, len(rules) == 0
	}
}

// Apply applies settings to o (nil settings, and a nil o, do nothing).
func (o *Options) Apply(settings []Setting) {
	if o == nil {
		return
	}
	for _, s := range settings {
		if s != nil {
			s(o)
		}
	}
}

// annForward emits the ANN's forward pass of g from the images and keeps
// its output for the caller.
func (lw *Lowered) annForward(b *program.Builder, g *graph, batchStats bool) error {
	lw.Forward = len(b.Program().Passes)
	b.Begin(program.ANNForward, batchStats)
	err := g.forward(b, lw.Input, program.Batch, batchStats, nil)
	b.End()
	if err != nil {
		return err
	}
	lw.Values, lw.Output = g.values, g.values[len(g.values)-1]
	b.Keep(lw.Output)
	return nil
}
