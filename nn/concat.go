package nn

import (
	"fmt"
	"slices"

	"github.com/proxykit/proxykit/program"
)

// Concat stacks its inputs along the channel axis (the first per-sample
// axis): the join of inception- and DenseNet-style blocks.
type Concat struct {
	LayerName string
}

// Info implements Layer: concatenated spikes are spikes.
func (l *Concat) Info() Info {
	return Info{Kind: "Concat", Name: l.LayerName, Summary: "along channels", Role: Role{Join: true, KeepsSpikes: true, Homogeneous: true}}
}

// OutputShape implements Layer: the channels add up, the rest agrees.
func (l *Concat) OutputShape(ins [][]int) ([]int, error) {
	if err := joined("Concat", ins); err != nil {
		return nil, err
	}
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
	return out, checkIn(out)
}

// Forward implements Layer: each input copied to its channels of y.
func (l *Concat) Forward(s *Site) {
	total, inner, off := s.Out[0], Numel(s.Out[1:]), 0
	for k, x := range s.X {
		c := s.In[k][0]
		s.Emit(&program.CopyChannels{Rate: s.Rate, C: c, HW: inner, Src: x, SrcC: c, Dst: s.Y, DstC: total, DstOff: off})
		off += c
	}
}

// Backward implements Layer: each input's part of dy.
func (l *Concat) Backward(s *Site) {
	total, inner, off := s.Out[0], Numel(s.Out[1:]), 0
	for k, dx := range s.DX {
		c := s.In[k][0]
		if dx != program.None {
			s.Emit(&program.CopyChannels{Rate: s.Rate, C: c, HW: inner, Src: s.DY, SrcC: total, SrcOff: off, Dst: dx, DstC: c})
		}
		off += c
	}
}

// Reference implements Layer.
func (l *Concat) Reference(xs [][]float64, in [][]int, n int, _ bool) []float64 {
	var y []float64
	for s := 0; s < n; s++ {
		for k, x := range xs {
			per := Numel(in[k])
			y = append(y, x[s*per:(s+1)*per]...)
		}
	}
	return y
}

// Params implements Layer.
func (l *Concat) Params() []*Param { return nil }

// ExportONNX implements ONNXWriter: Concat along channels.
func (l *Concat) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 2); err != nil {
		return err
	}
	g.Node("Concat", name, ins, []string{out}, ONNXAttr{"axis", int64(1)})
	return nil
}

// ExportNIR implements NIRWriter: NIR has no such node.
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
