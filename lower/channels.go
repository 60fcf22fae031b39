package lower

import (
	"fmt"
	"slices"
	"strings"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/program"
)

// ChannelsLastRule names the channels-last rewrite in a program's list of
// rewrites.
const ChannelsLastRule = "channels-last slots"

// LayoutPreferrer is a backend that says which layout its programs'
// activations should have (the CUDA backend: channels-last, so that cuDNN
// converts nothing around its convolutions). The runners (train.Engine,
// spiking.Simulator) lower their programs as it says (Options.ChannelsLast).
type LayoutPreferrer interface {
	ChannelsLast() bool
}

// PrefersChannelsLast reports whether be asks for channels-last programs:
// it, or the backend it wraps (an Inner method, as package distributed's
// share of a batch has), is a LayoutPreferrer that says so. Wrappers
// nested deeper than maxWrappers (a backend that wraps itself) ask for
// nothing.
func PrefersChannelsLast(be compute.Backend) bool {
	return prefers(be, LayoutPreferrer.ChannelsLast)
}

// prefers is what says answers for be, or for the backend it wraps (an
// Inner method), where that is a P; false where none within maxWrappers
// is.
func prefers[P any](be compute.Backend, says func(P) bool) bool {
	for depth := 0; be != nil && depth <= maxWrappers; depth++ {
		if p, ok := be.(P); ok {
			return says(p)
		}
		w, ok := be.(interface{ Inner() compute.Backend })
		if !ok {
			return false
		}
		be = w.Inner()
	}
	return false
}

// maxWrappers bounds the backends PrefersChannelsLast unwraps.
const maxWrappers = 16

// WithChannelsLast lowers with Options.ChannelsLast set to on.
func WithChannelsLast(on bool) Setting {
	return func(o *Options) { o.ChannelsLast = on }
}

// channelsLast rewrites lw's program so that every convolution reads and
// writes channels-last (NHWC) slots, and with them the values joined to
// them through ops that compute in either layout (BatchNorm, pooling, IF,
// the elementwise ops: program.Laid, program.LayoutFree). It returns how
// many ops now compute channels-last.
//
//   - A value stays NCHW where its caller sees it (an Input, memory kept
//     outside, a value the caller reads — an IF layer's counts excepted,
//     which are only summed) or where an op without a channels-last form
//     writes it (a linear layer's input gradient, through its flattening
//     view): it is pinned.
//   - The values the ops that may compute channels-last join (union-find
//     over their activations) form classes; a class holding a
//     convolution's activation is NHWC, and so is every op computing on
//     it.
//   - Where an op needs an operand in the other layout (an op without a
//     channels-last form, a flattening view, a pinned value), a Transpose
//     makes a copy before it (reads) or writes it back after it (writes).
//   - A channels-last convolution's weight is channels-last too, [O, KH,
//     KW, C/G]: a copy transposed once before its first reader (out of
//     the repeated chunk of time steps), and its gradient computed into
//     a channels-last slot and transposed into the parameter's after the
//     convolution's backward pass (the gradient's zeroing moved to the
//     new slot where that pass is its only writer).
//
// Transposes copy values: the rewritten program computes the plain
// program's bits wherever its kernels compute the same bits in either
// layout (the CPU backend and the emulated device do; tests hold them).
// An error is a rewrite that program refused (an op it cannot change, a
// position it has not): a fault of the rewrite, not of the network.
func channelsLast(lw *Lowered) (int, error) {
	p := lw.Program
	c := &lastRewrite{p: p, parent: make([]int, len(p.Slots)), pinned: make([]bool, len(p.Slots))}
	for i := range c.parent {
		c.parent[i] = i
	}
	exempt := map[program.Ref]bool{}
	if lw.SNN != nil {
		for _, r := range lw.SNN.IFCounts {
			if r != program.None {
				exempt[p.Root(r)] = true
			}
		}
	}
	for r := range p.Slots {
		s := &p.Slots[r]
		if p.Root(program.Ref(r)) == program.Ref(r) && (s.Kind != program.Value || s.Keep && !exempt[program.Ref(r)]) {
			c.pinned[r] = true
		}
	}
	for _, op := range p.Ops {
		acts, ok := c.flexible(op)
		_, writes := op.Operands()
		for _, w := range writes {
			if c.planes(p.Root(w)) && (!ok || p.Reshaped(w) || !slices.Contains(acts, w)) {
				c.pinned[p.Root(w)] = true
			}
		}
	}
	// classes, and those a convolution computes on
	conv := map[int]bool{}
	for _, op := range p.Ops {
		acts, ok := c.flexible(op)
		if !ok {
			continue
		}
		first := -1
		for _, r := range acts {
			root, ok := c.member(r)
			if !ok {
				continue
			}
			if first < 0 {
				first = root
			} else {
				c.union(first, root)
			}
			if isConv(op) {
				conv[root] = true
			}
		}
	}
	c.last = make([]bool, len(p.Slots))
	for r := range conv {
		c.last[c.find(r)] = true
	}
	// each op's layout, decided before the slots change
	decided := map[program.Op]program.Layout{}
	places := 0
	for _, op := range p.Ops {
		decided[op] = program.NCHW
		acts, ok := c.flexible(op)
		if !ok {
			continue
		}
		on := false
		for _, r := range acts {
			if root, ok := c.member(r); ok && c.last[c.find(root)] {
				on = true
			}
		}
		if _, free := op.(program.LayoutFree); free && c.writesPinned(op) {
			on = false // computed where its result lives
		}
		if on {
			decided[op] = program.NHWC
			if l, ok := op.(program.Laid); ok {
				l.SetLayout(program.NHWC)
				places++
			}
		}
	}
	for r := range p.Slots {
		if root := int(p.Root(program.Ref(r))); !p.Reshaped(program.Ref(r)) && c.planes(program.Ref(root)) && !c.pinned[root] && c.last[c.find(root)] {
			p.Slots[r].Layout = program.NHWC
		}
	}
	if err := c.transposes(decided); err != nil {
		return 0, err
	}
	if err := c.weights(); err != nil {
		return 0, err
	}
	return places, nil
}

