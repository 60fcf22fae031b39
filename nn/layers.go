package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Layer is one stage of a feed-forward network, with its forward and
// backward pass on a compute.Backend. Shapes passed to OutputShape and
// AuxSize are per sample (no batch dimension); Forward and Backward take
// batched values whose shapes an Executor checked and whose buffers (and
// the layer's parameters) are on the backend they are given.
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
	// Params lists the layer's trainable parameters (none for most layers).
	Params() []*Param
	// AuxSize is the number of workspace values Forward and Backward need
	// beside x and y, for a per-sample input shape and mode.Groups groups.
	AuxSize(in []int, groups int) int
	// Forward computes y from x. aux keeps what Backward needs.
	Forward(be compute.Backend, x, y Value, aux compute.Buffer, mode Mode)
	// Backward takes dLoss/dy, writes dLoss/dx (skipped when dx.Buf is nil)
	// and adds the parameter gradients into each Param's gradient buffer.
	// x, y and aux are what the forward pass in mode left.
	Backward(be compute.Backend, x, y, dy, dx Value, aux compute.Buffer, mode Mode)
}

// Mode says how layers behave in a forward pass.
type Mode struct {
	// BatchStats: BatchNorm normalises with the batch's statistics and
	// updates its running statistics (PyTorch's train()); otherwise it uses
	// the running statistics (eval()).
	BatchStats bool
	// Groups splits the batch into that many equal groups of consecutive
	// samples, each with BatchNorm statistics of its own: the SNN's time
	// steps, run together. 0 means 1.
	Groups int
	// Spikes says that the input holds spikes (mostly zeros), for backends
	// with kernels that skip them.
	Spikes bool
}

func (m Mode) groups() int { return max(m.Groups, 1) }

// noAux is AuxSize for layers without workspace.
type noAux struct{}

// AuxSize implements Layer.
func (noAux) AuxSize([]int, int) int { return 0 }

func opt(p *Param, be compute.Backend) compute.Buffer {
	if p == nil {
		return nil
	}
	return p.Buffer(be)
}

func optGrad(p *Param, be compute.Backend) compute.Buffer {
	if p == nil {
		return nil
	}
	return p.GradBuffer(be)
}

// Conv2d is a 2-D convolution with groups = 1 and optional bias.
type Conv2d struct {
	noAux
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

// Name implements Layer.
func (l *Conv2d) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Conv2d) Kind() string { return "Conv2d" }

// Describe implements Layer.
func (l *Conv2d) Describe() string {
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
	return s
}

// Geom is the convolution's geometry for a per-sample input shape [C, H, W].
func (l *Conv2d) Geom(in []int) compute.ConvGeom {
	return compute.ConvGeom{C: in[0], H: in[1], W: in[2], O: l.Weight.Shape[0], KH: l.Weight.Shape[2], KW: l.Weight.Shape[3],
		SH: l.SH, SW: l.SW, PT: l.PT, PL: l.PL, PB: l.PB, PR: l.PR, DH: l.DH, DW: l.DW, G: l.groups()}
}

// OutputShape implements Layer.
func (l *Conv2d) OutputShape(in []int) ([]int, error) {
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

// Forward implements Layer.
func (l *Conv2d) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	be.Conv2dForward(l.Geom(x.Shape[1:]), x.N(), x.Buf, l.Weight.Buffer(be), opt(l.Bias, be), y.Buf)
}

