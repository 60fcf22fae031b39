package program

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// The ops of surrogate-gradient training (passes BPTTForward and
// BPTTBackward).

// IFRecord is IF over the run's steps keeping, for the backward pass, each
// step's potential before the spike and the reset in H ([steps, N] rows;
// compute.Backend.IFRecord). In, Constant, V, Spikes and Counts are as in
// IF.
type IFRecord struct {
	N                    int
	In                   Ref
	Constant             bool
	V, Spikes, H, Counts Ref
	Threshold, Reset     float32
}

// Kernel implements Op.
func (o *IFRecord) Kernel() string { return "IFRecord" }

// Operands implements Op.
func (o *IFRecord) Operands() (reads, w []Ref) {
	return refs(o.In, o.V, o.Counts), refs(o.V, o.Spikes, o.H, o.Counts)
}

// Detail implements Op.
func (o *IFRecord) Detail() string {
	s := fmt.Sprintf("%d neurons v_th %g v_reset %g, potentials kept", o.N, o.Threshold, o.Reset)
	if o.Constant {
		s += ", constant input"
	}
	return s
}

// Run implements Op.
func (o *IFRecord) Run(m *Machine) {
	m.be.IFRecord(compute.IFArgs{Steps: m.dims.Steps, N: m.dims.N * o.N, In: m.Buf(o.In), Constant: o.Constant, V: m.Buf(o.V),
		Spikes: m.Buf(o.Spikes), Counts: m.Buf(o.Counts), Threshold: o.Threshold, Reset: o.Reset}, m.Buf(o.H))
}

// IFSurrogateGrad is the backward pass through the run's steps of N IF
// neurons per sample (compute.IFGradArgs): DU, the gradient at their input
// current ([steps, N] rows, or with ConstantInput [N] summed over the
// steps), from DS, the gradient at their spikes ([steps, N], or with
// ConstantGrad [N] at every step), and H, the potentials IFRecord kept.
type IFSurrogateGrad struct {
	N                       int
	H, DS                   Ref
	ConstantGrad            bool
	DU                      Ref
	ConstantInput           bool
	Threshold, Reset, Alpha float32
	DetachReset             bool
}

// Kernel implements Op.
func (o *IFSurrogateGrad) Kernel() string { return "IFSurrogateGrad" }

// Operands implements Op.
func (o *IFSurrogateGrad) Operands() (reads, w []Ref) { return refs(o.H, o.DS), refs(o.DU) }

// Detail implements Op.
func (o *IFSurrogateGrad) Detail() string {
	s := fmt.Sprintf("%d neurons, sigmoid surrogate α %g", o.N, o.Alpha)
	if o.DetachReset {
		s += ", reset detached"
	}
	if o.ConstantInput {
		s += ", summed over the steps"
	}
	return s
}

// Run implements Op.
func (o *IFSurrogateGrad) Run(m *Machine) {
	m.be.IFSurrogateGrad(compute.IFGradArgs{Steps: m.dims.Steps, N: m.dims.N * o.N, H: m.Buf(o.H), DS: m.Buf(o.DS),
		ConstantGrad: o.ConstantGrad, DU: m.Buf(o.DU), ConstantInput: o.ConstantInput, Threshold: o.Threshold, Reset: o.Reset,
		Alpha: o.Alpha, DetachReset: o.DetachReset})
}
