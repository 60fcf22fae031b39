package program

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Convert writes Src's values into Dst, each rounded to Dst's element type
// (compute.HalfStore.Convert): a weight's 16-bit copy for the convolutions
// over 16-bit spikes (lower.Options.HalfSpikes). Src and Dst have the same
// shape and rate.
type Convert struct{ Dst, Src Ref }

// Kernel implements Op.
func (o *Convert) Kernel() string { return "Convert" }

// Operands implements Op.
func (o *Convert) Operands() (reads, w []Ref) { return refs(o.Src), refs(o.Dst) }

// Detail implements Op.
func (o *Convert) Detail() string { return "" }

// Run implements Op. A backend that stores no 16-bit values is an error of
// the run.
func (o *Convert) Run(m *Machine) {
	hs, ok := m.be.(compute.HalfStore)
	if !ok {
		m.fail(fmt.Errorf("program: Convert on backend %s, which stores only float32", m.be.Name()))
		return
	}
	dst, src := m.Buf(o.Dst), m.Buf(o.Src)
	if dst == nil || src == nil {
		return
	}
	if dst.Len() != src.Len() {
		m.fail(fmt.Errorf("program: Convert of %d values into %d", src.Len(), dst.Len()))
		return
	}
	hs.Convert(src, dst)
}
