package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Executor runs a chain of layers on one backend for batches of up to a
// fixed number of samples. It owns the activations, each layer's workspace
// and the gradient buffers, allocated once when it is made, so that a
// training step allocates nothing. The layers' parameters must be bound to
// the same backend (Network.Bind).
type Executor struct {
	be       compute.Backend
	layers   []Layer
	shapes   [][]int // shapes[0] is the per-sample input, shapes[i+1] layer i's output
	capacity int
	acts     []compute.Buffer // acts[i] is layer i's output
	aux      []compute.Buffer
	grads    [2]compute.Buffer
	owned    []compute.Buffer
	ins      []Value // each layer's input in the last forward pass
	outs     []Value // each layer's output in the last forward pass
	dxs      []Value // each layer's input gradient in the last backward pass
	mode     Mode
	graph    *graphPlan // nil for a chain
}

// NewExecutor plans layers on be for batches of up to capacity samples of
// shape inShape. With backward it also allocates what Backward needs.
func NewExecutor(be compute.Backend, layers []Layer, inShape []int, capacity int, backward bool) (*Executor, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("batch capacity must be at least 1, got %d", capacity)
	}
	e := &Executor{be: be, layers: layers, capacity: capacity, shapes: [][]int{inShape}}
	cur := inShape
	biggest := 0
	for i, l := range layers {
		out, err := l.OutputShape(cur)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s %q): %w", i, l.Kind(), l.Name(), err)
		}
		e.shapes = append(e.shapes, out)
		biggest = max(biggest, Numel(out))
		cur = out
	}
	alloc := func(n int) (compute.Buffer, error) {
		if n > (1<<62)/4/capacity {
			return nil, fmt.Errorf("%d values per sample are too many", n)
		}
		b, err := be.Alloc(n * capacity)
		if err != nil {
			return nil, err
		}
		e.owned = append(e.owned, b)
		return b, nil
	}
	for i, l := range layers {
		var act compute.Buffer
		var err error
		switch {
		case isView(l):
			// its output is its input, reshaped; Forward passes it on
		default:
			act, err = alloc(Numel(e.shapes[i+1]))
		}
		if err != nil {
			e.Free()
			return nil, fmt.Errorf("activations of layer %d (%s %q), batch %d: %w", i, l.Kind(), l.Name(), capacity, err)
		}
		e.acts = append(e.acts, act)
		var aux compute.Buffer
		if n := l.AuxSize(e.shapes[i], 1); n > 0 {
			if aux, err = be.Alloc(n); err != nil {
				e.Free()
				return nil, fmt.Errorf("workspace of layer %d (%s %q): %w", i, l.Kind(), l.Name(), err)
			}
			e.owned = append(e.owned, aux)
		}
		e.aux = append(e.aux, aux)
	}
	if backward {
		for i := range e.grads {
			g, err := alloc(biggest)
			if err != nil {
				e.Free()
				return nil, fmt.Errorf("gradients, batch %d: %w", capacity, err)
			}
			e.grads[i] = g
		}
	}
	return e, nil
}

// Capacity is the largest batch the executor takes.
func (e *Executor) Capacity() int { return e.capacity }

// OutputShape is the per-sample shape of the last layer's output.
func (e *Executor) OutputShape() []int { return e.shapes[len(e.shapes)-1] }

func (e *Executor) value(i, n int, buf compute.Buffer) Value {
	shape := append([]int{n}, e.shapes[i]...)
	return Value{Shape: shape, Buf: buf.Slice(0, n*Numel(e.shapes[i]))}
}

// Forward runs the layers on x ([n, inShape...], n at most the capacity,
// on the executor's backend) and returns the last layer's output, which
// stays valid until the next call. With no layers it returns x.
func (e *Executor) Forward(x Value, mode Mode) Value {
	if e.graph != nil {
		return e.graphForward(x, mode)
	}
	n := x.N()
	if n > e.capacity {
		panic(fmt.Sprintf("nn: batch of %d for an executor planned for %d", n, e.capacity))
	}
	e.mode = mode
	e.ins, e.outs = e.ins[:0], e.outs[:0]
	cur := x
	for i, l := range e.layers {
		var y Value
		if isView(l) {
			y = Value{Shape: append([]int{n}, e.shapes[i+1]...), Buf: cur.Buf}
		} else {
			y = e.value(i+1, n, e.acts[i])
			l.Forward(e.be, cur, y, e.aux[i], mode)
		}
		e.ins, e.outs = append(e.ins, cur), append(e.outs, y)
		cur = y
	}
	return cur
}

// Backward propagates dy, the gradient at the last forward pass's output,
// back through the layers, adding into every parameter's gradient buffer.
// The executor must have been made with backward.
func (e *Executor) Backward(dy Value) {
	if e.grads[0] == nil {
		panic("nn: Backward on an executor made without backward")
	}
	if len(e.outs) != len(e.layers) {
		panic("nn: Backward before Forward")
	}
	if e.graph != nil {
		e.graphBackward(dy)
		return
	}
	next := 0
	e.dxs = make([]Value, len(e.layers))
	for i := len(e.layers) - 1; i >= 0; i-- {
		l := e.layers[i]
		x, y := e.ins[i], e.outs[i]
		n := x.N()
		dx := Value{Shape: x.Shape}
		switch {
		case i == 0:
		case isView(l):
			dx.Buf = dy.Buf
		default:
			dx.Buf = e.grads[next].Slice(0, n*Numel(e.shapes[i]))
			next = 1 - next
		}
		switch {
		case isView(l) && dx.Buf == dy.Buf:
		case dx.Buf == nil && len(l.Params()) == 0: // nothing to compute
		default:
			l.Backward(e.be, x, y, dy, dx, e.aux[i], e.mode)
		}
		e.dxs[i] = dx
		dy = dx
	}
}

// InputGrad is the gradient at layer i's input that the last Backward
// computed (valid until the next call; none for layer 0, whose input
// gradient an executor does not compute).
func (e *Executor) InputGrad(i int) Value { return e.dxs[i] }

// Free gives the executor's buffers back to the backend.
func (e *Executor) Free() {
	for _, b := range e.owned {
		e.be.Free(b)
	}
	e.owned = nil
}

// Output is layer i's output in the last forward pass (valid until the
// next call).
func (e *Executor) Output(i int) Value { return e.outs[i] }

// NodeShape is the per-sample shape of node j: −1 the input, j ≥ 0 layer
// j's output.
func (e *Executor) NodeShape(j int) []int { return e.shapes[j+1] }
