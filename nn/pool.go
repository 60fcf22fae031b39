package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/refmath"
	"github.com/proxykit/proxykit/program"
)

// Pool2d is max or average pooling over 2-D windows.
type Pool2d struct {
	LayerName      string
	Max            bool // max pooling; else average
	KH, KW         int
	SH, SW         int
	PT, PL, PB, PR int
	Ceil           bool
	CountPad       bool // average pooling: padded positions count in the divisor
}

// kind is MaxPool2d or AvgPool2d.
func (l *Pool2d) kind() string {
	if l.Max {
		return "MaxPool2d"
	}
	return "AvgPool2d"
}

// Info implements Layer: max pooling over spikes is their OR, and keeps
// them spikes; average pooling makes them analog.
func (l *Pool2d) Info() Info {
	s := fmt.Sprintf("%dx%d stride %d,%d", l.KH, l.KW, l.SH, l.SW)
	if l.PT+l.PL+l.PB+l.PR > 0 {
		s += fmt.Sprintf(" pad %d,%d,%d,%d", l.PT, l.PL, l.PB, l.PR)
	}
	if l.Ceil {
		s += " ceil"
	}
	r := Role{KeepsSpikes: l.Max, Homogeneous: true}
	if l.Max {
		r.Note = "on spikes (OR)"
	}
	return Info{Kind: l.kind(), Name: l.LayerName, Summary: s, Role: r,
		Attrs: map[string]any{"kernel": []int{l.KH, l.KW}, "stride": []int{l.SH, l.SW},
			"pads": []int{l.PT, l.PL, l.PB, l.PR}, "ceil": l.Ceil, "count_pad": l.CountPad}}
}

// Geom is the pooling geometry for a per-sample input shape [C, H, W]
// (C, H and W 0 for a malformed input shape: no output).
func (l *Pool2d) Geom(in []int) compute.PoolGeom {
	g := compute.PoolGeom{KH: l.KH, KW: l.KW, SH: l.SH, SW: l.SW, PT: l.PT, PL: l.PL, PB: l.PB, PR: l.PR, Ceil: l.Ceil}
	if len(in) == 3 {
		g.C, g.H, g.W = in[0], in[1], in[2]
	}
	return g
}

// OutputShape implements Layer.
func (l *Pool2d) OutputShape(ins [][]int) ([]int, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if len(in) != 3 {
		return nil, fmt.Errorf("%s needs a [C H W] input, got %s", l.kind(), ShapeString(in))
	}
	g := l.Geom(in)
	if g.OutH() < 1 || g.OutW() < 1 {
		return nil, fmt.Errorf("%s window %dx%d does not fit a %dx%d input", l.kind(), l.KH, l.KW, in[1], in[2])
	}
	return []int{in[0], g.OutH(), g.OutW()}, nil
}

// Forward implements Layer: each window's maximum (padding never wins)
// or mean.
func (l *Pool2d) Forward(s *Site) {
	s.Emit(&program.Pool{G: l.Geom(s.In[0]), Max: l.Max, CountPad: l.CountPad, Rate: s.Rate, X: s.X[0], Y: s.Y})
}

// Backward implements Layer. Max pooling sends each gradient to the first
// maximum of its window, as PyTorch does.
func (l *Pool2d) Backward(s *Site) {
	x := program.None
	if l.Max {
		x = s.X[0]
	}
	s.Emit(&program.PoolGrad{G: l.Geom(s.In[0]), Max: l.Max, CountPad: l.CountPad, Rate: s.Rate, X: x, DY: s.DY, DX: s.DX[0]})
}

// Reference implements Layer.
func (l *Pool2d) Reference(xs [][]float64, in [][]int, n int, _ bool) []float64 {
	if l.Max {
		y, _ := refmath.MaxPool(l.Geom(in[0]), n, xs[0])
		return y
	}
	return refmath.AvgPool(l.Geom(in[0]), n, l.CountPad, xs[0])
}

// Params implements Layer.
func (l *Pool2d) Params() []*Param { return nil }

