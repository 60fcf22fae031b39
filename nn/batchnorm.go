package nn

import (
	"fmt"
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/refmath"
	"github.com/proxykit/proxykit/program"
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

// Info implements Layer: the SNN shares γ and β but keeps running
// statistics of its own (CloneWithOwnStats).
func (l *BatchNorm2d) Info() Info {
	c := 0
	if l.Gamma != nil {
		c = len(l.Gamma.Data)
	}
	return Info{Kind: "BatchNorm2d", Name: l.LayerName, Summary: fmt.Sprintf("%d channels eps %g momentum %g", c, l.Eps, l.Momentum),
		Attrs: map[string]any{"eps": l.Eps, "momentum": l.Momentum}, Role: Role{Note: "own statistics"}}
}

// OutputShape implements Layer.
func (l *BatchNorm2d) OutputShape(ins [][]int) ([]int, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if len(in) < 1 || in[0] != len(l.Gamma.Data) {
		return nil, fmt.Errorf("BatchNorm2d expects %d channels, got input %s", len(l.Gamma.Data), ShapeString(in))
	}
	return in, nil
}

// Params implements Layer.
func (l *BatchNorm2d) Params() []*Param { return params(l.Gamma, l.Beta) }

// WithOwnState implements Stateful: a BatchNorm2d that shares γ and β
// with l but holds a copy of its running statistics.
func (l *BatchNorm2d) WithOwnState() Layer {
	return &BatchNorm2d{LayerName: l.LayerName, Gamma: l.Gamma, Beta: l.Beta, Eps: l.Eps, Momentum: l.Momentum,
		RunningMean: append([]float32(nil), l.RunningMean...), RunningVar: append([]float32(nil), l.RunningVar...)}
}

// State implements Stateful: running_mean and running_var.
func (l *BatchNorm2d) State() []NamedArray {
	return []NamedArray{{"running_mean", l.RunningMean}, {"running_var", l.RunningVar}}
}

// BindState implements Stateful.
func (l *BatchNorm2d) BindState(be compute.Backend) error {
	if _, err := l.mean.bind(be, l.RunningMean); err != nil {
		return fmt.Errorf("BatchNorm %s running mean: %w", l.LayerName, err)
	}
	if _, err := l.variance.bind(be, l.RunningVar); err != nil {
		return fmt.Errorf("BatchNorm %s running variance: %w", l.LayerName, err)
	}
	return nil
}

// SyncState implements Stateful.
func (l *BatchNorm2d) SyncState() error {
	if err := l.mean.sync(l.RunningMean); err != nil {
		return fmt.Errorf("BatchNorm %s: %w", l.LayerName, err)
	}
	return l.variance.sync(l.RunningVar)
}

// ReleaseState implements Stateful.
func (l *BatchNorm2d) ReleaseState() error {
	if err := l.mean.release(l.RunningMean); err != nil {
		return fmt.Errorf("BatchNorm %s: %w", l.LayerName, err)
	}
	return l.variance.release(l.RunningVar)
}

// UploadState implements Stateful.
func (l *BatchNorm2d) UploadState() {
	l.mean.upload(l.RunningMean)
	l.variance.upload(l.RunningVar)
}

// running is the slots of the running statistics.
func (l *BatchNorm2d) running(s *Site) (mean, variance program.Ref) {
	c := []int{len(l.Gamma.Data)}
	return s.B.External(s.Name+".running_mean", c, boundStats{&l.mean}),
		s.B.External(s.Name+".running_var", c, boundStats{&l.variance})
}

// normalisation is the statistics the layer normalises with and their
// rate: with batch statistics the ones it measures (per time step in the
// SNN's steps), else the running ones.
func (l *BatchNorm2d) normalisation(s *Site) (mean, variance program.Ref, rate program.Rate) {
	if !s.BatchStats {
		mean, variance = l.running(s)
		return mean, variance, program.Once
	}
	c, rate := []int{len(l.Gamma.Data)}, s.statsRate()
	return s.Temp("mean", c, rate), s.Temp("var", c, rate), rate
}

// Forward implements Layer: with batch statistics it measures x's (per
// time step in the SNN's steps) and updates the running statistics once
// per step in order; then y = x·scale + shift per channel, scale =
// γ/√(var+eps), shift = β − mean·scale.
func (l *BatchNorm2d) Forward(s *Site) {
	c, hw := len(l.Gamma.Data), Numel(s.In[0][1:])
	mean, variance, rate := l.normalisation(s)
	if s.BatchStats {
		runMean, runVar := l.running(s)
		s.Emit(&program.BatchNormStats{C: c, HW: hw, Rate: s.Rate, X: s.X[0], Mean: mean, Var: variance})
		s.Emit(&program.BatchNormRunning{C: c, HW: hw, Rate: s.Rate, Momentum: l.Momentum, Mean: mean, Var: variance,
			RunMean: runMean, RunVar: runVar})
	}
	scale, shift := s.Temp("scale", []int{c}, rate), s.Temp("shift", []int{c}, rate)
	s.Emit(&program.BatchNormScaleShift{C: c, Rate: rate, Eps: l.Eps, Gamma: s.Param(l.Gamma), Beta: s.Param(l.Beta),
		Mean: mean, Var: variance, Scale: scale, Shift: shift})
	s.Emit(&program.ChannelAffine{C: c, HW: hw, Rate: s.Rate, PerGroup: rate == program.Groups, X: s.X[0], Scale: scale, Shift: shift, Y: s.Y})
}

// Backward implements Layer. With batch statistics the gradient flows
// through the mean and the variance too, as in PyTorch's train() mode.
// With statistics per time step (an SNN's backward pass through time)
// each step's rows have their own backward pass, and γ's and β's
// gradients are summed over the steps in a workspace before they are
// added to the parameters' (so that a backend that starts summing a
// gradient across ranks once a backward kernel has written it never
// starts on a part).
func (l *BatchNorm2d) Backward(s *Site) {
	c := len(l.Gamma.Data)
	mean, variance, rate := l.normalisation(s)
	op := &program.BatchNormGrad{C: c, HW: Numel(s.In[0][1:]), Rate: s.Rate, BatchStats: s.BatchStats, Eps: l.Eps,
		Gamma: s.Param(l.Gamma), Mean: mean, Var: variance, X: s.X[0], DY: s.DY, DX: s.DX[0], DG: s.Grad(l.Gamma), DB: s.Grad(l.Beta)}
	if rate != program.Groups {
		s.Emit(op)
		return
	}
	dg, db := op.DG, op.DB
	op.PerGroup = true
	op.DG, op.DB = s.Temp("dgamma", []int{c}, program.Once), s.Temp("dbeta", []int{c}, program.Once)
	s.Emit(&program.Fill{Dst: op.DG})
	s.Emit(&program.Fill{Dst: op.DB})
	s.Emit(op)
	s.Emit(&program.AddTo{Dst: dg, Src: op.DG})
	s.Emit(&program.AddTo{Dst: db, Src: op.DB})
}

// Reference implements Layer (batch statistics over the whole batch).
func (l *BatchNorm2d) Reference(xs [][]float64, in [][]int, n int, batchStats bool) []float64 {
	c, hw := len(l.Gamma.Data), Numel(in[0][1:])
	mean, variance := make([]float64, c), make([]float64, c)
	for i := range mean {
		mean[i], variance[i] = float64(l.RunningMean[i]), float64(l.RunningVar[i])
	}
	if batchStats {
		mean, variance = refmath.BNStats(1, n, c, hw, xs[0])
	}
	y := make([]float64, len(xs[0]))
	for i, v := range xs[0] {
		ch := i / hw % c
		y[i] = (v-mean[ch])/math.Sqrt(variance[ch]+float64(l.Eps))*float64(l.Gamma.Data[ch]) + float64(l.Beta.Data[ch])
	}
	return y
}

// Validate implements Validator.
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

// ScaleInput implements Scalable: a BatchNorm normalises its input away,
// so it cannot take an input scale.
func (l *BatchNorm2d) ScaleInput(f float64) error {
	if err := checkScale(f); err != nil {
		return err
	}
	return fmt.Errorf("BatchNorm right after an IF layer cannot take the input scale λ = %g; put a convolution or linear layer before it", f)
}

// ScaleOutput implements Scalable: γ and β, so that the running
// statistics stay valid.
func (l *BatchNorm2d) ScaleOutput(f float64) { scaleParam(l.Gamma, f); scaleParam(l.Beta, f) }

// Affine is the per-channel map x·scale + shift the layer computes with
// its running statistics (eval mode), in float64 then rounded; nil for a
// layer Validate refuses.
func (l *BatchNorm2d) Affine() (scale, shift []float32) {
	if l.Validate() != nil {
		return nil, nil
	}
	c := len(l.Gamma.Data)
	scale, shift = make([]float32, c), make([]float32, c)
	for i := 0; i < c; i++ {
		s := float64(l.Gamma.Data[i]) / math.Sqrt(float64(l.RunningVar[i])+float64(l.Eps))
		scale[i] = float32(s)
		shift[i] = float32(float64(l.Beta.Data[i]) - float64(l.RunningMean[i])*s)
	}
	return scale, shift
}

// AsAffine is the layer in eval mode as an Affine layer of its
// per-channel map, named like it; for a layer Validate refuses, an Affine
// of no channels, which Validate refuses too.
func (l *BatchNorm2d) AsAffine() *Affine {
	scale, shift := l.Affine()
	return NewAffine(l.LayerName, scale, shift)
}

// ExportONNX implements ONNXWriter: BatchNormalization with the layer's
// running statistics.
func (l *BatchNorm2d) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	c := len(l.Gamma.Data)
	mean := g.Constant(l.LayerName+".running_mean", []int{c}, l.RunningMean)
	variance := g.Constant(l.LayerName+".running_var", []int{c}, l.RunningVar)
	g.Node("BatchNormalization", name, []string{ins[0], g.Param(l.Gamma), g.Param(l.Beta), mean, variance}, []string{out},
		ONNXAttr{"epsilon", l.Eps}, ONNXAttr{"momentum", 1 - l.Momentum})
	return nil
}

// ExportNIR implements NIRWriter: NIR has no BatchNorm; the exporter folds it
// into the convolution or linear layer before it where it can, and
// otherwise it is its Affine form (a 1×1 convolution of a diagonal weight
// and a bias on [C H W], an Affine node on [C]).
func (l *BatchNorm2d) ExportNIR(g NIRGraph, in []int, spikes bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	return l.AsAffine().ExportNIR(g, in, spikes)
}

func batchNorm2dKind() Kind {
	return Kind{Names: []string{"BatchNorm2d"}, FromArch: batchNorm2dFromArch, ONNXOps: []string{"BatchNormalization"},
		FromONNX: batchNorm2dFromONNX, TorchModules: []string{"BatchNorm2d", "BatchNorm1d"}, FromTorch: batchNorm2dFromTorch}
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
