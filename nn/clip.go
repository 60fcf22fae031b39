package nn

import (
	"fmt"
	"math"

	"github.com/proxykit/proxykit/compute/refmath"
	"github.com/proxykit/proxykit/program"
)

// Clip is min(max(x, 0), Ceiling): PyTorch's ReLU6 (Ceiling 6) and
// Hardtanh(0, c), ONNX's Clip(0, c). In the SNN it becomes an IF layer
// whose saturation — one spike per step — stands for the ceiling, or one
// as for a ReLU, as the SNN's setting says (docs/design.md §1, "ReLU6").
type Clip struct {
	LayerName string
	Ceiling   float32
}

// Saturating is a neuron layer whose output has a ceiling (Clip): its IF
// twin may tie its threshold to it (docs/design.md §1, "ReLU6").
type Saturating interface {
	Layer
	// Saturation is the largest output the layer gives.
	Saturation() float32
	// ScaleSaturation multiplies the ceiling by f > 0, so that for an
	// input f times the old one the layer gives f times the old output
	// (conversion's normalisation scales a neuron layer's input).
	ScaleSaturation(f float64)
}

// Saturation implements Saturating.
func (l *Clip) Saturation() float32 { return l.Ceiling }

// ScaleSaturation implements Saturating.
func (l *Clip) ScaleSaturation(f float64) { l.Ceiling = float32(float64(l.Ceiling) * f) }

// Info implements Layer: a layer of IF neurons.
func (l *Clip) Info() Info {
	return Info{Kind: "Clip", Name: l.LayerName, Summary: fmt.Sprintf("[0, %g]", l.Ceiling),
		Attrs: map[string]any{"ceiling": l.Ceiling}, Role: Role{Neuron: true, KeepsSpikes: true}}
}

// Validate implements Validator: a positive, finite ceiling.
func (l *Clip) Validate() error {
	if !(l.Ceiling > 0) || math.IsInf(float64(l.Ceiling), 0) {
		return fmt.Errorf("the ceiling must be positive and finite, got %g", l.Ceiling)
	}
	return nil
}

// OutputShape implements Layer.
func (l *Clip) OutputShape(ins [][]int) ([]int, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return one(ins)
}

// Forward implements Layer: y = min(max(x, 0), ceiling).
func (l *Clip) Forward(s *Site) {
	s.Emit(&program.Clip{Ceiling: l.Ceiling, X: s.X[0], Y: s.Y})
}

// Backward implements Layer: the gradient passes where the ANN's own
// output lay strictly between 0 and the ceiling (PyTorch's hardtanh).
func (l *Clip) Backward(s *Site) {
	s.Emit(&program.ClipGrad{Ceiling: l.Ceiling, Y: s.Y, DY: s.DY, DX: s.DX[0]})
}

// Reference implements Layer.
func (l *Clip) Reference(xs [][]float64, _ [][]int, _ int, _ bool) []float64 {
	return refmath.Clip(float64(l.Ceiling), xs[0])
}

// Params implements Layer.
func (l *Clip) Params() []*Param { return nil }

// ExportONNX implements ONNXWriter: Clip with its bounds as inputs.
func (l *Clip) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	lo := g.Constant("clip.min", nil, []float32{0})
	hi := g.Constant(fmt.Sprintf("clip.max_%g", l.Ceiling), nil, []float32{l.Ceiling})
	g.Node("Clip", name, []string{ins[0], lo, hi}, []string{out})
	return nil
}

// ExportNIR implements NIRWriter: the IF layer that replaces it, with the
// threshold the SNN's setting gives it.
func (l *Clip) ExportNIR(g NIRGraph, in []int, _ bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	nirIF(g, l.LayerName, in)
	return nil
}

func clipKind() Kind {
	return Kind{Names: []string{"Clip"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		var a struct {
			Ceiling float32 `json:"ceiling"`
		}
		if err := decodeAttrs(s, &a); err != nil {
			return nil, err
		}
		return &Clip{LayerName: s.Name, Ceiling: a.Ceiling}, specParams(ps, 0, 0)
	}, ONNXOps: []string{"Clip"}, FromONNX: clipFromONNX, TorchModules: []string{"ReLU6", "Hardtanh"},
		FromTorch: func(m TorchModule) (Layer, error) {
			lo, hi := 0.0, 6.0
			if m.Class() == "Hardtanh" || m.IsSet("max_val") {
				var ok1, ok2 bool
				lo, ok1 = m.Float("min_val")
				hi, ok2 = m.Float("max_val")
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("%s without numeric min_val and max_val", m.Class())
				}
			}
			return clipOf(lo, hi, m.Path(), fmt.Sprintf("%s(%g, %g)", m.Class(), lo, hi))
		}}
}

// clipFromONNX reads Clip: its bounds are attributes before opset 11 and
// optional constant inputs from then on.
func clipFromONNX(n ONNXNode) (Layer, error) {
	lo, hi := math.Inf(-1), math.Inf(1)
	if n.Opset() < 11 {
		f, err := n.Float("min", float32(math.Inf(-1)))
		if err != nil {
			return nil, err
		}
		g, err := n.Float("max", float32(math.Inf(1)))
		if err != nil {
			return nil, err
		}
		lo, hi = float64(f), float64(g)
	} else {
		for i, b := range []*float64{&lo, &hi} {
			k, err := n.Const(i+1, []string{"the lower bound", "the upper bound"}[i])
			if err != nil {
				return nil, err
			}
			if k == nil {
				continue
			}
			if k.Numel() != 1 {
				return nil, fmt.Errorf("bound %d holds %d values, not one", i+1, k.Numel())
			}
			*b = float64(k.Floats()[0])
		}
	}
	return clipOf(lo, hi, n.LayerName("clip"), fmt.Sprintf("Clip(min=%g, max=%g)", lo, hi))
}

// clipOf is the layer computing min(max(x, lo), hi): a Clip for lo = 0
// and a finite hi, a ReLU for lo = 0 without a ceiling.
func clipOf(lo, hi float64, name, what string) (Layer, error) {
	switch {
	case math.IsNaN(lo) || math.IsNaN(hi):
		return nil, fmt.Errorf("%s: a bound is NaN", what)
	case lo != 0:
		return nil, fmt.Errorf("%s: not a ReLU network: an IF neuron at rest fires at a rate of 0, so proxykit represents a clip only from 0 (ReLU6, Hardtanh(0, c))", what)
	case hi <= 0:
		return nil, fmt.Errorf("%s gives 0 whatever its input", what)
	case hi >= math.MaxFloat32:
		return &ReLU{LayerName: name}, nil
	}
	return &Clip{LayerName: name, Ceiling: float32(hi)}, nil
}
