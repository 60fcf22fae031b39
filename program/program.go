// Package program holds what a step of proxykit runs, as data: a flat list
// of instructions (ops), each one kernel of a compute.Backend with its
// input and output slots and its geometry, over a table of slots (the
// values, gradients, workspaces and parameters the ops read and write).
// Package lower makes programs from networks (docs/design.md §4); this
// package plans their memory (Plan), rewrites them (Rewrites), runs them
// on a backend (Machine, the one interpreter) and prices them (Cost).
//
// A program is made for a batch capacity and a number of time steps run
// at once; it runs on any batch up to its capacity and any number of steps
// up to that number. Sizes are therefore stored per row, with each slot's
// and each op's Rate saying how many rows it covers.
package program

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Rate says how many rows a slot holds, or an op processes, for a run of n
// samples and s time steps.
type Rate uint8

const (
	// Batch: one row per sample (n rows): the ANN, the SNN's static input
	// layer, the IF layers' potentials.
	Batch Rate = iota
	// Steps: one row per sample and time step (s·n rows, step-major): the
	// SNN's layers after the static input layer.
	Steps
	// Groups: one row per time step (s rows): per-step statistics.
	Groups
	// Once: one row whatever the batch: parameters, per-channel vectors.
	Once
)

// String names the rate.
func (r Rate) String() string {
	switch r {
	case Batch:
		return "B"
	case Steps:
		return "T·B"
	case Groups:
		return "T"
	case Once:
		return "1"
	}
	return fmt.Sprintf("rate(%d)", r)
}

// Dims are the batch and the number of time steps of a run: what the
// program was planned for (its capacity) or what one run processes. T0 is
// the number of time steps simulated before a run of a chunk of steps (0:
// the simulation's first).
type Dims struct {
	N     int `json:"n"`
	Steps int `json:"steps"`
	T0    int `json:"-"`
}

// Rows is the number of rows at rate r (−1 where N·Steps overflows or
// exceeds compute.MaxValues: no kernel takes it).
func (d Dims) Rows(r Rate) int {
	switch r {
	case Batch:
		return d.N
	case Steps:
		return mul(d.N, d.Steps)
	case Groups:
		return d.Steps
	}
	return 1
}

// mul is a·b, −1 where a size is negative or the product exceeds
// compute.MaxValues (compute.Elements): a size no kernel takes.
func mul(a, b int) int {
	n, err := compute.Elements(a, b)
	if err != nil {
		return -1
	}
	return n
}

// Layout is how a slot's [C H W] rows are laid out in memory: the
// zero value and NCHW are channels first, as PyTorch lays them out; NHWC
// is channels last, the layout cuDNN's tensor-core convolutions compute
// in. It is compute.Layout, which the kernels take.
type Layout = compute.Layout

// The layouts.
const (
	NCHW = compute.NCHW
	NHWC = compute.NHWC
)

// Elem is the element type a slot is stored in: compute.Elem.
type Elem = compute.Elem

// The element types.
const (
	F32  = compute.F32
	F16  = compute.F16
	BF16 = compute.BF16
)

// SlotKind says what a slot holds and who owns its memory.
type SlotKind uint8

const (
	// Value is an activation, a gradient or a workspace: memory the
	// program plans (Plan), shared by values whose lifetimes do not meet.
	Value SlotKind = iota
	// Input is the run's input, a buffer the caller binds (Machine.Bind).
	Input
	// External is memory kept outside the program: parameters, their
	// gradients, BatchNorm's running statistics. Its Binding says where.
	External
)

// String names the kind.
func (k SlotKind) String() string {
	switch k {
	case Input:
		return "input"
	case External:
		return "external"
	}
	return "value"
}

// Binding is memory outside a program: a parameter, a gradient, running
// statistics. nn.Param implements it.
type Binding interface {
	// Buffer is the memory on be, to which it must be bound.
	Buffer(be compute.Backend) compute.Buffer
}

// Ref names a slot of a program; None is no slot (a nil buffer).
type Ref int32

// None is the absent slot: an optional operand left out.
const None Ref = -1

// Slot is one entry of a program's slot table.
type Slot struct {
	// Name says what the slot holds: "conv1", "conv1.grad", "bn1.mean".
	Name string
	Kind SlotKind
	// Shape is one row's shape (a sample's, or a vector's).
	Shape []int
	Rate  Rate
	// Layout and Elem are how the slot is stored; a backend asks for other
	// than NCHW and F32 through lower.Options.
	Layout Layout
	Elem   Elem
	// Alias, if not None, is the slot whose memory this one is (a view:
	// the same values, another shape).
	Alias Ref
	// Keep says the slot must hold its value when the program ends (the
	// caller reads it).
	Keep bool
	// Bind is where an External slot's memory is.
	Bind Binding
}

// Numel is the number of values of one row (−1 for a shape with a
// negative size or more than compute.MaxValues values).
func (s *Slot) Numel() int {
	n, err := compute.Elements(s.Shape...)
	if err != nil {
		return -1
	}
	return n
}

// SetElem stores slot r's values as e (a rewrite's choice: lower's 16-bit
// spikes); the memory plan is made again. A ref that names no slot
// changes nothing.
func (p *Program) SetElem(r Ref, e Elem) {
	if p == nil || !p.has(r) {
		return
	}
	p.Slots[r].Elem = e
	p.invalidate()
}

