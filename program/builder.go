package program

import (
	"errors"
	"fmt"
)

// Builder makes a program: passes of ops over slots. Package lower drives
// it over a network's nodes; each layer kind's lowering emits its ops.
// Its zero value builds a program of capacity zero (NewBuilder sets one).
// A misuse — an op emitted outside a pass, a pass begun inside another, a
// ref that names no slot — is kept, not panicked on: the program's Plan
// (and so Machine.Load and Check) reports the first one.
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

// prog is the program being built, started on a zero Builder.
func (b *Builder) prog() *Program {
	if b.p == nil {
		b.p = &Program{}
	}
	return b.p
}

// fail keeps the first misuse for the program's Plan.
func (b *Builder) fail(err error) {
	if p := b.prog(); p.err == nil {
		p.err = fmt.Errorf("program: %w", err)
	}
}

// Slot adds a slot to the table (Alias None unless it is a view).
func (b *Builder) Slot(s Slot) Ref {
	p := b.prog()
	p.Slots = append(p.Slots, s)
	return Ref(len(p.Slots) - 1)
}

// Value adds a Value slot: rows of shape at rate.
func (b *Builder) Value(name string, shape []int, rate Rate) Ref {
	return b.Slot(Slot{Name: name, Kind: Value, Shape: append([]int(nil), shape...), Rate: rate, Alias: None})
}

// View adds a slot that is another's memory under another shape (of the
// same number of values); None, and a misuse, where of names no slot.
func (b *Builder) View(name string, of Ref, shape []int) Ref {
	if !b.prog().has(of) {
		b.fail(fmt.Errorf("view %s of slot %d, which the program has not", name, of))
		return None
	}
	src := b.p.Slots[of]
	return b.Slot(Slot{Name: name, Kind: src.Kind, Shape: append([]int(nil), shape...), Rate: src.Rate, Alias: of,
		Layout: src.Layout, Elem: src.Elem})
}

// Input adds an Input slot, which the caller binds before running.
func (b *Builder) Input(name string, shape []int, rate Rate) Ref {
	return b.Slot(Slot{Name: name, Kind: Input, Shape: append([]int(nil), shape...), Rate: rate, Alias: None})
}

// External returns the slot of memory kept outside the program (a
// parameter, a gradient, running statistics), one slot per binding (a
// nil binding, which Machine refuses, gets a slot each time).
func (b *Builder) External(name string, shape []int, bind Binding) Ref {
	if r, ok := b.ext[bind]; ok && bind != nil {
		return r
	}
	r := b.Slot(Slot{Name: name, Kind: External, Shape: append([]int(nil), shape...), Rate: Once, Alias: None, Bind: bind})
	if bind != nil {
		if b.ext == nil {
			b.ext = map[Binding]Ref{}
		}
		b.ext[bind] = r
	}
	return r
}

// Keep marks r as read by the caller after the program ends (a misuse
// where r names no slot).
func (b *Builder) Keep(r Ref) {
	if !b.prog().has(r) {
		b.fail(fmt.Errorf("slot %d to keep, which the program has not", r))
		return
	}
	b.p.Slots[r].Keep = true
}

// Shape is slot r's row shape (nil where r names no slot).
func (b *Builder) Shape(r Ref) []int {
	if s := b.prog().Slot(r); s != nil {
		return s.Shape
	}
	return nil
}

// SameMemory reports whether two slots are the same memory (one is a
// view of the other, or both of a third).
func (b *Builder) SameMemory(x, y Ref) bool {
	return x != None && y != None && b.prog().Root(x) == b.p.Root(y)
}

// Begin starts a pass of kind k; ops emitted until End belong to it.
// Beginning a pass inside another is a misuse (the other ends there).
func (b *Builder) Begin(k PassKind, batchStats bool) {
	p := b.prog()
	if b.open {
		b.fail(fmt.Errorf("pass %s begun inside a pass", k))
		b.End()
	}
	b.open = true
	p.Passes = append(p.Passes, Pass{Kind: k, Lo: len(p.Ops), Hi: len(p.Ops), BatchStats: batchStats})
}

// End closes the pass begun last (a misuse when none is open).
func (b *Builder) End() {
	p := b.prog()
	if !b.open || len(p.Passes) == 0 {
		b.fail(errors.New("a pass ended that was not begun"))
		return
	}
	b.open = false
	p.Passes[len(p.Passes)-1].Hi = len(p.Ops)
}

// Emit appends op to the current pass (a misuse, and not appended, for a
// nil op or outside a pass).
func (b *Builder) Emit(op Op) {
	switch {
	case op == nil:
		b.fail(errors.New("a nil op emitted"))
	case !b.open:
		b.fail(fmt.Errorf("%s emitted outside a pass", op.Kernel()))
	default:
		b.p.Ops = append(b.p.Ops, op)
	}
}

// Program returns the program built.
func (b *Builder) Program() *Program { return b.prog() }
