package lower

import (
	"slices"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/program"
)

// HalfSpikesRule names the 16-bit spikes rewrite in a program's list of
// rewrites.
const HalfSpikesRule = "16-bit spikes and currents around convolutions and linear layers"

// HalfPreferrer is a backend that asks for 16-bit spikes (the CUDA
// backend with its HalfSpikes option): the runners lower their programs
// with Options.HalfSpikes as it says.
type HalfPreferrer interface {
	HalfSpikes() bool
}

// PrefersHalfSpikes reports whether be, or the backend it wraps (as
// PrefersChannelsLast unwraps), is a HalfPreferrer that asks for 16-bit
// spikes.
func PrefersHalfSpikes(be compute.Backend) bool {
	return prefers(be, HalfPreferrer.HalfSpikes)
}

// WithHalfSpikes lowers with Options.HalfSpikes set to on.
func WithHalfSpikes(on bool) Setting {
	return func(o *Options) { o.HalfSpikes = on }
}

// halfSpikes stores in 16 bits (program.F16) the spikes an IF layer writes
// for a convolution or a linear layer in the SNN's time steps, and that
// layer's output currents, where nothing else touches them: the layer
// then runs on binary16 spikes and a binary16 copy of its weight (a
// Convert op before it in the pass), sums in float32 and rounds its
// output once (compute.ConvGeom.Elem; for a linear layer its operands'
// type), and its readers — the per-step BatchNorm statistics and the IF
// layer that takes the currents — read binary16 values. Spikes are exact
// in 16 bits; the weight and the currents are rounded, so this changes
// what the SNN computes (by at most half a unit of binary16's last place
// in each weight and current), unlike the rules. It applies where a layer
// without a bias (after FuseBiasIF) reads spikes that one IF layer writes
// — directly, through a view (a flatten), or through a Transpose that
// alone reads them (channels-last's change of layout before a linear
// layer) — and that the layer alone reads (ops counting synaptic
// operations get a float32 copy: floatCopies), and writes currents that
// only BatchNormStats and an IF layer read; none of these values is kept.
// It returns how many layers it changed.
func halfSpikes(p *program.Program) int {
	if _, err := p.Plan(); err != nil {
		return 0
	}
	places := 0
	halves := map[program.Ref]program.Ref{} // a weight's 16-bit copy, per pass
	for k, ps := range p.Passes {
		if ps.Kind != program.SNNChunk {
			continue
		}
		clear(halves)
		for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
			c, ok := halfCandidate(p.Ops[i])
			if !ok {
				continue
			}
			in := spikeSlots(p, i, c.x)
			if in == nil || !halfCurrentsOut(p, i, c.y) {
				continue
			}
			w, ok := halves[p.Root(c.w)]
			if !ok {
				s := p.Slot(c.w)
				w = p.AddSlot(program.Slot{Name: s.Name + ".f16", Kind: program.Value, Shape: slices.Clone(s.Shape), Rate: program.Once,
					Layout: s.Layout, Elem: program.F16, Alias: program.None})
				if p.Insert(k, i, &program.Convert{Dst: w, Src: c.w}) != nil {
					continue // not reached: op i lies in pass k
				}
				halves[p.Root(c.w)] = w
				i++
			}
			for _, r := range in {
				p.SetElem(r, program.F16)
			}
			p.SetElem(c.y, program.F16)
			c.useHalf(w)
			i += floatCopies(p, c.x, i)
			places++
		}
	}
	return places
}

// halfLayer is a layer over spikes that halfSpikes may store in 16 bits:
// its input, output and weight, and how it takes the weight's binary16
// copy.
type halfLayer struct {
	x, y, w program.Ref
	useHalf func(w program.Ref)
}

// halfCandidate is op as a halfLayer: a float32 convolution or linear
// layer without a bias.
func halfCandidate(op program.Op) (halfLayer, bool) {
	switch o := op.(type) {
	case *program.Conv2d:
		if o.Bias == program.None && o.G.Elem == program.F32 {
			return halfLayer{o.X, o.Y, o.W, func(w program.Ref) { o.W, o.G.Elem = w, program.F16 }}, true
		}
	case *program.Linear:
		if o.Bias == program.None {
			return halfLayer{o.X, o.Y, o.W, func(w program.Ref) { o.W = w }}, true
		}
	}
	return halfLayer{}, false
}

// plainValue reports whether r is a value of its own: unaliased, not kept
// for the caller.
func plainValue(p *program.Program, r program.Ref) bool {
	s := p.Slot(r)
	return s != nil && s.Kind == program.Value && !s.Keep && unaliased(p, r)
}

