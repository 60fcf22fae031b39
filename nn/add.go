package nn

import (
	"fmt"
	"slices"

	"github.com/proxykit/proxykit/program"
)

// Add sums its inputs, which have one shape: the join of a residual block.
type Add struct {
	LayerName string
}

// Info implements Layer: sums of spikes are not spikes.
func (l *Add) Info() Info {
	return Info{Kind: "Add", Name: l.LayerName, Summary: "sum of the inputs", Role: Role{Join: true, Homogeneous: true}}
}

// OutputShape implements Layer: every input has the output's shape.
func (l *Add) OutputShape(ins [][]int) ([]int, error) {
	if err := joined("Add", ins); err != nil {
		return nil, err
	}
	for _, s := range ins[1:] {
		if !slices.Equal(s, ins[0]) {
			return nil, fmt.Errorf("Add of shapes %s and %s", ShapeString(ins[0]), ShapeString(s))
		}
	}
	return ins[0], nil
}

// Forward implements Layer: y = Σ xs.
func (l *Add) Forward(s *Site) {
	s.Emit(&program.Copy{Dst: s.Y, Src: s.X[0]})
	for _, x := range s.X[1:] {
		s.Emit(&program.AddTo{Dst: s.Y, Src: x})
	}
}

// Backward implements Layer: each input's gradient is dy.
func (l *Add) Backward(s *Site) {
	for _, dx := range s.DX {
		if dx != program.None {
			s.Emit(&program.Copy{Dst: dx, Src: s.DY})
		}
	}
}

// Reference implements Layer.
func (l *Add) Reference(xs [][]float64, _ [][]int, _ int, _ bool) []float64 {
	y := append([]float64(nil), xs[0]...)
	for _, x := range xs[1:] {
		for i, v := range x {
			y[i] += v
		}
	}
	return y
}

// Params implements Layer.
func (l *Add) Params() []*Param { return nil }

// ExportONNX implements ONNXWriter: Add, or Sum of more than two.
func (l *Add) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 2); err != nil {
		return err
	}
	op := "Add"
	if len(ins) > 2 {
		op = "Sum"
	}
	g.Node(op, name, ins, []string{out})
	return nil
}

// ExportNIR implements NIRWriter: no node at all, since NIR sums the edges
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
