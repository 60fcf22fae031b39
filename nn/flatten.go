package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/program"
)

// Flatten turns each sample into a vector. It is a view: the lowering
// gives its output its input's memory, so that it costs nothing.
type Flatten struct {
	LayerName string
}

// Info implements Layer: a view, spikes stay spikes.
func (l *Flatten) Info() Info {
	return Info{Kind: "Flatten", Name: l.LayerName, Role: Role{KeepsSpikes: true, View: true, Homogeneous: true}}
}

// OutputShape implements Layer.
func (l *Flatten) OutputShape(ins [][]int) ([]int, error) {
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	return []int{Numel(in)}, nil
}

// Forward implements Layer: nothing where the output is the input's
// memory (a view), else a copy.
func (l *Flatten) Forward(s *Site) {
	if !s.B.SameMemory(s.X[0], s.Y) {
		s.Emit(&program.Copy{Dst: s.Y, Src: s.X[0]})
	}
}

// Backward implements Layer: the same, for the gradient.
func (l *Flatten) Backward(s *Site) {
	if s.DX[0] != program.None && !s.B.SameMemory(s.DX[0], s.DY) {
		s.Emit(&program.Copy{Dst: s.DX[0], Src: s.DY})
	}
}

// Reference implements Layer.
func (l *Flatten) Reference(xs [][]float64, _ [][]int, _ int, _ bool) []float64 {
	return append([]float64(nil), xs[0]...)
}

// Params implements Layer.
func (l *Flatten) Params() []*Param { return nil }

// ExportONNX implements ONNXWriter: Flatten from axis 1.
func (l *Flatten) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	g.Node("Flatten", name, ins[:1], []string{out}, ONNXAttr{"axis", int64(1)})
	return nil
}

// ExportNIR implements NIRWriter: NIR's Flatten over the per-sample axes,
// counted from the end (start_dim = −len(in), end_dim = −1). NIR's shapes
// leave out the batch, so start_dim 0 would mean the same; but norse,
// snnTorch and nirtorch hand start_dim and end_dim to torch.nn.Flatten,
// which then flattens the batch axis too, while a negative start_dim
// means the per-sample axes with or without a batch (and sinabs keeps
// negative indices as they are). docs/nir.md.
func (l *Flatten) ExportNIR(g NIRGraph, in []int, _ bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	n := g.Node(l.LayerName, "Flatten")
	n.Scalar("start_dim", int64(-len(in)))
	n.Scalar("end_dim", -1)
	// a plain integer dataset, as NIR's writer stores it: a group here
	// makes NIR's reader fail
	n.Ints("input_type", in...)
	return nil
}

func flattenKind() Kind {
	return Kind{Names: []string{"Flatten"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		return &Flatten{LayerName: s.Name}, specParams(ps, 0, 0)
	}, ONNXOps: []string{"Flatten"}, FromONNX: flattenFromONNX, TorchModules: []string{"Flatten"},
		FromTorch: func(m TorchModule) (Layer, error) {
			if s, ok := m.Int("start_dim"); ok && s != 1 {
				return nil, fmt.Errorf("start_dim=%d; proxykit flattens from dim 1", s)
			}
			return &Flatten{LayerName: m.Path()}, nil
		}}
}

// flattenFromONNX reads Flatten with axis 1 (the importer turns a Reshape
// that flattens into one too); a flat input passes through.
func flattenFromONNX(n ONNXNode) (Layer, error) {
	in := n.Activations()[0]
	axis, err := n.Int("axis", 1)
	if err != nil {
		return nil, err
	}
	if axis != 1 && axis != -int64(len(in)) {
		return nil, fmt.Errorf("Flatten with axis=%d would mix samples; proxykit supports axis=1", axis)
	}
	if len(in) == 1 {
		return nil, nil
	}
	return &Flatten{LayerName: n.LayerName("flatten")}, nil
}
