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
}

// stage is one dynamic layer of the simulation.
type stage struct {
	layer     nn.Layer // nil for an IF layer
	in, out   []int    // per-sample shapes
	aux       compute.Buffer
	fused     bool           // a BatchNorm whose scale and shift the next IF layer applies
	v, counts compute.Buffer // IF layers: potentials and spike counts, [capacity·N]
}

// NewSimulator plans snn on be for batches of up to capacity inputs. The
// SNN must be bound to be (Network.Bind).
func NewSimulator(be compute.Backend, snn *Network, capacity int) (*Simulator, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("batch capacity must be at least 1, got %d", capacity)
	}
	steps := min(max(be.StepsAtOnce(snn.Config.Timesteps), 1), snn.Config.Timesteps)
	sim := &Simulator{snn: snn, be: be, capacity: capacity, steps: steps}
	static, err := nn.NewExecutor(be, snn.Static, snn.ANN.InputShape, capacity, false)
	if err != nil {
		return nil, fmt.Errorf("SNN static input layer: %w", err)
	}
	sim.static = static
	alloc := func(n int, what string) (compute.Buffer, error) {
		b, err := be.Alloc(n)
		if err != nil {
			return nil, fmt.Errorf("SNN %s, batch %d: %w", what, capacity, err)
		}
		sim.owned = append(sim.owned, b)
		return b, nil
	}
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
	be, cfg := sim.be, sim.snn.Config
	n := x.N()
	if n > sim.capacity {
		panic(fmt.Sprintf("spiking: batch of %d for a simulator planned for %d", n, sim.capacity))
	}
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
	for t0 := 0; t0 < cfg.Timesteps; t0 += sim.steps {
		tc := min(sim.steps, cfg.Timesteps-t0)
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
			case isView(st.layer):
				out.Buf = cur.Buf
			default:
				out.Buf = sim.pingpong[next].Slice(0, rows*nn.Numel(st.out))
				m := mode
				m.Spikes = binary
				st.layer.Forward(be, cur, out, st.aux, m)
				binary = binary && keepsSpikes(st.layer)
			}
			if out.Buf != cur.Buf {
				next = 1 - next
			}
			cur = out
		}
	}
	return nn.Value{Shape: append([]int{n}, sim.outShape...), Buf: sim.outCount.Slice(0, n*nn.Numel(sim.outShape))}
}

// Rates is each IF layer's mean firing rate (spikes per neuron per step) in
// the last Run, which must have counted them (rates), for its batch of n.
func (sim *Simulator) Rates(n int) ([]float64, error) {
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
		out = append(out, s/float64(size*sim.snn.Config.Timesteps))
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

func isView(l nn.Layer) bool {
	_, ok := l.(*nn.Flatten)
	return ok
}

// keepsSpikes reports whether a layer maps spikes to spikes: max-pooling
// (their OR), flattening, zero padding.
func keepsSpikes(l nn.Layer) bool {
	switch l := l.(type) {
	case *nn.Pool2d:
		return l.Max
	case *nn.Flatten:
		return true
	case *nn.Pad2d:
		return l.Value == 0
	}
	return false
}

// OutputShape is the per-sample shape of the counts, [K].
func (sim *Simulator) OutputShape() []int { return sim.outShape }
