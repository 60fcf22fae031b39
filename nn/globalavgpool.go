package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/program"
)

// GlobalAvgPool averages each channel's plane: [C H W] → [C 1 1].
type GlobalAvgPool struct {
	LayerName string
}

// Info implements Layer: averages make spikes analog.
func (l *GlobalAvgPool) Info() Info {
	return Info{Kind: "GlobalAvgPool", Name: l.LayerName, Role: Role{Homogeneous: true}}
}

// OutputShape implements Layer.
func (l *GlobalAvgPool) OutputShape(ins [][]int) ([]int, error) {
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if len(in) != 3 {
		return nil, fmt.Errorf("GlobalAvgPool needs a [C H W] input, got %s", ShapeString(in))
	}
	return []int{in[0], 1, 1}, nil
}

// Forward implements Layer: each plane's mean.
func (l *GlobalAvgPool) Forward(s *Site) {
	s.Emit(&program.GlobalAvgPool{C: s.In[0][0], HW: Numel(s.In[0][1:]), Rate: s.Rate, X: s.X[0], Y: s.Y})
}

// Backward implements Layer: dx = dy/HW over each plane.
func (l *GlobalAvgPool) Backward(s *Site) {
	s.Emit(&program.GlobalAvgPoolGrad{C: s.In[0][0], HW: Numel(s.In[0][1:]), Rate: s.Rate, DY: s.DY, DX: s.DX[0]})
}

// Reference implements Layer.
func (l *GlobalAvgPool) Reference(xs [][]float64, in [][]int, n int, _ bool) []float64 {
	c, hw := in[0][0], Numel(in[0][1:])
	y := make([]float64, n*c)
	for i := range y {
		for _, v := range xs[0][i*hw : (i+1)*hw] {
			y[i] += v
		}
		y[i] /= float64(hw)
	}
	return y
}

// Params implements Layer.
func (l *GlobalAvgPool) Params() []*Param { return nil }

// ExportONNX implements ONNXWriter: GlobalAveragePool.
func (l *GlobalAvgPool) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	g.Node("GlobalAveragePool", name, ins[:1], []string{out})
	return nil
}

// ExportNIR implements NIRWriter: NIR's AvgPool2d over the whole plane.
func (l *GlobalAvgPool) ExportNIR(g NIRGraph, in []int, _ bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	if g.AvgPoolAsConv() {
		return NIRAvgPoolConv(g, l.LayerName, in, in[1], in[2], in[1], in[2], 0, 0)
	}
	n := g.Node(l.LayerName, "AvgPool2d")
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
