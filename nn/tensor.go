// Package nn is the network that proxykit's ANN and SNN share: layers,
// their parameters and shapes, and the ANN's forward and backward passes.
//
// A Network is a feed-forward chain of Layers. Parameters live in Param
// values that both the ANN and the SNN built from it point to, so an update
// of a weight through one is seen by the other, on every backend: a Param
// holds its host values and, once bound, its buffer on one compute.Backend.
package nn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/proxykit/proxykit/compute"
)

// Tensor is a dense float32 array in host memory, in row-major order: what
// proxykit reads from and writes to files. Activations are batched:
// Shape[0] is the batch size, as in PyTorch's NCHW layout.
type Tensor struct {
	Shape []int
	Data  []float32
}

// NewTensor allocates a zeroed tensor of the given shape, refusing a
// negative size or more than compute.MaxValues values.
func NewTensor(shape ...int) (*Tensor, error) {
	n, err := compute.Elements(shape...)
	if err != nil {
		return nil, fmt.Errorf("tensor of shape %s: %w", ShapeString(shape), err)
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, n)}, nil
}

// Value is a batched tensor in a backend's memory: an activation or a
// gradient. Shape[0] is the batch size.
type Value struct {
	Shape []int
	Buf   compute.Buffer
}

// N is the batch size (0 for a value without a shape).
func (v Value) N() int {
	if len(v.Shape) == 0 {
		return 0
	}
	return v.Shape[0]
}

// PerSample is the number of values of one sample (Numel: −1 for a
// malformed shape; 0 for a value without a shape).
func (v Value) PerSample() int {
	if len(v.Shape) == 0 {
		return 0
	}
	return Numel(v.Shape[1:])
}

// Numel is the number of elements of a shape; −1 when a size is negative
// or the count exceeds compute.MaxValues (compute.Elements), so that it
// never overflows.
func Numel(shape []int) int {
	n, err := compute.Elements(shape...)
	if err != nil {
		return -1
	}
	return n
}

// ShapeString formats a shape as [a b c].
func ShapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// binding is a host array's buffer on the backend it is bound to.
type binding struct {
	be  compute.Backend
	buf compute.Buffer
}

// bind returns host's buffer on be. Binding to another backend than the
// current one first copies the current backend's values into host.
func (b *binding) bind(be compute.Backend, h []float32) (compute.Buffer, error) {
	if be == nil {
		return nil, errNoBackend
	}
	if b.be == be && b.buf != nil {
		return b.buf, nil
	}
	if err := b.release(h); err != nil {
		return nil, err
	}
	buf, err := be.Adopt(h)
	if err != nil {
		return nil, err
	}
	b.be, b.buf = be, buf
	return buf, nil
}

// sync copies the bound buffer's values into host.
func (b *binding) sync(h []float32) error {
	if b.buf == nil {
		return nil
	}
	return b.be.Download(h, b.buf)
}

// upload tells the bound backend that host changed.
func (b *binding) upload(h []float32) {
	if b.buf != nil {
		b.be.Upload(b.buf, h)
	}
}

// release syncs host and frees the buffer.
func (b *binding) release(h []float32) error {
	if b.buf == nil {
		return nil
	}
	if err := b.sync(h); err != nil {
		return err
	}
	b.be.Free(b.buf)
	b.be, b.buf = nil, nil
	return nil
}

// on returns the buffer bound to be, nil when the array is not bound
// there: layers run only on the backend their network was bound to
// (Network.Bind), and program.Machine refuses an external slot without a
// buffer.
func (b *binding) on(be compute.Backend) compute.Buffer {
	if be == nil || b.be != be {
		return nil
	}
	return b.buf
}

// errNoBackend is the error of binding to a nil backend.
var errNoBackend = errors.New("no backend to bind to (nil)")

// errNoParam is the error of a nil Param's methods.
var errNoParam = errors.New("no parameter (nil)")

// Param is a trainable array shared by the ANN and the SNN.
type Param struct {
	Name  string // stable name, e.g. "conv1.weight"
	Shape []int
	// Data are the host values: the truth until the parameter is bound to a
	// backend, and again after Sync.
	Data []float32

	data binding
	grad struct {
		be  compute.Backend
		buf compute.Buffer
	}
}

// NewParam wraps data as a parameter of the given shape.
func NewParam(name string, data []float32, shape ...int) *Param {
	return &Param{Name: name, Shape: append([]int(nil), shape...), Data: data}
}

// Bind puts the parameter on be (see compute.Backend.Adopt) and returns its
// buffer there. Both networks see the same buffer, as they share the Param.
func (p *Param) Bind(be compute.Backend) (compute.Buffer, error) {
	if p == nil {
		return nil, errNoParam
	}
	buf, err := p.data.bind(be, p.Data)
	if err != nil {
		return nil, fmt.Errorf("parameter %s: %w", p.Name, err)
	}
	if p.grad.be != be {
		if p.grad.buf != nil {
			p.grad.be.Free(p.grad.buf)
		}
		g, err := be.Alloc(len(p.Data))
		if err != nil {
			return nil, fmt.Errorf("gradient of %s: %w", p.Name, err)
		}
		p.grad.be, p.grad.buf = be, g
	}
	return buf, nil
}

// Buffer is the parameter's buffer on be, nil when it is not bound there
// (Bind).
func (p *Param) Buffer(be compute.Backend) compute.Buffer { return p.data.on(be) }

// GradBuffer is the parameter's gradient on be, nil when it is not bound
// there (Bind). Backward passes add into it; ZeroGrad clears it.
func (p *Param) GradBuffer(be compute.Backend) compute.Buffer {
	if be == nil || p.grad.be != be {
		return nil
	}
	return p.grad.buf
}

// Grad copies the gradient into host memory (nil when unbound).
func (p *Param) Grad() ([]float32, error) {
	if p == nil {
		return nil, errNoParam
	}
	if p.grad.buf == nil {
		return nil, nil
	}
	g := make([]float32, len(p.Data))
	return g, p.grad.be.Download(g, p.grad.buf)
}

// Sync copies the bound backend's values into Data.
func (p *Param) Sync() error {
	if p == nil {
		return errNoParam
	}
	return p.data.sync(p.Data)
}

// Release copies the bound backend's values into Data and frees the
// parameter's buffers there.
func (p *Param) Release() error {
	if p == nil {
		return errNoParam
	}
	if err := p.data.release(p.Data); err != nil {
		return err
	}
	if p.grad.buf != nil {
		p.grad.be.Free(p.grad.buf)
		p.grad.be, p.grad.buf = nil, nil
	}
	return nil
}

// Upload tells the bound backend that Data changed.
func (p *Param) Upload() { p.data.upload(p.Data) }

// ZeroGrad clears the gradient on the bound backend.
func (p *Param) ZeroGrad() {
	if p.grad.buf != nil {
		p.grad.be.Fill(p.grad.buf, 0)
	}
}
