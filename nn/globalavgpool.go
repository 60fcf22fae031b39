package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// GlobalAvgPool averages each channel over all positions: [C H W] → [C 1 1].
type GlobalAvgPool struct {
	noAux
	LayerName string
}

// Name implements Layer.
func (l *GlobalAvgPool) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *GlobalAvgPool) Kind() string { return "GlobalAvgPool" }

// Describe implements Layer.
func (l *GlobalAvgPool) Describe() string { return "" }

// OutputShape implements Layer.
func (l *GlobalAvgPool) OutputShape(in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("GlobalAvgPool needs a [C H W] input, got %s", ShapeString(in))
	}
	return []int{in[0], 1, 1}, nil
}

// Forward implements Layer.
func (l *GlobalAvgPool) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	be.GlobalAvgPoolForward(x.N()*x.Shape[1], Numel(x.Shape[2:]), x.Buf, y.Buf)
}

// Backward implements Layer.
func (l *GlobalAvgPool) Backward(be compute.Backend, x, _, dy, dx Value, _ compute.Buffer, _ Mode) {
	be.GlobalAvgPoolBackward(x.N()*x.Shape[1], Numel(x.Shape[2:]), dy.Buf, dx.Buf)
}

// Params implements Layer.
func (l *GlobalAvgPool) Params() []*Param { return nil }

// Attrs implements Layer.
func (l *GlobalAvgPool) Attrs() map[string]any { return nil }

// Validate implements Layer.
func (l *GlobalAvgPool) Validate() error { return nil }

// Role implements Layer: averages make spikes analog.
func (l *GlobalAvgPool) Role() Role { return Role{Homogeneous: true} }

// ExportONNX implements Layer: GlobalAveragePool.
func (l *GlobalAvgPool) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	g.Node("GlobalAveragePool", name, ins[:1], []string{out})
	return nil
}

// ExportNIR implements Layer: NIR's AvgPool2d over the whole plane.
func (l *GlobalAvgPool) ExportNIR(g NIRGraph, in []int, _ bool) error {
	if len(in) != 3 {
		return fmt.Errorf("needs a [C H W] input, got %s", ShapeString(in))
	}
	if g.AvgPoolAsConv() {
		NIRAvgPoolConv(g, l.Name(), in, in[1], in[2], in[1], in[2], 0, 0)
		return nil
	}
	n := g.Node(l.Name(), "AvgPool2d")
	n.Ints("kernel_size", in[1:]...)
	n.Ints("stride", in[1:]...)
	n.Ints("padding", 0, 0)
	return nil
}

func globalAvgPoolKind() Kind {
	return Kind{Names: []string{"GlobalAvgPool"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		return &GlobalAvgPool{LayerName: s.Name}, specParams(ps, 0, 0)
	}, ONNXOps: []string{"GlobalAveragePool"}, FromONNX: func(n ONNXNode) (Layer, error) {
		return &GlobalAvgPool{LayerName: n.LayerName("gap")}, nil
	}, TorchModules: []string{"AdaptiveAvgPool2d"}, FromTorch: func(m TorchModule) (Layer, error) {
		if o, err := m.Pair("output_size", [2]int{}); err != nil || o != [2]int{1, 1} {
			return nil, fmt.Errorf("only output_size 1 (global average pooling) is supported")
		}
		return &GlobalAvgPool{LayerName: m.Path()}, nil
	}}
}
