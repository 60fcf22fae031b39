package spiking

import (
	"context"
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
)

// Simulator runs an SNN on one backend for batches of up to a fixed size.
// It owns every buffer the simulation needs, allocated once.
//
// The static input layer runs once per batch (an nn.Executor). The T time
// steps run in chunks of backend.StepsAtOnce(T) steps: each stateless layer
// takes all the chunk's steps as one batch of steps·B rows (step-major:
// rows [t·B, (t+1)·B) are step t), and each IF layer runs its recurrence
// over the chunk's steps in one kernel call. The planner (nn.PlanBuffers)
// shares the per-step buffers by liveness and fuses a BatchNorm into the IF
// layer that is its only reader (the IF kernel applies its scale and
// shift). With one step per chunk this is the reference's clock-driven
// order; with all T it is SpikingJelly's multi-step order. Both give the
// same counts.
type Simulator struct {
	snn      *Network
	be       compute.Backend
	capacity int
	steps    int
	static   *nn.Executor
	nodes    []simNode // per node of the SNN (static ones hold shapes only)
	slots    []compute.Buffer
	owned    []compute.Buffer
	outCount compute.Buffer
	outV     compute.Buffer // the output IF layer's potentials
	outShape []int
	input    nn.Value // the current run's input (IF layers may read it)
	// synaptic operations, when counted (CountSynOps)
	synTmp compute.Buffer
	synOps []float64 // per node, since the start of the last Run
	err    error     // the first error a reduction met during a run
}

// simNode is one node of the simulation.
type simNode struct {
	in, out []int // per-sample shapes: the (first) input's and the output's
	slot    int   // the output's buffer slot (per-step nodes), −1: none
	aux     compute.Buffer
	fused   bool           // a BatchNorm whose scale and shift its IF reader applies
	scale   compute.Buffer // a fused BatchNorm's map in the current chunk
	shift   compute.Buffer
	perStep bool
	v       compute.Buffer // IF layers: potentials and spike counts, [capacity·N]
	counts  compute.Buffer
	fanOut  compute.Buffer // layers with weights, when counting synaptic operations: [1, N]
	binary  bool           // the output holds spikes
	shape   []int          // the batched shape handed out, [rows, out...]
	xs      []nn.Value     // the inputs' values in the current chunk
}

// NewSimulator plans snn on be for batches of up to capacity inputs. The
// SNN must be bound to be (Network.Bind).
func NewSimulator(be compute.Backend, snn *Network, capacity int) (*Simulator, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("batch capacity must be at least 1, got %d", capacity)
	}
	steps := min(max(be.StepsAtOnce(snn.Config.Timesteps), 1), snn.Config.Timesteps)
	sim := &Simulator{snn: snn, be: be, capacity: capacity, steps: steps}
	nodes, S := snn.Nodes, snn.Static
	layers, inputs := snn.Graph()
	readers := nn.Readers(inputs, len(nodes))
	var keep []int // static nodes the per-step ones read
	for j := 0; j < S; j++ {
		for _, r := range readers[j] {
			if r >= S {
				keep = append(keep, j)
				break
			}
		}
	}
	static, err := nn.NewExecutor(be, &nn.Network{InputShape: snn.ANN.InputShape, Layers: layers[:S], Inputs: inputs[:S]},
		capacity, nn.ExecOptions{Keep: keep})
	if err != nil {
		return nil, fmt.Errorf("SNN static input layer: %w", err)
	}
	sim.static = static
	sim.nodes = make([]simNode, len(nodes))
	shape := func(j int) []int {
		if j < S {
			return static.NodeShape(j)
		}
		return sim.nodes[j].out
	}
	plan := make([]nn.PlanNode, len(nodes)-S)
	for i := S; i < len(nodes); i++ {
		nd, st := nodes[i], &sim.nodes[i]
		st.in = shape(nd.Inputs[0])
		st.binary = true
		pn := nn.PlanNode{}
		for _, j := range nd.Inputs {
			pn.Inputs = append(pn.Inputs, max(j-S, -1))
			st.binary = st.binary && j >= S && sim.nodes[j].binary
		}
		switch l := nd.Layer.(type) {
		case nil:
			err = fmt.Errorf("node %d has no layer", i)
		case nn.Join:
			ins := make([][]int, len(nd.Inputs))
			for k, j := range nd.Inputs {
				ins[k] = shape(j)
			}
			st.out, err = l.JoinShape(ins)
			st.binary = st.binary && l.Role().KeepsSpikes
		default:
			if nd.IF {
				st.out, st.binary = st.in, true
				k := capacity * nn.Numel(st.in)
				if st.v, err = sim.alloc(k, "potentials of IF "+nd.Name()); err == nil {
					st.counts, err = sim.alloc(k, "spike counts of IF "+nd.Name())
				}
				break
			}
			if st.out, err = l.OutputShape(st.in); err != nil {
				break
			}
			st.binary = st.binary && l.Role().KeepsSpikes
			pn.View = l.Role().View
			if rs := readers[i]; len(rs) == 1 && nodes[rs[0]].IF && nn.Fuses(nd.Kind(), "IF") {
				st.fused, pn.Fused = true, true
			}
			if k := l.AuxSize(st.in, steps); k > 0 {
				st.aux, err = sim.alloc(k, "workspace of "+l.Name())
			}
		}
		if err != nil {
			sim.Free()
			return nil, fmt.Errorf("SNN layer %d (%s %q): %w", i, nd.Kind(), nd.Name(), err)
		}
		pn.Numel = nn.Numel(st.out)
		plan[i-S] = pn
		st.shape = make([]int, 1+len(st.out))
		st.xs = make([]nn.Value, len(nd.Inputs))
	}
	bp, err := nn.PlanBuffers(plan)
	if err != nil {
		sim.Free()
		return nil, fmt.Errorf("SNN: %w", err)
	}
	rows := capacity * steps
	for _, size := range bp.Sizes {
		if size > (1<<62)/4/rows {
			sim.Free()
			return nil, fmt.Errorf("SNN activations: %d values per sample are too many", size)
		}
		b, err := sim.alloc(rows*size, "activations")
		if err != nil {
			sim.Free()
			return nil, err
		}
		sim.slots = append(sim.slots, b)
	}
	for i := S; i < len(nodes); i++ {
		sim.nodes[i].slot = bp.Slot[i-S]
	}
	last := &sim.nodes[len(nodes)-1]
	sim.outShape, sim.outCount, sim.outV = last.out, last.counts, last.v
	return sim, nil
}

