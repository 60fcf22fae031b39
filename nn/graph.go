package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Join is a layer with several inputs: Add and Concat, where the branches
// of a residual or an inception-style network meet. Its single-input
// methods of Layer are not used; executors call these instead.
type Join interface {
	Layer
	// JoinShape is the per-sample output shape for the inputs' shapes.
	JoinShape(ins [][]int) ([]int, error)
	// JoinForward computes y from the inputs xs.
	JoinForward(be compute.Backend, xs []Value, y Value)
	// JoinBackward writes each input's gradient dxs[k] from dy (a nil
	// dxs[k].Buf skips input k).
	JoinBackward(be compute.Backend, xs []Value, dy Value, dxs []Value)
}

// InputsOf lists where layer i's inputs come from: −1 for the network's
// input, j for layer j's output. Without Inputs the network is a chain.
func (n *Network) InputsOf(i int) []int { return NodeInputs(n.Inputs, i) }

// NodeInputs is layer i's inputs for inputs as Network.Inputs (nil: a
// chain, layer i reading layer i−1).
func NodeInputs(inputs [][]int, i int) []int {
	if inputs == nil {
		return []int{i - 1}
	}
	return inputs[i]
}

// IsChain reports whether every layer reads the one before it.
func (n *Network) IsChain() bool { return IsChain(n.Inputs) }

// IsChain reports whether inputs (as Network.Inputs) make a chain.
func IsChain(inputs [][]int) bool {
	for i, in := range inputs {
		if len(in) != 1 || in[0] != i-1 {
			return false
		}
	}
	return true
}

// checkGraph checks a layer graph: each layer reads earlier nodes only,
// joins read two or more and other layers one, and every node but the
// last feeds a later layer (the last layer's output is the network's).
func checkGraph(layers []Layer, inputs [][]int) error {
	if inputs == nil {
		return nil
	}
	if len(inputs) != len(layers) {
		return fmt.Errorf("%d input lists for %d layers", len(inputs), len(layers))
	}
	used := make([]bool, len(layers)+1) // used[j+1]: node j feeds a layer
	for i, in := range inputs {
		_, join := layers[i].(Join)
		switch {
		case join && len(in) < 2:
			return fmt.Errorf("layer %d (%s %q) joins %d inputs; it needs two or more", i, layers[i].Kind(), layers[i].Name(), len(in))
		case !join && len(in) != 1:
			return fmt.Errorf("layer %d (%s %q) has %d inputs; it takes one", i, layers[i].Kind(), layers[i].Name(), len(in))
		}
		for _, j := range in {
			if j < -1 || j >= i {
				return fmt.Errorf("layer %d (%s %q) reads node %d, which is not an earlier layer or the input", i, layers[i].Kind(), layers[i].Name(), j)
			}
			used[j+1] = true
		}
	}
	for j := -1; j < len(layers)-1; j++ {
		if !used[j+1] {
			if j < 0 {
				return fmt.Errorf("no layer reads the network's input")
			}
			return fmt.Errorf("layer %d (%s %q) feeds no later layer: the network must end in one output", j, layers[j].Kind(), layers[j].Name())
		}
	}
	return nil
}

// GraphShapes computes every layer's per-sample output shape in a graph.
func GraphShapes(layers []Layer, inputs [][]int, inShape []int) ([][]int, error) {
	if err := checkGraph(layers, inputs); err != nil {
		return nil, err
	}
	shapes := make([][]int, len(layers))
	of := func(j int) []int {
		if j < 0 {
			return inShape
		}
		return shapes[j]
	}
	for i, l := range layers {
		var out []int
		var err error
		if j, ok := l.(Join); ok {
			ins := make([][]int, len(inputs[i]))
			for k, src := range inputs[i] {
				ins[k] = of(src)
			}
			out, err = j.JoinShape(ins)
		} else {
			out, err = l.OutputShape(of(NodeInputs(inputs, i)[0]))
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s %q): %w", i, l.Kind(), l.Name(), err)
		}
		shapes[i] = out
	}
	return shapes, nil
}

// graphPlan is what an Executor needs beyond a chain's: each layer's
// inputs, a gradient buffer per layer output (a node's gradient sums over
// the layers it feeds) and scratch buffers for the second and later of
// those terms.
type graphPlan struct {
	inputs    [][]int
	nodeGrads []compute.Buffer // [capacity·numel] per layer output
	scratch   []compute.Buffer // one per input slot of the widest layer
	written   []bool
}

