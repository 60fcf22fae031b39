package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute/refmath"
	"github.com/proxykit/proxykit/program"
)

// ChannelShuffle permutes channels as ShuffleNet does: each sample's C
// channels seen as [Groups, C/Groups] are transposed, so that output
// channel j is input channel (j mod Groups)·(C/Groups) + ⌊j/Groups⌋.
// ONNX writes it as Reshape–Transpose–Reshape, which the importer
// recognises; PyTorch has a module for it.
type ChannelShuffle struct {
	LayerName string
	Groups    int
}

// Info implements Layer: permuted spikes are spikes.
func (l *ChannelShuffle) Info() Info {
	return Info{Kind: "ChannelShuffle", Name: l.LayerName, Summary: fmt.Sprintf("%d groups", l.Groups),
		Attrs: map[string]any{"groups": l.Groups}, Role: Role{KeepsSpikes: true, Homogeneous: true}}
}

// Validate implements Validator.
func (l *ChannelShuffle) Validate() error { return pos("groups", l.Groups) }

// OutputShape implements Layer: the input's, whose channels the groups
// divide.
func (l *ChannelShuffle) OutputShape(ins [][]int) ([]int, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if len(in) == 0 || l.Groups < 1 || in[0]%l.Groups != 0 {
		return nil, fmt.Errorf("ChannelShuffle in %d groups of a %s input: the groups must divide the channels", l.Groups, ShapeString(in))
	}
	return in, nil
}

// Forward implements Layer.
func (l *ChannelShuffle) Forward(s *Site) {
	c := s.In[0][0]
	s.Emit(&program.ChannelShuffle{Groups: l.Groups, C: c, HW: Numel(s.In[0][1:]), Rate: s.Rate, X: s.X[0], Y: s.Y})
}

// Backward implements Layer: the inverse permutation, the shuffle in
// C/Groups groups.
func (l *ChannelShuffle) Backward(s *Site) {
	c := s.In[0][0]
	s.Emit(&program.ChannelShuffle{Groups: c / l.Groups, C: c, HW: Numel(s.In[0][1:]), Rate: s.Rate, X: s.DY, Y: s.DX[0]})
}

// Reference implements Layer.
func (l *ChannelShuffle) Reference(xs [][]float64, in [][]int, n int, _ bool) []float64 {
	return refmath.ChannelShuffle(n, l.Groups, in[0][0], Numel(in[0][1:]), xs[0])
}

// Params implements Layer.
func (l *ChannelShuffle) Params() []*Param { return nil }

// source is the input channel that output channel j reads, of c.
func (l *ChannelShuffle) source(j, c int) int { return (j%l.Groups)*(c/l.Groups) + j/l.Groups }

// ExportONNX implements ONNXWriter: Reshape to [N, Groups, C/Groups,
// ...], Transpose of the two, Reshape back (0 keeps the batch size).
func (l *ChannelShuffle) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	shapes := g.InputShapes()
	if len(shapes) != 1 {
		return fmt.Errorf("ChannelShuffle takes one input, the graph gives %d shapes", len(shapes))
	}
	if _, err := l.OutputShape(shapes); err != nil {
		return err
	}
	in := shapes[0]
	split := append([]int64{0, int64(l.Groups), int64(in[0] / l.Groups)}, i64s(in[1:]...)...)
	perm := []int64{0, 2, 1}
	for k := range in[1:] {
		perm = append(perm, int64(k+3))
	}
	back := append([]int64{0}, i64s(in...)...)
	g.Node("Reshape", name+"/split", []string{ins[0], g.IntConstant(name+".groups_shape", split)}, []string{name + "_groups"})
	g.Node("Transpose", name+"/transpose", []string{name + "_groups"}, []string{name + "_transposed"}, ONNXAttr{"perm", perm})
	g.Node("Reshape", name, []string{name + "_transposed", g.IntConstant(name+".shape", back)}, []string{out})
	return nil
}

// ExportNIR implements NIRWriter: a permutation is a 1×1 convolution (an
// affine map for a flat input) whose weights are 1 from each output
// channel's source channel and 0 elsewhere, without bias: spikes in give
// the same spikes out.
func (l *ChannelShuffle) ExportNIR(g NIRGraph, in []int, _ bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	c := in[0]
	src := make([]int, c)
	for j := range src {
		src[j] = l.source(j, c)
	}
	return NIRSelect(g, l.LayerName, in, src, "a channel shuffle: the permutation of the channels as a 1x1 convolution")
}

// NIRSelect writes, for an input of C channels ([C H W] or [C]), the
// output whose channel j is input channel src[j], as a NIR Conv2d with
// 1×1 weights (an Affine for a flat input) that are 1 from src[j] to j
// and 0 elsewhere, with a zero bias; why goes into the node's metadata.
//
// It refuses a nil graph, an input shape that is not [C H W] or [C] of
// positive sizes, a source channel the input has not, and a weight of more
// than MaxValuesPerSample values.
func NIRSelect(g NIRGraph, name string, in []int, src []int, why string) error {
	if g == nil {
		return fmt.Errorf("no NIR graph to write into (nil)")
	}
	if len(in) != 1 && len(in) != 3 {
		return fmt.Errorf("a selection of channels of a %s input: want [C H W] or [C]", ShapeString(in))
	}
	if err := checkIn(in); err != nil {
		return err
	}
	c, o := in[0], len(src)
	if n := Numel([]int{o, c}); n < 0 || n > MaxValuesPerSample {
		return fmt.Errorf("a selection of %d of %d channels: a weight of more than %d values", o, c, MaxValuesPerSample)
	}
	for j, k := range src {
		if k < 0 || k >= c {
			return fmt.Errorf("output channel %d selects channel %d of %d", j, k, c)
		}
	}
	w := make([]float32, o*c)
	for j, k := range src {
		w[j*c+k] = 1
	}
	if len(in) == 1 {
		n := g.Node(name, "Affine")
		n.Floats("weight", []int{o, c}, w)
		n.Floats("bias", []int{o}, make([]float32, o))
		n.Meta("replaces", why)
		return nil
	}
	n := g.Node(name, "Conv2d")
	n.Floats("weight", []int{o, c, 1, 1}, w)
	n.Floats("bias", []int{o}, make([]float32, o))
	n.Ints("stride", 1, 1)
	n.Ints("padding", 0, 0)
	n.Ints("dilation", 1, 1)
	n.Scalar("groups", 1)
	n.Ints("input_shape", in[1:]...)
	n.Meta("replaces", why)
	return nil
}

func channelShuffleKind() Kind {
	return Kind{Names: []string{"ChannelShuffle"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		var a struct {
			Groups int `json:"groups"`
		}
		if err := decodeAttrs(s, &a); err != nil {
			return nil, err
		}
		return &ChannelShuffle{LayerName: s.Name, Groups: a.Groups}, specParams(ps, 0, 0)
	}, TorchModules: []string{"ChannelShuffle"}, FromTorch: func(m TorchModule) (Layer, error) {
		g, ok := m.Int("groups")
		if !ok {
			return nil, fmt.Errorf("ChannelShuffle without an integer groups")
		}
		return &ChannelShuffle{LayerName: m.Path(), Groups: g}, nil
	}}
}
