package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/refmath"
	"github.com/proxykit/proxykit/program"
)

// Conv2d is a 2-D convolution with optional bias and groups.
type Conv2d struct {
	LayerName      string
	Weight         *Param // [O, C/Groups, KH, KW]
	Bias           *Param // [O] or nil
	SH, SW         int
	PT, PL, PB, PR int
	DH, DW         int
	// Groups splits the channels into groups convolved separately (0 or
	// 1: one group; the input channels: depthwise).
	Groups int
}

// groups is the number of groups, at least 1.
func (l *Conv2d) groups() int { return max(l.Groups, 1) }

// Info implements Layer: the convolution runs on the spikes of the layer
// before, once (static input layer) or at every step.
func (l *Conv2d) Info() Info {
	a := map[string]any{"stride": []int{l.SH, l.SW}, "pads": []int{l.PT, l.PL, l.PB, l.PR}, "dilation": []int{l.DH, l.DW}}
	if l.groups() > 1 {
		a["groups"] = l.groups()
	}
	info := Info{Kind: "Conv2d", Name: l.LayerName, Attrs: a, Summary: "malformed weight"}
	if l.Weight == nil || len(l.Weight.Shape) != 4 {
		return info
	}
	s := fmt.Sprintf("%d→%d %dx%d stride %d,%d pad %d,%d,%d,%d", l.Weight.Shape[1]*l.groups(), l.Weight.Shape[0],
		l.Weight.Shape[2], l.Weight.Shape[3], l.SH, l.SW, l.PT, l.PL, l.PB, l.PR)
	if g := l.groups(); g > 1 {
		s += fmt.Sprintf(" groups %d", g)
	}
	if l.DH != 1 || l.DW != 1 {
		s += fmt.Sprintf(" dilation %d,%d", l.DH, l.DW)
	}
	if l.Bias == nil {
		s += " no bias"
	}
	info.Summary = s
	return info
}

// Geom is the convolution's geometry for a per-sample input shape [C, H,
// W]; the sizes a malformed input shape or weight does not give are 0 (a
// geometry without output).
func (l *Conv2d) Geom(in []int) compute.ConvGeom {
	g := compute.ConvGeom{SH: l.SH, SW: l.SW, PT: l.PT, PL: l.PL, PB: l.PB, PR: l.PR, DH: l.DH, DW: l.DW, G: l.groups()}
	if len(in) == 3 {
		g.C, g.H, g.W = in[0], in[1], in[2]
	}
	if l.Weight != nil && len(l.Weight.Shape) == 4 {
		g.O, g.KH, g.KW = l.Weight.Shape[0], l.Weight.Shape[2], l.Weight.Shape[3]
	}
	return g
}

// OutputShape implements Layer.
func (l *Conv2d) OutputShape(ins [][]int) ([]int, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if len(in) != 3 {
		return nil, fmt.Errorf("Conv2d needs a [C H W] input, got %s", ShapeString(in))
	}
	if in[0] != l.Weight.Shape[1]*l.groups() {
		return nil, fmt.Errorf("Conv2d expects %d input channels, got %d", l.Weight.Shape[1]*l.groups(), in[0])
	}
	g := l.Geom(in)
	if g.OutH() < 1 || g.OutW() < 1 {
		return nil, fmt.Errorf("Conv2d kernel %dx%d does not fit a %dx%d input", g.KH, g.KW, in[1], in[2])
	}
	return []int{g.O, g.OutH(), g.OutW()}, nil
}

// Forward implements Layer: y = bias + w ⋆ x.
func (l *Conv2d) Forward(s *Site) {
	s.Emit(&program.Conv2d{G: l.Geom(s.In[0]), Rate: s.Rate, X: s.X[0], W: s.Param(l.Weight), Bias: s.Param(l.Bias), Y: s.Y})
}

