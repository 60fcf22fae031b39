package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute/refmath"
	"github.com/proxykit/proxykit/program"
)

// Softmax is a softmax or log-softmax over the class dimension. It may only
// end a network; the SNN leaves it out (spike counts are its output).
type Softmax struct {
	LayerName string
	Log       bool
}

// kind is Softmax or LogSoftmax.
func (l *Softmax) kind() string {
	if l.Log {
		return "LogSoftmax"
	}
	return "Softmax"
}

// Info implements Layer: the SNN leaves the head out; spike counts are its
// output.
func (l *Softmax) Info() Info { return Info{Kind: l.kind(), Name: l.LayerName, Role: Role{Head: true}} }

// OutputShape implements Layer.
func (l *Softmax) OutputShape(ins [][]int) ([]int, error) {
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if len(in) != 1 {
		return nil, fmt.Errorf("%s needs a [K] input, got %s", l.kind(), ShapeString(in))
	}
	return in, nil
}

// Forward implements Layer.
func (l *Softmax) Forward(s *Site) {
	s.Emit(&program.Softmax{K: s.In[0][0], Log: l.Log, Rate: s.Rate, X: s.X[0], Y: s.Y})
}

// Backward implements Layer, from the forward pass's output.
func (l *Softmax) Backward(s *Site) {
	s.Emit(&program.SoftmaxGrad{K: s.In[0][0], Log: l.Log, Rate: s.Rate, Y: s.Y, DY: s.DY, DX: s.DX[0]})
}

// Reference implements Layer.
func (l *Softmax) Reference(xs [][]float64, in [][]int, n int, _ bool) []float64 {
	return refmath.Softmax(n, in[0][0], l.Log, xs[0])
}

// Params implements Layer.
func (l *Softmax) Params() []*Param { return nil }

// ExportONNX implements ONNXWriter: Softmax or LogSoftmax over the classes.
func (l *Softmax) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	g.Node(l.kind(), name, ins[:1], []string{out}, ONNXAttr{"axis", int64(1)})
	return nil
}

// ExportNIR implements NIRWriter: the SNN has no softmax, and NIR no node
// for one.
func (l *Softmax) ExportNIR(NIRGraph, []int, bool) error {
	return fmt.Errorf("NIR has no softmax node")
}

func softmaxKind() Kind {
	return Kind{Names: []string{"Softmax", "LogSoftmax"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		return &Softmax{LayerName: s.Name, Log: s.Kind == "LogSoftmax"}, specParams(ps, 0, 0)
	}, ONNXOps: []string{"Softmax", "LogSoftmax"}, FromONNX: softmaxFromONNX, TorchModules: []string{"Softmax", "LogSoftmax"},
		FromTorch: softmaxFromTorch}
}

// softmaxFromTorch reads nn.Softmax and nn.LogSoftmax over the classes of
// a [B K] output: dim 1 or −1, or None (torch then takes dim 1 for a 2-D
// input). Another dim (0: across the batch) is refused.
func softmaxFromTorch(m TorchModule) (Layer, error) {
	if m.IsSet("dim") {
		dim, ok := m.Int("dim")
		if !ok || (dim != 1 && dim != -1) {
			return nil, fmt.Errorf("%s over dim %v: proxykit's softmax runs over the classes of a [B K] output (dim 1 or -1)", m.Class(), dimOf(m))
		}
	}
	return &Softmax{LayerName: m.Path(), Log: m.Class() == "LogSoftmax"}, nil
}

// dimOf prints a module's dim attribute for a message.
func dimOf(m TorchModule) any {
	if d, ok := m.Int("dim"); ok {
		return d
	}
	if s, ok := m.String("dim"); ok {
		return s
	}
	return "of another type"
}

// softmaxFromONNX reads Softmax and LogSoftmax over the classes of a
// [B K] output (axis 1 or −1; the default is −1 from opset 13, 1 before).
func softmaxFromONNX(n ONNXNode) (Layer, error) {
	in := n.Activations()[0]
	def := int64(1)
	if n.Opset() >= 13 {
		def = -1
	}
	axis, err := n.Int("axis", def)
	if err != nil {
		return nil, err
	}
	if len(in) != 1 || (axis != 1 && axis != -1) {
		return nil, fmt.Errorf("%s over axis %d of per-sample shape %s: only over the classes of a [B K] output", n.Op(), axis, ShapeString(in))
	}
	l := &Softmax{LayerName: n.LayerName("softmax"), Log: n.Op() == "LogSoftmax"}
	n.Note(fmt.Sprintf("%s %q at the end is kept in the ANN and left out of the SNN (its output is spike counts)", n.Op(), l.LayerName))
	return l, nil
}
