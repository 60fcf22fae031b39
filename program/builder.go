package program

import "fmt"

// Builder makes a program: passes of ops over slots. Package lower drives
// it over a network's nodes; each layer kind's lowering emits its ops.
type Builder struct {
	p    *Program
	ext  map[Binding]Ref
	open bool
}

// NewBuilder starts an empty program for batches of up to capacity.N
// samples and capacity.Steps time steps at once.
func NewBuilder(capacity Dims) *Builder {
	return &Builder{p: &Program{Capacity: capacity}, ext: map[Binding]Ref{}}
}

// Slot adds a slot to the table (Alias None unless it is a view).
func (b *Builder) Slot(s Slot) Ref {
	b.p.Slots = append(b.p.Slots, s)
	return Ref(len(b.p.Slots) - 1)
}

// Value adds a Value slot: rows of shape at rate.
func (b *Builder) Value(name string, shape []int, rate Rate) Ref {
	return b.Slot(Slot{Name: name, Kind: Value, Shape: append([]int(nil), shape...), Rate: rate, Alias: None})
}

// View adds a slot that is another's memory under another shape (of the
// same number of values).
func (b *Builder) View(name string, of Ref, shape []int) Ref {
	src := b.p.Slots[of]
	return b.Slot(Slot{Name: name, Kind: src.Kind, Shape: append([]int(nil), shape...), Rate: src.Rate, Alias: of,
		Layout: src.Layout, Elem: src.Elem})
}

// Input adds an Input slot, which the caller binds before running.
func (b *Builder) Input(name string, shape []int, rate Rate) Ref {
	return b.Slot(Slot{Name: name, Kind: Input, Shape: append([]int(nil), shape...), Rate: rate, Alias: None})
}

// External returns the slot of memory kept outside the program (a
// parameter, a gradient, running statistics), one slot per binding.
func (b *Builder) External(name string, shape []int, bind Binding) Ref {
	if r, ok := b.ext[bind]; ok {
		return r
	}
	r := b.Slot(Slot{Name: name, Kind: External, Shape: append([]int(nil), shape...), Rate: Once, Alias: None, Bind: bind})
	b.ext[bind] = r
	return r
}

// Keep marks r as read by the caller after the program ends.
func (b *Builder) Keep(r Ref) { b.p.Slots[r].Keep = true }

// Shape is slot r's row shape.
func (b *Builder) Shape(r Ref) []int { return b.p.Slots[r].Shape }

// SameMemory reports whether two slots are the same memory (one is a
// view of the other, or both of a third).
func (b *Builder) SameMemory(x, y Ref) bool {
	return x != None && y != None && b.p.Root(x) == b.p.Root(y)
}

// Begin starts a pass of kind k; ops emitted until End belong to it.
func (b *Builder) Begin(k PassKind, batchStats bool) {
	if b.open {
		panic("program: Begin inside a pass")
	}
	b.open = true
	b.p.Passes = append(b.p.Passes, Pass{Kind: k, Lo: len(b.p.Ops), Hi: len(b.p.Ops), BatchStats: batchStats})
}

// End closes the pass begun last.
func (b *Builder) End() {
	b.open = false
	b.p.Passes[len(b.p.Passes)-1].Hi = len(b.p.Ops)
}

// Emit appends op to the current pass.
func (b *Builder) Emit(op Op) {
	if !b.open {
		panic(fmt.Sprintf("program: %s emitted outside a pass", op.Kernel()))
	}
	b.p.Ops = append(b.p.Ops, op)
}

// Program returns the program built.
func (b *Builder) Program() *Program { return b.p }
