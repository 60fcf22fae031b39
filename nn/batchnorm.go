package nn

import (
	"fmt"
	"math"

	"github.com/proxykit/proxykit/compute"
)

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

// Attrs implements Layer.
func (l *BatchNorm2d) Attrs() map[string]any {
	return map[string]any{"eps": l.Eps, "momentum": l.Momentum}
}

// Validate implements Layer.
func (l *BatchNorm2d) Validate() error {
	if l.Gamma == nil || l.Beta == nil {
		return fmt.Errorf("γ and β are required")
	}
	c := len(l.Gamma.Data)
	if c < 1 || len(l.Beta.Data) != c || len(l.RunningMean) != c || len(l.RunningVar) != c {
		return fmt.Errorf("γ, β, running mean and variance must have one value per channel: %d, %d, %d, %d",
			len(l.Gamma.Data), len(l.Beta.Data), len(l.RunningMean), len(l.RunningVar))
	}
	if !(l.Eps > 0) || math.IsInf(float64(l.Eps), 0) {
		return fmt.Errorf("eps must be positive and finite, got %g", l.Eps)
	}
	if !(l.Momentum >= 0 && l.Momentum <= 1) {
		return fmt.Errorf("momentum must lie in [0, 1], got %g", l.Momentum)
	}
	if i, bad := firstNonFinite(l.RunningMean); bad {
		return fmt.Errorf("running_mean[%d] is %g", i, l.RunningMean[i])
	}
	for i, v := range l.RunningVar {
		if !(v >= 0) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("running_var[%d] is %g; variances are finite and not negative", i, v)
		}
	}
	return nil
}

// Role implements Layer: the SNN shares γ and β but keeps running
// statistics of its own (CloneWithOwnStats).
func (l *BatchNorm2d) Role() Role { return Role{Note: "own statistics"} }

// ScaleInput implements Scalable: a BatchNorm normalises its input away,
// so it cannot take an input scale.
func (l *BatchNorm2d) ScaleInput(f float64) error {
	return fmt.Errorf("BatchNorm right after an IF layer cannot take the input scale λ = %g; put a convolution or linear layer before it", f)
}

// ScaleOutput implements Scalable: γ and β, so that the running
// statistics stay valid.
func (l *BatchNorm2d) ScaleOutput(f float64) { scaleParam(l.Gamma, f); scaleParam(l.Beta, f) }

// Affine is the per-channel map x·scale + shift the layer computes with
// its running statistics (eval mode), in float64 then rounded.
func (l *BatchNorm2d) Affine() (scale, shift []float32) {
	c := len(l.Gamma.Data)
	scale, shift = make([]float32, c), make([]float32, c)
	for i := 0; i < c; i++ {
		s := float64(l.Gamma.Data[i]) / math.Sqrt(float64(l.RunningVar[i])+float64(l.Eps))
		scale[i] = float32(s)
		shift[i] = float32(float64(l.Beta.Data[i]) - float64(l.RunningMean[i])*s)
	}
	return scale, shift
}

// AsConv is the layer in eval mode as a 1×1 convolution (diagonal weight,
// bias), named like it.
func (l *BatchNorm2d) AsConv() *Conv2d {
	scale, shift := l.Affine()
	c := len(scale)
	w := make([]float32, c*c)
	for i := 0; i < c; i++ {
		w[i*c+i] = scale[i]
	}
	return &Conv2d{LayerName: l.LayerName, Weight: NewParam(l.LayerName+".weight", w, c, c, 1, 1),
		Bias: NewParam(l.LayerName+".bias", shift, c), SH: 1, SW: 1, DH: 1, DW: 1}
}

// ExportONNX implements Layer: BatchNormalization with the layer's
// running statistics.
func (l *BatchNorm2d) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	c := len(l.Gamma.Data)
	mean := g.Constant(l.LayerName+".running_mean", []int{c}, l.RunningMean)
	variance := g.Constant(l.LayerName+".running_var", []int{c}, l.RunningVar)
	g.Node("BatchNormalization", name, []string{ins[0], g.Param(l.Gamma), g.Param(l.Beta), mean, variance}, []string{out},
		ONNXAttr{"epsilon", l.Eps}, ONNXAttr{"momentum", 1 - l.Momentum})
	return nil
}

