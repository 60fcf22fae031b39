package lower

import (
	"slices"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/program"
)

// HalfSpikesRule names the 16-bit spikes rewrite in a program's list of
// rewrites.
const HalfSpikesRule = "16-bit spikes and currents around convolutions"

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
// for a convolution in the SNN's time steps, and that convolution's
// output currents, where nothing else touches them: the convolution then
// runs on binary16 spikes and a binary16 copy of its weight (a Convert op
// before it in the pass), sums in float32 and rounds its output once
// (compute.ConvGeom.Elem), and its readers — the per-step BatchNorm
// statistics and the IF layer that takes the currents — read binary16
// values. Spikes are exact in 16 bits; the weight and the currents are
// rounded, so this changes what the SNN computes (by at most half a unit
// of binary16's last place in each weight and current), unlike the rules.
// It applies where a convolution without a bias (after FuseBiasIF) reads
// spikes that one IF layer writes and that convolution alone reads (ops
// counting synaptic operations get a float32 copy: floatCopies), and
// writes currents that only BatchNormStats and an IF layer read; none of
// the values is a view, viewed or kept. It returns how many convolutions
// it changed.
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
			o, ok := p.Ops[i].(*program.Conv2d)
			if !ok || o.Bias != program.None || o.G.Elem != program.F32 || !halfSpikesIn(p, i, o.X) || !halfCurrentsOut(p, i, o.Y) {
				continue
			}
			w, ok := halves[p.Root(o.W)]
			if !ok {
				s := p.Slot(o.W)
				w = p.AddSlot(program.Slot{Name: s.Name + ".f16", Kind: program.Value, Shape: slices.Clone(s.Shape), Rate: program.Once,
					Layout: s.Layout, Elem: program.F16, Alias: program.None})
				if p.Insert(k, i, &program.Convert{Dst: w, Src: o.W}) != nil {
					continue // not reached: op i lies in pass k
				}
				halves[p.Root(o.W)] = w
				i++
			}
			p.SetElem(o.X, program.F16)
			p.SetElem(o.Y, program.F16)
			o.W, o.G.Elem = w, program.F16
			i += floatCopies(p, o.X, i)
			places++
		}
	}
	return places
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

// writers lists the ops that write slot r itself (for unaliased slots,
// which no view reaches).
func writers(p *program.Program, r program.Ref) []int {
	var out []int
	for i, op := range p.Ops {
		if _, w := op.Operands(); slices.Contains(w, r) {
			out = append(out, i)
		}
	}
	return out
}

// floatCopies gives each op counting synaptic operations over spikes x
// (program.SynOps, whose matrix product takes float32) a float32 copy of
// them, converted just before it, and returns how many ops it put before
// op i.
func floatCopies(p *program.Program, x program.Ref, i int) int {
	readers, before := p.Readers(x), 0
	for j := len(readers) - 1; j >= 0; j-- {
		r := readers[j]
		so, ok := p.Ops[r].(*program.SynOps)
		if !ok {
			continue
		}
		s := p.Slot(x)
		f := p.AddSlot(program.Slot{Name: s.Name + ".f32", Kind: program.Value, Shape: slices.Clone(s.Shape), Rate: s.Rate, Layout: s.Layout,
			Elem: program.F32, Alias: program.None})
		if p.Insert(p.PassOf(r), r, &program.Convert{Dst: f, Src: x}) != nil {
			continue // not reached: op r lies in the pass PassOf names
		}
		so.X = f
		if r < i {
			before++
		}
	}
	return before
}

// halfSpikesIn reports whether x, which convolution op i reads, is spikes
// that one IF layer writes and op i reads, besides ops counting synaptic
// operations (floatCopies).
func halfSpikesIn(p *program.Program, i int, x program.Ref) bool {
	if !plainValue(p, x) {
		return false
	}
	readers := p.Readers(x)
	for _, r := range readers {
		if so, ok := p.Ops[r].(*program.SynOps); r != i && (!ok || so.X != x) {
			return false
		}
	}
	if !slices.Contains(readers, i) {
		return false
	}
	w := writers(p, x)
	if len(w) != 1 {
		return false
	}
	f, ok := p.Ops[w[0]].(*program.IF)
	return ok && f.Spikes == x
}

// halfCurrentsOut reports whether y, which convolution op i writes, is read
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
