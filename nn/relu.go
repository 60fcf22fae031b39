package nn

import "github.com/proxykit/proxykit/compute"

// ReLU is max(x, 0). In the SNN every ReLU becomes an IF layer.
type ReLU struct {
	noAux
	LayerName string
}

// Name implements Layer.
func (l *ReLU) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *ReLU) Kind() string { return "ReLU" }

// Describe implements Layer.
func (l *ReLU) Describe() string { return "" }

// OutputShape implements Layer.
func (l *ReLU) OutputShape(in []int) ([]int, error) { return in, nil }

// Forward implements Layer.
func (l *ReLU) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	be.ReLUForward(x.Buf, y.Buf)
}

// Backward implements Layer: the gradient passes where the ANN's own
// output was positive.
func (l *ReLU) Backward(be compute.Backend, _, y, dy, dx Value, _ compute.Buffer, _ Mode) {
	be.ReLUBackward(y.Buf, dy.Buf, dx.Buf)
}

// Params implements Layer.
func (l *ReLU) Params() []*Param { return nil }

// Attrs implements Layer.
func (l *ReLU) Attrs() map[string]any { return nil }

// Validate implements Layer.
func (l *ReLU) Validate() error { return nil }

// Role implements Layer: a layer of IF neurons.
func (l *ReLU) Role() Role { return Role{Neuron: true, Homogeneous: true, KeepsSpikes: true} }

// ExportONNX implements Layer: Relu.
func (l *ReLU) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	g.Node("Relu", name, ins[:1], []string{out})
	return nil
}

// ExportNIR implements Layer: the IF layer that replaces the ReLU in the
// SNN (r = 1, hard reset, parameters shaped like the layer), with the
// graph's neuron setting.
func (l *ReLU) ExportNIR(g NIRGraph, in []int, _ bool) error {
	vth, reset, note := g.Neurons()
	n := g.Node("if_"+l.Name(), "IF")
	n.Floats("r", in, Full(in, 1))
	n.Floats("v_threshold", in, Full(in, vth))
	n.Floats("v_reset", in, Full(in, reset))
	for k, v := range note {
		n.Meta(k, v)
	}
	return nil
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