// Validate implements Validator.
func (l *Pool2d) Validate() error {
	if err := pos("kernel size", l.KH, l.KW); err != nil {
		return err
	}
	if err := pos("stride", l.SH, l.SW); err != nil {
		return err
	}
	if err := nonneg("padding", l.PT, l.PL, l.PB, l.PR); err != nil {
		return err
	}
	if 2*max(l.PT, l.PB) > l.KH || 2*max(l.PL, l.PR) > l.KW {
		return fmt.Errorf("padding %d,%d,%d,%d is more than half the %dx%d window (PyTorch refuses it too)", l.PT, l.PL, l.PB, l.PR, l.KH, l.KW)
	}
	return nil
}

// ExportONNX implements ONNXWriter: MaxPool or AveragePool.
func (l *Pool2d) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	attrs := []ONNXAttr{{"kernel_shape", i64s(l.KH, l.KW)}, {"strides", i64s(l.SH, l.SW)},
		{"pads", i64s(l.PT, l.PL, l.PB, l.PR)}, {"ceil_mode", b2i(l.Ceil)}}
	op := "MaxPool"
	if !l.Max {
		op = "AveragePool"
		attrs = append(attrs, ONNXAttr{"count_include_pad", b2i(l.CountPad)})
	}
	g.Node(op, name, ins[:1], []string{out}, attrs...)
	return nil
}

// ExportNIR implements NIRWriter. NIR has no max pooling: over binary spikes
// it is their OR, written as SumPool2d followed by an IF layer that fires
// when the sum is at least 1 (r = 1, v_reset = 0, threshold 0.5: the sums
// are integers and the potential is back at 0 after every step), which
// norse, sinabs and snntorch load, or with NIRGraph.MaxPoolThreshold by
// NIR's Threshold at 0, which none of them maps.
func (l *Pool2d) ExportNIR(g NIRGraph, in []int, spikes bool) error {
	out, err := nirArgs(l, g, in)
	if err != nil {
		return err
	}
	if l.PT != l.PB || l.PL != l.PR || l.Ceil {
		return fmt.Errorf("NIR's pooling pads symmetrically and has no ceil mode")
	}
	pool := func(typ string) NIRNode {
		n := g.Node(l.LayerName, typ)
		n.Ints("kernel_size", l.KH, l.KW)
		n.Ints("stride", l.SH, l.SW)
		n.Ints("padding", l.PT, l.PL)
		return n
	}
	if !l.Max {
		if l.PT+l.PL > 0 && !l.CountPad {
			return fmt.Errorf("NIR's AvgPool2d counts padding in its divisor; this layer does not")
		}
		if g.AvgPoolAsConv() {
			return NIRAvgPoolConv(g, l.LayerName, in, l.KH, l.KW, l.SH, l.SW, l.PT, l.PL)
		}
		pool("AvgPool2d")
		return nil
	}
	if !spikes {
		return fmt.Errorf("max-pools analog values: NIR has no max pooling (proxykit writes max-pooling over spikes as their OR)")
	}
	sum := pool("SumPool2d")
	if g.MaxPoolThreshold() {
		sum.Meta("replaces", "MaxPool2d on binary spikes: SumPool2d followed by Threshold at 0")
		g.Node(l.LayerName+"_threshold", "Threshold").Floats("threshold", out, Full(out, 0))
		return nil
	}
	sum.Meta("replaces", "MaxPool2d on binary spikes: SumPool2d followed by an IF layer that fires when the sum is at least 1")
	or := g.Node(l.LayerName+"_or", "IF")
	or.Floats("r", out, Full(out, 1))
	or.Floats("v_threshold", out, Full(out, 0.5))
	or.Floats("v_reset", out, Full(out, 0))
	or.Meta("replaces", "the OR of a max-pooling window of spikes: the integer sum fires when at least 1, and the potential is 0 after every step")
	return nil
}

func pool2dKind() Kind {
	return Kind{Names: []string{"MaxPool2d", "AvgPool2d"}, FromArch: pool2dFromArch, ONNXOps: []string{"MaxPool", "AveragePool"},
		FromONNX: pool2dFromONNX, TorchModules: []string{"MaxPool2d", "AvgPool2d"}, FromTorch: pool2dFromTorch}
}

