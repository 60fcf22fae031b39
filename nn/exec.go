package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Executor runs a network's layers on one backend for batches of up to a
// fixed number of samples: the forward pass and, if planned, the backward
// pass. Its buffers are planned (PlanBuffers, PlanGradients) and allocated
// once when it is made, so that a pass allocates nothing. The layers'
// parameters must be bound to the same backend (Network.Bind).
type Executor struct {
	be       compute.Backend
	layers   []Layer
	inputs   [][]int // each node's inputs, explicit
	inShape  []int
	shapes   [][]int // per node, per sample
	capacity int

	plan     BufferPlan
	slots    []compute.Buffer // per slot, [capacity·size]
	aux      []compute.Buffer // per node: workspace, or nil
	keep     []bool
	grads    *GradPlan        // nil: no backward pass planned
	gradBufs []compute.Buffer // per gradient slot
	owned    []compute.Buffer

	// the last passes
	mode    Mode
	input   Value
	outs    []Value   // per node
	xs      [][]Value // per node: its inputs' values
	dxs     [][]Value // per node: its inputs' gradients
	valueSh [][]int   // per node: the batched shape handed out, [n, shape...]
}

// ExecOptions say what an Executor plans beside the forward pass.
type ExecOptions struct {
	// Backward plans the backward pass; every activation is then kept.
	Backward bool
	// Keep lists nodes whose outputs stay valid after Forward, for Output
	// (the last node's always does).
	Keep []int
}

// NewExecutor plans net on be for batches of up to capacity samples. net
// may be part of a network: nodes that no later node reads are allowed
// (list them in opt.Keep to read them).
func NewExecutor(be compute.Backend, net *Network, capacity int, opt ExecOptions) (*Executor, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("batch capacity must be at least 1, got %d", capacity)
	}
	layers := net.Layers
	shapes, err := graphShapes(layers, net.Inputs, net.InputShape)
	if err != nil {
		return nil, err
	}
	e := &Executor{be: be, layers: layers, inShape: net.InputShape, shapes: shapes, capacity: capacity}
	n := len(layers)
	e.keep = make([]bool, n)
	for _, j := range opt.Keep {
		if j < 0 || j >= n {
			return nil, fmt.Errorf("node %d to keep is not a node of the network", j)
		}
		e.keep[j] = true
	}
	if n > 0 {
		e.keep[n-1] = true
	}
	nodes := make([]PlanNode, n)
	for i, l := range layers {
		e.inputs = append(e.inputs, NodeInputs(net.Inputs, i))
		_, join := l.(Join)
		nodes[i] = PlanNode{Inputs: e.inputs[i], Numel: Numel(shapes[i]), View: !join && isView(l), Keep: e.keep[i] || opt.Backward}
		e.xs = append(e.xs, make([]Value, len(e.inputs[i])))
		e.dxs = append(e.dxs, make([]Value, len(e.inputs[i])))
		e.valueSh = append(e.valueSh, make([]int, 1+len(shapes[i])))
	}
	e.outs = make([]Value, n)
	if e.plan, err = PlanBuffers(nodes); err != nil {
		return nil, err
	}
	for s, size := range e.plan.Sizes {
		b, err := e.alloc(size, fmt.Sprintf("activations (buffer %d)", s))
		if err != nil {
			return nil, err
		}
		e.slots = append(e.slots, b)
	}
	for i, l := range layers {
		var aux compute.Buffer
		if _, join := l.(Join); !join {
			if k := l.AuxSize(e.inputShape(e.inputs[i][0]), 1); k > 0 {
				if aux, err = be.Alloc(k); err != nil {
					e.Free()
					return nil, fmt.Errorf("workspace of layer %d (%s %q): %w", i, l.Kind(), l.Name(), err)
				}
				e.owned = append(e.owned, aux)
			}
		}
		e.aux = append(e.aux, aux)
	}
	if opt.Backward {
		gnodes := make([]GradNode, n)
		for i, nd := range nodes {
			gnodes[i] = GradNode{Inputs: nd.Inputs, Numel: nd.Numel, View: nd.View}
		}
		g := PlanGradients(gnodes)
		e.grads = &g
		for s, size := range g.Sizes {
			b, err := e.alloc(size, fmt.Sprintf("gradients (buffer %d)", s))
			if err != nil {
				return nil, err
			}
			e.gradBufs = append(e.gradBufs, b)
		}
	}
	return e, nil
}

// alloc allocates a buffer of size values per sample for the capacity.
func (e *Executor) alloc(size int, what string) (compute.Buffer, error) {
	if size > (1<<62)/4/e.capacity {
		e.Free()
		return nil, fmt.Errorf("%s: %d values per sample are too many", what, size)
	}
	b, err := e.be.Alloc(size * e.capacity)
	if err != nil {
		e.Free()
		return nil, fmt.Errorf("%s, batch %d: %w", what, e.capacity, err)
	}
	e.owned = append(e.owned, b)
	return b, nil
}

// inputShape is node j's per-sample shape (−1: the input).
func (e *Executor) inputShape(j int) []int {
	if j < 0 {
		return e.inShape
	}
	return e.shapes[j]
}

