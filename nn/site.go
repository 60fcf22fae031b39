package nn

import (
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/program"
)

// Site is where a layer's lowering works: the program being built, the
// node's operands and the pass's settings. Package lower makes one per
// node and pass. In a forward pass X, In, Y and Out are set; in a backward
// pass DY and DX too (DX[k] is program.None where input k needs no
// gradient), and Y is the forward pass's output.
type Site struct {
	// B is the program being built.
	B *program.Builder
	// Node is the node's index in its network, Name its layer's name.
	Node int
	Name string
	// X are the inputs' slots and In their per-sample shapes; Y is the
	// output's slot and Out its shape.
	X   []program.Ref
	In  [][]int
	Y   program.Ref
	Out []int
	// Rate is the rows the node runs on: program.Batch, or program.Steps
	// in the SNN's time steps (a BatchNorm then keeps statistics per step).
	Rate program.Rate
	// BatchStats: BatchNorm normalises with the batch's statistics and
	// updates its running ones (PyTorch's train()); else it uses them.
	BatchStats bool
	// Spikes says that X[0] holds spikes (mostly zeros), for backends with
	// kernels that skip them.
	Spikes bool
	// DY is the gradient at the output, DX the inputs' (backward only).
	DY program.Ref
	DX []program.Ref

	temps map[string]program.Ref
}

// NewSite starts a node's site over b; temps holds the node's workspaces,
// the same map in the node's forward and backward passes (nil: a map of
// this site's own). A Site's methods need its builder (a nil b panics).
func NewSite(b *program.Builder, node int, name string, temps map[string]program.Ref) *Site {
	return &Site{B: b, Node: node, Name: name, Y: program.None, DY: program.None, temps: temps}
}

// Emit appends an op to the pass.
func (s *Site) Emit(op program.Op) { s.B.Emit(op) }

// Param is p's slot (program.None for a nil p).
func (s *Site) Param(p *Param) program.Ref {
	if p == nil {
		return program.None
	}
	return s.B.External(p.Name, p.Shape, p)
}

// Grad is p's gradient's slot (program.None for a nil p).
func (s *Site) Grad(p *Param) program.Ref {
	if p == nil {
		return program.None
	}
	return s.B.External(p.Name+".grad", p.Shape, gradOf{p})
}

// Temp is the node's workspace called name: rows of shape at rate, the
// same slot in the node's forward and backward passes.
func (s *Site) Temp(name string, shape []int, rate program.Rate) program.Ref {
	if r, ok := s.temps[name]; ok {
		return r
	}
	if s.temps == nil {
		s.temps = map[string]program.Ref{}
	}
	r := s.B.Value(s.Name+"."+name, shape, rate)
	s.temps[name] = r
	return r
}

// statsRate is the rate of per-channel statistics at the node's rate: one
// row per time step in the SNN's steps, else one.
func (s *Site) statsRate() program.Rate {
	if s.Rate == program.Steps {
		return program.Groups
	}
	return program.Once
}

// gradOf is a parameter's gradient as program memory.
type gradOf struct{ p *Param }

// Buffer implements program.Binding.
func (g gradOf) Buffer(be compute.Backend) compute.Buffer { return g.p.GradBuffer(be) }

// boundStats is host statistics bound to a backend, as program memory.
type boundStats struct{ b *binding }

// Buffer implements program.Binding.
func (s boundStats) Buffer(be compute.Backend) compute.Buffer { return s.b.on(be) }