func pool2dFromArch(s LayerSpec, ps []*Param) (Layer, error) {
	var a struct {
		Kernel, Stride, Pads []int
		Ceil                 bool
		CountPad             bool `json:"count_pad"`
	}
	if err := decodeAttrs(s, &a); err != nil {
		return nil, err
	}
	if err := specParams(ps, 0, 0); err != nil {
		return nil, err
	}
	if err := specPairs(a.Pads, a.Kernel, a.Stride); err != nil {
		return nil, err
	}
	return &Pool2d{LayerName: s.Name, Max: s.Kind == "MaxPool2d", KH: a.Kernel[0], KW: a.Kernel[1],
		SH: a.Stride[0], SW: a.Stride[1], PT: a.Pads[0], PL: a.Pads[1], PB: a.Pads[2], PR: a.Pads[3],
		Ceil: a.Ceil, CountPad: a.CountPad}, nil
}

// pool2dFromONNX reads MaxPool and AveragePool (2-D, auto_pad,
// ceil_mode, count_include_pad; no dilation). Before opset 10 a missing
// strides attribute means 1.
func pool2dFromONNX(n ONNXNode) (Layer, error) {
	in := n.Activations()[0]
	if len(in) != 3 {
		return nil, fmt.Errorf("input has per-sample shape %s; pooling needs [C H W]", ShapeString(in))
	}
	ks, ok, err := n.Ints("kernel_shape")
	if err != nil {
		return nil, err
	}
	if !ok || len(ks) != 2 || ks[0] < 1 || ks[1] < 1 {
		return nil, fmt.Errorf("kernel_shape %v: proxykit needs a 2-D window", ks)
	}
	sh, sw, pt, pl, pb, pr, dh, dw, err := onnxWindow(n, in, int(ks[0]), int(ks[1]))
	if err != nil {
		return nil, err
	}
	if dh != 1 || dw != 1 {
		return nil, fmt.Errorf("dilated pooling is not supported")
	}
	if _, ok, _ := n.Ints("strides"); !ok && n.Opset() < 10 {
		sh, sw = 1, 1
	}
	ceil, err := n.Int("ceil_mode", 0)
	if err != nil {
		return nil, err
	}
	countPad, err := n.Int("count_include_pad", 0)
	if err != nil {
		return nil, err
	}
	isMax := n.Op() == "MaxPool"
	if isMax && n.HasOutput(1) {
		n.Note(fmt.Sprintf("MaxPool %q: its indices output is not computed", n.Name()))
	}
	prefix := "avgpool"
	if isMax {
		prefix = "maxpool"
	}
	return &Pool2d{LayerName: n.LayerName(prefix), Max: isMax, KH: int(ks[0]), KW: int(ks[1]),
		SH: sh, SW: sw, PT: pt, PL: pl, PB: pb, PR: pr, Ceil: ceil != 0, CountPad: countPad != 0}, nil
}

// pool2dFromTorch reads torch.nn.MaxPool2d and AvgPool2d (no dilation, no
// divisor_override); stride defaults to the kernel size, as in PyTorch.
func pool2dFromTorch(m TorchModule) (Layer, error) {
	k, err := m.Pair("kernel_size", [2]int{})
	if err != nil {
		return nil, err
	}
	s, err := m.Pair("stride", k)
	if err != nil {
		return nil, err
	}
	p, err := m.Pair("padding", [2]int{})
	if err != nil {
		return nil, err
	}
	if d, _ := m.Pair("dilation", [2]int{1, 1}); d != [2]int{1, 1} {
		return nil, fmt.Errorf("dilated pooling is not supported")
	}
	if m.IsSet("divisor_override") {
		return nil, fmt.Errorf("divisor_override is not supported")
	}
	ceil, _ := m.Int("ceil_mode")
	cip := 1
	if m.IsSet("count_include_pad") {
		cip, _ = m.Int("count_include_pad")
	}
	return &Pool2d{LayerName: m.Path(), Max: m.Class() == "MaxPool2d", KH: k[0], KW: k[1],
		SH: s[0], SW: s[1], PT: p[0], PB: p[0], PL: p[1], PR: p[1], Ceil: ceil != 0, CountPad: cip != 0}, nil
}