// Capacity is the largest batch the executor takes.
func (e *Executor) Capacity() int { return e.capacity }

// OutputShape is the per-sample shape of the last layer's output.
func (e *Executor) OutputShape() []int {
	if len(e.shapes) == 0 {
		return e.inShape
	}
	return e.shapes[len(e.shapes)-1]
}

// NodeShape is the per-sample shape of node j: −1 the input, j ≥ 0 layer
// j's output.
func (e *Executor) NodeShape(j int) []int { return e.inputShape(j) }

// node is node j's value in the current pass (−1: the input).
func (e *Executor) node(j int) Value {
	if j < 0 {
		return e.input
	}
	return e.outs[j]
}

// Forward runs the layers on x ([n, inShape...], n at most the capacity,
// on the executor's backend) and returns the last layer's output, which
// stays valid until the next call. With no layers it returns x.
func (e *Executor) Forward(x Value, mode Mode) Value {
	n := x.N()
	if n > e.capacity {
		panic(fmt.Sprintf("nn: batch of %d for an executor planned for %d", n, e.capacity))
	}
	e.mode, e.input = mode, x
	for i, l := range e.layers {
		xs := e.xs[i]
		for k, j := range e.inputs[i] {
			xs[k] = e.node(j)
		}
		sh := e.valueSh[i]
		sh[0] = n
		copy(sh[1:], e.shapes[i])
		y := Value{Shape: sh}
		if s := e.plan.Slot[i]; s >= 0 {
			y.Buf = e.slots[s].Slice(0, n*Numel(e.shapes[i]))
		} else {
			y.Buf = xs[0].Buf // a view of the input
		}
		switch j := l.(type) {
		case Join:
			j.JoinForward(e.be, xs, y)
		default:
			if !isView(l) {
				l.Forward(e.be, xs[0], y, e.aux[i], mode)
			}
		}
		e.outs[i] = y
	}
	if len(e.layers) == 0 {
		return x
	}
	return e.outs[len(e.outs)-1]
}

// Backward propagates dy, the gradient at the last forward pass's output,
// back through the layers, adding into every parameter's gradient buffer.
// A node read by several layers gets the sum of their gradients: the last
// reader writes it, the others compute theirs into scratch and add it.
// The executor must have been made with ExecOptions.Backward.
func (e *Executor) Backward(dy Value) {
	if e.grads == nil {
		panic("nn: Backward on an executor made without backward")
	}
	n := dy.N()
	g := e.grads
	gradBuf := func(slot, j int) compute.Buffer {
		if slot == gradOut {
			return dy.Buf
		}
		return e.gradBufs[slot].Slice(0, n*Numel(e.shapes[j]))
	}
	for i := len(e.layers) - 1; i >= 0; i-- {
		if g.Slot[i] == noGrad {
			continue // feeds nothing that has a gradient
		}
		l := e.layers[i]
		dyi := Value{Shape: e.outs[i].Shape, Buf: gradBuf(g.Slot[i], i)}
		dxs := e.dxs[i]
		for k, j := range e.inputs[i] {
			switch {
			case j < 0:
				dxs[k] = Value{Shape: e.input.Shape} // the input's gradient is not computed
			case g.Scratch[i][k] >= 0:
				dxs[k] = Value{Shape: e.outs[j].Shape, Buf: gradBuf(g.Scratch[i][k], j)}
			default:
				dxs[k] = Value{Shape: e.outs[j].Shape, Buf: gradBuf(g.Slot[j], j)}
			}
		}
		switch jl := l.(type) {
		case Join:
			jl.JoinBackward(e.be, e.xs[i], dyi, dxs)
		default:
			switch {
			case isView(l):
				if j := e.inputs[i][0]; j >= 0 && g.Slot[j] != g.Slot[i] {
					e.be.Copy(dxs[0].Buf, dyi.Buf)
				}
			case dxs[0].Buf != nil || len(l.Params()) > 0:
				l.Backward(e.be, e.xs[i][0], e.outs[i], dyi, dxs[0], e.aux[i], e.mode)
			}
		}
		for k, j := range e.inputs[i] {
			if s := g.Scratch[i][k]; s >= 0 {
				e.be.AddTo(gradBuf(g.Slot[j], j), dxs[k].Buf)
			}
		}
	}
}

// InputGrad is the gradient at layer i's (first) input that the last
// Backward computed (valid until the next call; none for a layer reading
// the network's input, whose gradient an executor does not compute).
func (e *Executor) InputGrad(i int) Value { return e.dxs[i][0] }

// Output is node i's output in the last forward pass, valid until the
// next call. Only the last node's, the nodes in ExecOptions.Keep and, with
// a backward pass planned, every node's output are kept whole.
func (e *Executor) Output(i int) Value {
	if !e.keep[i] && e.grads == nil {
		panic(fmt.Sprintf("nn: Output(%d) of a node the executor does not keep", i))
	}
	return e.outs[i]
}

// Free gives the executor's buffers back to the backend.
func (e *Executor) Free() {
	for _, b := range e.owned {
		e.be.Free(b)
	}
	e.owned = nil
}
