package nn

import (
	"fmt"
	"slices"

	"github.com/proxykit/proxykit/compute"
)

// Add sums its inputs, which have one shape: the join of a residual block.
type Add struct {
	noAux
	LayerName string
}

// Name implements Layer.
func (l *Add) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Add) Kind() string { return "Add" }

// Describe implements Layer.
func (l *Add) Describe() string { return "sum of the inputs" }

// OutputShape implements Layer: an Add needs several inputs.
func (l *Add) OutputShape([]int) ([]int, error) {
	return nil, fmt.Errorf("Add joins two or more inputs")
}

// Params implements Layer.
func (l *Add) Params() []*Param { return nil }

// Forward implements Layer; executors call JoinForward.
func (l *Add) Forward(compute.Backend, Value, Value, compute.Buffer, Mode) { panic("nn: Add.Forward") }

// Backward implements Layer; executors call JoinBackward.
func (l *Add) Backward(compute.Backend, Value, Value, Value, Value, compute.Buffer, Mode) {
	panic("nn: Add.Backward")
}

// JoinShape implements Join: every input has the output's shape.
func (l *Add) JoinShape(ins [][]int) ([]int, error) {
	for _, s := range ins[1:] {
		if !slices.Equal(s, ins[0]) {
			return nil, fmt.Errorf("Add of shapes %s and %s", ShapeString(ins[0]), ShapeString(s))
		}
	}
	return ins[0], nil
}

// JoinForward implements Join: y = Σ xs.
func (l *Add) JoinForward(be compute.Backend, xs []Value, y Value) {
	be.Copy(y.Buf, xs[0].Buf)
	for _, x := range xs[1:] {
		be.AddTo(y.Buf, x.Buf)
	}
}

// JoinBackward implements Join: each input's gradient is dy.
func (l *Add) JoinBackward(be compute.Backend, _ []Value, dy Value, dxs []Value) {
	for _, dx := range dxs {
		if dx.Buf != nil {
			be.Copy(dx.Buf, dy.Buf)
		}
	}
}

// Attrs implements Layer.
func (l *Add) Attrs() map[string]any { return nil }

// Validate implements Layer.
func (l *Add) Validate() error { return nil }

// Role implements Layer: sums of spikes are not spikes.
func (l *Add) Role() Role { return Role{Homogeneous: true} }

// ExportONNX implements Layer: Add, or Sum of more than two.
func (l *Add) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	op := "Add"
	if len(ins) > 2 {
		op = "Sum"
	}
	g.Node(op, name, ins, []string{out})
	return nil
}

// ExportNIR implements Layer: no node at all, since NIR sums the edges
// into a node; the layers that read the Add get edges from its inputs.
func (l *Add) ExportNIR(NIRGraph, []int, bool) error { return nil }

func addKind() Kind {
	return Kind{Names: []string{"Add"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		return &Add{LayerName: s.Name}, specParams(ps, 0, 0)
	}, ONNXOps: []string{"Add"}, FromONNX: addFromONNX}
}

// addFromONNX reads Add of two activations of one shape: a residual join.
// (An Add of a constant is a bias, which the importer folds into the
// layer before it.)
func addFromONNX(n ONNXNode) (Layer, error) {
	ins := n.Activations()
	if len(ins) != 2 || n.NumInputs() != 2 {
		return nil, fmt.Errorf("adds %d activations; proxykit joins two", len(ins))
	}
	if !slices.Equal(ins[0], ins[1]) {
		return nil, fmt.Errorf("adds activations of shapes %s and %s; proxykit joins equal shapes only (no broadcasting)",
			ShapeString(ins[0]), ShapeString(ins[1]))
	}
	return &Add{LayerName: n.LayerName("add")}, nil
}
