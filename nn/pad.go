package nn

import (
	"fmt"
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/program"
)

// Pad2d pads each plane with a constant: PyTorch's ConstantPad2d/ZeroPad2d.
type Pad2d struct {
	LayerName      string
	PT, PL, PB, PR int
	Value          float32
}

// Info implements Layer: zero padding keeps spikes spikes and commutes
// with scaling; another value does neither.
func (l *Pad2d) Info() Info {
	return Info{Kind: "Pad2d", Name: l.LayerName, Summary: fmt.Sprintf("pad %d,%d,%d,%d value %g", l.PT, l.PL, l.PB, l.PR, l.Value),
		Attrs: map[string]any{"pads": []int{l.PT, l.PL, l.PB, l.PR}, "value": l.Value},
		Role:  Role{KeepsSpikes: l.Value == 0, Homogeneous: l.Value == 0}}
}

// OutputShape implements Layer.
func (l *Pad2d) OutputShape(ins [][]int) ([]int, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if len(in) != 3 {
		return nil, fmt.Errorf("Pad2d needs a [C H W] input, got %s", ShapeString(in))
	}
	return []int{in[0], in[1] + l.PT + l.PB, in[2] + l.PL + l.PR}, nil
}

// Geom is the padding of the planes of a per-sample input shape [C, H, W]
// (H and W 0 for a malformed input shape).
func (l *Pad2d) Geom(in []int) compute.PadGeom {
	g := compute.PadGeom{PT: l.PT, PL: l.PL, PB: l.PB, PR: l.PR, Value: l.Value}
	if len(in) == 3 {
		g.H, g.W = in[1], in[2]
	}
	return g
}

// Forward implements Layer: each plane inside a border of Value.
func (l *Pad2d) Forward(s *Site) {
	s.Emit(&program.Pad{G: l.Geom(s.In[0]), C: s.In[0][0], Rate: s.Rate, X: s.X[0], Y: s.Y})
}

// Backward implements Layer: the gradient of the padded border is dropped.
func (l *Pad2d) Backward(s *Site) {
	s.Emit(&program.PadGrad{G: l.Geom(s.In[0]), C: s.In[0][0], Rate: s.Rate, DY: s.DY, DX: s.DX[0]})
}

// Reference implements Layer.
func (l *Pad2d) Reference(xs [][]float64, in [][]int, n int, _ bool) []float64 {
	g := l.Geom(in[0])
	planes, oh, ow := n*in[0][0], g.OutH(), g.OutW()
	y := make([]float64, planes*oh*ow)
	for p := 0; p < planes; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				v := float64(l.Value)
				if h, w := i-l.PT, j-l.PL; h >= 0 && h < g.H && w >= 0 && w < g.W {
					v = xs[0][(p*g.H+h)*g.W+w]
				}
				y[(p*oh+i)*ow+j] = v
			}
		}
	}
	return y
}

// Params implements Layer.
func (l *Pad2d) Params() []*Param { return nil }

// Validate implements Validator.
func (l *Pad2d) Validate() error {
	if err := nonneg("padding", l.PT, l.PL, l.PB, l.PR); err != nil {
		return err
	}
	if math.IsNaN(float64(l.Value)) || math.IsInf(float64(l.Value), 0) {
		return fmt.Errorf("padding value is %g", l.Value)
	}
	return nil
}

// ExportONNX implements ONNXWriter: Pad in constant mode, pads and value as
// inputs (opset 11 and later).
func (l *Pad2d) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	pads := g.IntConstant(l.LayerName+".pads", i64s(0, 0, l.PT, l.PL, 0, 0, l.PB, l.PR))
	value := g.Constant(l.LayerName+".value", nil, []float32{l.Value})
	g.Node("Pad", name, []string{ins[0], pads, value}, []string{out}, ONNXAttr{"mode", "constant"})
	return nil
}

// ExportNIR implements NIRWriter: NIR has no padding node.
func (l *Pad2d) ExportNIR(NIRGraph, []int, bool) error {
	return fmt.Errorf("NIR has no padding node")
}

func pad2dKind() Kind {
	return Kind{Names: []string{"Pad2d"}, FromArch: pad2dFromArch, ONNXOps: []string{"Pad"}, FromONNX: pad2dFromONNX,
		TorchModules: []string{"ZeroPad2d", "ConstantPad2d"}, FromTorch: pad2dFromTorch}
}

