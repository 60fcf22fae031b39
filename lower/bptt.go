package lower

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Surrogate is the surrogate gradient of surrogate-gradient training
// (docs/design.md §1): the derivative that stands in for the IF neurons'
// Heaviside step in the backward pass.
type Surrogate struct {
	// Alpha is the sharpness α of the sigmoid σ(αx) whose derivative
	// α·σ(αx)·(1 − σ(αx)) is taken at x = h − v_th (SpikingJelly's
	// surrogate.Sigmoid; 4 is its default).
	Alpha float32
	// DetachReset leaves the hard reset's dependence on the spike out of
	// the gradient (SpikingJelly's detach_reset).
	DetachReset bool
}

// SurrogateStep lowers one step of surrogate-gradient training of an SNN:
// backpropagation through its T time steps. Three passes:
//
//   - program.BPTTForward: the static input layer once, the neurons'
//     reset, then all T steps at once (every other node at rate
//     program.Steps, T·B rows), each IF layer keeping its potentials
//     before the spikes (program.IFRecord), every value living until the
//     backward pass has read it;
//   - program.Loss: the gradient at the output counts of the mean over
//     B×K of (counts − onehot)², proxy learning's loss;
//   - program.BPTTBackward: the parameters' gradients zeroed, then the
//     nodes from last to first, each IF layer by the surrogate gradient
//     (program.IFSurrogateGrad: the output layer's spikes all get the
//     counts' gradient; an IF layer reading the static input layer sums
//     its input's gradient over the steps), the others by their kinds'
//     backward passes at their rates.
//
// The parameters are the SNN's layers' (the ANN's, shared). Every
// program is made for T steps at once whatever the backend's StepsAtOnce.
// The caller binds Input and Labels (class indices as floats) and reads
// SNN.Counts and SNN.Potentials. Only IF neurons (the ReLU's twin) are
// trained so; a graph rule (a rewrite of the nodes) is refused, and the
// rules that rewrite programs apply to the passes they name, none of
// which is BPTT's.
func SurrogateStep(s SNN, sg Surrogate, opt Options) (*Lowered, error) {
	if err := checkSNN(s, opt, s.Timesteps); err != nil {
		return nil, err
	}
	if !(sg.Alpha > 0) {
		return nil, fmt.Errorf("the surrogate's sharpness must be positive, got %g", sg.Alpha)
	}
	for _, r := range opt.rules() {
		if r.Graph != nil {
			return nil, fmt.Errorf("rewrite %q changes the network's nodes: no backward pass through them", r.Name)
		}
	}
	for i, nd := range s.Nodes {
		if k := nn.KindOf(nd.Layer); nd.IF && k != "ReLU" && k != "Clip" {
			return nil, fmt.Errorf("node %d (%s %q): surrogate-gradient training handles IF neurons (the twins of neuron layers: ReLU, clipped ReLU) only",
				i, nn.KindOf(nd.Layer), nd.Name())
		}
	}
	params := paramsOf(s.Nodes)
	T := s.Timesteps
	b := program.NewBuilder(program.Dims{N: opt.Capacity, Steps: T})
	lw := newLowered(b)
	lw.Input = b.Input("input", s.InputShape, program.Batch)
	g, err := newGraph("snn.", s.Nodes, s.InputShape)
	if err != nil {
		return nil, fmt.Errorf("SNN: %w", err)
	}
	S, last := s.Static, len(s.Nodes)-1
	sl := &SNNSlots{Timesteps: T, Steps: T}
	v, h := make([]program.Ref, len(s.Nodes)), make([]program.Ref, len(s.Nodes))
	value := func(j int) program.Ref {
		if j < 0 {
			return lw.Input
		}
		return g.values[j]
	}

	lw.Forward = len(b.Program().Passes)
	b.Begin(program.BPTTForward, opt.BatchStats)
	if err := g.forward(b, lw.Input, program.Batch, opt.BatchStats, &S); err != nil {
		b.End()
		return nil, err
	}
	sl.Counts = b.Value(g.prefix+s.Nodes[last].Name()+".counts", g.shape(s.Nodes[last].Inputs[0]), program.Batch)
	b.Emit(&program.Fill{Dst: sl.Counts})
	b.Keep(sl.Counts)
	binary := make([]bool, len(s.Nodes))
	for i := S; i < len(s.Nodes); i++ {
		nd := s.Nodes[i]
		if !nd.IF {
			g.emit(b, i, g.stepSite(b, i, S, opt.BatchStats, binary, value))
			continue
		}
		src := nd.Inputs[0]
		in := g.shape(src)
		v[i] = b.Value(g.prefix+nd.Name()+".v", in, program.Batch)
		h[i] = b.Value(g.prefix+nd.Name()+".h", in, program.Steps)
		g.values[i] = b.Value(g.prefix+nd.Name(), in, program.Steps)
		counts := program.None
		if i == last {
			counts = sl.Counts
		}
		b.Emit(&program.Fill{Dst: v[i], Value: s.StartPotential(nd)})
		b.Emit(&program.IFRecord{N: nn.Numel(in), In: value(src), Constant: src < S, V: v[i], Spikes: g.values[i], H: h[i],
			Counts: counts, Threshold: nd.Threshold, Reset: s.Reset})
		binary[i] = true
	}
	b.End()
	sl.Potentials = v[last]
	b.Keep(sl.Potentials)
	sl.IFCounts, sl.IFNames = []program.Ref{sl.Counts}, []string{s.Nodes[last].Name()}
	lw.SNN = sl

	out := g.shape(s.Nodes[last].Inputs[0])
	if len(out) != 1 {
		return nil, fmt.Errorf("the SNN's output must be [K] classes, got %s", nn.ShapeString(out))
	}
	lw.Labels = b.Input("labels", []int{1}, program.Batch)
	dy := b.Value("loss.grad", out, program.Batch)
	lw.Loss = len(b.Program().Passes)
	b.Begin(program.Loss, opt.BatchStats)
	b.Emit(&program.ProxyLoss{K: out[0], Counts: sl.Counts, Labels: lw.Labels, DY: dy})
	b.End()

	neuron := func(b *program.Builder, i int, ds, du program.Ref) {
		nd := s.Nodes[i]
		b.Emit(&program.IFSurrogateGrad{N: nn.Numel(g.shape(nd.Inputs[0])), H: h[i], DS: ds, ConstantGrad: b.Program().Slot(ds).Rate != program.Steps,
			DU: du, ConstantInput: b.Program().Slot(du).Rate != program.Steps, Threshold: nd.Threshold, Reset: s.Reset, Alpha: sg.Alpha,
			DetachReset: sg.DetachReset})
	}
	lw.Backward = len(b.Program().Passes)
	b.Begin(program.BPTTBackward, opt.BatchStats)
	lw.InputGrads, err = g.backward(b, dy, opt.BatchStats, params, neuron)
	b.End()
	if err != nil {
		return nil, err
	}
	return lw, lw.rewrite(opt)
}

