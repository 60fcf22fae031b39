package program

import (
	"fmt"
	"slices"
)

// Plan is where a program's values live: each Value slot's buffer, shared
// with other slots whose lifetimes do not meet, and each buffer's size.
type Plan struct {
	// Buffer is each slot's buffer: −1 for input and external slots, for
	// views (they live in their alias's buffer) and for unused slots.
	Buffer []int
	// Sizes is each buffer's size in float32 words at the program's
	// capacity (an F16 slot of n values takes ⌈n/2⌉).
	Sizes []int
	// First and Last are each slot's lifetime: the positions of the ops
	// that first and last use it (through views too); −1 when unused.
	// A slot kept for the caller lives until len(Ops).
	First, Last []int
}

// Bytes is the memory the plan's buffers take, float32 values.
func (pl *Plan) Bytes() int64 {
	var b int64
	for _, s := range pl.Sizes {
		b += 4 * int64(s)
	}
	return b
}

// Plan returns the program's memory plan, computing it the first time. It
// refuses a program its Builder was misused to make, ops that are nil or
// name slots the program lacks, passes out of order and values too large.
func (p *Program) Plan() (*Plan, error) {
	if p == nil {
		return nil, errNoProgram
	}
	if p.err != nil {
		return nil, p.err
	}
	if p.plan != nil {
		return p.plan, nil
	}
	pl, err := plan(p)
	if err != nil {
		return nil, err
	}
	p.plan = pl
	return pl, nil
}

// invalidate forgets the plan after the program changed.
func (p *Program) invalidate() { p.plan = nil }

// plan assigns Value slots to buffers by liveness. A slot lives from the
// first op that uses it to the last (a view's uses are its alias's); a
// slot used in a pass that repeats lives through the whole pass unless
// each repetition writes it before reading it and nothing outside the
// pass uses it; a kept slot lives to the end. Slots take buffers in the
// order they start: the smallest free buffer large enough, else the
// largest free one (grown), else a new one. A buffer is free for a slot
// when its last holder's life ended before the slot's began, so an op
// never writes into the buffer of a value it reads.
func plan(p *Program) (*Plan, error) {
	n := len(p.Slots)
	pl := &Plan{Buffer: make([]int, n), First: make([]int, n), Last: make([]int, n)}
	for i := range pl.Buffer {
		pl.Buffer[i], pl.First[i], pl.Last[i] = -1, -1, -1
	}
	for i := range p.Slots {
		if a := p.Slots[i].Alias; a != None {
			if a < 0 || int(a) >= n || int(a) == i {
				return nil, fmt.Errorf("slot %d (%s) is a view of slot %d, which is not another slot", i, p.Slots[i].Name, a)
			}
		}
	}
	for i := range p.Slots {
		if r := p.Root(Ref(i)); p.Slots[r].Alias != None {
			return nil, fmt.Errorf("slot %d (%s) is a view in a cycle of views", i, p.Slots[i].Name)
		}
	}
	// readFirst[s]: in the repeating pass holding s's first use within it,
	// that use reads s (the value crosses repetitions)
	readFirst := make([]bool, n)
	seenIn := make([]int, n) // the pass of the slot's first use in a repeating pass, −1 none
	for i := range seenIn {
		seenIn[i] = -1
	}
	use := func(s Ref, at int) {
		if s < 0 || int(s) >= n {
			return
		}
		r := p.Root(s)
		if pl.First[r] < 0 {
			pl.First[r] = at
		}
		pl.Last[r] = max(pl.Last[r], at)
	}
	for k, ps := range p.Passes {
		if ps.Lo < 0 || ps.Hi > len(p.Ops) || ps.Lo > ps.Hi || (k > 0 && ps.Lo < p.Passes[k-1].Hi) {
			return nil, fmt.Errorf("pass %d (%s) covers ops %d to %d of %d, out of order", k, ps.Kind, ps.Lo, ps.Hi, len(p.Ops))
		}
	}
	for i, op := range p.Ops {
		if op == nil {
			return nil, fmt.Errorf("op %d is nil", i)
		}
		reads, writes := op.Operands()
		for _, s := range append(reads, writes...) {
			if s < 0 || int(s) >= n {
				return nil, fmt.Errorf("op %d (%s) uses slot %d; the program has %d", i, op.Kernel(), s, n)
			}
		}
		k := p.PassOf(i)
		if k >= 0 && p.Passes[k].Repeats() {
			for _, s := range reads {
				if r := p.Root(s); seenIn[r] != k {
					seenIn[r], readFirst[r] = k, true
				}
			}
			for _, s := range writes {
				if r := p.Root(s); seenIn[r] != k {
					seenIn[r], readFirst[r] = k, false
				}
			}
		}
		for _, s := range reads {
			use(s, i)
		}
		for _, s := range writes {
			use(s, i)
		}
	}
	// a slot crossing a repeating pass's repetitions lives through it
	for k, ps := range p.Passes {
		if !ps.Repeats() {
			continue
		}
		for r := range p.Slots {
			if pl.First[r] < 0 || pl.Last[r] < ps.Lo || pl.First[r] >= ps.Hi {
				continue
			}
			inside := pl.First[r] >= ps.Lo && pl.Last[r] < ps.Hi
			if !inside || (seenIn[r] == k && readFirst[r]) {
				pl.First[r] = min(pl.First[r], ps.Lo)
				pl.Last[r] = max(pl.Last[r], ps.Hi-1)
			}
		}
	}
	for i := range p.Slots {
		if p.Slots[i].Keep {
			r := p.Root(Ref(i))
			if pl.First[r] < 0 {
				pl.First[r] = 0
			}
			pl.Last[r] = len(p.Ops)
		}
	}
	var freeAfter []int // per buffer: the last position its holder lives
	for _, i := range startOrder(pl.First) {
		s := &p.Slots[i]
		if s.Kind != Value || s.Alias != None {
			continue
		}
		size := s.Words(p.Capacity.Rows(s.Rate))
		if size < 0 || size > 1<<40 {
			return nil, fmt.Errorf("slot %s: %d float32 words is too many", s.Name, size)
		}
		best := -1
		for b, sz := range pl.Sizes {
			if p.Unshared || freeAfter[b] >= pl.First[i] {
				continue
			}
			switch {
			case best < 0:
				best = b
			case sz >= size && (pl.Sizes[best] < size || sz < pl.Sizes[best]):
				best = b
			case pl.Sizes[best] < size && sz > pl.Sizes[best]:
				best = b
			}
		}
		if best < 0 {
			best = len(pl.Sizes)
			pl.Sizes, freeAfter = append(pl.Sizes, 0), append(freeAfter, 0)
		}
		pl.Sizes[best] = max(pl.Sizes[best], size)
		freeAfter[best] = pl.Last[i]
		pl.Buffer[i] = best
	}
	return pl, nil
}

