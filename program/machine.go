package program

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/proxykit/proxykit/compute"
)

// Machine runs programs on one backend: the one interpreter of proxykit.
// It owns the buffers of the programs loaded into it, allocated when a
// program is loaded and shared by all of them (programs loaded into one
// machine run one at a time, and a program's values are valid until the
// next run of any of them). A pass runs its ops in order, each resolving
// its slots to the buffers that hold the current run's rows.
//
// The machine calls the backend's kernels one op at a time; a backend
// that captures work (Capturer) may replay a whole step instead
// (Captured).
//
// The zero Machine has no backend: Load and Run refuse it (NewMachine
// makes one). A slot an op cannot have — a ref the program lacks, an input
// not bound, external memory not on the backend — is an error of the run,
// never a panic.
type Machine struct {
	be    compute.Backend
	bufs  []compute.Buffer // per buffer index
	sizes []int

	// the current run
	p      *Program
	dims   Dims
	inputs map[Ref]compute.Buffer
	cache  []compute.Buffer
	stamp  []uint32
	gen    uint32
	synOps map[int]float64
	err    error
}

// Capturer is a backend that records the kernels a piece of work queues
// as one graph and replays it (the CUDA backend's CUDA graphs): Replay
// runs run, or replays what an earlier call with the same key captured.
// run must queue the same work at every call of a key and read nothing
// back to the host.
type Capturer interface {
	compute.Backend
	Replay(key any, run func() error) error
}

// NewMachine makes a machine on be with no buffers yet (Load and Run
// refuse a nil be).
func NewMachine(be compute.Backend) *Machine {
	return &Machine{be: be, inputs: map[Ref]compute.Buffer{}, synOps: map[int]float64{}}
}

// errNoProgram is the error of a nil Program's methods and of runs of none.
var errNoProgram = errors.New("no program (nil)")

// ready refuses a nil or zero machine and a nil program.
func (m *Machine) ready(p *Program) error {
	switch {
	case m == nil || m.be == nil:
		return errors.New("program: a machine without a backend (make one with NewMachine)")
	case p == nil:
		return errNoProgram
	}
	return nil
}

// Backend is the machine's backend.
func (m *Machine) Backend() compute.Backend { return m.be }

// Binder is external memory that can put itself on a backend (a
// parameter: nn.Param).
type Binder interface {
	Bind(be compute.Backend) (compute.Buffer, error)
}

// Load plans p (Program.Plan), puts on the machine's backend the external
// slots that can put themselves there (Binder: parameters, which are then
// bound there until moved), and allocates what the plan needs beyond the
// buffers the machine has, growing those that are too small.
func (m *Machine) Load(p *Program) error {
	if err := m.ready(p); err != nil {
		return err
	}
	pl, err := p.Plan()
	if err != nil {
		return err
	}
	for _, s := range p.Slots {
		if b, ok := s.Bind.(Binder); ok && s.Kind == External {
			if _, err := b.Bind(m.be); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
		}
	}
	for b, size := range pl.Sizes {
		if b < len(m.bufs) && m.sizes[b] >= size {
			continue
		}
		buf, err := m.be.Alloc(size)
		if err != nil {
			return fmt.Errorf("buffer %d (%s), batch %d: %w", b, m.holders(p, pl, b), p.Capacity.N, err)
		}
		if b < len(m.bufs) {
			m.be.Free(m.bufs[b])
			m.bufs[b], m.sizes[b] = buf, size
		} else {
			m.bufs, m.sizes = append(m.bufs, buf), append(m.sizes, size)
		}
	}
	return nil
}

// holders names the first slots of a buffer, for messages.
func (m *Machine) holders(p *Program, pl *Plan, b int) string {
	var names []string
	for i, s := range pl.Buffer {
		if s == b {
			names = append(names, p.Slots[i].Name)
			if len(names) == 2 {
				names = append(names, "…")
				break
			}
		}
	}
	return fmt.Sprint(names)
}

// Bind sets the buffer of an Input slot for the runs that follow.
func (m *Machine) Bind(r Ref, buf compute.Buffer) {
	if m.inputs == nil {
		m.inputs = map[Ref]compute.Buffer{}
	}
	m.inputs[r] = buf
}

// loaded reports whether p was loaded on m: planned, with the plan's
// buffers allocated.
func (m *Machine) loaded(p *Program) bool {
	pl := p.plan
	if pl == nil || len(m.bufs) < len(pl.Sizes) {
		return false
	}
	for b, size := range pl.Sizes {
		if m.sizes[b] < size {
			return false
		}
	}
	return true
}

// Run runs pass k of p, which must be loaded, for d (at most the
// program's capacity; d.Steps only matters where ops run per time step).
// It stops at the first op that fails (an operand the run cannot have),
// so that no later op runs on what that one failed to give it.
func (m *Machine) Run(p *Program, k int, d Dims) error {
	if err := m.ready(p); err != nil {
		return err
	}
	if !m.loaded(p) {
		return errors.New("program: the program was not loaded on this machine (Load)")
	}
	if d.N < 1 || d.N > p.Capacity.N || d.Steps < 1 || d.Steps > max(p.Capacity.Steps, 1) {
		return fmt.Errorf("a run of %d samples and %d steps for a program made for %d and %d", d.N, d.Steps, p.Capacity.N, p.Capacity.Steps)
	}
	if k < 0 || k >= len(p.Passes) {
		return fmt.Errorf("pass %d of a program of %d", k, len(p.Passes))
	}
	m.start(p, d)
	m.err = nil
	ps := p.Passes[k]
	for _, op := range p.Ops[ps.Lo:ps.Hi] {
		op.Run(m)
		if m.err != nil { // the ops after it would run on what it failed to give them (a nil buffer)
			break
		}
	}
	err := m.err
	m.err = nil
	return err
}