// Words is how many float32 words rows of the slot take in memory (a
// buffer's Len): its values, two to a word for 16-bit types, rounded up;
// −1 for a size no kernel takes.
func (s *Slot) Words(rows int) int {
	n := mul(s.Numel(), rows)
	if n < 0 || s.Elem == F32 {
		return n
	}
	return n/2 + n%2
}

// PassKind is what a pass of a program computes.
type PassKind uint8

const (
	// ANNForward is the ANN's forward pass; ANNBackward its backward pass.
	ANNForward PassKind = iota
	ANNBackward
	// SNNStatic is the SNN's static input layer and the neurons' reset,
	// once per batch; SNNChunk is a chunk of time steps, run repeatedly.
	SNNStatic
	SNNChunk
	// Loss is the proxy loss's gradient from the SNN's counts.
	Loss
	// Update is the optimizer's step on the parameters.
	Update
	// BPTTForward is the SNN's forward pass over all its time steps at
	// once, keeping what backpropagation through time needs: every step's
	// values and the IF layers' potentials before their spikes.
	// BPTTBackward is the backward pass through those steps, from the
	// loss's gradient at the counts (surrogate-gradient training).
	BPTTForward
	BPTTBackward
)

// String names the kind.
func (k PassKind) String() string {
	switch k {
	case ANNForward:
		return "ANN forward"
	case ANNBackward:
		return "ANN backward"
	case SNNStatic:
		return "SNN static input layer"
	case SNNChunk:
		return "SNN time steps"
	case Loss:
		return "proxy loss"
	case Update:
		return "optimizer"
	case BPTTForward:
		return "SNN forward through time (kept for BPTT)"
	case BPTTBackward:
		return "SNN backward through time (BPTT)"
	}
	return fmt.Sprintf("pass(%d)", k)
}

// Pass is a part of a program that runs as a whole: ops [Lo, Hi).
type Pass struct {
	Kind   PassKind
	Lo, Hi int
	// BatchStats: BatchNorm runs in training mode in this pass.
	BatchStats bool
}

// Repeats says whether the pass runs several times per run of the
// program (a chunk of time steps).
func (p Pass) Repeats() bool { return p.Kind == SNNChunk }

// PassRun is one run of a pass of a program for some dims: what
// Machine.Run is given. A run of a program is a list of them.
type PassRun struct {
	Pass int
	Dims Dims
}

// Program is a lowered step: ops in order, the slots they use, the passes
// they form, and the rewrites applied to them.
type Program struct {
	Ops    []Op
	Slots  []Slot
	Passes []Pass
	// Capacity is the batch and steps the program was made for.
	Capacity Dims
	// Rewrites lists the rewrite rules applied, in order, each with the
	// number of places it changed.
	Rewrites []Applied
	// Unshared gives every value a buffer of its own (for tests: the
	// memory plan then cannot change a result).
	Unshared bool

	plan *Plan
	// err is the first misuse of the Builder that made the program, which
	// Plan reports.
	err error
}

// Applied is one rewrite rule's effect on a program.
type Applied struct {
	Rule   string `json:"rule"`
	Places int    `json:"places"`
}

// Slot returns the slot r names, nil for a ref that names none.
func (p *Program) Slot(r Ref) *Slot {
	if !p.has(r) {
		return nil
	}
	return &p.Slots[r]
}

// has reports whether r names a slot of p.
func (p *Program) has(r Ref) bool { return p != nil && r >= 0 && int(r) < len(p.Slots) }

// Root follows r's aliases to the slot that owns the memory (it stops at
// a ref that names no slot, and on a cycle of aliases, which Plan
// refuses).
func (p *Program) Root(r Ref) Ref {
	for steps := 0; p.has(r) && p.Slots[r].Alias != None && steps <= len(p.Slots); steps++ {
		r = p.Slots[r].Alias
	}
	return r
}

// Pass returns the pass holding op i.
func (p *Program) PassOf(i int) int {
	for k, ps := range p.Passes {
		if i >= ps.Lo && i < ps.Hi {
			return k
		}
	}
	return -1
}

// Find returns the first pass of kind k, ok false when there is none.
func (p *Program) Find(k PassKind) (int, bool) {
	for i, ps := range p.Passes {
		if ps.Kind == k {
			return i, true
		}
	}
	return -1, false
}

// Readers lists the ops that read slot r or a view of it.
func (p *Program) Readers(r Ref) []int {
	root := p.Root(r)
	var out []int
	for i, op := range p.Ops {
		if op == nil {
			continue
		}
		reads, _ := op.Operands()
		for _, s := range reads {
			if p.Root(s) == root {
				out = append(out, i)
				break
			}
		}
	}
	return out
}

// Remove deletes op i, shifting the passes after it (nothing for an i
// that names no op).
func (p *Program) Remove(i int) {
	if i < 0 || i >= len(p.Ops) {
		return
	}
	p.Ops = append(p.Ops[:i], p.Ops[i+1:]...)
	for k := range p.Passes {
		if p.Passes[k].Lo > i {
			p.Passes[k].Lo--
		}
		if p.Passes[k].Hi > i {
			p.Passes[k].Hi--
		}
	}
	p.invalidate()
}