// lastRewrite is the state of one channels-last rewrite.
type lastRewrite struct {
	p      *program.Program
	parent []int  // union-find over slots
	pinned []bool // roots that stay NCHW
	last   []bool // per class (its find): channels-last
}

func (c *lastRewrite) find(r int) int {
	for c.parent[r] != r {
		c.parent[r] = c.parent[c.parent[r]]
		r = c.parent[r]
	}
	return r
}

func (c *lastRewrite) union(a, b int) { c.parent[c.find(a)] = c.find(b) }

// planes reports whether slot r has [C H W] rows whose layouts differ.
func (c *lastRewrite) planes(r program.Ref) bool {
	_, _, ok := c.p.Planes(r)
	return ok
}

// member returns activation r's root where r joins its root's class: r
// has [C H W] rows in its root's shape, and the root is not pinned.
func (c *lastRewrite) member(r program.Ref) (int, bool) {
	root := c.p.Root(r)
	if !c.planes(r) || c.p.Reshaped(r) || c.pinned[root] {
		return 0, false
	}
	return int(root), true
}

// flexible returns op's activations and whether it may compute
// channels-last: its kernel takes a layout or is elementwise, and each
// activation has [C H W] rows (or is the same in either layout).
func (c *lastRewrite) flexible(op program.Op) ([]program.Ref, bool) {
	var acts []program.Ref
	switch o := op.(type) {
	case program.Laid:
		acts = o.Activations()
	case program.LayoutFree:
		acts = o.Activations()
	default:
		return nil, false
	}
	for _, r := range acts {
		if !c.planes(r) && !c.p.Neutral(r) {
			return nil, false
		}
	}
	return acts, true
}

// writesPinned reports whether op writes an activation with [C H W] rows
// that joins no class (pinned, or a reshaping view).
func (c *lastRewrite) writesPinned(op program.Op) bool {
	_, writes := op.Operands()
	for _, w := range writes {
		if _, ok := c.member(w); c.planes(w) && !ok {
			return true
		}
	}
	return false
}

func isConv(op program.Op) bool {
	switch op.(type) {
	case *program.Conv2d, *program.Conv2dGrad:
		return true
	}
	return false
}

// laidCopy is a copy of a value in the other layout, made in pass.
type laidCopy struct {
	slot program.Ref
	pass int
}

