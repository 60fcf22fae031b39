package spiking

import (
	"context"
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Simulator runs an SNN on one backend for batches of up to a fixed size:
// programs lowered from the SNN (lower.Simulation), one per setting of
// BatchNorm's mode and of what is counted, run by one program.Machine
// that owns every buffer, allocated when a program is first needed.
//
// The static input layer runs once per batch. The T time steps run in
// chunks of backend.StepsAtOnce(T) steps: each stateless layer takes all
// the chunk's steps as one batch of steps·B rows (step-major: rows [t·B,
// (t+1)·B) are step t), and each IF layer runs its recurrence over the
// chunk's steps in one kernel call. With one step per chunk this is the
// reference's clock-driven order; with all T it is SpikingJelly's
// multi-step order. Both give the same counts.
//
// NewSimulator makes one; a nil or zero Simulator refuses to run, and its
// other methods describe nothing.
type Simulator struct {
	snn      *Network
	be       compute.Backend
	capacity int
	steps    int
	m        *program.Machine
	programs map[variant]*lower.Lowered
	synOps   bool
	settings []lower.Setting
	// the last run
	cur *lower.Lowered
	n   int
}

// variant is what an SNN program computes beside the output's counts.
type variant struct{ batchStats, rates bool }

// NewSimulator plans snn on be for batches of up to capacity inputs, its
// programs lowered with settings (lower.WithRules). The SNN must be bound
// to be (Network.Bind).
func NewSimulator(be compute.Backend, snn *Network, capacity int, settings ...lower.Setting) (*Simulator, error) {
	if be == nil {
		return nil, fmt.Errorf("no backend to simulate on (nil)")
	}
	if snn == nil || snn.ANN == nil {
		return nil, errNoSNN
	}
	if capacity < 1 {
		return nil, fmt.Errorf("batch capacity must be at least 1, got %d", capacity)
	}
	steps := min(max(be.StepsAtOnce(snn.Config.Timesteps), 1), snn.Config.Timesteps)
	sim := &Simulator{snn: snn, be: be, capacity: capacity, steps: steps, m: program.NewMachine(be), programs: map[variant]*lower.Lowered{},
		settings: settings}
	// inference's variants, loaded here so that memory runs out here if at
	// all and no run allocates (the BatchNorm-training ones are loaded on
	// first use)
	for _, v := range []variant{{rates: true}, {}} {
		if _, err := sim.program(v); err != nil {
			sim.Free()
			return nil, err
		}
	}
	return sim, nil
}

// program returns the simulation program of variant v, lowering and
// loading it the first time.
func (sim *Simulator) program(v variant) (*lower.Lowered, error) {
	if sim == nil || sim.snn == nil || sim.m == nil {
		return nil, errNoSimulator
	}
	if l, ok := sim.programs[v]; ok {
		return l, nil
	}
	opt := lower.SNNOptions{Options: lower.Options{Capacity: sim.capacity, BatchStats: v.batchStats, ChannelsLast: lower.PrefersChannelsLast(sim.be),
		HalfSpikes: lower.PrefersHalfSpikes(sim.be)},
		Steps: sim.steps, Rates: v.rates, SynOps: sim.synOps}
	opt.Apply(sim.settings)
	l, err := lower.Simulation(sim.snn.Lowering(), opt)
	if err != nil {
		return nil, err
	}
	if err := sim.m.Load(l.Program); err != nil {
		return nil, fmt.Errorf("SNN: %w", err)
	}
	sim.programs[v] = l
	return l, nil
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
	if sim == nil || sim.snn == nil {
		return nn.Value{}, errNoSimulator
	}
	T := sim.snn.Config.Timesteps
	l, n, err := sim.begin(x, batchStats, rates)
	if err != nil {
		return nn.Value{}, err
	}
	// it reads nothing back until it ends, so a backend may capture it
	err = sim.m.Captured(l.Program, program.Dims{N: n, Steps: sim.steps}, func() error {
		return RunSteps(ctx, sim.m, l, n, []int{T}, func(int) error { return nil })
	})
	return sim.counts(), err
}

// RunAt simulates the SNN on x for max(ts) steps, which may not exceed
// Config.Timesteps, and calls read after step t for every t in ts
// (ascending, from 1) with the output counts summed over steps 1…t,
// [n, K], valid during the call. Rates, RatesAt and SynOps read the same
// state during read. One simulation thus gives the counts of every T in
// ts: each equals the counts of a separate run of t steps. BatchNorm and
// ctx as in Run. An error from read stops the simulation and is returned.
func (sim *Simulator) RunAt(ctx context.Context, x nn.Value, batchStats, rates bool, ts []int, read func(t int, counts nn.Value) error) error {
	if sim == nil || sim.snn == nil {
		return errNoSimulator
	}
	if read == nil {
		return fmt.Errorf("no function to read the counts with (nil)")
	}
	if err := CheckSteps(ts, sim.snn.Config.Timesteps); err != nil {
		return err
	}
	return sim.run(ctx, x, batchStats, rates, ts, read)
}

// CheckSteps checks that the steps to read at ascend from 1 to at most T.
func CheckSteps(ts []int, T int) error {
	if len(ts) == 0 {
		return fmt.Errorf("no time steps to read the counts at")
	}
	for i, t := range ts {
		if t < 1 || t > T || (i > 0 && t <= ts[i-1]) {
			return fmt.Errorf("time steps to read at must ascend from 1 to T = %d, got %v", T, ts)
		}
	}
	return nil
}

func (sim *Simulator) run(ctx context.Context, x nn.Value, batchStats, rates bool, ts []int, read func(t int, counts nn.Value) error) error {
	l, n, err := sim.begin(x, batchStats, rates)
	if err != nil {
		return err
	}
	return RunSteps(ctx, sim.m, l, n, ts, func(t int) error { return read(t, sim.counts()) })
}

// begin starts a run on x: its batch within the capacity and its samples
// of the SNN's input shape, the program of the variant loaded, x bound.
func (sim *Simulator) begin(x nn.Value, batchStats, rates bool) (*lower.Lowered, int, error) {
	n := x.N()
	if n < 1 || n > sim.capacity {
		return nil, 0, fmt.Errorf("batch of %d for a simulator planned for 1 to %d", n, sim.capacity)
	}
	if in := sim.snn.ANN.InputShape; !nn.FitsInput(in, x.Shape) {
		return nil, 0, fmt.Errorf("a batch of shape %s for an SNN that takes [B %s", nn.ShapeString(x.Shape), nn.ShapeString(in)[1:])
	}
	l, err := sim.program(variant{batchStats, rates})
	if err != nil {
		return nil, 0, err
	}
	sim.cur, sim.n = l, n
	sim.m.ResetSynOps()
	sim.m.Bind(l.Input, x.Buf)
	return l, n, nil
}

// counts is the output counts of the current run.
func (sim *Simulator) counts() nn.Value {
	return Counts(sim.m, sim.cur, sim.n)
}

// RunSteps runs the SNN passes of l on m for a batch of n inputs bound to
// l.Input: the static input layer with the neurons' reset, then chunks
// of time steps, at most l.SNN.Steps each, ending a chunk at every t in
// ts (ascending from 1) and calling read(t) there. It stops with ctx's
// error within a chunk of steps once ctx is cancelled.
//
// It refuses a nil context, program or read function, a program that does
// not simulate an SNN (lower.Simulation, Step or Predict make those) and
// steps CheckSteps refuses.
func RunSteps(ctx context.Context, m *program.Machine, l *lower.Lowered, n int, ts []int, read func(t int) error) error {
	switch {
	case ctx == nil:
		return fmt.Errorf("no context (nil)")
	case read == nil:
		return fmt.Errorf("no function to read the counts with (nil)")
	case l == nil || l.Program == nil || l.SNN == nil || l.SNN.Steps < 1:
		return fmt.Errorf("not a program that simulates an SNN (lower.Simulation makes one)")
	}
	if err := CheckSteps(ts, l.SNN.Timesteps); err != nil {
		return err
	}
	if err := m.Run(l.Program, l.Static, program.Dims{N: n, Steps: 1}); err != nil {
		return err
	}
	end := ts[len(ts)-1]
	for t0, next := 0, 0; t0 < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		tc := min(l.SNN.Steps, ts[next]-t0)
		if err := m.Run(l.Program, l.Chunk, program.Dims{N: n, Steps: tc, T0: t0}); err != nil {
			return err
		}
		t0 += tc
		if t0 == ts[next] {
			if err := read(t0); err != nil {
				return err
			}
			next++
		}
	}
	return nil
}