// Backward implements Layer.
func (l *Conv2d) Backward(be compute.Backend, x, _, dy, dx Value, _ compute.Buffer, _ Mode) {
	be.Conv2dBackward(l.Geom(x.Shape[1:]), x.N(), x.Buf, l.Weight.Buffer(be), dy.Buf, dx.Buf,
		l.Weight.GradBuffer(be), optGrad(l.Bias, be))
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

	mean, variance binding
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

// Params implements Layer.
func (l *BatchNorm2d) Params() []*Param { return []*Param{l.Gamma, l.Beta} }

// CloneWithOwnStats returns a BatchNorm2d that shares γ and β with l but
// holds a copy of its running statistics.
func (l *BatchNorm2d) CloneWithOwnStats() *BatchNorm2d {
	return &BatchNorm2d{LayerName: l.LayerName, Gamma: l.Gamma, Beta: l.Beta, Eps: l.Eps, Momentum: l.Momentum,
		RunningMean: append([]float32(nil), l.RunningMean...), RunningVar: append([]float32(nil), l.RunningVar...)}
}

// BindStats puts the running statistics on be.
func (l *BatchNorm2d) BindStats(be compute.Backend) error {
	if _, err := l.mean.bind(be, l.RunningMean); err != nil {
		return fmt.Errorf("BatchNorm %s running mean: %w", l.LayerName, err)
	}
	if _, err := l.variance.bind(be, l.RunningVar); err != nil {
		return fmt.Errorf("BatchNorm %s running variance: %w", l.LayerName, err)
	}
	return nil
}

// SyncStats copies the running statistics from the bound backend into
// RunningMean and RunningVar.
func (l *BatchNorm2d) SyncStats() error {
	if err := l.mean.sync(l.RunningMean); err != nil {
		return err
	}
	return l.variance.sync(l.RunningVar)
}

// ReleaseStats copies the running statistics into host memory and frees
// their backend buffers.
func (l *BatchNorm2d) ReleaseStats() error {
	if err := l.mean.release(l.RunningMean); err != nil {
		return err
	}
	return l.variance.release(l.RunningVar)
}

// UploadStats tells the bound backend that RunningMean and RunningVar changed.
func (l *BatchNorm2d) UploadStats() {
	l.mean.upload(l.RunningMean)
	l.variance.upload(l.RunningVar)
}

// AuxSize implements Layer: per group, the mean and variance normalised
// with, and the scale and shift they give.
func (l *BatchNorm2d) AuxSize(in []int, groups int) int {
	return 4 * max(groups, 1) * len(l.Gamma.Data)
}

// ScaleShift computes the per-channel affine map of this forward pass
// (x·scale + shift) into aux and returns it, with perGroup true when each
// of mode's groups has its own map. With mode.BatchStats it measures x's
// statistics (per group) and updates the running statistics, once per
// group in order; otherwise it uses the running statistics.
func (l *BatchNorm2d) ScaleShift(be compute.Backend, x Value, aux compute.Buffer, mode Mode) (scale, shift compute.Buffer, perGroup bool) {
	c, g := len(l.Gamma.Data), mode.groups()
	hw := Numel(x.Shape[2:])
	mean, variance := aux.Slice(0, g*c), aux.Slice(g*c, 2*g*c)
	scale, shift = aux.Slice(2*g*c, 3*g*c), aux.Slice(3*g*c, 4*g*c)
	runMean, runVar := l.mean.on(be, "BatchNorm "+l.LayerName), l.variance.on(be, "BatchNorm "+l.LayerName)
	if !mode.BatchStats {
		be.Copy(mean.Slice(0, c), runMean)
		be.Copy(variance.Slice(0, c), runVar)
		be.BatchNormScaleShift(1, c, l.Eps, l.Gamma.Buffer(be), l.Beta.Buffer(be), mean, variance, scale, shift)
		return scale, shift, false
	}
	n := x.N() / g
	be.BatchNormStats(g, n, c, hw, x.Buf, mean, variance)
	be.BatchNormUpdateRunning(g, c, n*hw, l.Momentum, mean, variance, runMean, runVar)
	be.BatchNormScaleShift(g, c, l.Eps, l.Gamma.Buffer(be), l.Beta.Buffer(be), mean, variance, scale, shift)
	return scale, shift, g > 1
}

// Forward implements Layer.
func (l *BatchNorm2d) Forward(be compute.Backend, x, y Value, aux compute.Buffer, mode Mode) {
	scale, shift, perGroup := l.ScaleShift(be, x, aux, mode)
	groups := 1
	if perGroup {
		groups = mode.groups()
	}
	be.ChannelAffine(groups, x.N()/groups, len(l.Gamma.Data), Numel(x.Shape[2:]), x.Buf, scale, shift, y.Buf)
}

// Backward implements Layer. With batch statistics the gradient flows
// through the mean and the variance too, as in PyTorch's train() mode.
func (l *BatchNorm2d) Backward(be compute.Backend, x, _, dy, dx Value, aux compute.Buffer, mode Mode) {
	c := len(l.Gamma.Data)
	if mode.groups() != 1 {
		panic("nn: BatchNorm2d backward over groups is not supported")
	}
	be.BatchNormBackward(x.N(), c, Numel(x.Shape[2:]), mode.BatchStats, l.Eps, l.Gamma.Buffer(be),
		aux.Slice(0, c), aux.Slice(c, 2*c), x.Buf, dy.Buf, dx.Buf, l.Gamma.GradBuffer(be), l.Beta.GradBuffer(be))
}

// Linear is a fully connected layer, y = x·Wᵀ + b.
type Linear struct {
	noAux
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
func (l *Linear) Forward(be compute.Backend, x, y Value, _ compute.Buffer, mode Mode) {
	outF, in := l.Weight.Shape[0], l.Weight.Shape[1]
	be.LinearForward(x.N(), in, outF, x.Buf, l.Weight.Buffer(be), opt(l.Bias, be), y.Buf, mode.Spikes)
}

// Backward implements Layer.
func (l *Linear) Backward(be compute.Backend, x, _, dy, dx Value, _ compute.Buffer, _ Mode) {
	outF, in := l.Weight.Shape[0], l.Weight.Shape[1]
	be.LinearBackward(x.N(), in, outF, x.Buf, l.Weight.Buffer(be), dy.Buf, dx.Buf, l.Weight.GradBuffer(be), optGrad(l.Bias, be))
}

// Params implements Layer.
func (l *Linear) Params() []*Param {
	if l.Bias != nil {
		return []*Param{l.Weight, l.Bias}
	}
	return []*Param{l.Weight}
}

// ReLU is max(x, 0). In the SNN every ReLU becomes an IF layer.
type ReLU struct {
	noAux
	LayerName string
}

// Name implements Layer.
func (l *ReLU) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *ReLU) Kind() string { return "ReLU" }

// Describe implements Layer.
func (l *ReLU) Describe() string { return "" }

// OutputShape implements Layer.
func (l *ReLU) OutputShape(in []int) ([]int, error) { return in, nil }

// Forward implements Layer.
func (l *ReLU) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	be.ReLUForward(x.Buf, y.Buf)
}