// Backward implements Layer: dx, and dw and db added.
func (l *Conv2d) Backward(s *Site) {
	s.Emit(&program.Conv2dGrad{G: l.Geom(s.In[0]), Rate: s.Rate, X: s.X[0], W: s.Param(l.Weight), DY: s.DY, DX: s.DX[0],
		DW: s.Grad(l.Weight), DB: s.Grad(l.Bias)})
}

// Reference implements Layer.
func (l *Conv2d) Reference(xs [][]float64, in [][]int, n int, _ bool) []float64 {
	return refmath.Conv(l.Geom(in[0]), n, xs[0], l.Weight.Data, optData(l.Bias))
}

// Params implements Layer.
func (l *Conv2d) Params() []*Param { return params(l.Weight, l.Bias) }

// Validate implements Validator.
func (l *Conv2d) Validate() error {
	if l.Weight == nil || len(l.Weight.Shape) != 4 {
		return fmt.Errorf("weight must be 4-D [out, in, kH, kW], got %s", paramShape(l.Weight))
	}
	if err := pos("weight dimensions", l.Weight.Shape...); err != nil {
		return err
	}
	if l.Bias != nil && (len(l.Bias.Shape) != 1 || l.Bias.Shape[0] != l.Weight.Shape[0]) {
		return fmt.Errorf("bias %s does not match %d output channels", paramShape(l.Bias), l.Weight.Shape[0])
	}
	if err := pos("stride", l.SH, l.SW); err != nil {
		return err
	}
	if err := pos("dilation", l.DH, l.DW); err != nil {
		return err
	}
	if l.Groups < 0 || l.Weight.Shape[0]%l.groups() != 0 {
		return fmt.Errorf("groups %d must be positive and divide the %d output channels", l.Groups, l.Weight.Shape[0])
	}
	return nonneg("padding", l.PT, l.PL, l.PB, l.PR)
}

// ScaleInput implements Scalable.
func (l *Conv2d) ScaleInput(f float64) error {
	if err := checkScale(f); err != nil {
		return err
	}
	scaleParam(l.Weight, f)
	return nil
}

// ScaleOutput implements Scalable.
func (l *Conv2d) ScaleOutput(f float64) { scaleParam(l.Weight, f); scaleParam(l.Bias, f) }

// FanOut implements Synaptic: per input pixel, the output positions and
// kernel taps that read it (fewer at the borders) times the output
// channels of its group (nil for an input OutputShape refuses).
func (l *Conv2d) FanOut(in []int) []float32 {
	out, err := l.OutputShape([][]int{in})
	if err != nil {
		return nil
	}
	c, h, w := in[0], in[1], in[2]
	o, kh, kw := l.Weight.Shape[0]/l.groups(), l.Weight.Shape[2], l.Weight.Shape[3]
	rows := taps(h, out[1], kh, l.SH, l.PT, l.DH)
	cols := taps(w, out[2], kw, l.SW, l.PL, l.DW)
	fan := make([]float32, c*h*w)
	for ci := 0; ci < c; ci++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				fan[(ci*h+y)*w+x] = float32(o * rows[y] * cols[x])
			}
		}
	}
	return fan
}

// taps counts, for each of n input positions along one axis, the pairs
// (output position, kernel tap) that read it.
func taps(n, outN, k, stride, pad, dil int) []int {
	t := make([]int, n)
	for o := 0; o < outN; o++ {
		for j := 0; j < k; j++ {
			if i := o*stride - pad + j*dil; i >= 0 && i < n {
				t[i]++
			}
		}
	}
	return t
}

// PinnedInput implements InputPinned: the input channels (0 for a
// malformed layer).
func (l *Conv2d) PinnedInput() (lead, rank int) {
	if l.Validate() != nil {
		return 0, 3
	}
	return l.Weight.Shape[1] * l.groups(), 3
}

// MACs implements Synaptic (0 for an input OutputShape refuses).
func (l *Conv2d) MACs(in []int) int64 {
	out, err := l.OutputShape([][]int{in})
	if err != nil {
		return 0
	}
	return int64(Numel(out)) * int64(Numel(l.Weight.Shape[1:]))
}

