package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute/refmath"
	"github.com/proxykit/proxykit/program"
)

// Linear is a fully connected layer, y = x·Wᵀ + b.
type Linear struct {
	LayerName string
	Weight    *Param // [out, in]
	Bias      *Param // [out] or nil
}

// Info implements Layer: the layer runs on the spikes of the layer before.
func (l *Linear) Info() Info {
	if l.Weight == nil || len(l.Weight.Shape) != 2 {
		return Info{Kind: "Linear", Name: l.LayerName, Summary: "malformed weight"}
	}
	s := fmt.Sprintf("%d→%d", l.Weight.Shape[1], l.Weight.Shape[0])
	if l.Bias == nil {
		s += " no bias"
	}
	return Info{Kind: "Linear", Name: l.LayerName, Summary: s}
}

// OutputShape implements Layer.
func (l *Linear) OutputShape(ins [][]int) ([]int, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if len(in) != 1 || in[0] != l.Weight.Shape[1] {
		return nil, fmt.Errorf("Linear expects [%d] features, got %s", l.Weight.Shape[1], ShapeString(in))
	}
	return []int{l.Weight.Shape[0]}, nil
}

// Forward implements Layer: y = x·Wᵀ + b.
func (l *Linear) Forward(s *Site) {
	s.Emit(&program.Linear{In: l.Weight.Shape[1], Out: l.Weight.Shape[0], Rate: s.Rate, X: s.X[0], W: s.Param(l.Weight),
		Bias: s.Param(l.Bias), Y: s.Y, Spikes: s.Spikes})
}

// Backward implements Layer: dx = dy·W; dyᵀ·x and Σ dy added to the
// gradients.
func (l *Linear) Backward(s *Site) {
	s.Emit(&program.LinearGrad{In: l.Weight.Shape[1], Out: l.Weight.Shape[0], Rate: s.Rate, X: s.X[0], W: s.Param(l.Weight),
		DY: s.DY, DX: s.DX[0], DW: s.Grad(l.Weight), DB: s.Grad(l.Bias)})
}

// Reference implements Layer.
func (l *Linear) Reference(xs [][]float64, _ [][]int, n int, _ bool) []float64 {
	return refmath.Linear(n, l.Weight.Shape[1], l.Weight.Shape[0], xs[0], l.Weight.Data, optData(l.Bias))
}

// Params implements Layer.
func (l *Linear) Params() []*Param { return params(l.Weight, l.Bias) }

// Validate implements Validator.
func (l *Linear) Validate() error {
	if l.Weight == nil || len(l.Weight.Shape) != 2 {
		return fmt.Errorf("weight must be 2-D [out, in], got %s", paramShape(l.Weight))
	}
	if err := pos("weight dimensions", l.Weight.Shape...); err != nil {
		return err
	}
	if l.Bias != nil && (len(l.Bias.Shape) != 1 || l.Bias.Shape[0] != l.Weight.Shape[0]) {
		return fmt.Errorf("bias %s does not match %d outputs", paramShape(l.Bias), l.Weight.Shape[0])
	}
	return nil
}

// ScaleInput implements Scalable.
func (l *Linear) ScaleInput(f float64) error {
	if err := checkScale(f); err != nil {
		return err
	}
	scaleParam(l.Weight, f)
	return nil
}

// ScaleOutput implements Scalable.
func (l *Linear) ScaleOutput(f float64) { scaleParam(l.Weight, f); scaleParam(l.Bias, f) }

// FanOut implements Synaptic: every input feeds every output (nil for
// an input OutputShape refuses).
func (l *Linear) FanOut(in []int) []float32 {
	if _, err := l.OutputShape([][]int{in}); err != nil {
		return nil
	}
	return Full([]int{Numel(in)}, float32(l.Weight.Shape[0]))
}

// PinnedInput implements InputPinned: the input features (0 for a
// malformed weight).
func (l *Linear) PinnedInput() (lead, rank int) {
	if l.Validate() != nil {
		return 0, 1
	}
	return l.Weight.Shape[1], 1
}

// MACs implements Synaptic (0 for an input OutputShape refuses).
func (l *Linear) MACs(in []int) int64 {
	if _, err := l.OutputShape([][]int{in}); err != nil {
		return 0
	}
	return int64(l.Weight.Shape[0]) * int64(l.Weight.Shape[1])
}

// ExportONNX implements ONNXWriter: Gemm with transB.
func (l *Linear) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	args := []string{ins[0], g.Param(l.Weight)}
	if l.Bias != nil {
		args = append(args, g.Param(l.Bias))
	}
	g.Node("Gemm", name, args, []string{out}, ONNXAttr{"transB", int64(1)})
	return nil
}

// ExportNIR implements NIRWriter: NIR's Affine, with a zero bias where the
// layer has none. NIR's Linear would say the same, but sinabs maps no
// Linear node (its loader fails on one), while norse, sinabs, snnTorch
// and nirtorch all map Affine. docs/nir.md.
func (l *Linear) ExportNIR(g NIRGraph, in []int, _ bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	n := g.Node(l.LayerName, "Affine")
	n.Floats("weight", l.Weight.Shape, l.Weight.Data)
	if l.Bias != nil {
		n.Floats("bias", l.Bias.Shape, l.Bias.Data)
	} else {
		n.Floats("bias", []int{l.Weight.Shape[0]}, make([]float32, l.Weight.Shape[0]))
		n.Meta("bias_note", "none in proxykit's layer: written as zeros, since sinabs maps Affine but not Linear")
	}
	return nil
}

