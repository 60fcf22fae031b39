package program

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/proxykit/proxykit/compute"
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

// Kernel implements Op.
func (o *Transpose) Kernel() string { return "Transpose" }

// Operands implements Op.
func (o *Transpose) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Y) }

// Detail implements Op.
func (o *Transpose) Detail() string {
	return fmt.Sprintf("%d×[%d %d] → [%d %d]", o.count(), o.Rows, o.Cols, o.Cols, o.Rows)
}

// count is the matrices per row: Count, 1 where it is 0 (an activation's).
func (o *Transpose) count() int {
	if o.Count == 0 {
		return 1
	}
	return o.Count
}

// Run implements Op. Sizes no kernel takes — negative, or more values
// than compute.MaxValues — and operands shorter than the matrices are an
// error of the run, and nothing runs: a backend's kernel (the CUDA
// backend's) trusts its sizes.
func (o *Transpose) Run(m *Machine) {
	rows := m.Rows(o.Rate)
	size, err := compute.Elements(rows, o.count(), o.Rows, o.Cols)
	if err != nil {
		m.fail(fmt.Errorf("program: Transpose of %d rows × %d×[%d %d]: %w", rows, o.count(), o.Rows, o.Cols, err))
		return
	}
	x, y := m.Buf(o.X), m.Buf(o.Y)
	for _, b := range []struct {
		name string
		r    Ref
		buf  compute.Buffer
	}{{"X", o.X, x}, {"Y", o.Y, y}} {
		if b.buf == nil {
			m.fail(fmt.Errorf("program: Transpose without its operand %s (slot %d)", b.name, b.r))
			return
		}
		if b.buf.Len() < size {
			m.fail(fmt.Errorf("program: Transpose of %d rows × %d×[%d %d] needs %d values; %s (%s) holds %d", rows, o.count(), o.Rows, o.Cols, size, b.name, m.p.Slots[b.r].Name, b.buf.Len()))
			return
		}
	}
	m.be.Transpose(rows*o.count(), o.Rows, o.Cols, x, y)
}

// Planes reports whether slot r's rows are [C H W] values whose two
// layouts differ — C > 1 and H·W > 1 —, and its C and H·W. Its layout
// matters only then; other slots are the same in either. A ref that names
// no slot has no [C H W] values (0, 0, false).
func (p *Program) Planes(r Ref) (c, hw int, ok bool) {
	s := p.Slot(r)
	if s == nil || len(s.Shape) != 3 {
		return 0, 0, false
	}
	c, hw = s.Shape[0], mul(s.Shape[1], s.Shape[2]) // −1 for sizes no kernel takes
	return c, hw, c > 1 && hw > 1
}

// Neutral reports whether slot r's rows are [C H W] values that are the
// same in either layout (C = 1 or H·W = 1); false for a ref that names
// no slot.
func (p *Program) Neutral(r Ref) bool {
	s := p.Slot(r)
	return s != nil && len(s.Shape) == 3 && (s.Shape[0] == 1 || mul(s.Shape[1], s.Shape[2]) == 1)
}

// Reshaped reports whether slot r is a view of its root with another
// shape (a flattening view, or a [C H W] view of a flat value): it sees
// its root's values in NCHW order, the order of every shape's values.
// False for a ref that names no slot, or whose views lead to none.
func (p *Program) Reshaped(r Ref) bool {
	s, root := p.Slot(r), p.Slot(p.Root(r))
	return s != nil && root != nil && !slices.Equal(s.Shape, root.Shape)
}

// LaidOut is the layout slot r's values lie in: its memory's (its
// root's), NCHW for a reshaping view and for a ref that names no slot.
func (p *Program) LaidOut(r Ref) Layout {
	root := p.Slot(p.Root(r))
	if root == nil || p.Reshaped(r) {
		return NCHW
	}
	return norm(root.Layout)
}

// Computes is the layout op computes its activations in, and them: a
// Laid op's own; a LayoutFree op's that of the first activation it writes
// with [C H W] rows (Planes), else of the first it reads; NCHW, and none,
// for any other op (nil too).
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
// before the op at i, shifting the passes after it. It refuses, changing
// nothing, a pass or position the program has not, a nil op and a nil
// program.
func (p *Program) Insert(k, i int, ops ...Op) error {
	if p == nil {
		return errNoProgram
	}
	if k < 0 || k >= len(p.Passes) {
		return fmt.Errorf("program: inserting into pass %d of a program of %d", k, len(p.Passes))
	}
	if ps := p.Passes[k]; i < ps.Lo || i > ps.Hi || i < 0 || i > len(p.Ops) {
		return fmt.Errorf("program: inserting at op %d into pass %d, ops %d to %d of %d", i, k, ps.Lo, ps.Hi, len(p.Ops))
	}
	for j, op := range ops {
		if op == nil {
			return fmt.Errorf("program: inserting op %d of %d at op %d: no op (nil)", j, len(ops), i)
		}
	}
	n := len(ops)
	p.Ops = slices.Insert(p.Ops, i, ops...)
	p.Passes[k].Hi += n
	for j := k + 1; j < len(p.Passes); j++ {
		p.Passes[j].Lo += n
		p.Passes[j].Hi += n
	}
	p.invalidate()
	return nil
}

// Substitute makes op use slot to wherever it uses slot from (every Ref
// field of the op's struct) and returns how many operands it changed. It
// refuses an op that is not a non-nil pointer to a struct (every op of
// this package is one), changing nothing.
func Substitute(op Op, from, to Ref) (int, error) {
	v := reflect.ValueOf(op)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return 0, fmt.Errorf("program: substituting slot %d in op %T, which is not a pointer to a struct", from, op)
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
	return n, nil
}

// AddSlot adds a slot to the table (a rewrite's new value) and returns it
// (None for a nil program). Plan refuses a slot it cannot have.
func (p *Program) AddSlot(s Slot) Ref {
	if p == nil {
		return None
	}
	p.Slots = append(p.Slots, s)
	p.invalidate()
	return Ref(len(p.Slots) - 1)
}
