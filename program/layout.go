package program

import (
	"fmt"
	"reflect"
	"slices"
)

// Channels-last: a slot's Layout says how its [C H W] rows lie in memory,
// and every op reads and writes them in a layout its kernel takes. Ops
// say which by the interfaces below: an op whose kernel takes a layout
// argument (convolutions, pooling, BatchNorm, IF) is Laid, an elementwise
// op that is indifferent to it (ReLU, AddTo, Copy, Fill) LayoutFree; any
// other op reads and writes NCHW only (a linear layer's weights are in
// NCHW order, a flattening view sees NCHW order). Where the layouts of a
// slot and of an op that uses it differ, a Transpose op in between makes
// a copy in the other layout (package lower's channels-last rewrite puts
// them there); Check holds a program to that.

// Laid is an op whose kernel takes the layout of its [C H W] operands
// (compute.ConvGeom.Layout, compute.PoolGeom.Layout, the BatchNorm
// kernels' layout, compute.IFArgs.Layout).
type Laid interface {
	Op
	// Activations lists the operands laid out in the op's layout.
	Activations() []Ref
	// LayoutOf is the layout the op computes in; SetLayout sets it.
	LayoutOf() Layout
	SetLayout(l Layout)
}

// LayoutFree is an elementwise op, indifferent to the layout: its
// Activations must share one, whichever it is.
type LayoutFree interface {
	Op
	Activations() []Ref
}

func (o *Conv2d) Activations() []Ref         { return refs(o.X, o.Y) }
func (o *Conv2d) LayoutOf() Layout           { return o.G.Layout }
func (o *Conv2d) SetLayout(l Layout)         { o.G.Layout = l }
func (o *Conv2dGrad) Activations() []Ref     { return refs(o.X, o.DY, o.DX) }
func (o *Conv2dGrad) LayoutOf() Layout       { return o.G.Layout }
func (o *Conv2dGrad) SetLayout(l Layout)     { o.G.Layout = l }
func (o *Pool) Activations() []Ref           { return refs(o.X, o.Y) }
func (o *Pool) LayoutOf() Layout             { return o.G.Layout }
func (o *Pool) SetLayout(l Layout)           { o.G.Layout = l }
func (o *PoolGrad) Activations() []Ref       { return refs(o.X, o.DY, o.DX) }
func (o *PoolGrad) LayoutOf() Layout         { return o.G.Layout }
func (o *PoolGrad) SetLayout(l Layout)       { o.G.Layout = l }
func (o *BatchNormStats) Activations() []Ref { return refs(o.X) }
func (o *BatchNormStats) LayoutOf() Layout   { return o.Layout }
func (o *BatchNormStats) SetLayout(l Layout) { o.Layout = l }
func (o *ChannelAffine) Activations() []Ref  { return refs(o.X, o.Y) }
func (o *ChannelAffine) LayoutOf() Layout    { return o.Layout }
func (o *ChannelAffine) SetLayout(l Layout)  { o.Layout = l }
func (o *BatchNormGrad) Activations() []Ref  { return refs(o.X, o.DY, o.DX) }
func (o *BatchNormGrad) LayoutOf() Layout    { return o.Layout }
func (o *BatchNormGrad) SetLayout(l Layout)  { o.Layout = l }
func (o *IF) Activations() []Ref             { return refs(o.In, o.V, o.Spikes, o.Counts) }
func (o *IF) LayoutOf() Layout               { return o.Layout }
func (o *IF) SetLayout(l Layout)             { o.Layout = l }
func (o *ReLU) Activations() []Ref           { return refs(o.X, o.Y) }
func (o *ReLUGrad) Activations() []Ref       { return refs(o.Y, o.DY, o.DX) }
func (o *AddTo) Activations() []Ref          { return refs(o.Dst, o.Src) }
func (o *Copy) Activations() []Ref           { return refs(o.Dst, o.Src) }
func (o *Fill) Activations() []Ref           { return refs(o.Dst) }