// startOrder lists the used slots by first use, ties by index.
func startOrder(first []int) []int {
	var order []int
	for i, f := range first {
		if f >= 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return first[a] - first[b] })
	return order
}

// Check verifies a planned program's invariants: every Value slot an op
// reads was written by an earlier op of the program (a value read first
// in a repeating pass by an op before it, or by the same op, which is a
// state it carries); two slots sharing a buffer never live at once; no op
// writes a buffer that holds another slot it reads; and every op uses its
// operands in the layouts its kernel takes (checkLayouts). It returns the
// first violation.
func (p *Program) Check() error {
	pl, err := p.Plan()
	if err != nil {
		return err
	}
	written := make([]bool, len(p.Slots))
	for i, op := range p.Ops {
		reads, writes := op.Operands()
		for _, r := range reads {
			root := p.Root(r)
			if p.Slots[root].Kind != Value || written[root] || slices.Contains(writes, r) {
				continue
			}
			return fmt.Errorf("op %d (%s) reads %s before any op writes it", i, op.Kernel(), p.Slots[r].Name)
		}
		for _, w := range writes {
			written[p.Root(w)] = true
			bw := pl.Buffer[p.Root(w)]
			if bw < 0 {
				continue
			}
			for _, r := range reads {
				if rr := p.Root(r); rr != p.Root(w) && pl.Buffer[rr] == bw {
					return fmt.Errorf("op %d (%s) writes %s into the buffer of %s, which it reads", i, op.Kernel(), p.Slots[w].Name, p.Slots[r].Name)
				}
			}
		}
	}
	if err := p.checkLayouts(); err != nil {
		return err
	}
	byBuffer := map[int][]int{}
	for s, b := range pl.Buffer {
		if b >= 0 {
			byBuffer[b] = append(byBuffer[b], s)
		}
	}
	for b, slots := range byBuffer {
		for x := 0; x < len(slots); x++ {
			for y := x + 1; y < len(slots); y++ {
				s, t := slots[x], slots[y]
				if pl.First[s] <= pl.Last[t] && pl.First[t] <= pl.Last[s] {
					return fmt.Errorf("%s and %s share buffer %d and both live at op %d", p.Slots[s].Name, p.Slots[t].Name, b, max(pl.First[s], pl.First[t]))
				}
			}
		}
		for _, s := range slots {
			if need := p.Slots[s].Words(p.Capacity.Rows(p.Slots[s].Rate)); need > pl.Sizes[b] {
				return fmt.Errorf("%s needs %d float32 words, its buffer %d holds %d", p.Slots[s].Name, need, b, pl.Sizes[b])
			}
		}
	}
	return nil
}