// Backward implements Layer: the gradient passes where the ANN's own
// output was positive.
func (l *ReLU) Backward(be compute.Backend, _, y, dy, dx Value, _ compute.Buffer, _ Mode) {
	be.ReLUBackward(y.Buf, dy.Buf, dx.Buf)
}

// Params implements Layer.
func (l *ReLU) Params() []*Param { return nil }

// Pool2d is max or average pooling over 2-D windows.
type Pool2d struct {
	noAux
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
func (l *Pool2d) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	g := l.Geom(x.Shape[1:])
	if l.Max {
		be.MaxPool2dForward(g, x.N(), x.Buf, y.Buf)
	} else {
		be.AvgPool2dForward(g, x.N(), l.CountPad, x.Buf, y.Buf)
	}
}

// Backward implements Layer. Max pooling sends each gradient to the first
// maximum of its window, as PyTorch does.
func (l *Pool2d) Backward(be compute.Backend, x, _, dy, dx Value, _ compute.Buffer, _ Mode) {
	g := l.Geom(x.Shape[1:])
	if l.Max {
		be.MaxPool2dBackward(g, x.N(), x.Buf, dy.Buf, dx.Buf)
	} else {
		be.AvgPool2dBackward(g, x.N(), l.CountPad, dy.Buf, dx.Buf)
	}
}