// start readies the slot cache for a run of p.
func (m *Machine) start(p *Program, d Dims) {
	if m.p != p || len(m.cache) != len(p.Slots) {
		m.cache, m.stamp = make([]compute.Buffer, len(p.Slots)), make([]uint32, len(p.Slots))
	}
	m.p, m.dims = p, d
	if m.synOps == nil {
		m.synOps = map[int]float64{}
	}
	m.gen++
	if m.gen == 0 { // wrapped: no stamp may look current
		clear(m.stamp)
		m.gen = 1
	}
}

// Dims are the current run's batch and steps.
func (m *Machine) Dims() Dims { return m.dims }

// Rows is the current run's rows at rate r.
func (m *Machine) Rows(r Rate) int { return m.dims.Rows(r) }

// Buf is slot r's buffer in the current run, holding its rows (nil for
// None). A slot without memory here — a ref the program lacks, an input
// not bound, external memory not on the machine's backend, a value of a
// program not loaded or rows beyond its buffer — is nil and an error of
// the run.
func (m *Machine) Buf(r Ref) compute.Buffer {
	if r == None {
		return nil
	}
	p := m.p
	if !p.has(r) || int(r) >= len(m.stamp) {
		m.fail(fmt.Errorf("program: slot %d, which the program being run has not", r))
		return nil
	}
	if m.stamp[r] == m.gen {
		return m.cache[r]
	}
	s := &p.Slots[r]
	root := p.Root(r)
	rs := &p.Slots[root]
	var b compute.Buffer
	switch rs.Kind {
	case External:
		if rs.Bind != nil {
			b = rs.Bind.Buffer(m.be)
		}
		if b == nil {
			m.fail(fmt.Errorf("program: %s is not on backend %s (bind the network to it first)", rs.Name, m.be.Name()))
			return nil
		}
	case Input:
		if b = m.inputs[root]; b == nil {
			m.fail(fmt.Errorf("program: input slot %s has no buffer bound", rs.Name))
			return nil
		}
	default:
		if pl := p.plan; pl != nil && pl.Buffer[root] >= 0 && pl.Buffer[root] < len(m.bufs) {
			b = m.bufs[pl.Buffer[root]]
		}
		if b == nil {
			m.fail(fmt.Errorf("program: %s has no buffer on this machine (load the program, and read slots it uses)", rs.Name))
			return nil
		}
	}
	if rs.Kind != External {
		rows := m.dims.Rows(s.Rate)
		n, w := mul(rows, s.Numel()), s.Words(rows)
		if n < 0 || w > b.Len() {
			m.fail(fmt.Errorf("program: %s holds %d float32 words; %d samples and %d steps of %s need %d", rs.Name, b.Len(), m.dims.N, m.dims.Steps, s.Name, w))
			return nil
		}
		b = b.Slice(0, w)
		if s.Elem != F32 {
			hs, ok := m.be.(compute.HalfStore)
			if !ok {
				m.fail(fmt.Errorf("program: %s is stored as %s, which backend %s does not store", s.Name, s.Elem, m.be.Name()))
				return nil
			}
			if b = hs.AsElem(b, s.Elem); compute.ElemOf(b) != s.Elem {
				m.fail(fmt.Errorf("program: %s is stored as %s, which backend %s does not store", s.Name, s.Elem, m.be.Name()))
				return nil
			}
			b = b.Slice(0, n)
		}
	}
	m.cache[r], m.stamp[r] = b, m.gen
	return b
}

// Value is slot r's buffer after a run of p for d (the slot must be kept
// or still live): what the caller reads; nil where Buf has none.
func (m *Machine) Value(p *Program, r Ref, d Dims) compute.Buffer {
	if m.ready(p) != nil {
		return nil
	}
	m.start(p, d)
	return m.Buf(r)
}

// fail records the first error an op met.
func (m *Machine) fail(err error) {
	if m.err == nil {
		m.err = err
	}
}

// SynOps is the synaptic operations counted by SynOps ops for node since
// ResetSynOps.
func (m *Machine) SynOps(node int) float64 { return m.synOps[node] }

// ResetSynOps zeroes the synaptic operation counts.
func (m *Machine) ResetSynOps() { clear(m.synOps) }

// Free gives the machine's buffers back to the backend.
func (m *Machine) Free() {
	for _, b := range m.bufs {
		m.be.Free(b)
	}
	m.bufs, m.sizes = nil, nil
}

// Captured runs run — passes of p for d, with no host reads in between —
// as one piece of work a Capturer backend captures and replays (a
// training step, an inference batch), or directly on other backends. The
// key the backend keeps it under names p, d and the addresses of the
// input buffers bound (the machine's own and the external buffers stay
// where they are until freed, which drops the backend's graphs).
func (m *Machine) Captured(p *Program, d Dims, run func() error) error {
	if err := m.ready(p); err != nil {
		return err
	}
	if run == nil {
		return errors.New("program: no work to run (nil)")
	}
	c, ok := m.be.(Capturer)
	if !ok {
		return run()
	}
	key := captureKey{m: m, p: p, d: d}
	for _, r := range slices.Sorted(maps.Keys(m.inputs)) {
		b := m.inputs[r]
		a, ok := b.(compute.Addressed)
		if !ok {
			return run() // an input without an address cannot name a graph
		}
		key.inputs += fmt.Sprintf("%d@%x:%d ", r, a.Address(), b.Len())
	}
	return c.Replay(key, run)
}

// captureKey names a captured piece of work.
type captureKey struct {
	m      *Machine
	p      *Program
	d      Dims
	inputs string
}