// ExportONNX implements ONNXWriter: Conv.
func (l *Conv2d) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	args := []string{ins[0], g.Param(l.Weight)}
	if l.Bias != nil {
		args = append(args, g.Param(l.Bias))
	}
	g.Node("Conv", name, args, []string{out}, ONNXAttr{"kernel_shape", i64s(l.Weight.Shape[2], l.Weight.Shape[3])},
		ONNXAttr{"strides", i64s(l.SH, l.SW)}, ONNXAttr{"pads", i64s(l.PT, l.PL, l.PB, l.PR)},
		ONNXAttr{"dilations", i64s(l.DH, l.DW)}, ONNXAttr{"group", int64(l.groups())})
	return nil
}

// ExportNIR implements NIRWriter: NIR's Conv2d, always with a bias. NIR's
// reader (commit 7232ada) takes a Conv2d's input channels from its weight
// and ignores groups, so a grouped convolution is written as the same
// convolution without groups: zero weights between groups give the same
// sums exactly.
func (l *Conv2d) ExportNIR(g NIRGraph, in []int, _ bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	if l.PT != l.PB || l.PL != l.PR {
		return fmt.Errorf("pads %d,%d,%d,%d: NIR's Conv2d pads symmetrically", l.PT, l.PL, l.PB, l.PR)
	}
	n := g.Node(l.LayerName, "Conv2d")
	shape, w := l.Weight.Shape, l.Weight.Data
	if gr := l.groups(); gr > 1 {
		shape, w = denseGroupedWeight(shape, w, gr)
		n.Meta("groups", fmt.Sprintf("%d, written as one group with zero weights between groups", gr))
	}
	n.Floats("weight", shape, w)
	if l.Bias != nil {
		n.Floats("bias", l.Bias.Shape, l.Bias.Data)
	} else {
		n.Floats("bias", []int{shape[0]}, make([]float32, shape[0]))
	}
	n.Ints("stride", l.SH, l.SW)
	n.Ints("padding", l.PT, l.PL)
	n.Ints("dilation", l.DH, l.DW)
	n.Scalar("groups", 1)
	n.Ints("input_shape", in[1:]...)
	return nil
}

// denseGroupedWeight expands a grouped convolution's weight [O, C/g, kH,
// kW] to the equivalent ungrouped one [O, C, kH, kW]: output channel o
// keeps its weights on its group's input channels, zero elsewhere.
func denseGroupedWeight(shape []int, w []float32, g int) ([]int, []float32) {
	o, cg, k := shape[0], shape[1], shape[2]*shape[3]
	c, og := cg*g, o/g
	dense := make([]float32, o*c*k)
	for oc := 0; oc < o; oc++ {
		first := oc / og * cg
		copy(dense[(oc*c+first)*k:(oc*c+first+cg)*k], w[oc*cg*k:(oc+1)*cg*k])
	}
	return []int{o, c, shape[2], shape[3]}, dense
}

func conv2dKind() Kind {
	return Kind{Names: []string{"Conv2d"}, FromArch: conv2dFromArch, ONNXOps: []string{"Conv"}, FromONNX: conv2dFromONNX,
		TorchModules: []string{"Conv2d"}, FromTorch: conv2dFromTorch}
}

func conv2dFromArch(s LayerSpec, ps []*Param) (Layer, error) {
	var a struct {
		Stride, Pads, Dilation []int
		Groups                 int
	}
	if err := decodeAttrs(s, &a); err != nil {
		return nil, err
	}
	if err := specParams(ps, 1, 2); err != nil {
		return nil, err
	}
	if err := specPairs(a.Pads, a.Stride, a.Dilation); err != nil {
		return nil, err
	}
	return &Conv2d{LayerName: s.Name, Weight: ps[0], Bias: optParam(ps, 1), SH: a.Stride[0], SW: a.Stride[1], PT: a.Pads[0],
		PL: a.Pads[1], PB: a.Pads[2], PR: a.Pads[3], DH: a.Dilation[0], DW: a.Dilation[1], Groups: a.Groups}, nil
}