// Params implements Layer.
func (l *Pool2d) Params() []*Param { return nil }

// GlobalAvgPool averages each channel over all positions: [C H W] → [C 1 1].
type GlobalAvgPool struct {
	noAux
	LayerName string
}

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
func (l *GlobalAvgPool) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	be.GlobalAvgPoolForward(x.N()*x.Shape[1], Numel(x.Shape[2:]), x.Buf, y.Buf)
}

// Backward implements Layer.
func (l *GlobalAvgPool) Backward(be compute.Backend, x, _, dy, dx Value, _ compute.Buffer, _ Mode) {
	be.GlobalAvgPoolBackward(x.N()*x.Shape[1], Numel(x.Shape[2:]), dy.Buf, dx.Buf)
}

// Params implements Layer.
func (l *GlobalAvgPool) Params() []*Param { return nil }

// Flatten turns each sample into a vector.
type Flatten struct {
	noAux
	LayerName string
}

// Name implements Layer.
func (l *Flatten) Name() string { return l.LayerName }

// Kind implements Layer.
func (l *Flatten) Kind() string { return "Flatten" }

// Describe implements Layer.
func (l *Flatten) Describe() string { return "" }

// OutputShape implements Layer.
func (l *Flatten) OutputShape(in []int) ([]int, error) { return []int{Numel(in)}, nil }

// Forward implements Layer. Executors give Flatten the same buffer for x
// and y, so that it costs nothing; it copies only when they differ.
func (l *Flatten) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	if x.Buf != y.Buf {
		be.Copy(y.Buf, x.Buf)
	}
}

// Backward implements Layer.
func (l *Flatten) Backward(be compute.Backend, _, _, dy, dx Value, _ compute.Buffer, _ Mode) {
	if dx.Buf != nil && dx.Buf != dy.Buf {
		be.Copy(dx.Buf, dy.Buf)
	}
}

// isView reports whether a layer only reshapes, so that its output may
// share its input's buffer.
func isView(l Layer) bool {
	_, ok := l.(*Flatten)
	return ok
}

// Params implements Layer.
func (l *Flatten) Params() []*Param { return nil }

// Pad2d pads each plane with a constant: PyTorch's ConstantPad2d/ZeroPad2d.
type Pad2d struct {
	noAux
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

// Geom is the padding of the planes of a per-sample input shape [C, H, W].
func (l *Pad2d) Geom(in []int) compute.PadGeom {
	return compute.PadGeom{H: in[1], W: in[2], PT: l.PT, PL: l.PL, PB: l.PB, PR: l.PR, Value: l.Value}
}

// Forward implements Layer.
func (l *Pad2d) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	be.Pad2dForward(l.Geom(x.Shape[1:]), x.N()*x.Shape[1], x.Buf, y.Buf)
}

// Backward implements Layer: the gradient of the padded border is dropped.
func (l *Pad2d) Backward(be compute.Backend, x, _, dy, dx Value, _ compute.Buffer, _ Mode) {
	be.Pad2dBackward(l.Geom(x.Shape[1:]), x.N()*x.Shape[1], dy.Buf, dx.Buf)
}

// Params implements Layer.
func (l *Pad2d) Params() []*Param { return nil }

// Softmax is a softmax or log-softmax over the class dimension. It may only
// end a network; the SNN leaves it out (spike counts are its output).
type Softmax struct {
	noAux
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
func (l *Softmax) Forward(be compute.Backend, x, y Value, _ compute.Buffer, _ Mode) {
	be.SoftmaxForward(x.N(), x.Shape[1], l.Log, x.Buf, y.Buf)
}

// Backward implements Layer.
func (l *Softmax) Backward(be compute.Backend, _, y, dy, dx Value, _ compute.Buffer, _ Mode) {
	be.SoftmaxBackward(y.N(), y.Shape[1], l.Log, y.Buf, dy.Buf, dx.Buf)
}

// Params implements Layer.
func (l *Softmax) Params() []*Param { return nil }
