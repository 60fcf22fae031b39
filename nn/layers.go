package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Layer is one stage of a feed-forward network. Shapes passed to
// OutputShape are per sample (no batch dimension); Forward takes and
// returns batched tensors whose shapes were checked by Network.
type Layer interface {
	// Name is the layer's name, taken from the imported model where it had one.
	Name() string
	// Kind is the PyTorch-style layer type, e.g. "Conv2d".
	Kind() string
	// Describe gives the layer's hyper-parameters in a few words.
	Describe() string
	// OutputShape is the per-sample output shape for a per-sample input shape,
	// or an error saying why the input does not fit.
	OutputShape(in []int) ([]int, error)
	// Forward runs the layer in inference mode.
	Forward(x *Tensor) *Tensor
	// Params lists the layer's trainable parameters (none for most layers).
	Params() []*Param
}

// Conv2d is a 2-D convolution with groups = 1 and optional bias.
type Conv2d struct {
	LayerName      string
	Weight         *Param // [O, C, KH, KW]
	Bias           *Param // [O] or nil
	SH, SW         int
	PT, PL, PB, PR int
	DH, DW         int
}

// Name implements Layer.
func (l *Conv2d) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Conv2d) Kind() string { return "Conv2d" }

// Describe implements Layer.
func (l *Conv2d) Describe() string {
	s := fmt.Sprintf("%d→%d %dx%d stride %d,%d pad %d,%d,%d,%d", l.Weight.Shape[1], l.Weight.Shape[0],
		l.Weight.Shape[2], l.Weight.Shape[3], l.SH, l.SW, l.PT, l.PL, l.PB, l.PR)
	if l.DH != 1 || l.DW != 1 {
		s += fmt.Sprintf(" dilation %d,%d", l.DH, l.DW)
	}
	if l.Bias == nil {
		s += " no bias"
	}
	return s
}

// Geom is the convolution's geometry for a per-sample input shape [C, H, W].
func (l *Conv2d) Geom(in []int) compute.ConvGeom {
	return compute.ConvGeom{C: in[0], H: in[1], W: in[2], O: l.Weight.Shape[0], KH: l.Weight.Shape[2], KW: l.Weight.Shape[3],
		SH: l.SH, SW: l.SW, PT: l.PT, PL: l.PL, PB: l.PB, PR: l.PR, DH: l.DH, DW: l.DW}
}

// OutputShape implements Layer.
func (l *Conv2d) OutputShape(in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("Conv2d needs a [C H W] input, got %s", ShapeString(in))
	}
	if in[0] != l.Weight.Shape[1] {
		return nil, fmt.Errorf("Conv2d expects %d input channels, got %d", l.Weight.Shape[1], in[0])
	}
	g := l.Geom(in)
	if g.OutH() < 1 || g.OutW() < 1 {
		return nil, fmt.Errorf("Conv2d kernel %dx%d does not fit a %dx%d input", g.KH, g.KW, in[1], in[2])
	}
	return []int{g.O, g.OutH(), g.OutW()}, nil
}

// Forward implements Layer.
func (l *Conv2d) Forward(x *Tensor) *Tensor {
	g := l.Geom(x.Shape[1:])
	out := NewTensor(x.Shape[0], g.O, g.OutH(), g.OutW())
	var bias []float32
	if l.Bias != nil {
		bias = l.Bias.Data
	}
	compute.Conv2dForward(g, x.Shape[0], x.Data, l.Weight.Data, bias, out.Data)
	return out
}

// Params implements Layer.
func (l *Conv2d) Params() []*Param {
	if l.Bias != nil {
		return []*Param{l.Weight, l.Bias}
	}
	return []*Param{l.Weight}
}

// BatchNorm2d normalises each channel. Gamma and Beta are trainable and
// shared; the running statistics belong to this layer alone (the SNN keeps
// its own copy).
type BatchNorm2d struct {
	LayerName   string
	Gamma, Beta *Param // [C]
	RunningMean []float32
	RunningVar  []float32
	Eps         float32
	Momentum    float32 // PyTorch's convention: new = (1−m)·old + m·batch
}

// Name implements Layer.
func (l *BatchNorm2d) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *BatchNorm2d) Kind() string { return "BatchNorm2d" }

// Describe implements Layer.
func (l *BatchNorm2d) Describe() string {
	return fmt.Sprintf("%d channels eps %g momentum %g", len(l.Gamma.Data), l.Eps, l.Momentum)
}

// OutputShape implements Layer.
func (l *BatchNorm2d) OutputShape(in []int) ([]int, error) {
	if len(in) < 1 || in[0] != len(l.Gamma.Data) {
		return nil, fmt.Errorf("BatchNorm2d expects %d channels, got input %s", len(l.Gamma.Data), ShapeString(in))
	}
	return in, nil
}

// Forward implements Layer (inference: running statistics).
func (l *BatchNorm2d) Forward(x *Tensor) *Tensor {
	out := NewTensor(x.Shape...)
	c := x.Shape[1]
	compute.BatchNormInference(x.Shape[0], c, Numel(x.Shape[2:]), l.Eps, l.Gamma.Data, l.Beta.Data,
		l.RunningMean, l.RunningVar, x.Data, out.Data)
	return out
}