// unaliased reports whether slot r is memory of its own: not a view,
// viewed by no slot.
func unaliased(p *program.Program, r program.Ref) bool {
	s := p.Slot(r)
	if s == nil || s.Alias != program.None {
		return false
	}
	for j := range p.Slots {
		if p.Slots[j].Alias == r {
			return false
		}
	}
	return true
}

// writers lists the ops that write any of the slots rs themselves (for
// unaliased slots, which no view reaches, or every slot of a memory:
// family).
func writers(p *program.Program, rs ...program.Ref) []int {
	var out []int
	for i, op := range p.Ops {
		if _, w := op.Operands(); slices.ContainsFunc(w, func(r program.Ref) bool { return slices.Contains(rs, r) }) {
			out = append(out, i)
		}
	}
	return out
}

// floatCopies gives each op counting synaptic operations over spikes x
// or its views (program.SynOps, whose matrix product takes float32) a
// float32 copy of them, converted just before it, and returns how many
// ops it put before op i.
func floatCopies(p *program.Program, x program.Ref, i int) int {
	readers, before := p.Readers(x), 0
	for j := len(readers) - 1; j >= 0; j-- {
		r := readers[j]
		so, ok := p.Ops[r].(*program.SynOps)
		if !ok || p.Root(so.X) != p.Root(x) {
			continue
		}
		s := p.Slot(so.X)
		f := p.AddSlot(program.Slot{Name: s.Name + ".f32", Kind: program.Value, Shape: slices.Clone(s.Shape), Rate: s.Rate, Layout: s.Layout,
			Elem: program.F32, Alias: program.None})
		if p.Insert(p.PassOf(r), r, &program.Convert{Dst: f, Src: so.X}) != nil {
			continue // not reached: op r lies in the pass PassOf names
		}
		so.X = f
		if r < i {
			before++
		}
	}
	return before
}

// spikeSlots returns the slots to store in 16 bits where x, which op i
// reads, is spikes that one IF layer writes and that op i alone reads,
// besides ops counting synaptic operations (floatCopies): x's memory and
// its views, and where a Transpose writes that memory from the IF layer's
// spikes (read by the Transpose alone), those too. It returns nil where x
// is not such spikes.
func spikeSlots(p *program.Program, i int, x program.Ref) []program.Ref {
	in := family(p, x)
	readers := p.Readers(x)
	if in == nil || !slices.Contains(readers, i) {
		return nil
	}
	for _, r := range readers {
		if so, ok := p.Ops[r].(*program.SynOps); r != i && (!ok || p.Root(so.X) != p.Root(x)) {
			return nil
		}
	}
	w := writers(p, in...)
	if len(w) != 1 {
		return nil
	}
	root := p.Root(x)
	switch o := p.Ops[w[0]].(type) {
	case *program.IF:
		if o.Spikes == root {
			return in
		}
	case *program.Transpose:
		src := family(p, o.X)
		if sw := writers(p, src...); o.Y == root && src != nil && len(sw) == 1 && slices.Equal(p.Readers(o.X), w) {
			if f, ok := p.Ops[sw[0]].(*program.IF); ok && f.Spikes == o.X && p.Root(o.X) == o.X {
				return append(in, src...)
			}
		}
	}
	return nil
}

// family is the memory of slot x — its root and every view of it — where
// all of it is values that no one keeps; nil otherwise.
func family(p *program.Program, x program.Ref) []program.Ref {
	root := p.Root(x)
	var out []program.Ref
	for j := range p.Slots {
		r := program.Ref(j)
		if p.Root(r) != root {
			continue
		}
		if s := p.Slot(r); s.Kind != program.Value || s.Keep {
			return nil
		}
		out = append(out, r)
	}
	return out
}

// halfCurrentsOut reports whether y, which layer op i writes, is read
// only by BatchNormStats and by an IF layer as its (per-step) input, and
// written by op i alone.
func halfCurrentsOut(p *program.Program, i int, y program.Ref) bool {
	if !plainValue(p, y) || !slices.Equal(writers(p, y), []int{i}) {
		return false
	}
	readers := p.Readers(y)
	if len(readers) == 0 {
		return false
	}
	for _, j := range readers {
		switch o := p.Ops[j].(type) {
		case *program.BatchNormStats:
			if o.X != y {
				return false
			}
		case *program.IF:
			if o.In != y || o.Constant {
				return false
			}
		default:
			return false
		}
	}
	return true
}
