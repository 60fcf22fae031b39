package spiking

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
)

// Source is where an input of a branching SNN's dynamic entry comes from:
// the output of another dynamic entry, or of a static layer (−1: the
// network's input), which is the same at every step.
type Source struct {
	Static bool
	Index  int
}

// newGraph builds the SNN of a branching ANN. As for a chain, the layers
// before the first ReLU (in the ANN's order) are the static input layer,
// every ReLU becomes an IF layer and one more IF layer reads the last
// layer. An IF layer may read a static layer (a constant current); every
// other dynamic layer must read dynamic ones, so that the static part's
// outputs need not be repeated at every step.
func newGraph(ann *nn.Network, cfg Config) (*Network, error) {
	s := &Network{ANN: ann, Config: cfg}
	layers, inputs := ann.Layers, ann.Inputs
	if n := len(layers); n > 0 {
		if last := layers[n-1]; last.Role().Head {
			s.Dropped = last.Kind()
			layers, inputs = layers[:n-1], inputs[:n-1]
		}
	}
	first := len(layers)
	for i, l := range layers {
		if l.Role().Head {
			return nil, fmt.Errorf("layer %d (%s %q): a %s may only end the network", i, l.Kind(), l.Name(), l.Kind())
		}
		if l.Role().Neuron && first == len(layers) {
			first = i
		}
	}
	clone := func(l nn.Layer) nn.Layer {
		if bn, ok := l.(*nn.BatchNorm2d); ok {
			return bn.CloneWithOwnStats()
		}
		return l
	}
	for i := 0; i < first; i++ {
		s.Static = append(s.Static, clone(layers[i]))
		s.StaticInputs = append(s.StaticInputs, inputs[i])
	}
	source := func(j int) Source {
		if j < first {
			return Source{Static: true, Index: j}
		}
		return Source{Index: j - first}
	}
	for i := first; i < len(layers); i++ {
		l := layers[i]
		srcs := make([]Source, len(inputs[i]))
		for k, j := range inputs[i] {
			srcs[k] = source(j)
		}
		if l.Role().Neuron {
			s.Dynamic = append(s.Dynamic, &IF{LayerName: l.Name()})
		} else {
			for _, src := range srcs {
				if src.Static {
					return nil, fmt.Errorf("layer %d (%s %q) reads the static input layer (before the first ReLU) and runs at every step; proxykit's SNN lets only IF layers read the static part", i, l.Kind(), l.Name())
				}
			}
			s.Dynamic = append(s.Dynamic, clone(l))
		}
		s.DynInputs = append(s.DynInputs, srcs)
	}
	s.Dynamic = append(s.Dynamic, &IF{LayerName: "output"})
	s.DynInputs = append(s.DynInputs, []Source{source(len(layers) - 1)})
	return s, nil
}

// newGraphSimulator plans a branching SNN: every dynamic entry writes its
// own output buffer, [capacity·steps·N], which the entries reading it use.
func newGraphSimulator(be compute.Backend, snn *Network, capacity, steps int) (*Simulator, error) {
	sim := &Simulator{snn: snn, be: be, capacity: capacity, steps: steps, graph: true}
	static, err := nn.NewGraphExecutor(be, snn.Static, snn.StaticInputs, snn.ANN.InputShape, capacity, false)
	if err != nil {
		return nil, fmt.Errorf("SNN static input layer: %w", err)
	}
	sim.static = static
	rows := capacity * steps
	alloc := sim.alloc
	for i, d := range snn.Dynamic {
		st := stage{srcs: snn.DynInputs[i]}
		ins := make([][]int, len(st.srcs))
		for k, src := range st.srcs {
			if src.Static {
				ins[k] = static.NodeShape(src.Index)
			} else {
				ins[k] = sim.stages[src.Index].out
			}
		}
		st.in = ins[0]
		switch l := d.(type) {
		case *IF:
			st.out = st.in
			n := capacity * nn.Numel(st.in)
			if st.v, err = alloc(n, "potentials of IF "+l.LayerName); err == nil {
				st.counts, err = alloc(n, "spike counts of IF "+l.LayerName)
			}
			st.binary = true
		case nn.Join:
			st.layer = l
			st.out, err = l.JoinShape(ins)
			if err == nil {
				st.binary = l.Role().KeepsSpikes
				for _, src := range st.srcs {
					st.binary = st.binary && sim.stages[src.Index].binary
				}
			}
		case nn.Layer:
			st.layer = l
			if st.out, err = l.OutputShape(st.in); err == nil {
				st.binary = sim.stages[st.srcs[0].Index].binary && l.Role().KeepsSpikes
				if k := l.AuxSize(st.in, steps); k > 0 {
					st.aux, err = alloc(k, "workspace of "+l.Name())
				}
			}
		}
		if err != nil {
			sim.Free()
			return nil, fmt.Errorf("SNN entry %d: %w", i, err)
		}
		if nn.Numel(st.out) > (1<<62)/4/rows {
			sim.Free()
			return nil, fmt.Errorf("SNN entry %d: %d values per sample are too many", i, nn.Numel(st.out))
		}
		if st.outBuf, err = alloc(rows*nn.Numel(st.out), "activations"); err != nil {
			sim.Free()
			return nil, err
		}
		sim.stages = append(sim.stages, st)
	}
	last := sim.stages[len(sim.stages)-1]
	sim.outShape = last.out
	sim.outCount = last.counts
	return sim, nil
}

// chunkGraph runs tc time steps of a branching SNN's dynamic entries, each
// on its sources: the outputs of earlier entries this chunk, or static
// layers' outputs (constant currents, read by IF layers only).
func (sim *Simulator) chunkGraph(n, tc int, batchStats, rates bool) {
	be, cfg := sim.be, sim.snn.Config
	last := len(sim.stages) - 1
	mode := nn.Mode{BatchStats: batchStats, Groups: tc}
	rows := tc * n
	value := func(i int) nn.Value {
		st := sim.stages[i]
		return nn.Value{Shape: append([]int{rows}, st.out...), Buf: st.outBuf.Slice(0, rows*nn.Numel(st.out))}
	}
	for i, st := range sim.stages {
		out := value(i)
		switch {
		case st.layer == nil:
			a := compute.IFArgs{Steps: tc, N: n * nn.Numel(st.in), V: st.v.Slice(0, n*nn.Numel(st.in)), Spikes: out.Buf,
				Threshold: cfg.Threshold, Reset: cfg.Reset}
			if src := st.srcs[0]; src.Static {
				a.In, a.Constant = sim.staticValue(src.Index, n).Buf, true
			} else {
				a.In = value(src.Index).Buf
			}
			if rates || i == last {
				a.Counts = st.counts.Slice(0, a.N)
			}
			be.IF(a)
		default:
			xs := make([]nn.Value, len(st.srcs))
			binary := true
			for k, src := range st.srcs {
				xs[k] = value(src.Index)
				binary = binary && sim.stages[src.Index].binary
			}
			if j, ok := st.layer.(nn.Join); ok {
				j.JoinForward(be, xs, out)
				continue
			}
			if st.fanOut != nil {
				sim.countSynOps(i, xs[0], rows, binary)
			}
			if st.layer.Role().View {
				be.Copy(out.Buf, xs[0].Buf)
				continue
			}
			m := mode
			m.Spikes = binary
			st.layer.Forward(be, xs[0], out, st.aux, m)
		}
	}
}

// staticValue is static node j's output (−1: the network's input) of the
// current run, [n, shape...].
func (sim *Simulator) staticValue(j, n int) nn.Value {
	if j < 0 {
		return sim.input
	}
	return sim.static.Output(j)
}