// alloc allocates a buffer the simulator owns, naming what it is for in
// the error.
func (sim *Simulator) alloc(n int, what string) (compute.Buffer, error) {
	b, err := sim.be.Alloc(n)
	if err != nil {
		return nil, fmt.Errorf("SNN %s, batch %d: %w", what, sim.capacity, err)
	}
	sim.owned = append(sim.owned, b)
	return b, nil
}

// Run simulates the SNN on x ([n, input shape...] on the simulator's
// backend, n at most its capacity) and returns the spike counts of the
// output layer, [n, K], valid until the next call. With batchStats each
// BatchNorm normalises with the statistics of what it sees and updates its
// own running statistics: once per batch in the static input layer, once
// per time step after it (PyTorch's train() in the reference's
// clock-driven loop); otherwise BatchNorm uses its running statistics.
// With rates every IF layer counts its spikes for Rates; without, only
// the output layer does. Once ctx is cancelled the simulation stops
// within a chunk of steps and returns ctx's error.
func (sim *Simulator) Run(ctx context.Context, x nn.Value, batchStats, rates bool) (nn.Value, error) {
	T := sim.snn.Config.Timesteps
	var counts nn.Value
	err := sim.run(ctx, x, batchStats, rates, []int{T}, func(_ int, c nn.Value) error { counts = c; return nil })
	return counts, err
}

// RunAt simulates the SNN on x for max(ts) steps, which may not exceed
// Config.Timesteps, and calls read after step t for every t in ts
// (ascending, from 1) with the output counts summed over steps 1…t,
// [n, K], valid during the call. Rates, RatesAt and SynOps read the same
// state during read. One simulation thus gives the counts of every T in
// ts: each equals the counts of a separate run of t steps. BatchNorm and
// ctx as in Run. An error from read stops the simulation and is returned.
func (sim *Simulator) RunAt(ctx context.Context, x nn.Value, batchStats, rates bool, ts []int, read func(t int, counts nn.Value) error) error {
	if len(ts) == 0 {
		return fmt.Errorf("no time steps to read the counts at")
	}
	for i, t := range ts {
		if t < 1 || t > sim.snn.Config.Timesteps || (i > 0 && t <= ts[i-1]) {
			return fmt.Errorf("time steps to read at must ascend from 1 to T = %d, got %v", sim.snn.Config.Timesteps, ts)
		}
	}
	return sim.run(ctx, x, batchStats, rates, ts, read)
}