// SurrogateStepListing lists one step of surrogate-gradient training of s
// for a batch of opt.Capacity (SurrogateStep) followed by the optimizer's
// program, as the trainer runs them: what proxykit plan shows.
func SurrogateStepListing(s SNN, sg Surrogate, opt Options) (program.Listing, error) {
	l, o, err := SurrogatePrograms(s, sg, opt)
	if err != nil {
		return program.Listing{}, err
	}
	return listStep(l, o, opt.Capacity)
}

// SurrogatePrograms lowers one step of surrogate-gradient training of s as
// the trainer runs it, for listings and costs (StepPrograms' counterpart):
// the step's program (SurrogateStep) and the optimizer's over the SNN's
// parameters, run after it.
func SurrogatePrograms(s SNN, sg Surrogate, opt Options) (step, update *Lowered, err error) {
	l, err := SurrogateStep(s, sg, opt)
	if err != nil {
		return nil, nil, err
	}
	var args compute.AdamArgs
	o := Optimizer(paramsOf(s.Nodes), func(p *nn.Param) (m, v program.Binding) { return moment{p, "m"}, moment{p, "v"} }, &args)
	return l, o, nil
}

// paramsOf is the parameters of nodes' layers, each once, in order.
func paramsOf(nodes []Node) []*nn.Param {
	var params []*nn.Param
	seen := map[*nn.Param]bool{}
	for _, nd := range nodes {
		for _, p := range nd.Layer.Params() {
			if !seen[p] {
				seen[p] = true
				params = append(params, p)
			}
		}
	}
	return params
}
