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

// checkStructure checks that each layer reads earlier nodes only, joins
// two or more and other layers one.
func checkStructure(layers []Layer, inputs [][]int) error {
	if inputs == nil {
		return nil
	}
	if len(inputs) != len(layers) {
		return fmt.Errorf("%d input lists for %d layers", len(inputs), len(layers))
	}
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
		}
	}
	return nil
}

// checkGraph checks a network's graph: its structure, and that every node
// but the last feeds a later layer (the last layer's output is the
// network's).
func checkGraph(layers []Layer, inputs [][]int) error {
	if err := checkStructure(layers, inputs); err != nil || inputs == nil {
		return err
	}
	used := make([]bool, len(layers)+1) // used[j+1]: node j feeds a layer
	for _, in := range inputs {
		for _, j := range in {
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

// GraphShapes computes every layer's per-sample output shape in a
// network's graph, which it checks (checkGraph).
func GraphShapes(layers []Layer, inputs [][]int, inShape []int) ([][]int, error) {
	if err := checkGraph(layers, inputs); err != nil {
		return nil, err
	}
	return graphShapes(layers, inputs, inShape)
}

// graphShapes computes the shapes of a graph whose structure is all that
// is checked: a part of a network may have nodes only later parts read.
func graphShapes(layers []Layer, inputs [][]int, inShape []int) ([][]int, error) {
	if err := checkStructure(layers, inputs); err != nil {
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