// conv2dFromONNX reads Conv: 2-D, any strides, dilations, padding
// (auto_pad too) and group; the bias optional.
func conv2dFromONNX(n ONNXNode) (Layer, error) {
	in := n.Activations()[0]
	w, err := n.Const(1, "the weight")
	if err != nil {
		return nil, err
	}
	if w == nil || w.IsInt() || len(w.Shape) != 4 {
		return nil, fmt.Errorf("needs a 4-D float weight (only 2-D convolutions are supported)")
	}
	if len(in) != 3 {
		return nil, fmt.Errorf("input has per-sample shape %s; Conv needs [C H W]", ShapeString(in))
	}
	group, err := n.Int("group", 1)
	if err != nil {
		return nil, err
	}
	if group < 1 || in[0] != w.Shape[1]*int(group) || w.Shape[0]%int(group) != 0 {
		return nil, fmt.Errorf("group=%d does not fit %d input channels and a weight of shape %v (want [O, C/group, kH, kW] with group dividing O)",
			group, in[0], w.Shape)
	}
	if ks, ok, _ := n.Ints("kernel_shape"); ok && (len(ks) != 2 || int(ks[0]) != w.Shape[2] || int(ks[1]) != w.Shape[3]) {
		return nil, fmt.Errorf("kernel_shape %v disagrees with the weight's shape %v", ks, w.Shape)
	}
	sh, sw, pt, pl, pb, pr, dh, dw, err := onnxWindow(n, in, w.Shape[2], w.Shape[3])
	if err != nil {
		return nil, err
	}
	name := n.LayerName("conv")
	l := &Conv2d{LayerName: name, Weight: NewParam(name+".weight", w.F, w.Shape...),
		SH: sh, SW: sw, PT: pt, PL: pl, PB: pb, PR: pr, DH: dh, DW: dw, Groups: int(group)}
	b, err := n.Const(2, "the bias")
	if err != nil {
		return nil, err
	}
	if b != nil {
		if b.IsInt() || b.Numel() != w.Shape[0] {
			return nil, fmt.Errorf("bias has %d values for %d output channels", b.Numel(), w.Shape[0])
		}
		l.Bias = NewParam(name+".bias", b.F, w.Shape[0])
	}
	return l, nil
}

// conv2dFromTorch reads torch.nn.Conv2d (padding_mode zeros; padding a
// number, a pair or "valid").
func conv2dFromTorch(m TorchModule) (Layer, error) {
	w, err := m.Param("weight", true)
	if err != nil {
		return nil, err
	}
	b, err := m.Param("bias", false)
	if err != nil {
		return nil, err
	}
	groups := 1
	if m.IsSet("groups") {
		g, ok := m.Int("groups")
		if !ok || g < 1 {
			return nil, fmt.Errorf("groups must be a positive integer")
		}
		groups = g
	}
	if pm, _ := m.String("padding_mode"); pm != "" && pm != "zeros" {
		return nil, fmt.Errorf("padding_mode %q is not supported", pm)
	}
	stride, err := m.Pair("stride", [2]int{1, 1})
	if err != nil {
		return nil, err
	}
	dil, err := m.Pair("dilation", [2]int{1, 1})
	if err != nil {
		return nil, err
	}
	var pad [2]int
	if s, ok := m.String("padding"); ok {
		if s != "valid" {
			return nil, fmt.Errorf("padding=%q is not supported", s)
		}
	} else if pad, err = m.Pair("padding", [2]int{}); err != nil {
		return nil, err
	}
	return &Conv2d{LayerName: m.Path(), Weight: w, Bias: b, SH: stride[0], SW: stride[1],
		PT: pad[0], PB: pad[0], PL: pad[1], PR: pad[1], DH: dil[0], DW: dil[1], Groups: groups}, nil
}