// pad2dFromTorch reads torch.nn.ZeroPad2d and ConstantPad2d: padding
// (left, right, top, bottom) or one number for all four, and value.
func pad2dFromTorch(m TorchModule) (Layer, error) {
	p, ok := m.Ints("padding")
	if ok && len(p) == 1 {
		p = []int{p[0], p[0], p[0], p[0]}
	}
	if !ok || len(p) != 4 {
		return nil, fmt.Errorf("padding must be 4 integers (left, right, top, bottom)")
	}
	v, ok := m.Float("value")
	if !ok && m.IsSet("value") {
		return nil, fmt.Errorf("value must be a number")
	}
	return &Pad2d{LayerName: m.Path(), PL: p[0], PR: p[1], PT: p[2], PB: p[3], Value: float32(v)}, nil
}

func pad2dFromArch(s LayerSpec, ps []*Param) (Layer, error) {
	var a struct {
		Pads  []int
		Value float32
	}
	if err := decodeAttrs(s, &a); err != nil {
		return nil, err
	}
	if err := specParams(ps, 0, 0); err != nil {
		return nil, err
	}
	if err := specPairs(a.Pads); err != nil {
		return nil, err
	}
	return &Pad2d{LayerName: s.Name, PT: a.Pads[0], PL: a.Pads[1], PB: a.Pads[2], PR: a.Pads[3], Value: a.Value}, nil
}

// pad2dFromONNX reads Pad in constant mode, spatial pads only: pads and
// value as attributes (opsets before 11) or inputs, with the optional
// axes input (opset 18). All-zero pads, as PyTorch's opset-11 export puts
// before AveragePool, pass through.
func pad2dFromONNX(n ONNXNode) (Layer, error) {
	in := n.Activations()[0]
	mode, err := n.String("mode", "constant")
	if err != nil {
		return nil, err
	}
	if mode != "constant" {
		return nil, fmt.Errorf("pad mode %q is not supported (only constant)", mode)
	}
	var pads []int64
	var val float32
	if n.Opset() < 11 {
		if pads, _, err = n.Ints("pads"); err != nil {
			return nil, err
		}
		if val, err = n.Float("value", 0); err != nil {
			return nil, err
		}
	} else {
		k, err := n.Const(1, "pads")
		if err != nil {
			return nil, err
		}
		if k == nil {
			return nil, fmt.Errorf("has no pads")
		}
		pads = k.Ints()
		cv, err := n.Const(2, "constant_value")
		if err != nil {
			return nil, err
		}
		if cv != nil && cv.Numel() > 0 {
			val = cv.Floats()[0]
		}
		ax, err := n.Const(3, "axes")
		if err != nil {
			return nil, err
		}
		if ax != nil {
			full := make([]int64, 8)
			axes := ax.Ints()
			if len(pads) != 2*len(axes) {
				return nil, fmt.Errorf("pads %v do not match axes %v", pads, axes)
			}
			for i, a := range axes {
				if a < -4 || a > 3 {
					return nil, fmt.Errorf("axis %d out of range for rank 4", a)
				}
				if a < 0 {
					a += 4
				}
				full[a], full[a+4] = pads[i], pads[i+len(axes)]
			}
			pads = full
		}
	}
	if len(in) != 3 || len(pads) != 8 {
		return nil, fmt.Errorf("proxykit pads only 4-D NCHW activations (pads %v, per-sample shape %s)", pads, ShapeString(in))
	}
	if pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 {
		return nil, fmt.Errorf("pads %v touch the batch or channel axes; only spatial padding is supported", pads)
	}
	for _, p := range pads {
		if p < 0 {
			return nil, fmt.Errorf("negative pads %v (cropping) are not supported", pads)
		}
	}
	if pads[2] == 0 && pads[3] == 0 && pads[6] == 0 && pads[7] == 0 {
		return nil, nil
	}
	return &Pad2d{LayerName: n.LayerName("pad"), PT: int(pads[2]), PL: int(pads[3]), PB: int(pads[6]),
		PR: int(pads[7]), Value: val}, nil
}
