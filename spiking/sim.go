package spiking

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
)

// Simulator runs an SNN on one backend for batches of up to a fixed size.
// It owns every buffer the simulation needs, allocated once.
//
// The T time steps run in chunks of backend.StepsAtOnce(T) steps: each
// stateless layer takes all the chunk's steps as one batch of steps·B rows
// (step-major: rows [t·B, (t+1)·B) are step t), and each IF layer runs its
// recurrence over the chunk's steps in one kernel call. A BatchNorm right
// before an IF layer is fused into it (the IF kernel applies its scale and
// shift). With one step per chunk this is the reference's clock-driven
// order; with all T it is SpikingJelly's multi-step order. Both give the
// same counts.
type Simulator struct {
	snn      *Network
	be       compute.Backend
	capacity int
	steps    int
	static   *nn.Executor
	stages   []stage
	pingpong [2]compute.Buffer
	owned    []compute.Buffer
	outCount compute.Buffer
	outShape []int
	graph    bool     // the SNN branches: every stage has its own output buffer
	input    nn.Value // the current run's input (a branching SNN's IF layers may read it)
	// synaptic operations, when counted (CountSynOps)
	synTmp compute.Buffer
	synOps []float64 // per stage, since the start of the last Run
	err    error     // the first error a reduction met during a run
}

// stage is one dynamic layer of the simulation.
type stage struct {
	layer     nn.Layer // nil for an IF layer
	in, out   []int    // per-sample shapes
	aux       compute.Buffer
	fused     bool           // a BatchNorm whose scale and shift the next IF layer applies
	v, counts compute.Buffer // IF layers: potentials and spike counts, [capacity·N]
	fanOut    compute.Buffer // layers with weights, when counting synaptic operations: [1, N]
	// a branching SNN's stages: where the inputs come from and the output
	srcs   []Source
	outBuf compute.Buffer // [capacity·steps·N]
	binary bool           // the output holds spikes
}

// NewSimulator plans snn on be for batches of up to capacity inputs. The
// SNN must be bound to be (Network.Bind).
func NewSimulator(be compute.Backend, snn *Network, capacity int) (*Simulator, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("batch capacity must be at least 1, got %d", capacity)
	}
	steps := min(max(be.StepsAtOnce(snn.Config.Timesteps), 1), snn.Config.Timesteps)
	if snn.DynInputs != nil {
		return newGraphSimulator(be, snn, capacity, steps)
	}
	sim := &Simulator{snn: snn, be: be, capacity: capacity, steps: steps}
	static, err := nn.NewGraphExecutor(be, snn.Static, snn.StaticInputs, snn.ANN.InputShape, capacity, false)
	if err != nil {
		return nil, fmt.Errorf("SNN static input layer: %w", err)
	}
	sim.static = static
	alloc := sim.alloc
	cur := static.OutputShape()
	rows := capacity * steps
	biggest := 0
	for i, d := range snn.Dynamic {
		st := stage{in: cur}
		switch l := d.(type) {
		case *IF:
			st.out = cur
			n := capacity * nn.Numel(cur)
			if st.v, err = alloc(n, "potentials of IF "+l.LayerName); err == nil {
				st.counts, err = alloc(n, "spike counts of IF "+l.LayerName)
			}
		case nn.Layer:
			st.layer = l
			if st.out, err = l.OutputShape(cur); err != nil {
				err = fmt.Errorf("SNN layer %s %q: %w", l.Kind(), l.Name(), err)
				break
			}
			if _, isBN := l.(*nn.BatchNorm2d); isBN && i+1 < len(snn.Dynamic) {
				_, st.fused = snn.Dynamic[i+1].(*IF)
			}
			if k := l.AuxSize(cur, steps); k > 0 {
				st.aux, err = alloc(k, "workspace of "+l.Name())
			}
		}
		if err != nil {
			sim.Free()
			return nil, err
		}
		if nn.Numel(st.out) > (1<<62)/4/rows {
			sim.Free()
			return nil, fmt.Errorf("SNN layer %d: %d values per sample are too many", i, nn.Numel(st.out))
		}
		biggest = max(biggest, nn.Numel(st.out))
		sim.stages = append(sim.stages, st)
		cur = st.out
	}
	sim.outShape = cur
	sim.outCount = sim.stages[len(sim.stages)-1].counts
	for i := range sim.pingpong {
		if sim.pingpong[i], err = alloc(rows*biggest, "activations"); err != nil {
			sim.Free()
			return nil, err
		}
	}
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
// the output layer does.
func (sim *Simulator) Run(x nn.Value, batchStats, rates bool) nn.Value {
	T := sim.snn.Config.Timesteps
	var counts nn.Value
	sim.run(x, batchStats, rates, []int{T}, func(_ int, c nn.Value) error { counts = c; return nil })
	return counts
}

