package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Flatten turns each sample into a vector.
type Flatten struct {
	noAux
	LayerName string
}

// Name implements Layer.
func (l *Flatten) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Flatten) Kind() string { return "Flatten" }

// Describe implements Layer.
func (l *Flatten) Describe() string { return "" }

// OutputShape implements Layer.
func (l *Flatten) OutputShape(in []int) ([]int, error) { return []int{Numel(in)}, nil }

// Forward implements Layer. Executors give Flatten the same buffer for x
// and y, so that it costs nothing; it copies only when they differ.
func (l *Flatten) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	if x.Buf != y.Buf {
		be.Copy(y.Buf, x.Buf)
	}
}

// Backward implements Layer.
func (l *Flatten) Backward(be compute.Backend, _, _, dy, dx Value, _ compute.Buffer, _ Mode) {
	if dx.Buf != nil && dx.Buf != dy.Buf {
		be.Copy(dx.Buf, dy.Buf)
	}
}

// Params implements Layer.
func (l *Flatten) Params() []*Param { return nil }

// Attrs implements Layer.
func (l *Flatten) Attrs() map[string]any { return nil }

// Validate implements Layer.
func (l *Flatten) Validate() error { return nil }

// Role implements Layer: a view, spikes stay spikes.
func (l *Flatten) Role() Role { return Role{KeepsSpikes: true, View: true, Homogeneous: true} }

// ExportONNX implements Layer: Flatten from axis 1.
func (l *Flatten) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	g.Node("Flatten", name, ins[:1], []string{out}, ONNXAttr{"axis", int64(1)})
	return nil
}

// ExportNIR implements Layer: NIR's Flatten over the per-sample axes,
// counted from the end (start_dim = −len(in), end_dim = −1). NIR's shapes
// leave out the batch, so start_dim 0 would mean the same; but norse,
// snnTorch and nirtorch hand start_dim and end_dim to torch.nn.Flatten,
// which then flattens the batch axis too, while a negative start_dim
// means the per-sample axes with or without a batch (and sinabs keeps
// negative indices as they are). docs/nir.md.
func (l *Flatten) ExportNIR(g NIRGraph, in []int, _ bool) error {
	n := g.Node(l.Name(), "Flatten")
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
