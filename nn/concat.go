package nn

import (
	"fmt"
	"slices"

	"github.com/proxykit/proxykit/compute"
)

// Concat stacks its inputs along the channel axis (the first per-sample
// axis): the join of inception- and DenseNet-style blocks.
type Concat struct {
	noAux
	LayerName string
}

// Name implements Layer.
func (l *Concat) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Concat) Kind() string { return "Concat" }

// Describe implements Layer.
func (l *Concat) Describe() string { return "along channels" }

// OutputShape implements Layer: a Concat needs several inputs.
func (l *Concat) OutputShape([]int) ([]int, error) {
	return nil, fmt.Errorf("Concat joins two or more inputs")
}

// Params implements Layer.
func (l *Concat) Params() []*Param { return nil }

// Forward implements Layer; executors call JoinForward.
func (l *Concat) Forward(compute.Backend, Value, Value, compute.Buffer, Mode) {
	panic("nn: Concat.Forward")
}

// Backward implements Layer; executors call JoinBackward.
func (l *Concat) Backward(compute.Backend, Value, Value, Value, Value, compute.Buffer, Mode) {
	panic("nn: Concat.Backward")
}

// JoinShape implements Join: the channels add up, the rest agrees.
func (l *Concat) JoinShape(ins [][]int) ([]int, error) {
	out := append([]int(nil), ins[0]...)
	if len(out) == 0 {
		return nil, fmt.Errorf("Concat of scalars")
	}
	for _, s := range ins[1:] {
		if len(s) != len(out) || !slices.Equal(s[1:], out[1:]) {
			return nil, fmt.Errorf("Concat along channels of shapes %s and %s", ShapeString(ins[0]), ShapeString(s))
		}
		out[0] += s[0]
	}
	return out, nil
}

// JoinForward implements Join.
func (l *Concat) JoinForward(be compute.Backend, xs []Value, y Value) {
	total, inner, off := y.Shape[1], Numel(y.Shape[2:]), 0
	for _, x := range xs {
		c := x.Shape[1]
		be.CopyChannels(x.N(), c, inner, x.Buf, c, 0, y.Buf, total, off)
		off += c
	}
}

// JoinBackward implements Join: each input's part of dy.
func (l *Concat) JoinBackward(be compute.Backend, xs []Value, dy Value, dxs []Value) {
	total, inner, off := dy.Shape[1], Numel(dy.Shape[2:]), 0
	for k, x := range xs {
		c := x.Shape[1]
		if dxs[k].Buf != nil {
			be.CopyChannels(x.N(), c, inner, dy.Buf, total, off, dxs[k].Buf, c, 0)
		}
		off += c
	}
}

// Attrs implements Layer.
func (l *Concat) Attrs() map[string]any { return nil }

// Validate implements Layer.
func (l *Concat) Validate() error { return nil }

// Role implements Layer: concatenated spikes are spikes.
func (l *Concat) Role() Role { return Role{KeepsSpikes: true, Homogeneous: true} }

// ExportONNX implements Layer: Concat along channels.
func (l *Concat) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	g.Node("Concat", name, ins, []string{out}, ONNXAttr{"axis", int64(1)})
	return nil
}

// ExportNIR implements Layer: NIR has no such node.
func (l *Concat) ExportNIR(NIRGraph, []int, bool) error {
	return fmt.Errorf("NIR has no node that concatenates")
}

func concatKind() Kind {
	return Kind{Names: []string{"Concat"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		return &Concat{LayerName: s.Name}, specParams(ps, 0, 0)
	}, ONNXOps: []string{"Concat"}, FromONNX: concatFromONNX}
}

// concatFromONNX reads Concat of activations along channels (axis 1 of
// [B C H W] or [B C]); a Concat of one activation passes it through. (A
// Concat of constants is folded by the importer.)
func concatFromONNX(n ONNXNode) (Layer, error) {
	for i := 0; i < n.NumInputs(); i++ {
		if n.IsActivation(i) {
			continue
		}
		if k, _ := n.Const(i, ""); k != nil {
			return nil, fmt.Errorf("concatenates a constant with activations; proxykit joins activations only")
		}
	}
	ins := n.Activations()
	if len(ins) < 2 {
		return nil, nil
	}
	axis, err := n.Int("axis", 0)
	if err != nil {
		return nil, err
	}
	rank := len(ins[0]) + 1
	a := int(axis)
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		return nil, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	if a != 1 {
		return nil, fmt.Errorf("concatenates along axis %d; proxykit joins along channels (axis 1) only", axis)
	}
	return &Concat{LayerName: n.LayerName("concat")}, nil
}