// transposes gives every op its operands in the layout it computes in
// (decided, for the program's ops before the rewrite): copies in the other
// layout, transposed from the operand before the op where it reads it and
// back into it after the op where it writes it; a reshaping view of
// channels-last memory becomes a view of an NCHW copy of that memory. A
// copy made for an earlier op serves a later one that only reads it while
// its value is unchanged (nothing wrote it since, and no repetition of a
// pass can have).
func (c *lastRewrite) transposes(decided map[program.Op]program.Layout) error {
	p := c.p
	copies := map[program.Ref]laidCopy{} // by the slot copied
	for i := 0; i < len(p.Ops); i++ {
		op := p.Ops[i]
		l, ok := decided[op]
		if !ok {
			continue
		}
		k := p.PassOf(i)
		acts, _ := c.flexible(op)
		reads, writes := op.Operands()
		var before, after []program.Op
		seen := map[program.Ref]bool{}
		for _, r := range append(slices.Clone(reads), writes...) {
			if seen[r] {
				continue
			}
			seen[r] = true
			from, want := r, program.NCHW // the slot to copy, its copy's layout
			switch {
			case c.planes(r):
				if l == program.NHWC && slices.Contains(acts, r) {
					want = program.NHWC
				}
				if p.LaidOut(r) == want {
					continue
				}
			case p.Reshaped(r) && c.planes(p.Root(r)) && p.LaidOut(p.Root(r)) == program.NHWC:
				from = p.Root(r)
			default:
				continue
			}
			read, written := slices.Contains(reads, r), slices.Contains(writes, r)
			cp, reuse := copies[from]
			reuse = reuse && read && !written && c.fresh(from, cp, k)
			t := cp.slot
			if !reuse {
				s := p.Slots[from]
				t = p.AddSlot(program.Slot{Name: s.Name + "." + strings.ToLower(want.String()), Kind: program.Value, Shape: slices.Clone(s.Shape),
					Rate: s.Rate, Layout: want, Elem: s.Elem, Alias: program.None})
			}
			use := t
			if from != r { // the same view of the copy
				use = p.AddSlot(program.Slot{Name: p.Slots[r].Name + ".nchw", Kind: program.Value, Shape: slices.Clone(p.Slots[r].Shape),
					Rate: p.Slots[r].Rate, Elem: p.Slots[r].Elem, Alias: t})
			}
			if _, err := program.Substitute(op, r, use); err != nil {
				return fmt.Errorf("channels-last rewrite of op %d: %w", i, err)
			}
			if read && !reuse {
				before = append(before, c.transpose(from, t))
				if !written {
					copies[from] = laidCopy{t, k}
				}
			}
			if written {
				after = append(after, c.transpose(t, from))
			}
		}
		if err := p.Insert(k, i+1, after...); err != nil {
			return fmt.Errorf("channels-last rewrite of op %d: %w", i, err)
		}
		if err := p.Insert(k, i, before...); err != nil {
			return fmt.Errorf("channels-last rewrite of op %d: %w", i, err)
		}
		i += len(before) + len(after)
		// what op wrote, directly or through a copy written back, is new:
		// copies of it are stale
		_, writes = op.Operands()
		for _, a := range after {
			writes = append(writes, a.(*program.Transpose).Y)
		}
		for from := range copies {
			if slices.ContainsFunc(writes, func(w program.Ref) bool { return p.Root(w) == p.Root(from) }) {
				delete(copies, from)
			}
		}
	}
	return nil
}

// fresh reports whether copy cp of r, made in pass made, still holds r's
// value in pass k: r's memory is written by no op of pass k where k
// repeats and the copy was made before it (the copy would be a
// repetition late).
func (c *lastRewrite) fresh(r program.Ref, cp laidCopy, k int) bool {
	p := c.p
	if cp.pass == k || !p.Passes[k].Repeats() {
		return true
	}
	for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
		_, writes := p.Ops[i].Operands()
		if slices.ContainsFunc(writes, func(w program.Ref) bool { return p.Root(w) == p.Root(r) }) {
			return false
		}
	}
	return true
}

// transpose is the op copying activation x into y, its other layout.
func (c *lastRewrite) transpose(x, y program.Ref) *program.Transpose {
	ch, hw, _ := c.p.Planes(x)
	t := &program.Transpose{Rate: c.p.Slot(x).Rate, Rows: ch, Cols: hw, X: x, Y: y}
	if c.p.LaidOut(x) == program.NHWC {
		t.Rows, t.Cols = hw, ch
	}
	return t
}