// NewGraphExecutor is NewExecutor for a layer graph (inputs as
// Network.Inputs; nil or a chain takes the chain's path).
func NewGraphExecutor(be compute.Backend, layers []Layer, inputs [][]int, inShape []int, capacity int, backward bool) (*Executor, error) {
	if inputs == nil || IsChain(inputs) {
		return NewExecutor(be, layers, inShape, capacity, backward)
	}
	if capacity < 1 {
		return nil, fmt.Errorf("batch capacity must be at least 1, got %d", capacity)
	}
	shapes, err := GraphShapes(layers, inputs, inShape)
	if err != nil {
		return nil, err
	}
	e := &Executor{be: be, layers: layers, capacity: capacity, shapes: append([][]int{inShape}, shapes...),
		graph: &graphPlan{inputs: inputs}}
	alloc := func(n int, what string) (compute.Buffer, error) {
		if n > (1<<62)/4/capacity {
			return nil, fmt.Errorf("%s: %d values per sample are too many", what, n)
		}
		b, err := be.Alloc(n * capacity)
		if err != nil {
			e.Free()
			return nil, fmt.Errorf("%s, batch %d: %w", what, capacity, err)
		}
		e.owned = append(e.owned, b)
		return b, nil
	}
	biggest, widest := Numel(inShape), 1
	for i, l := range layers {
		what := fmt.Sprintf("activations of layer %d (%s %q)", i, l.Kind(), l.Name())
		act, err := alloc(Numel(shapes[i]), what)
		if err != nil {
			return nil, err
		}
		e.acts = append(e.acts, act)
		var aux compute.Buffer
		if _, join := l.(Join); !join {
			if n := l.AuxSize(e.shapes[inputs[i][0]+1], 1); n > 0 {
				if aux, err = be.Alloc(n); err != nil {
					e.Free()
					return nil, fmt.Errorf("workspace of layer %d (%s %q): %w", i, l.Kind(), l.Name(), err)
				}
				e.owned = append(e.owned, aux)
			}
		}
		e.aux = append(e.aux, aux)
		biggest = max(biggest, Numel(shapes[i]))
		widest = max(widest, len(inputs[i]))
	}
	if backward {
		g := e.graph
		for i := range layers {
			b, err := alloc(Numel(shapes[i]), "gradients")
			if err != nil {
				return nil, err
			}
			g.nodeGrads = append(g.nodeGrads, b)
		}
		for k := 0; k < widest; k++ {
			b, err := alloc(biggest, "gradients")
			if err != nil {
				return nil, err
			}
			g.scratch = append(g.scratch, b)
		}
		e.grads[0] = g.nodeGrads[0] // marks the executor as made for Backward
	}
	return e, nil
}

// graphForward runs the layers in order, each on its input nodes.
func (e *Executor) graphForward(x Value, mode Mode) Value {
	n := x.N()
	if n > e.capacity {
		panic(fmt.Sprintf("nn: batch of %d for an executor planned for %d", n, e.capacity))
	}
	e.mode = mode
	e.ins, e.outs = e.ins[:0], e.outs[:0]
	node := func(j int) Value {
		if j < 0 {
			return x
		}
		return e.outs[j]
	}
	for i, l := range e.layers {
		y := e.value(i+1, n, e.acts[i])
		if j, ok := l.(Join); ok {
			xs := make([]Value, len(e.graph.inputs[i]))
			for k, src := range e.graph.inputs[i] {
				xs[k] = node(src)
			}
			j.JoinForward(e.be, xs, y)
			e.ins = append(e.ins, xs[0])
		} else {
			in := node(e.graph.inputs[i][0])
			if isView(l) {
				e.be.Copy(y.Buf, in.Buf)
			} else {
				l.Forward(e.be, in, y, e.aux[i], mode)
			}
			e.ins = append(e.ins, in)
		}
		e.outs = append(e.outs, y)
	}
	return e.outs[len(e.outs)-1]
}

// graphBackward propagates dy from the last layer to the first. A node
// read by several layers gets the sum of their gradients: the first term
// is written in place, the others computed into scratch and added.
func (e *Executor) graphBackward(dy Value) {
	g := e.graph
	n := dy.N()
	g.written = make([]bool, len(e.layers))
	last := len(e.layers) - 1
	e.be.Copy(g.nodeGrads[last].Slice(0, dy.Buf.Len()), dy.Buf)
	g.written[last] = true
	e.dxs = make([]Value, len(e.layers))
	for i := last; i >= 0; i-- {
		if !g.written[i] {
			continue // feeds nothing that has a gradient
		}
		l := e.layers[i]
		dyi := e.value(i+1, n, g.nodeGrads[i])
		srcs := g.inputs[i]
		// where each input's gradient goes: its node's buffer, or scratch
		dxs := make([]Value, len(srcs))
		toScratch := make([]bool, len(srcs))
		for k, src := range srcs {
			if src < 0 {
				continue // the network's input: no gradient
			}
			if g.written[src] || contains(srcs[:k], src) {
				toScratch[k] = true
				dxs[k] = e.value(src+1, n, g.scratch[k])
			} else {
				dxs[k] = e.value(src+1, n, g.nodeGrads[src])
			}
		}
		if j, ok := l.(Join); ok {
			xs := make([]Value, len(srcs))
			for k, src := range srcs {
				if src < 0 {
					xs[k] = e.ins[i]
				} else {
					xs[k] = e.outs[src]
				}
			}
			j.JoinBackward(e.be, xs, dyi, dxs)
		} else if isView(l) {
			if dxs[0].Buf != nil {
				e.be.Copy(dxs[0].Buf, dyi.Buf)
			}
		} else if dxs[0].Buf != nil || len(l.Params()) > 0 {
			dx := dxs[0]
			if dx.Buf == nil {
				dx = Value{Shape: e.ins[i].Shape}
			}
			l.Backward(e.be, e.ins[i], e.outs[i], dyi, dx, e.aux[i], e.mode)
		}
		for k, src := range srcs {
			if src < 0 {
				continue
			}
			if toScratch[k] {
				e.be.AddTo(g.nodeGrads[src].Slice(0, dxs[k].Buf.Len()), dxs[k].Buf)
			}
			g.written[src] = true
		}
		if len(srcs) > 0 {
			e.dxs[i] = dxs[0]
		}
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