// Params implements Layer.
func (l *BatchNorm2d) Params() []*Param { return []*Param{l.Gamma, l.Beta} }

// CloneWithOwnStats returns a BatchNorm2d that shares γ and β with l but
// holds a copy of its running statistics.
func (l *BatchNorm2d) CloneWithOwnStats() *BatchNorm2d {
	c := *l
	c.RunningMean = append([]float32(nil), l.RunningMean...)
	c.RunningVar = append([]float32(nil), l.RunningVar...)
	return &c
}

// Linear is a fully connected layer, y = x·Wᵀ + b.
type Linear struct {
	LayerName string
	Weight    *Param // [out, in]
	Bias      *Param // [out] or nil
}

// Name implements Layer.
func (l *Linear) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Linear) Kind() string { return "Linear" }

// Describe implements Layer.
func (l *Linear) Describe() string {
	s := fmt.Sprintf("%d→%d", l.Weight.Shape[1], l.Weight.Shape[0])
	if l.Bias == nil {
		s += " no bias"
	}
	return s
}

// OutputShape implements Layer.
func (l *Linear) OutputShape(in []int) ([]int, error) {
	if len(in) != 1 || in[0] != l.Weight.Shape[1] {
		return nil, fmt.Errorf("Linear expects [%d] features, got %s", l.Weight.Shape[1], ShapeString(in))
	}
	return []int{l.Weight.Shape[0]}, nil
}

// Forward implements Layer.
func (l *Linear) Forward(x *Tensor) *Tensor {
	outF, in := l.Weight.Shape[0], l.Weight.Shape[1]
	out := NewTensor(x.Shape[0], outF)
	var bias []float32
	if l.Bias != nil {
		bias = l.Bias.Data
	}
	compute.LinearForward(x.Shape[0], in, outF, x.Data, l.Weight.Data, bias, out.Data)
	return out
}

// TransposedWeight returns Wᵀ [in, out], for ForwardSparse.
func (l *Linear) TransposedWeight() []float32 {
	outF, in := l.Weight.Shape[0], l.Weight.Shape[1]
	wT := make([]float32, in*outF)
	compute.Transpose(outF, in, l.Weight.Data, wT)
	return wT
}

// ForwardSparse is Forward for mostly-zero inputs such as spikes, given
// TransposedWeight(): zero inputs cost nothing.
func (l *Linear) ForwardSparse(x *Tensor, wT []float32) *Tensor {
	outF, in := l.Weight.Shape[0], l.Weight.Shape[1]
	out := NewTensor(x.Shape[0], outF)
	var bias []float32
	if l.Bias != nil {
		bias = l.Bias.Data
	}
	compute.LinearForwardSparse(x.Shape[0], in, outF, x.Data, wT, bias, out.Data)
	return out
}

// Params implements Layer.
func (l *Linear) Params() []*Param {
	if l.Bias != nil {
		return []*Param{l.Weight, l.Bias}
	}
	return []*Param{l.Weight}
}

// ReLU is max(x, 0). In the SNN every ReLU becomes an IF layer.
type ReLU struct{ LayerName string }

// Name implements Layer.
func (l *ReLU) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *ReLU) Kind() string { return "ReLU" }

// Describe implements Layer.
func (l *ReLU) Describe() string { return "" }

// OutputShape implements Layer.
func (l *ReLU) OutputShape(in []int) ([]int, error) { return in, nil }

// Forward implements Layer.
func (l *ReLU) Forward(x *Tensor) *Tensor {
	out := NewTensor(x.Shape...)
	compute.ReLUForward(x.Data, out.Data)
	return out
}

// Params implements Layer.
func (l *ReLU) Params() []*Param { return nil }

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

// Name implements Layer.
func (l *Pool2d) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Pool2d) Kind() string {
	if l.Max {
		return "MaxPool2d"
	}
	return "AvgPool2d"
}

// Describe implements Layer.
func (l *Pool2d) Describe() string {
	s := fmt.Sprintf("%dx%d stride %d,%d", l.KH, l.KW, l.SH, l.SW)
	if l.PT+l.PL+l.PB+l.PR > 0 {
		s += fmt.Sprintf(" pad %d,%d,%d,%d", l.PT, l.PL, l.PB, l.PR)
	}
	if l.Ceil {
		s += " ceil"
	}
	return s
}

// Geom is the pooling geometry for a per-sample input shape [C, H, W].
func (l *Pool2d) Geom(in []int) compute.PoolGeom {
	return compute.PoolGeom{C: in[0], H: in[1], W: in[2], KH: l.KH, KW: l.KW, SH: l.SH, SW: l.SW,
		PT: l.PT, PL: l.PL, PB: l.PB, PR: l.PR, Ceil: l.Ceil}
}