// Counts is the output layer's spike counts after a run of l on m for a
// batch of n, [n, K] (the zero Value where l simulates no SNN).
func Counts(m *program.Machine, l *lower.Lowered, n int) nn.Value {
	if l == nil || l.SNN == nil {
		return nn.Value{}
	}
	return snnValue(m, l, l.SNN.Counts, n)
}

// Potentials is the output layer's membrane potentials after a run of l
// on m for a batch of n, [n, K]: its state buffer, valid until the next
// run (the zero Value where l simulates no SNN).
func Potentials(m *program.Machine, l *lower.Lowered, n int) nn.Value {
	if l == nil || l.SNN == nil {
		return nn.Value{}
	}
	return snnValue(m, l, l.SNN.Potentials, n)
}

// snnValue is slot r of l after a run on m for a batch of n (the zero
// Value for a slot l has not).
func snnValue(m *program.Machine, l *lower.Lowered, r program.Ref, n int) nn.Value {
	s := l.Slot(r)
	if s == nil {
		return nn.Value{}
	}
	return nn.Value{Shape: append([]int{n}, s.Shape...), Buf: m.Value(l.Program, r, program.Dims{N: n, Steps: 1})}
}

// Rates is each IF layer's mean firing rate (spikes per neuron per step)
// after t steps of a run of l on m for a batch of n; l must count them
// (lower.SNNOptions.Rates).
func Rates(m *program.Machine, l *lower.Lowered, n, t int) ([]float64, error) {
	switch {
	case m == nil || m.Backend() == nil:
		return nil, fmt.Errorf("no machine that ran the SNN (nil)")
	case l == nil || l.SNN == nil:
		return nil, fmt.Errorf("not a program that simulates an SNN (lower.Simulation makes one)")
	case n < 1 || t < 1:
		return nil, fmt.Errorf("firing rates over %d samples and %d steps", n, t)
	}
	var out []float64
	for k, r := range l.SNN.IFCounts {
		slot := l.Slot(r)
		if slot == nil {
			name := fmt.Sprint(k)
			if k < len(l.SNN.IFNames) {
				name = l.SNN.IFNames[k]
			}
			return nil, fmt.Errorf("the firing rate of IF layer %s was not counted", name)
		}
		s, err := m.Backend().Sum(m.Value(l.Program, r, program.Dims{N: n, Steps: 1}))
		if err != nil {
			return nil, err
		}
		out = append(out, s/(float64(n)*float64(slot.Numel())*float64(t)))
	}
	return out, nil
}

