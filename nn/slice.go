package nn

import (
	"fmt"
	"slices"

	"github.com/proxykit/proxykit/program"
)

// ChannelSlice is channels [Start, Stop) of its input ([C H W] or [C]):
// ONNX's Slice along channels, and each output of a Split along them
// (ShuffleNetV2 splits its blocks' input in two halves).
type ChannelSlice struct {
	LayerName   string
	Start, Stop int
}

// Info implements Layer: a part of spikes is spikes.
func (l *ChannelSlice) Info() Info {
	return Info{Kind: "ChannelSlice", Name: l.LayerName, Summary: fmt.Sprintf("channels %d to %d", l.Start, l.Stop-1),
		Attrs: map[string]any{"start": l.Start, "stop": l.Stop}, Role: Role{KeepsSpikes: true, Homogeneous: true}}
}

// Validate implements Validator.
func (l *ChannelSlice) Validate() error {
	if l.Start < 0 || l.Stop <= l.Start {
		return fmt.Errorf("channels [%d, %d) are not a non-empty range from 0 on", l.Start, l.Stop)
	}
	return nil
}

// OutputShape implements Layer.
func (l *ChannelSlice) OutputShape(ins [][]int) ([]int, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if len(in) == 0 || l.Start < 0 || l.Stop <= l.Start || l.Stop > in[0] {
		return nil, fmt.Errorf("channels [%d, %d) of a %s input", l.Start, l.Stop, ShapeString(in))
	}
	out := slices.Clone(in)
	out[0] = l.Stop - l.Start
	return out, nil
}

// Forward implements Layer: the channels copied out.
func (l *ChannelSlice) Forward(s *Site) {
	c, n := s.In[0][0], l.Stop-l.Start
	s.Emit(&program.CopyChannels{Rate: s.Rate, C: n, HW: Numel(s.In[0][1:]), Src: s.X[0], SrcC: c, SrcOff: l.Start, Dst: s.Y, DstC: n})
}

// Backward implements Layer: the gradient in its channels, zero in the
// others.
func (l *ChannelSlice) Backward(s *Site) {
	c, n := s.In[0][0], l.Stop-l.Start
	s.Emit(&program.Fill{Dst: s.DX[0]})
	s.Emit(&program.CopyChannels{Rate: s.Rate, C: n, HW: Numel(s.In[0][1:]), Src: s.DY, SrcC: n, Dst: s.DX[0], DstC: c, DstOff: l.Start})
}

// Reference implements Layer.
func (l *ChannelSlice) Reference(xs [][]float64, in [][]int, n int, _ bool) []float64 {
	c, hw := in[0][0], Numel(in[0][1:])
	var y []float64
	for s := 0; s < n; s++ {
		y = append(y, xs[0][(s*c+l.Start)*hw:(s*c+l.Stop)*hw]...)
	}
	return y
}

// Params implements Layer.
func (l *ChannelSlice) Params() []*Param { return nil }

// ExportONNX implements ONNXWriter: Slice along axis 1.
func (l *ChannelSlice) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	g.Node("Slice", name, []string{ins[0], g.IntConstant(name+".starts", []int64{int64(l.Start)}),
		g.IntConstant(name+".ends", []int64{int64(l.Stop)}), g.IntConstant("slice.axes", []int64{1})}, []string{out})
	return nil
}

// ExportNIR implements NIRWriter: NIR has no node that slices, so the
// selection is written as a 1×1 convolution (nn.NIRSelect).
func (l *ChannelSlice) ExportNIR(g NIRGraph, in []int, _ bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	src := make([]int, l.Stop-l.Start)
	for j := range src {
		src[j] = l.Start + j
	}
	return NIRSelect(g, l.LayerName, in, src, fmt.Sprintf("channels %d to %d of the input: a selection as a 1x1 convolution", l.Start, l.Stop-1))
}

func channelSliceKind() Kind {
	return Kind{Names: []string{"ChannelSlice"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		var a struct {
			Start int `json:"start"`
			Stop  int `json:"stop"`
		}
		if err := decodeAttrs(s, &a); err != nil {
			return nil, err
		}
		return &ChannelSlice{LayerName: s.Name, Start: a.Start, Stop: a.Stop}, specParams(ps, 0, 0)
	}, ONNXOps: []string{"Slice"}, FromONNX: sliceFromONNX}
}

// sliceFromONNX reads Slice of an activation along channels with step 1
// (bounds as ONNX clamps them; a slice of every channel is the identity).
// Its bounds are attributes before opset 10, constant inputs from then on.
func sliceFromONNX(n ONNXNode) (Layer, error) {
	in := n.Activations()[0]
	var starts, ends, axes, steps []int64
	if n.Opset() < 10 {
		var err error
		if starts, _, err = n.Ints("starts"); err != nil {
			return nil, err
		}
		if ends, _, err = n.Ints("ends"); err != nil {
			return nil, err
		}
		if axes, _, err = n.Ints("axes"); err != nil {
			return nil, err
		}
	} else {
		for i, into := range []*[]int64{&starts, &ends, &axes, &steps} {
			k, err := n.Const(i+1, []string{"starts", "ends", "axes", "steps"}[i])
			if err != nil {
				return nil, err
			}
			if k != nil {
				*into = k.Ints()
			}
		}
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	if len(starts) != len(axes) || len(ends) != len(axes) || steps != nil && len(steps) != len(axes) {
		return nil, fmt.Errorf("starts %v, ends %v, axes %v and steps %v differ in length", starts, ends, axes, steps)
	}
	rank := len(in) + 1
	start, stop := 0, in[0]
	for k, a := range axes {
		if a < 0 {
			a += int64(rank)
		}
		if steps != nil && steps[k] != 1 {
			return nil, fmt.Errorf("slices with step %d; proxykit has not implemented steps other than 1", steps[k])
		}
		if a != 1 {
			return nil, fmt.Errorf("slices axis %d of the activation; proxykit has implemented slices along channels (axis 1) only", axes[k])
		}
		clamp := func(v int64) int {
			if v < 0 {
				v += int64(in[0])
			}
			return int(max(0, min(v, int64(in[0]))))
		}
		start, stop = clamp(starts[k]), clamp(ends[k])
	}
	if stop <= start {
		return nil, fmt.Errorf("selects no channel ([%d, %d) of %d)", start, stop, in[0])
	}
	if start == 0 && stop == in[0] {
		return nil, nil
	}
	return &ChannelSlice{LayerName: n.LayerName("slice"), Start: start, Stop: stop}, nil
}
