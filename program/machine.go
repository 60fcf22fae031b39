package program

import (
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

// NewMachine makes a machine on be with no buffers yet.
func NewMachine(be compute.Backend) *Machine {
	return &Machine{be: be, inputs: map[Ref]compute.Buffer{}, synOps: map[int]float64{}}
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
func (m *Machine) Bind(r Ref, buf compute.Buffer) { m.inputs[r] = buf }

// Run runs pass k of p, which must be loaded, for d (at most the
// program's capacity; d.Steps only matters where ops run per time step).
func (m *Machine) Run(p *Program, k int, d Dims) error {
	if d.N < 1 || d.N > p.Capacity.N || d.Steps < 1 || d.Steps > max(p.Capacity.Steps, 1) {
		return fmt.Errorf("a run of %d samples and %d steps for a program made for %d and %d", d.N, d.Steps, p.Capacity.N, p.Capacity.Steps)
	}
	if k < 0 || k >= len(p.Passes) {
		return fmt.Errorf("pass %d of a program of %d", k, len(p.Passes))
	}
	m.start(p, d)
	ps := p.Passes[k]
	for _, op := range p.Ops[ps.Lo:ps.Hi] {
		op.Run(m)
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
// None).
func (m *Machine) Buf(r Ref) compute.Buffer {
	if r == None {
		return nil
	}
	if m.stamp[r] == m.gen {
		return m.cache[r]
	}
	p := m.p
	s := &p.Slots[r]
	root := p.Root(r)
	var b compute.Buffer
	switch rs := &p.Slots[root]; rs.Kind {
	case External:
		b = rs.Bind.Buffer(m.be)
	case Input:
		b = m.inputs[root]
		if b == nil {
			panic(fmt.Sprintf("program: input slot %s has no buffer bound", rs.Name))
		}
		b = b.Slice(0, m.dims.Rows(s.Rate)*s.Numel())
	default:
		pl := p.plan
		b = m.bufs[pl.Buffer[root]].Slice(0, m.dims.Rows(s.Rate)*s.Numel())
	}
	m.cache[r], m.stamp[r] = b, m.gen
	return b
}

// Value is slot r's buffer after a run of p for d (the slot must be kept
// or still live): what the caller reads.
func (m *Machine) Value(p *Program, r Ref, d Dims) compute.Buffer {
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