func (sim *Simulator) run(ctx context.Context, x nn.Value, batchStats, rates bool, ts []int, read func(t int, counts nn.Value) error) error {
	be, cfg := sim.be, sim.snn.Config
	n := x.N()
	if n > sim.capacity {
		panic(fmt.Sprintf("spiking: batch of %d for a simulator planned for %d", n, sim.capacity))
	}
	sim.err = nil
	for i := range sim.synOps {
		sim.synOps[i] = 0
	}
	sim.input = x
	sim.static.Forward(x, nn.Mode{BatchStats: batchStats})
	last := len(sim.nodes) - 1
	for i := sim.snn.Static; i < len(sim.nodes); i++ {
		if st := sim.nodes[i]; sim.snn.Nodes[i].IF {
			size := n * nn.Numel(st.in)
			be.Fill(st.v.Slice(0, size), cfg.Reset)
			if rates || i == last {
				be.Fill(st.counts.Slice(0, size), 0)
			}
		}
	}
	countsNow := nn.Value{Shape: append([]int{n}, sim.outShape...), Buf: sim.outCount.Slice(0, n*nn.Numel(sim.outShape))}
	end := ts[len(ts)-1]
	for t0, next := 0, 0; t0 < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		tc := min(sim.steps, ts[next]-t0)
		sim.chunk(n, tc, batchStats, rates)
		t0 += tc
		if t0 == ts[next] {
			if sim.err != nil {
				return sim.err
			}
			if err := read(t0, countsNow); err != nil {
				return err
			}
			next++
		}
	}
	return sim.err
}

// value is node j's output in the current chunk of rows rows: a static
// node's (the same at every step) or a per-step node's.
func (sim *Simulator) value(j, rows int) nn.Value {
	switch {
	case j < 0:
		return sim.input
	case j < sim.snn.Static:
		return sim.static.Output(j)
	}
	st := &sim.nodes[j]
	st.shape[0] = rows
	copy(st.shape[1:], st.out)
	return nn.Value{Shape: st.shape, Buf: sim.slots[st.slot].Slice(0, rows*nn.Numel(st.out))}
}

// chunk runs tc time steps of the per-step nodes, each on its inputs: the
// outputs of earlier nodes in this chunk, or static ones (constant
// currents, read by IF layers only).
func (sim *Simulator) chunk(n, tc int, batchStats, rates bool) {
	be, cfg := sim.be, sim.snn.Config
	nodes := sim.snn.Nodes
	last := len(nodes) - 1
	mode := nn.Mode{BatchStats: batchStats, Groups: tc}
	rows := tc * n
	for i := sim.snn.Static; i < len(nodes); i++ {
		nd, st := nodes[i], &sim.nodes[i]
		switch {
		case st.fused:
			bn := nd.Layer.(*nn.BatchNorm2d)
			st.scale, st.shift, st.perStep = bn.ScaleShift(be, sim.value(nd.Inputs[0], rows), st.aux, mode)
		case nd.IF:
			a := compute.IFArgs{Steps: tc, N: n * nn.Numel(st.in), V: st.v.Slice(0, n*nn.Numel(st.in)),
				Spikes: sim.value(i, rows).Buf, Threshold: cfg.Threshold, Reset: cfg.Reset}
			src := nd.Inputs[0]
			if src >= 0 && sim.nodes[src].fused {
				bn := &sim.nodes[src]
				a.Scale, a.Shift, a.PerStep = bn.scale, bn.shift, bn.perStep
				a.C, a.HW = st.in[0], nn.Numel(st.in[1:])
				src = nodes[src].Inputs[0]
			}
			a.In, a.Constant = sim.value(src, rows).Buf, src < sim.snn.Static
			if rates || i == last {
				a.Counts = st.counts.Slice(0, a.N)
			}
			be.IF(a)
		default:
			for k, j := range nd.Inputs {
				st.xs[k] = sim.value(j, rows)
			}
			binary := true
			for _, j := range nd.Inputs {
				binary = binary && sim.nodes[j].binary
			}
			out := sim.value(i, rows)
			if jl, ok := nd.Layer.(nn.Join); ok {
				jl.JoinForward(be, st.xs, out)
				continue
			}
			if st.fanOut != nil {
				sim.countSynOps(i, st.xs[0], rows, binary)
			}
			if nd.Layer.Role().View {
				continue // its slot is its input's
			}
			m := mode
			m.Spikes = binary
			nd.Layer.Forward(be, st.xs[0], out, st.aux, m)
		}
	}
}