// OutputShape implements Layer.
func (l *Pool2d) OutputShape(in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("%s needs a [C H W] input, got %s", l.Kind(), ShapeString(in))
	}
	g := l.Geom(in)
	if g.OutH() < 1 || g.OutW() < 1 {
		return nil, fmt.Errorf("%s window %dx%d does not fit a %dx%d input", l.Kind(), l.KH, l.KW, in[1], in[2])
	}
	return []int{in[0], g.OutH(), g.OutW()}, nil
}

// Forward implements Layer.
func (l *Pool2d) Forward(x *Tensor) *Tensor {
	g := l.Geom(x.Shape[1:])
	out := NewTensor(x.Shape[0], g.C, g.OutH(), g.OutW())
	if l.Max {
		compute.MaxPool2dForward(g, x.Shape[0], x.Data, out.Data, nil)
	} else {
		compute.AvgPool2dForward(g, x.Shape[0], l.CountPad, x.Data, out.Data)
	}
	return out
}

// Params implements Layer.
func (l *Pool2d) Params() []*Param { return nil }

// GlobalAvgPool averages each channel over all positions: [C H W] → [C 1 1].
type GlobalAvgPool struct{ LayerName string }

// Name implements Layer.
func (l *GlobalAvgPool) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *GlobalAvgPool) Kind() string { return "GlobalAvgPool" }

// Describe implements Layer.
func (l *GlobalAvgPool) Describe() string { return "" }

// OutputShape implements Layer.
func (l *GlobalAvgPool) OutputShape(in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("GlobalAvgPool needs a [C H W] input, got %s", ShapeString(in))
	}
	return []int{in[0], 1, 1}, nil
}

// Forward implements Layer.
func (l *GlobalAvgPool) Forward(x *Tensor) *Tensor {
	out := NewTensor(x.Shape[0], x.Shape[1], 1, 1)
	compute.GlobalAvgPoolForward(x.Shape[0]*x.Shape[1], Numel(x.Shape[2:]), x.Data, out.Data)
	return out
}

// Params implements Layer.
func (l *GlobalAvgPool) Params() []*Param { return nil }

// Flatten turns each sample into a vector.
type Flatten struct{ LayerName string }

// Name implements Layer.
func (l *Flatten) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Flatten) Kind() string { return "Flatten" }

// Describe implements Layer.
func (l *Flatten) Describe() string { return "" }

// OutputShape implements Layer.
func (l *Flatten) OutputShape(in []int) ([]int, error) { return []int{Numel(in)}, nil }

// Forward implements Layer.
func (l *Flatten) Forward(x *Tensor) *Tensor {
	return &Tensor{Shape: []int{x.Shape[0], Numel(x.Shape[1:])}, Data: x.Data}
}

// Params implements Layer.
func (l *Flatten) Params() []*Param { return nil }

// Pad2d pads each plane with a constant: PyTorch's ConstantPad2d/ZeroPad2d.
type Pad2d struct {
	LayerName      string
	PT, PL, PB, PR int
	Value          float32
}

// Name implements Layer.
func (l *Pad2d) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Pad2d) Kind() string { return "Pad2d" }

// Describe implements Layer.
func (l *Pad2d) Describe() string {
	return fmt.Sprintf("pad %d,%d,%d,%d value %g", l.PT, l.PL, l.PB, l.PR, l.Value)
}

// OutputShape implements Layer.
func (l *Pad2d) OutputShape(in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("Pad2d needs a [C H W] input, got %s", ShapeString(in))
	}
	return []int{in[0], in[1] + l.PT + l.PB, in[2] + l.PL + l.PR}, nil
}

// Forward implements Layer.
func (l *Pad2d) Forward(x *Tensor) *Tensor {
	c, h, w := x.Shape[1], x.Shape[2], x.Shape[3]
	out := NewTensor(x.Shape[0], c, h+l.PT+l.PB, w+l.PL+l.PR)
	compute.Pad2dForward(x.Shape[0]*c, h, w, l.PT, l.PL, l.PB, l.PR, l.Value, x.Data, out.Data)
	return out
}

// Params implements Layer.
func (l *Pad2d) Params() []*Param { return nil }

// Softmax is a softmax or log-softmax over the class dimension. It may only
// end a network; the SNN leaves it out (spike counts are its output).
type Softmax struct {
	LayerName string
	Log       bool
}

// Name implements Layer.
func (l *Softmax) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Softmax) Kind() string {
	if l.Log {
		return "LogSoftmax"
	}
	return "Softmax"
}

// Describe implements Layer.
func (l *Softmax) Describe() string { return "" }

// OutputShape implements Layer.
func (l *Softmax) OutputShape(in []int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("%s needs a [K] input, got %s", l.Kind(), ShapeString(in))
	}
	return in, nil
}

// Forward implements Layer.
func (l *Softmax) Forward(x *Tensor) *Tensor {
	out := NewTensor(x.Shape...)
	compute.SoftmaxForward(x.Shape[0], x.Shape[1], l.Log, x.Data, out.Data)
	return out
}

// Params implements Layer.
func (l *Softmax) Params() []*Param { return nil }