var (
	_ Laid       = (*Conv2d)(nil)
	_ Laid       = (*Conv2dGrad)(nil)
	_ Laid       = (*Pool)(nil)
	_ Laid       = (*PoolGrad)(nil)
	_ Laid       = (*BatchNormStats)(nil)
	_ Laid       = (*ChannelAffine)(nil)
	_ Laid       = (*BatchNormGrad)(nil)
	_ Laid       = (*IF)(nil)
	_ LayoutFree = (*ReLU)(nil)
	_ LayoutFree = (*ReLUGrad)(nil)
	_ LayoutFree = (*AddTo)(nil)
	_ LayoutFree = (*Copy)(nil)
	_ LayoutFree = (*Fill)(nil)
)

// Transpose writes, for each of the run's rows at Rate times Count, its
// [Rows, Cols] matrix of X transposed into Y (compute.Backend.Transpose):
// an activation from NCHW ([C, H·W]: Rows C, Cols H·W) to NHWC ([H·W, C])
// or back, a convolution's weight [O][C/G, KH·KW] to channels-last
// [O][KH·KW, C/G] (Rate Once, Count O) or its gradient back.
type Transpose struct {
	Rate              Rate
	Count, Rows, Cols int
	X, Y              Ref
}

func (o *Transpose) Kernel() string             { return "Transpose" }
func (o *Transpose) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Y) }
func (o *Transpose) Detail() string {
	return fmt.Sprintf("%d×[%d %d] → [%d %d]", max(o.Count, 1), o.Rows, o.Cols, o.Cols, o.Rows)
}
func (o *Transpose) Run(m *Machine) {
	m.be.Transpose(m.Rows(o.Rate)*max(o.Count, 1), o.Rows, o.Cols, m.Buf(o.X), m.Buf(o.Y))
}

// Planes reports whether slot r's rows are [C H W] values whose two
// layouts differ — C > 1 and H·W > 1 —, and its C and H·W. Its layout
// matters only then; other slots are the same in either.
func (p *Program) Planes(r Ref) (c, hw int, ok bool) {
	s := &p.Slots[r]
	if len(s.Shape) != 3 {
		return 0, 0, false
	}
	c, hw = s.Shape[0], s.Shape[1]*s.Shape[2]
	return c, hw, c > 1 && hw > 1
}

// Neutral reports whether slot r's rows are [C H W] values that are the
// same in either layout (C = 1 or H·W = 1).
func (p *Program) Neutral(r Ref) bool {
	s := &p.Slots[r]
	return len(s.Shape) == 3 && (s.Shape[0] == 1 || s.Shape[1]*s.Shape[2] == 1)
}

// Reshaped reports whether slot r is a view of its root with another
// shape (a flattening view, or a [C H W] view of a flat value): it sees
// its root's values in NCHW order, the order of every shape's values.
func (p *Program) Reshaped(r Ref) bool {
	return !slices.Equal(p.Slots[r].Shape, p.Slots[p.Root(r)].Shape)
}

// LaidOut is the layout slot r's values lie in: its memory's (its
// root's), NCHW for a reshaping view.
func (p *Program) LaidOut(r Ref) Layout {
	if p.Reshaped(r) {
		return NCHW
	}
	return norm(p.Slots[p.Root(r)].Layout)
}

// Computes is the layout op computes its activations in, and them: a
// Laid op's own; a LayoutFree op's that of the first activation it writes
// with [C H W] rows (Planes), else of the first it reads; NCHW, and none,
// for any other op.
func (p *Program) Computes(op Op) (Layout, []Ref) {
	switch o := op.(type) {
	case Laid:
		return norm(o.LayoutOf()), o.Activations()
	case LayoutFree:
		acts := o.Activations()
		_, writes := op.Operands()
		for _, rs := range [][]Ref{writes, acts} {
			for _, r := range rs {
				if _, _, ok := p.Planes(r); ok && slices.Contains(acts, r) {
					return p.LaidOut(r), acts
				}
			}
		}
		return NCHW, acts
	}
	return NCHW, nil
}

// LayoutWanted is the layout op needs its operand r in: the layout the op
// computes in for one of its activations, NCHW for any other operand (of
// an op without a channels-last kernel, say).
func (p *Program) LayoutWanted(op Op, r Ref) Layout {
	l, acts := p.Computes(op)
	if !slices.Contains(acts, r) {
		return NCHW
	}
	return l
}

// norm maps "" to NCHW.
func norm(l Layout) Layout {
	if l.Last() {
		return NHWC
	}
	return NCHW
}