// countSynOps adds to node i's synaptic operations those its input in
// this chunk triggers: Σ input × fan-out, one matrix-vector product.
func (sim *Simulator) countSynOps(i int, in nn.Value, rows int, binary bool) {
	st := sim.nodes[i]
	k := nn.Numel(st.in)
	tmp := sim.synTmp.Slice(0, rows)
	sim.be.LinearForward(rows, k, 1, in.Buf, st.fanOut, nil, tmp, binary)
	s, err := sim.be.Sum(tmp)
	if err != nil && sim.err == nil {
		sim.err = fmt.Errorf("counting synaptic operations: %w", err)
	}
	sim.synOps[i] += s
}

// CountSynOps makes every later Run count synaptic operations: for each
// layer with weights (Conv2d, Linear) run at every step, the sum over its
// inputs of input × fan-out (nn.FanOut). Its inputs are spikes (0 or 1,
// after max-pooling their OR), so this counts the additions a
// neuromorphic chip performs; after average pooling, fractions of spikes
// count as fractions. The static input layer runs once on the analog
// input and does multiply-accumulates, not synaptic operations.
func (sim *Simulator) CountSynOps() error {
	if sim.synOps != nil {
		return nil
	}
	rows := sim.capacity * sim.steps
	for i := sim.snn.Static; i < len(sim.nodes); i++ {
		nd, st := sim.snn.Nodes[i], &sim.nodes[i]
		if nd.IF {
			continue
		}
		fan, ok := nn.FanOut(nd.Layer, st.in)
		if !ok {
			continue
		}
		b, err := sim.be.Alloc(len(fan))
		if err != nil {
			return fmt.Errorf("fan-out of %s: %w", nd.Name(), err)
		}
		sim.owned = append(sim.owned, b)
		sim.be.Upload(b, fan)
		st.fanOut = b
	}
	b, err := sim.be.Alloc(rows)
	if err != nil {
		return fmt.Errorf("synaptic operation counts: %w", err)
	}
	sim.owned = append(sim.owned, b)
	sim.synTmp = b
	sim.synOps = make([]float64, len(sim.nodes))
	return nil
}

// SynOps is the number of synaptic operations of the last Run so far (all
// samples together), per layer with weights, with the layers' names; nil
// unless CountSynOps was called.
func (sim *Simulator) SynOps() (names []string, ops []float64) {
	for i, st := range sim.nodes {
		if st.fanOut != nil {
			names = append(names, sim.snn.Nodes[i].Name())
			ops = append(ops, sim.synOps[i])
		}
	}
	return names, ops
}

// Rates is each IF layer's mean firing rate (spikes per neuron per step) in
// the last Run, which must have counted them (rates), for its batch of n.
func (sim *Simulator) Rates(n int) ([]float64, error) {
	return sim.RatesAt(n, sim.snn.Config.Timesteps)
}

// RatesAt is Rates after t steps, for a read during RunAt.
func (sim *Simulator) RatesAt(n, t int) ([]float64, error) {
	var out []float64
	for i, st := range sim.nodes {
		if !sim.snn.Nodes[i].IF {
			continue
		}
		size := n * nn.Numel(st.in)
		s, err := sim.be.Sum(st.counts.Slice(0, size))
		if err != nil {
			return nil, err
		}
		out = append(out, s/float64(size*t))
	}
	return out, nil
}

// Free gives the simulator's buffers back to the backend.
func (sim *Simulator) Free() {
	if sim.static != nil {
		sim.static.Free()
	}
	for _, b := range sim.owned {
		sim.be.Free(b)
	}
	sim.owned = nil
}

// OutputPotentials is the output IF layer's membrane potentials for a
// batch of n, [n, K]: after the last step of the last Run, or after step
// t during RunAt's read. It is the simulator's own state buffer (nothing
// is copied or allocated), valid until the next run; ties between equal
// counts are broken by it (results.MembraneMax).
func (sim *Simulator) OutputPotentials(n int) nn.Value {
	return nn.Value{Shape: append([]int{n}, sim.outShape...), Buf: sim.outV.Slice(0, n*nn.Numel(sim.outShape))}
}

// OutputShape is the per-sample shape of the counts, [K].
func (sim *Simulator) OutputShape() []int { return sim.outShape }

// IFNames names the IF layers in the order Rates lists them: the ReLU each
// replaces, then "output".
func (sim *Simulator) IFNames() []string {
	var names []string
	for _, nd := range sim.snn.Nodes {
		if nd.IF {
			names = append(names, nd.Name())
		}
	}
	return names
}