// weights gives each channels-last convolution channels-last weights and
// weight gradients, where their two layouts differ (C/G > 1 and KH·KW > 1).
func (c *lastRewrite) weights() error {
	p := c.p
	copies := map[program.Ref]program.Ref{} // a weight's channels-last copy
	var order []program.Ref
	copyOf := func(w program.Ref, g compute.ConvGeom) program.Ref {
		root := p.Root(w)
		if t, ok := copies[root]; ok {
			return t
		}
		s := p.Slot(root)
		t := p.AddSlot(program.Slot{Name: s.Name + ".nhwc", Kind: program.Value, Shape: []int{g.O, g.KH, g.KW, g.C / g.Groups()},
			Rate: program.Once, Layout: program.NHWC, Elem: s.Elem, Alias: program.None})
		copies[root] = t
		order = append(order, root)
		return t
	}
	geoms := map[program.Ref]compute.ConvGeom{}
	for i := 0; i < len(p.Ops); i++ {
		var g compute.ConvGeom
		var w *program.Ref
		var grad *program.Conv2dGrad
		switch o := p.Ops[i].(type) {
		case *program.Conv2d:
			g, w = o.G, &o.W
		case *program.Conv2dGrad:
			g, w, grad = o.G, &o.W, o
		default:
			continue
		}
		if !g.Layout.Last() || g.C/g.Groups() == 1 || g.KH*g.KW == 1 {
			continue
		}
		geoms[p.Root(*w)] = g
		*w = copyOf(*w, g)
		if grad != nil && grad.DW != program.None {
			n, err := c.weightGrad(i, grad)
			if err != nil {
				return err
			}
			i += n
		}
	}
	for _, root := range order {
		t, g := copies[root], geoms[root]
		first := slices.IndexFunc(p.Ops, func(op program.Op) bool {
			reads, _ := op.Operands()
			return slices.Contains(reads, t)
		})
		k, at := p.PassOf(first), first
		if k < 0 {
			return fmt.Errorf("channels-last rewrite: no op reads %s's channels-last copy", p.Slot(root).Name)
		}
		if p.Passes[k].Repeats() && k > 0 { // once, before the repeated steps
			k, at = k-1, p.Passes[k-1].Hi
		}
		tr := &program.Transpose{Rate: program.Once, Count: g.O, Rows: g.C / g.Groups(), Cols: g.KH * g.KW, X: root, Y: t}
		if err := p.Insert(k, at, tr); err != nil {
			return fmt.Errorf("channels-last rewrite of %s's weight: %w", p.Slot(root).Name, err)
		}
	}
	return nil
}

// weightGrad makes convolution backward pass o, op i, write (Overwrite)
// or add its weight gradient into a channels-last slot, transposed into
// the parameter's after it, and returns how many ops it put after i
// (before it: none).
func (c *lastRewrite) weightGrad(i int, o *program.Conv2dGrad) (int, error) {
	p, g, dw := c.p, o.G, o.DW
	root := p.Root(dw)
	s := p.Slot(root)
	t := p.AddSlot(program.Slot{Name: s.Name + ".nhwc", Kind: program.Value, Shape: []int{g.O, g.KH, g.KW, g.C / g.Groups()},
		Rate: program.Once, Layout: program.NHWC, Elem: s.Elem, Alias: program.None})
	back := &program.Transpose{Rate: program.Once, Count: g.O, Rows: g.KH * g.KW, Cols: g.C / g.Groups(), X: t, Y: dw}
	k := p.PassOf(i)
	if o.Overwrite { // written (NoGradFill), then written back
		if dw != root {
			return 0, fmt.Errorf("channels-last rewrite of op %d: it writes a weight gradient that is a view (%s), which NoGradFill does not make", i, s.Name)
		}
		o.DW = t
		if err := p.Insert(k, i+1, back); err != nil {
			return 0, fmt.Errorf("channels-last rewrite of op %d's weight gradient: %w", i, err)
		}
		return 1, nil
	}
	// the gradient's zeroing, where it and this pass are its only writers
	// and nothing reads it between them, now zeroes the new slot
	var writers []int
	readBetween := false
	for j, op := range p.Ops {
		reads, writes := op.Operands()
		on := func(r program.Ref) bool { return p.Root(r) == root }
		if slices.ContainsFunc(writes, on) {
			writers = append(writers, j)
		} else if slices.ContainsFunc(reads, on) && len(writers) == 1 && j < i {
			readBetween = true
		}
	}
	if len(writers) == 2 && writers[1] == i && dw == root && !readBetween {
		if fill, ok := p.Ops[writers[0]].(*program.Fill); ok && fill.Value == 0 && fill.Dst == root {
			fill.Dst, o.DW = t, t
			if err := p.Insert(k, i+1, back); err != nil {
				return 0, fmt.Errorf("channels-last rewrite of op %d's weight gradient: %w", i, err)
			}
			return 1, nil
		}
	}
	// else: zeroed here, and added to the gradient through an NCHW copy
	tmp := p.AddSlot(program.Slot{Name: s.Name + ".nchw", Kind: program.Value, Shape: slices.Clone(p.Slot(dw).Shape), Rate: program.Once,
		Elem: s.Elem, Alias: program.None})
	back.Y = tmp
	o.DW = t
	if err := p.Insert(k, i+1, back, &program.AddTo{Dst: dw, Src: tmp}); err != nil {
		return 0, fmt.Errorf("channels-last rewrite of op %d's weight gradient: %w", i, err)
	}
	if err := p.Insert(k, i, &program.Fill{Dst: t}); err != nil {
		return 0, fmt.Errorf("channels-last rewrite of op %d's weight gradient: %w", i, err)
	}
	return 3, nil
}
