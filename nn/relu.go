package nn

import "github.com/proxykit/proxykit/program"

// ReLU is max(x, 0). In the SNN every ReLU becomes an IF layer.
type ReLU struct {
	LayerName string
}

// Info implements Layer: a layer of IF neurons.
func (l *ReLU) Info() Info {
	return Info{Kind: "ReLU", Name: l.LayerName, Role: Role{Neuron: true, Homogeneous: true, KeepsSpikes: true}}
}

// OutputShape implements Layer.
func (l *ReLU) OutputShape(ins [][]int) ([]int, error) { return one(ins) }

// Forward implements Layer: y = max(x, 0).
func (l *ReLU) Forward(s *Site) { s.Emit(&program.ReLU{X: s.X[0], Y: s.Y}) }

// Backward implements Layer: the gradient passes where the ANN's own
// output was positive.
func (l *ReLU) Backward(s *Site) { s.Emit(&program.ReLUGrad{Y: s.Y, DY: s.DY, DX: s.DX[0]}) }

// Reference implements Layer.
func (l *ReLU) Reference(xs [][]float64, _ [][]int, _ int, _ bool) []float64 {
	y := make([]float64, len(xs[0]))
	for i, v := range xs[0] {
		y[i] = max(v, 0)
	}
	return y
}

// Params implements Layer.
func (l *ReLU) Params() []*Param { return nil }

// ExportONNX implements ONNXWriter: Relu.
func (l *ReLU) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	g.Node("Relu", name, ins[:1], []string{out})
	return nil
}

// ExportNIR implements NIRWriter: the IF layer that replaces the ReLU in the
// SNN.
func (l *ReLU) ExportNIR(g NIRGraph, in []int, _ bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	nirIF(g, l.LayerName, in)
	return nil
}

// nirIF writes the IF layer that replaces a neuron layer in the SNN (r =
// 1, hard reset, parameters shaped like the layer), with the setting the
// graph gives its neurons.
func nirIF(g NIRGraph, name string, in []int) {
	vth, reset, note := g.Neurons()
	n := g.Node("if_"+name, "IF")
	n.Floats("r", in, Full(in, 1))
	n.Floats("v_threshold", in, Full(in, vth))
	n.Floats("v_reset", in, Full(in, reset))
	for k, v := range note {
		n.Meta(k, v)
	}
}

func reluKind() Kind {
	return Kind{Names: []string{"ReLU"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		return &ReLU{LayerName: s.Name}, specParams(ps, 0, 0)
	}, ONNXOps: []string{"Relu"}, FromONNX: func(n ONNXNode) (Layer, error) {
		return &ReLU{LayerName: n.LayerName("relu")}, nil
	}, TorchModules: []string{"ReLU"}, FromTorch: func(m TorchModule) (Layer, error) {
		return &ReLU{LayerName: m.Path()}, nil
	}}
}
