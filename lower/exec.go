package lower

import (
	"errors"
	"fmt"
	"slices"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Executor runs an ANN's program on one backend for batches of up to a
// fixed number of samples: its forward pass and, if lowered, its backward
// pass. Its buffers are planned and allocated once when it is made, so
// that a pass allocates nothing. The network's parameters must be bound
// to the same backend (nn.Network.Bind). NewExecutor makes one; a zero
// or nil Executor's Forward and Backward refuse to run, and its other
// methods describe nothing.
type Executor struct {
	m     *program.Machine
	l     *Lowered
	n     int
	input nn.Value
	out   []int
}

// NewExecutor lowers net (ANN, with opt) and loads it on be. net may be
// part of a network: nodes that no later node reads are allowed (list
// them in opt.Keep to read them).
func NewExecutor(be compute.Backend, net *nn.Network, opt Options) (*Executor, error) {
	if be == nil {
		return nil, fmt.Errorf("no backend to run on (nil)")
	}
	l, err := ANN(net, opt)
	if err != nil {
		return nil, err
	}
	m := program.NewMachine(be)
	if err := m.Load(l.Program); err != nil {
		m.Free()
		return nil, fmt.Errorf("%s: %w", be.Name(), err)
	}
	e := &Executor{m: m, l: l, out: l.Slot(l.Output).Shape}
	return e, nil
}

// errNoExecutor is the error of a nil or zero Executor's runs.
var errNoExecutor = errors.New("not an executor (nil or zero: make one with NewExecutor)")

// Program is the executor's lowered program (nil for a zero Executor).
func (e *Executor) Program() *Lowered { return e.l }

// Capacity is the largest batch the executor takes (0 for a zero one).
func (e *Executor) Capacity() int {
	if e.l == nil {
		return 0
	}
	return e.l.Capacity.N
}

// OutputShape is the per-sample shape of the last layer's output.
func (e *Executor) OutputShape() []int { return e.out }

// NodeShape is the per-sample shape of node j (−1: the input; nil for a
// node the network has not, or one folded away).
func (e *Executor) NodeShape(j int) []int {
	if e.l == nil || j >= len(e.l.Values) {
		return nil
	}
	r := e.l.Input
	if j >= 0 {
		r = e.l.Values[j]
	}
	if s := e.l.Slot(r); s != nil {
		return s.Shape
	}
	return nil
}

// Forward runs the forward pass on x ([n, input shape...] on the
// executor's backend, n at most its capacity) and returns the last node's
// output, valid until the next call.
func (e *Executor) Forward(x nn.Value) (nn.Value, error) {
	if e == nil || e.l == nil {
		return nn.Value{}, errNoExecutor
	}
	if in := e.NodeShape(-1); !nn.FitsInput(in, x.Shape) {
		return nn.Value{}, fmt.Errorf("a batch of shape %s for a network that takes [B %s", nn.ShapeString(x.Shape), nn.ShapeString(in)[1:])
	}
	n := x.N()
	e.m.Bind(e.l.Input, x.Buf)
	if err := e.m.Run(e.l.Program, e.l.Forward, program.Dims{N: n, Steps: 1}); err != nil {
		return nn.Value{}, err
	}
	e.n, e.input = n, x
	return e.Output(len(e.l.Values) - 1), nil
}

// Backward propagates dy, the gradient at the last forward pass's output,
// back through the network, adding into every parameter's gradient
// buffer after zeroing it. The executor must have been made with
// Options.Backward.
func (e *Executor) Backward(dy nn.Value) error {
	if e == nil || e.l == nil {
		return errNoExecutor
	}
	if e.l.Backward < 0 {
		return fmt.Errorf("the executor was made without a backward pass")
	}
	if e.n < 1 {
		return fmt.Errorf("a backward pass before any forward pass")
	}
	if len(dy.Shape) != len(e.out)+1 || dy.N() != e.n || !slices.Equal(dy.Shape[1:], e.out) {
		return fmt.Errorf("a gradient of shape %s at an output of shape [%d %s", nn.ShapeString(dy.Shape), e.n, nn.ShapeString(e.out)[1:])
	}
	e.m.Bind(e.l.DY, dy.Buf)
	return e.m.Run(e.l.Program, e.l.Backward, program.Dims{N: dy.N(), Steps: 1})
}

// Output is node i's output in the last forward pass, for the output and
// the nodes in Options.Keep; the zero Value for any other node (its
// memory may hold another value by now, or, fused away, none).
func (e *Executor) Output(i int) nn.Value {
	if e.l == nil || i < 0 || i >= len(e.l.Values) || e.l.Slot(e.l.Values[i]) == nil || !e.l.Slot(e.l.Values[i]).Keep {
		return nn.Value{}
	}
	r := e.l.Values[i]
	sh := e.l.Slot(r).Shape
	return nn.Value{Shape: append([]int{e.n}, sh...), Buf: e.m.Value(e.l.Program, r, program.Dims{N: e.n, Steps: 1})}
}

// InputGrad is the gradient at node i's first input that the last
// Backward computed (none for a node reading the network's input).
func (e *Executor) InputGrad(i int) nn.Value {
	if e.l == nil || i < 0 || i >= len(e.l.InputGrads) || len(e.l.InputGrads[i]) == 0 {
		return nn.Value{}
	}
	r := e.l.InputGrads[i][0]
	if r == program.None {
		return nn.Value{Shape: e.input.Shape}
	}
	sh := e.l.Slot(r).Shape
	return nn.Value{Shape: append([]int{e.n}, sh...), Buf: e.m.Value(e.l.Program, r, program.Dims{N: e.n, Steps: 1})}
}

// Free gives the executor's buffers back to the backend.
func (e *Executor) Free() {
	if e.m != nil {
		e.m.Free()
	}
}

// Forward runs the ANN in inference mode on a host batch of any size, on
// be, batch samples at a time (0: all at once).
func Forward(be compute.Backend, net *nn.Network, x *nn.Tensor, batch int) (*nn.Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("no input batch (nil)")
	}
	if err := net.CheckInput(x.Shape); err != nil {
		return nil, err
	}
	outShape, err := net.OutputShape()
	if err != nil {
		return nil, err
	}
	out, err := nn.NewTensor(append([]int{x.Shape[0]}, outShape...)...)
	if err != nil {
		return nil, err
	}
	if x.Shape[0] == 0 {
		return out, nil
	}
	if err := net.Bind(be); err != nil {
		return nil, err
	}
	net.Upload()
	e, err := NewExecutor(be, net, Options{Capacity: nn.Chunk(x.Shape[0], batch)})
	if err != nil {
		return nil, err
	}
	defer e.Free()
	err = nn.Chunks(be, x, e.Capacity(), func(lo int, v nn.Value) error {
		y, err := e.Forward(v)
		if err != nil {
			return err
		}
		k := nn.Numel(outShape)
		return be.Download(out.Data[lo*k:lo*k+y.Buf.Len()], y.Buf)
	})
	if err != nil {
		return nil, err
	}
	return out, be.Err()
}