// RunAt simulates the SNN on x for max(ts) steps, which may not exceed
// Config.Timesteps, and calls read after step t for every t in ts
// (ascending, from 1) with the output counts summed over steps 1…t,
// [n, K], valid during the call. Rates, RatesAt and SynOps read the same
// state during read. One simulation thus gives the counts of every T in
// ts: each equals the counts of a separate run of t steps. BatchNorm as in
// Run. An error from read stops the simulation and is returned.
func (sim *Simulator) RunAt(x nn.Value, batchStats, rates bool, ts []int, read func(t int, counts nn.Value) error) error {
	if len(ts) == 0 {
		return fmt.Errorf("no time steps to read the counts at")
	}
	for i, t := range ts {
		if t < 1 || t > sim.snn.Config.Timesteps || (i > 0 && t <= ts[i-1]) {
			return fmt.Errorf("time steps to read at must ascend from 1 to T = %d, got %v", sim.snn.Config.Timesteps, ts)
		}
	}
	return sim.run(x, batchStats, rates, ts, read)
}

func (sim *Simulator) run(x nn.Value, batchStats, rates bool, ts []int, read func(t int, counts nn.Value) error) error {
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
	static := sim.static.Forward(x, nn.Mode{BatchStats: batchStats})
	last := len(sim.stages) - 1
	for i, st := range sim.stages {
		if st.layer == nil {
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
		tc := min(sim.steps, ts[next]-t0)
		sim.chunk(static, n, tc, batchStats, rates)
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

// chunk runs tc time steps of the dynamic layers on the static output.
func (sim *Simulator) chunk(static nn.Value, n, tc int, batchStats, rates bool) {
	if sim.graph {
		sim.chunkGraph(n, tc, batchStats, rates)
		return
	}
	be, cfg := sim.be, sim.snn.Config
	last := len(sim.stages) - 1
	mode := nn.Mode{BatchStats: batchStats, Groups: tc}
	cur := static
	constant := true // cur is the static output, the same at every step
	binary := false  // cur holds spikes
	next := 0
	var scale, shift compute.Buffer
	var perStep bool
	for i, st := range sim.stages {
		rows := tc * n
		out := nn.Value{Shape: append([]int{rows}, st.out...)}
		switch {
		case st.layer == nil:
			out.Buf = sim.pingpong[next].Slice(0, rows*nn.Numel(st.out))
			a := compute.IFArgs{Steps: tc, N: n * nn.Numel(st.in), In: cur.Buf, Constant: constant,
				V: st.v.Slice(0, n*nn.Numel(st.in)), Spikes: out.Buf, Threshold: cfg.Threshold, Reset: cfg.Reset}
			if rates || i == last {
				a.Counts = st.counts.Slice(0, a.N)
			}
			if scale != nil {
				a.Scale, a.Shift, a.PerStep = scale, shift, perStep
				a.C, a.HW = st.in[0], nn.Numel(st.in[1:])
				scale, shift = nil, nil
			}
			be.IF(a)
			constant, binary = false, true
		case constant:
			// A stateless layer between the static output and the
			// first IF layer cannot occur: New puts the first IF layer
			// first among the dynamic layers.
			panic("spiking: a dynamic layer before the first IF layer")
		case st.fused:
			bn := st.layer.(*nn.BatchNorm2d)
			scale, shift, perStep = bn.ScaleShift(be, cur, st.aux, mode)
			continue
		case st.layer.Role().View:
			out.Buf = cur.Buf
		default:
			if st.fanOut != nil {
				sim.countSynOps(i, cur, rows, binary)
			}
			out.Buf = sim.pingpong[next].Slice(0, rows*nn.Numel(st.out))
			m := mode
			m.Spikes = binary
			st.layer.Forward(be, cur, out, st.aux, m)
			binary = binary && st.layer.Role().KeepsSpikes
		}
		if out.Buf != cur.Buf {
			next = 1 - next
		}
		cur = out
	}
}

// countSynOps adds to stage i's synaptic operations those its input in
// this chunk triggers: Σ input × fan-out, one matrix-vector product.
func (sim *Simulator) countSynOps(i int, in nn.Value, rows int, binary bool) {
	st := sim.stages[i]
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
	for i := range sim.stages {
		st := &sim.stages[i]
		if st.layer == nil {
			continue
		}
		fan, ok := nn.FanOut(st.layer, st.in)
		if !ok {
			continue
		}
		b, err := sim.be.Alloc(len(fan))
		if err != nil {
			return fmt.Errorf("fan-out of %s: %w", st.layer.Name(), err)
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
	sim.synOps = make([]float64, len(sim.stages))
	return nil
}

// SynOps is the number of synaptic operations of the last Run so far (all
// samples together), per layer with weights, with the layers' names; nil
// unless CountSynOps was called.
func (sim *Simulator) SynOps() (names []string, ops []float64) {
	for i, st := range sim.stages {
		if st.fanOut != nil {
			names = append(names, st.layer.Name())
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
	for _, st := range sim.stages {
		if st.layer != nil {
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

// OutputShape is the per-sample shape of the counts, [K].
func (sim *Simulator) OutputShape() []int { return sim.outShape }

// IFNames names the IF layers in the order Rates lists them: the ReLU each
// replaces, then "output".
func (sim *Simulator) IFNames() []string {
	var names []string
	for _, d := range sim.snn.Dynamic {
		if f, ok := d.(*IF); ok {
			names = append(names, f.LayerName)
		}
	}
	return names
}