func linearKind() Kind {
	return Kind{Names: []string{"Linear"}, FromArch: linearFromArch, ONNXOps: []string{"Gemm", "MatMul"},
		FromONNX: linearFromONNX, TorchModules: []string{"Linear"}, FromTorch: linearFromTorch}
}

func linearFromArch(s LayerSpec, ps []*Param) (Layer, error) {
	if err := specParams(ps, 1, 2); err != nil {
		return nil, err
	}
	return &Linear{LayerName: s.Name, Weight: ps[0], Bias: optParam(ps, 1)}, nil
}

// linearFromONNX reads Gemm (alpha, beta, transB, the bias C) and MatMul
// by a constant (an Add of a constant right after becomes its bias: the
// importer folds it). The activation must be the first input.
func linearFromONNX(n ONNXNode) (Layer, error) {
	in := n.Activations()[0]
	if !n.IsActivation(0) {
		return nil, fmt.Errorf("the activation must be %s's first input", n.Op())
	}
	what := "the weight"
	if n.Op() == "Gemm" {
		what = "B"
	}
	b, err := n.Const(1, what)
	if err != nil {
		return nil, err
	}
	if b == nil || b.IsInt() || len(b.Shape) != 2 {
		return nil, fmt.Errorf("%s must be a 2-D float constant", what)
	}
	if b.Shape[0] < 0 || b.Shape[1] < 0 || len(b.F) != b.Shape[0]*b.Shape[1] {
		return nil, fmt.Errorf("%s of shape %v holds %d values", what, b.Shape, len(b.F))
	}
	alpha, beta := float32(1), float32(1)
	transB := int64(0)
	if n.Op() == "Gemm" {
		transA, err := n.Int("transA", 0)
		if err != nil {
			return nil, err
		}
		if transA != 0 {
			return nil, fmt.Errorf("transA=1 is not supported")
		}
		if transB, err = n.Int("transB", 0); err != nil {
			return nil, err
		}
		if alpha, err = n.Float("alpha", 1); err != nil {
			return nil, err
		}
		if beta, err = n.Float("beta", 1); err != nil {
			return nil, err
		}
	}
	if len(in) != 1 {
		return nil, fmt.Errorf("input has per-sample shape %s; a fully connected layer needs a flat [F] input (add a Flatten)", ShapeString(in))
	}
	// the weight as [out, in]: Gemm with transB holds it so (PyTorch's
	// export of a Linear), MatMul and Gemm without it as [in, out]
	w, weights := b, []float32(nil)
	if transB == 0 {
		if w, err = b.transposed2D(); err != nil {
			return nil, err
		}
		weights = w.F // a new array
	}
	if weights == nil || alpha != 1 {
		weights = scaled(w.F, alpha) // a copy of its own: the constant may feed other nodes
	}
	if w.Shape[1] != in[0] {
		return nil, fmt.Errorf("weight takes %d features, the input has %d", w.Shape[1], in[0])
	}
	name := n.LayerName("fc")
	l := &Linear{LayerName: name, Weight: NewParam(name+".weight", weights, w.Shape...)}
	if n.Op() == "Gemm" {
		c, err := n.Const(2, "C")
		if err != nil {
			return nil, err
		}
		if c != nil {
			vec, err := BiasVector(c, w.Shape[0])
			if err != nil {
				return nil, fmt.Errorf("C: %w", err)
			}
			l.Bias = NewParam(name+".bias", scaled(vec, beta), w.Shape[0])
		}
	}
	return l, nil
}

// scaled is x·s (a copy).
func scaled(x []float32, s float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = v * s
	}
	return out
}

// BiasVector broadcasts a constant of shape [], [1], [K] or [1 K] to K
// values: an ONNX bias.
func BiasVector(b *ONNXConst, k int) ([]float32, error) {
	if b == nil {
		return nil, fmt.Errorf("no bias constant (nil)")
	}
	if k < 1 || k > MaxValuesPerSample {
		return nil, fmt.Errorf("a bias for %d outputs", k)
	}
	if b.IsInt() {
		return nil, fmt.Errorf("bias must be float")
	}
	// the K values on the last axis: [K 1] would broadcast against the
	// batch, not the outputs
	last := len(b.Shape) == 0 || b.Shape[len(b.Shape)-1] == k
	switch {
	case b.Numel() == k && last:
		return append([]float32(nil), b.F...), nil
	case b.Numel() == 1:
		return Full([]int{k}, b.F[0]), nil
	}
	return nil, fmt.Errorf("shape %v does not broadcast to %d outputs", b.Shape, k)
}

// linearFromTorch reads torch.nn.Linear.
func linearFromTorch(m TorchModule) (Layer, error) {
	w, err := m.Param("weight", true)
	if err != nil {
		return nil, err
	}
	b, err := m.Param("bias", false)
	if err != nil {
		return nil, err
	}
	return &Linear{LayerName: m.Path(), Weight: w, Bias: b}, nil
}