// checkLayouts verifies that every op reads and writes each operand with
// [C H W] rows (Planes) in the layout its kernel takes (LayoutWanted),
// that no op uses a reshaping view of channels-last memory (it would see
// the values out of order), that an op computing channels-last has only
// activations with a [C H W] form, that a view says its memory's layout
// (a reshaping view NCHW), and that a Transpose between activations goes
// from one layout to the other with their sizes.
func (p *Program) checkLayouts() error {
	for r := range p.Slots {
		s := &p.Slots[r]
		if want := p.LaidOut(Ref(r)); s.Alias != None && norm(s.Layout) != want {
			return fmt.Errorf("view %s says %s, its values lie %s", s.Name, norm(s.Layout), want)
		}
	}
	for i, op := range p.Ops {
		if t, ok := op.(*Transpose); ok {
			if err := p.checkTranspose(i, t); err != nil {
				return err
			}
			continue
		}
		if l, acts := p.Computes(op); l == NHWC {
			for _, r := range acts {
				if _, _, ok := p.Planes(r); !ok && !p.Neutral(r) {
					return fmt.Errorf("op %d (%s) computes channels-last, but %s has no [C H W] form", i, op.Kernel(), p.Slots[r].Name)
				}
			}
		}
		reads, writes := op.Operands()
		for _, r := range append(reads, writes...) {
			root := p.Root(r)
			if _, _, ok := p.Planes(root); ok && p.Reshaped(r) && norm(p.Slots[root].Layout) == NHWC {
				return fmt.Errorf("op %d (%s) uses %s, a reshaping view of channels-last %s", i, op.Kernel(), p.Slots[r].Name, p.Slots[root].Name)
			}
			if _, _, ok := p.Planes(r); !ok {
				continue
			}
			if want, have := p.LayoutWanted(op, r), p.LaidOut(r); want != have {
				return fmt.Errorf("op %d (%s) uses %s, which is %s, in %s", i, op.Kernel(), p.Slots[r].Name, have, want)
			}
		}
	}
	return nil
}

// checkTranspose checks a Transpose between activations (slots with
// Planes; a weight's is not checked here).
func (p *Program) checkTranspose(i int, t *Transpose) error {
	cx, hx, okx := p.Planes(t.X)
	cy, hy, oky := p.Planes(t.Y)
	if !okx || !oky {
		return nil
	}
	lx, ly := p.LaidOut(t.X), p.LaidOut(t.Y)
	rows, cols := cx, hx // from NCHW
	if lx == NHWC {
		rows, cols = hx, cx
	}
	if lx == ly || cx != cy || hx != hy || t.Rows != rows || t.Cols != cols || max(t.Count, 1) != 1 {
		return fmt.Errorf("op %d (Transpose [%d %d]) from %s (%s) to %s (%s)", i, t.Rows, t.Cols, p.Slots[t.X].Name, lx, p.Slots[t.Y].Name, ly)
	}
	return nil
}

// Insert puts ops into pass k at position i (Lo ≤ i ≤ Hi of pass k),
// before the op at i, shifting the passes after it.
func (p *Program) Insert(k, i int, ops ...Op) {
	if k < 0 || k >= len(p.Passes) || i < p.Passes[k].Lo || i > p.Passes[k].Hi {
		panic(fmt.Sprintf("program: inserting at op %d into pass %d", i, k))
	}
	n := len(ops)
	p.Ops = slices.Insert(p.Ops, i, ops...)
	p.Passes[k].Hi += n
	for j := k + 1; j < len(p.Passes); j++ {
		p.Passes[j].Lo += n
		p.Passes[j].Hi += n
	}
	p.invalidate()
}

// Substitute makes op use slot to wherever it uses slot from (every Ref
// field of the op's struct) and returns how many operands it changed.
func Substitute(op Op, from, to Ref) int {
	v := reflect.ValueOf(op)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("program: op %T is not a pointer to a struct", op))
	}
	v = v.Elem()
	n := 0
	ref := reflect.TypeFor[Ref]()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Type() == ref && f.CanSet() && Ref(f.Int()) == from {
			f.SetInt(int64(to))
			n++
		}
	}
	return n
}

// AddSlot adds a slot to the table (a rewrite's new value) and returns it.
func (p *Program) AddSlot(s Slot) Ref {
	p.Slots = append(p.Slots, s)
	p.invalidate()
	return Ref(len(p.Slots) - 1)
}
