package nn

import (
	"fmt"
	"slices"
)

// InputsOf lists where layer i's inputs come from: −1 for the network's
// input, j for layer j's output. Without Inputs the network is a chain.
func (n *Network) InputsOf(i int) []int { return NodeInputs(n.Inputs, i) }

// NodeInputs is layer i's inputs for inputs as Network.Inputs (nil: a
// chain, layer i reading layer i−1); nil for an i that inputs has not.
func NodeInputs(inputs [][]int, i int) []int {
	if inputs == nil {
		return []int{i - 1}
	}
	if i < 0 || i >= len(inputs) {
		return nil
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

// checkStructure checks that each layer is set and reads earlier nodes
// only (how many inputs a kind takes its shape rule checks).
func checkStructure(layers []Layer, inputs [][]int) error {
	for i, l := range layers {
		if l == nil {
			return fmt.Errorf("layer %d is nil", i)
		}
	}
	if inputs == nil {
		return nil
	}
	if len(inputs) != len(layers) {
		return fmt.Errorf("%d input lists for %d layers", len(inputs), len(layers))
	}
	for i, in := range inputs {
		if len(in) == 0 {
			return fmt.Errorf("layer %d (%s %q) reads nothing", i, KindOf(layers[i]), NameOf(layers[i]))
		}
		for _, j := range in {
			if j < -1 || j >= i {
				return fmt.Errorf("layer %d (%s %q) reads node %d, which is not an earlier layer or the input", i, KindOf(layers[i]), NameOf(layers[i]), j)
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
			return fmt.Errorf("layer %d (%s %q) feeds no later layer: the network must end in one output", j, KindOf(layers[j]), NameOf(layers[j]))
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
	return NodeShapes(layers, inputs, inShape)
}

// NodeShapes computes the shapes of a graph whose structure is all that
// is checked: a part of a network may have nodes only later parts read.
func NodeShapes(layers []Layer, inputs [][]int, inShape []int) ([][]int, error) {
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
		src := NodeInputs(inputs, i)
		ins := make([][]int, len(src))
		for k, j := range src {
			ins[k] = of(j)
		}
		out, err := l.OutputShape(ins)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s %q): %w", i, KindOf(l), NameOf(l), err)
		}
		shapes[i] = out
	}
	return shapes, nil
}

// Readers lists, for each of the n nodes of a graph (inputs as
// Network.Inputs), the nodes that read it, in order; a node reading
// another twice is listed once.
func Readers(inputs [][]int, n int) [][]int {
	if n < 1 {
		return nil
	}
	readers := make([][]int, n)
	for i := 0; i < n; i++ {
		in := NodeInputs(inputs, i)
		for k, j := range in {
			if j >= 0 && j < n && !slices.Contains(in[:k], j) {
				readers[j] = append(readers[j], i)
			}
		}
	}
	return readers
}