// CountSynOps makes every later Run count synaptic operations: for each
// layer with weights (Conv2d, Linear) run at every step, the sum over its
// inputs of input × fan-out (nn.FanOut). Its inputs are spikes (0 or 1,
// after max-pooling their OR), so this counts the additions a
// neuromorphic chip performs; after average pooling, fractions of spikes
// count as fractions. The static input layer runs once on the analog
// input and does multiply-accumulates, not synaptic operations.
func (sim *Simulator) CountSynOps() error {
	if sim == nil || sim.snn == nil {
		return errNoSimulator
	}
	if sim.synOps {
		return nil
	}
	sim.synOps = true
	clear(sim.programs)
	_, err := sim.program(variant{rates: true})
	return err
}

// SynOps is the number of synaptic operations of the last Run so far (all
// samples together), per layer with weights, with the layers' names; nil
// unless CountSynOps was called.
func (sim *Simulator) SynOps() (names []string, ops []float64) {
	if sim.cur == nil || sim.m == nil {
		return nil, nil
	}
	return SynOps(sim.m, sim.cur)
}

// SynOps is the synaptic operations counted by the program l on m since
// its last run began, per layer, with the layers' names.
func SynOps(m *program.Machine, l *lower.Lowered) (names []string, ops []float64) {
	if m == nil || l == nil || l.SNN == nil {
		return nil, nil
	}
	for k, node := range l.SNN.SynNodes {
		name := ""
		if k < len(l.SNN.SynNames) {
			name = l.SNN.SynNames[k]
		}
		names = append(names, name)
		ops = append(ops, m.SynOps(node))
	}
	return names, ops
}

// Rates is each IF layer's mean firing rate (spikes per neuron per step) in
// the last Run, which must have counted them (rates), for its batch of n.
func (sim *Simulator) Rates(n int) ([]float64, error) {
	if sim == nil || sim.snn == nil {
		return nil, errNoSimulator
	}
	return sim.RatesAt(n, sim.snn.Config.Timesteps)
}

// RatesAt is Rates after t steps, for a read during RunAt.
func (sim *Simulator) RatesAt(n, t int) ([]float64, error) {
	if sim == nil || sim.m == nil {
		return nil, errNoSimulator
	}
	if sim.cur == nil {
		return nil, fmt.Errorf("no simulation ran")
	}
	return Rates(sim.m, sim.cur, n, t)
}

// Free gives the simulator's buffers back to the backend.
func (sim *Simulator) Free() {
	if sim.m != nil {
		sim.m.Free()
	}
}

// errNoSimulator is the error of a nil or zero Simulator's runs.
var errNoSimulator = fmt.Errorf("not a simulator (nil or zero: make one with NewSimulator)")

// OutputPotentials is the output IF layer's membrane potentials for a
// batch of n, [n, K]: after the last step of the last Run, or after step
// t during RunAt's read. It is the simulator's own state buffer (nothing
// is copied or allocated), valid until the next run; ties between equal
// counts are broken by it (results.MembraneMax).
// The zero Value before any run.
func (sim *Simulator) OutputPotentials(n int) nn.Value { return Potentials(sim.m, sim.cur, n) }

// OutputShape is the per-sample shape of the counts, [K] (nil for a zero
// Simulator).
func (sim *Simulator) OutputShape() []int {
	l, err := sim.program(variant{rates: true})
	if err != nil {
		return nil
	}
	if s := l.Slot(l.SNN.Counts); s != nil {
		return s.Shape
	}
	return nil
}

// IFNames names the IF layers in the order Rates lists them: the ReLU each
// replaces, then "output".
func (sim *Simulator) IFNames() []string {
	if sim.snn == nil {
		return nil
	}
	var names []string
	for _, nd := range sim.snn.Nodes {
		if nd.IF {
			names = append(names, nd.Name())
		}
	}
	return names
}
