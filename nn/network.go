package nn

import (
	"fmt"
)

// Network is a feed-forward chain of layers: the ANN. Its parameters are
// the ones the SNN built from it shares.
type Network struct {
	// Name is a label for messages, usually the file the network came from.
	Name string
	// InputShape is the per-sample input shape, e.g. [1 28 28].
	InputShape []int
	// Layers run in order.
	Layers []Layer
}

// Shapes returns the per-sample output shape of every layer, checking that
// each layer fits its input.
func (n *Network) Shapes() ([][]int, error) {
	shapes := make([][]int, len(n.Layers))
	cur := n.InputShape
	for i, l := range n.Layers {
		out, err := l.OutputShape(cur)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s %q): %w", i, l.Kind(), l.Name(), err)
		}
		shapes[i] = out
		cur = out
	}
	return shapes, nil
}

// OutputShape is the per-sample shape the network produces.
func (n *Network) OutputShape() ([]int, error) {
	shapes, err := n.Shapes()
	if err != nil {
		return nil, err
	}
	if len(shapes) == 0 {
		return n.InputShape, nil
	}
	return shapes[len(shapes)-1], nil
}

// CheckInput reports whether a batched input shape fits the network.
func (n *Network) CheckInput(shape []int) error {
	if len(shape) != len(n.InputShape)+1 {
		return fmt.Errorf("input has shape %s; the network takes [B %s", ShapeString(shape), ShapeString(n.InputShape)[1:])
	}
	for i, d := range n.InputShape {
		if shape[i+1] != d {
			return fmt.Errorf("input has shape %s; the network takes [B %s", ShapeString(shape), ShapeString(n.InputShape)[1:])
		}
	}
	return nil
}

// Forward runs the ANN in inference mode on a batch.
func (n *Network) Forward(x *Tensor) (*Tensor, error) {
	if err := n.CheckInput(x.Shape); err != nil {
		return nil, err
	}
	if _, err := n.Shapes(); err != nil {
		return nil, err
	}
	for _, l := range n.Layers {
		x = l.Forward(x)
	}
	return x, nil
}

// Params lists every trainable parameter, in layer order.
func (n *Network) Params() []*Param {
	var ps []*Param
	for _, l := range n.Layers {
		ps = append(ps, l.Params()...)
	}
	return ps
}

// ParamCount is the number of trainable scalars.
func (n *Network) ParamCount() int {
	c := 0
	for _, p := range n.Params() {
		c += len(p.Data)
	}
	return c
}

// Trace keeps a training forward pass's per-layer caches for Backward.
type Trace struct {
	layers []Trainable
	caches []any
}

// ForwardTrain runs the first upto layers (all when upto < 0) in training
// form, keeping what Backward needs.
func (n *Network) ForwardTrain(x *Tensor, mode Mode, upto int) (*Tensor, *Trace, error) {
	if err := n.CheckInput(x.Shape); err != nil {
		return nil, nil, err
	}
	if upto < 0 || upto > len(n.Layers) {
		upto = len(n.Layers)
	}
	tr := &Trace{}
	for i, l := range n.Layers[:upto] {
		t, ok := l.(Trainable)
		if !ok {
			return nil, nil, fmt.Errorf("layer %d (%s %q) cannot be trained", i, l.Kind(), l.Name())
		}
		var c any
		x, c = t.ForwardTrain(x, mode)
		tr.layers = append(tr.layers, t)
		tr.caches = append(tr.caches, c)
	}
	return x, tr, nil
}

// Backward propagates dy, the gradient at the traced output, back through
// the traced layers, accumulating every parameter's gradient.
func (tr *Trace) Backward(dy *Tensor) {
	for i := len(tr.layers) - 1; i >= 0; i-- {
		dy = tr.layers[i].Backward(tr.caches[i], dy)
	}
}

// ZeroGrad clears every parameter's gradient.
func (n *Network) ZeroGrad() {
	for _, p := range n.Params() {
		p.ZeroGrad()
	}
}