// ExportNIR implements Layer: NIR has no BatchNorm; the exporter folds it
// into the convolution before it where it can, and otherwise it is this
// 1×1 convolution.
func (l *BatchNorm2d) ExportNIR(g NIRGraph, in []int, spikes bool) error {
	return l.AsConv().ExportNIR(g, in, spikes)
}

func batchNorm2dKind() Kind {
	return Kind{Names: []string{"BatchNorm2d"}, FromArch: batchNorm2dFromArch, ONNXOps: []string{"BatchNormalization"},
		FromONNX: batchNorm2dFromONNX, TorchModules: []string{"BatchNorm2d"}, FromTorch: batchNorm2dFromTorch}
}

// batchNorm2dFromArch makes the layer with running statistics mean 0,
// variance 1; the checkpoint's reader fills them in.
func batchNorm2dFromArch(s LayerSpec, ps []*Param) (Layer, error) {
	var a struct{ Eps, Momentum float32 }
	if err := decodeAttrs(s, &a); err != nil {
		return nil, err
	}
	if err := specParams(ps, 2, 2); err != nil {
		return nil, err
	}
	c := len(ps[0].Data)
	bn := &BatchNorm2d{LayerName: s.Name, Gamma: ps[0], Beta: ps[1], Eps: a.Eps, Momentum: a.Momentum,
		RunningMean: make([]float32, c), RunningVar: make([]float32, c)}
	for j := range bn.RunningVar {
		bn.RunningVar[j] = 1
	}
	return bn, nil
}

// batchNorm2dFromONNX reads BatchNormalization (spatial, as opsets 9 and
// later always are): ONNX's momentum is PyTorch's 1 − momentum.
func batchNorm2dFromONNX(n ONNXNode) (Layer, error) {
	// opsets 7 and 8: spatial=0 normalises each position on its own
	if spatial, err := n.Int("spatial", 1); err != nil || spatial != 1 {
		return nil, fmt.Errorf("spatial=%d BatchNormalization (statistics per position) is not supported", spatial)
	}
	in := n.Activations()[0]
	if len(in) == 0 {
		return nil, fmt.Errorf("needs an input with channels")
	}
	ch := in[0]
	get := func(i int, what string) ([]float32, error) {
		k, err := n.Const(i, what)
		if err != nil {
			return nil, err
		}
		if k == nil || k.Numel() != ch {
			return nil, fmt.Errorf("%s must have %d values (one per channel)", what, ch)
		}
		return k.Floats(), nil
	}
	gamma, err := get(1, "scale")
	if err != nil {
		return nil, err
	}
	beta, err := get(2, "bias")
	if err != nil {
		return nil, err
	}
	mean, err := get(3, "mean")
	if err != nil {
		return nil, err
	}
	variance, err := get(4, "var")
	if err != nil {
		return nil, err
	}
	eps, err := n.Float("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	mom, err := n.Float("momentum", 0.9)
	if err != nil {
		return nil, err
	}
	name := n.LayerName("bn")
	return &BatchNorm2d{LayerName: name,
		Gamma: NewParam(name+".weight", gamma, ch), Beta: NewParam(name+".bias", beta, ch),
		RunningMean: append([]float32(nil), mean...), RunningVar: append([]float32(nil), variance...),
		Eps: eps, Momentum: 1 - mom}, nil
}

// batchNorm2dFromTorch reads torch.nn.BatchNorm2d with its running
// statistics (momentum None is read as 0.1).
func batchNorm2dFromTorch(m TorchModule) (Layer, error) {
	g, err := m.Param("weight", true)
	if err != nil {
		return nil, err
	}
	b, err := m.Param("bias", true)
	if err != nil {
		return nil, err
	}
	mean, err := m.Buffer("running_mean")
	if err != nil {
		return nil, err
	}
	variance, err := m.Buffer("running_var")
	if err != nil {
		return nil, err
	}
	eps, _ := m.Float("eps")
	mom, ok := m.Float("momentum")
	if !ok {
		mom = 0.1
	}
	return &BatchNorm2d{LayerName: m.Path(), Gamma: g, Beta: b, RunningMean: mean, RunningVar: variance,
		Eps: float32(eps), Momentum: float32(mom)}, nil
}
