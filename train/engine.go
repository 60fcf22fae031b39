package train

import (
	"context"
	"errors"
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
)

// StepResult is what one proxy step measured on its batch.
type StepResult struct {
	Loss       float64 // mean over B×K of (counts − onehot)²
	ANNCorrect int     // argmax of the ANN's output equals the label
	SNNCorrect int     // argmax of the counts (first maximum) equals the label
}

// Engine runs an ANN and its SNN on one backend for batches of up to a
// fixed size: the training step of its method (proxy learning, or
// surrogate gradients through the SNN's time steps) and evaluation, each
// a program lowered from the networks (lower.Step, lower.SurrogateStep,
// lower.Predict) and run by one program.Machine, which owns every buffer
// a step needs, allocated once. Host and backend meet in three places:
// staging a batch (images and labels), reading the [B, K] outputs for
// metrics, and Sync before a checkpoint or an export. NewEngine makes
// one; a nil or zero Engine refuses to run.
type Engine struct {
	Backend compute.Backend
	ANN     *nn.Network
	SNN     *spiking.Network

	method    Method
	capacity  int
	steps     int
	m         *program.Machine
	programs  map[engineProgram]*lower.Lowered
	settings  []lower.Setting
	x, labels compute.Buffer
	classes   int
	hostY     []float32
	hostC     []float32
	hostV     []float32
	hostL     []float32
}

// engineProgram is what an engine's program computes.
type engineProgram struct {
	step, batchStats, rates, synOps bool
}

// Method is how an engine's Step computes the gradients (docs/design.md
// §1): proxy learning, the zero Method, or surrogate-gradient training.
type Method struct {
	// Surrogate, if set, trains the SNN by backpropagation through its
	// time steps with this surrogate gradient.
	Surrogate *lower.Surrogate
}

// MethodOf is the method s names.
func MethodOf(s recipe.Settings) Method {
	if s.TrainingMethod() != recipe.MethodSurrogate || s.Surrogate == nil {
		return Method{}
	}
	return Method{Surrogate: &lower.Surrogate{Alpha: float32(s.Surrogate.Alpha), DetachReset: s.Surrogate.DetachReset}}
}

// String names the method as recipe.Settings.Method does.
func (m Method) String() string {
	if m.Surrogate != nil {
		return recipe.MethodSurrogate
	}
	return recipe.MethodProxy
}

// named is the method's name where it is not proxy learning (the
// epochs' statistics name it so), else "".
func (m Method) named() string {
	if m.Surrogate == nil {
		return ""
	}
	return m.String()
}

// NewEngine binds ann and snn to be and plans them for batches of up to
// capacity images, for proxy learning, their programs lowered with
// settings (lower.WithRules).
func NewEngine(be compute.Backend, ann *nn.Network, snn *spiking.Network, capacity int, settings ...lower.Setting) (*Engine, error) {
	return NewMethodEngine(be, ann, snn, capacity, Method{}, settings...)
}

// NewMethodEngine is NewEngine for the training method m.
func NewMethodEngine(be compute.Backend, ann *nn.Network, snn *spiking.Network, capacity int, m Method, settings ...lower.Setting) (*Engine, error) {
	switch {
	case be == nil:
		return nil, fmt.Errorf("no backend to train on (nil)")
	case ann == nil || snn == nil:
		return nil, fmt.Errorf("no network, or no SNN (nil)")
	case snn.ANN != ann:
		return nil, fmt.Errorf("the SNN is not the network's (spiking.New of it makes it)")
	}
	if capacity < 1 {
		return nil, fmt.Errorf("batch capacity must be at least 1, got %d", capacity)
	}
	if err := snn.Bind(be); err != nil {
		return nil, fmt.Errorf("%s: %w", be.Name(), err)
	}
	T := snn.Config.Timesteps
	e := &Engine{Backend: be, ANN: ann, SNN: snn, method: m, capacity: capacity, steps: min(max(be.StepsAtOnce(T), 1), T),
		m: program.NewMachine(be), programs: map[engineProgram]*lower.Lowered{}, settings: settings}
	// the training step: memory runs out here if at all
	l, err := e.program(engineProgram{step: true, batchStats: true})
	if err != nil {
		e.Free()
		return nil, err
	}
	e.classes = l.Slot(l.SNN.Counts).Shape[0]
	for _, b := range []struct {
		dst *compute.Buffer
		n   int
	}{{&e.x, capacity * nn.Numel(ann.InputShape)}, {&e.labels, capacity}} {
		if *b.dst, err = be.Alloc(b.n); err != nil {
			e.Free()
			return nil, fmt.Errorf("%s: staging buffers, batch %d: %w", be.Name(), capacity, err)
		}
	}
	e.hostY = make([]float32, capacity*e.classes)
	e.hostC = make([]float32, capacity*e.classes)
	e.hostV = make([]float32, capacity*e.classes)
	e.hostL = make([]float32, capacity)
	return e, nil
}

// program returns the engine's program of kind v, lowering and loading it
// the first time. Proxy learning trains the body: the counts stand in for
// its output; surrogate-gradient training trains the SNN alone.
func (e *Engine) program(v engineProgram) (*lower.Lowered, error) {
	if e == nil || e.m == nil || e.ANN == nil || e.SNN == nil || e.Backend == nil {
		return nil, errNoEngine
	}
	if l, ok := e.programs[v]; ok {
		return l, nil
	}
	body, _ := e.ANN.Body()
	opt := lower.SNNOptions{Options: lower.Options{Capacity: e.capacity, BatchStats: v.batchStats, ChannelsLast: lower.PrefersChannelsLast(e.Backend),
		HalfSpikes: lower.PrefersHalfSpikes(e.Backend)},
		Steps: e.steps, Rates: v.rates, SynOps: v.synOps}
	opt.Apply(e.settings)
	lower1 := lower.Predict
	switch {
	case v.step && e.method.Surrogate != nil:
		sg := *e.method.Surrogate
		lower1 = func(_ *nn.Network, s lower.SNN, opt lower.SNNOptions) (*lower.Lowered, error) {
			return lower.SurrogateStep(s, sg, opt.Options)
		}
	case v.step:
		lower1 = lower.Step
	}
	l, err := lower1(body, e.SNN.Lowering(), opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Backend.Name(), err)
	}
	if err := e.m.Load(l.Program); err != nil {
		return nil, fmt.Errorf("%s: %w", e.Backend.Name(), err)
	}
	e.programs[v] = l
	return l, nil
}

// Method is the engine's training method.
func (e *Engine) Method() Method {
	if e == nil {
		return Method{}
	}
	return e.method
}

// Program is the engine's training step (BatchNorm in training mode with
// batchStats), as lowered: for listings and counts.
func (e *Engine) Program(batchStats bool) (*lower.Lowered, error) {
	return e.program(engineProgram{step: true, batchStats: batchStats})
}

// errNoEngine is the error of a nil or zero Engine's methods.
var errNoEngine = errors.New("not an engine (nil or zero: make one with NewEngine)")

// Capacity is the largest batch the engine takes.
func (e *Engine) Capacity() int { return e.capacity }

// stage uploads a host batch and binds it as l's input.
func (e *Engine) stage(l *lower.Lowered, x *nn.Tensor) (nn.Value, error) {
	if x == nil || len(x.Shape) == 0 {
		return nn.Value{}, fmt.Errorf("no batch (a nil tensor or one without a shape)")
	}
	if nn.Numel(x.Shape) != len(x.Data) {
		return nn.Value{}, fmt.Errorf("a batch of shape %s holds %d values", nn.ShapeString(x.Shape), len(x.Data))
	}
	n := x.Shape[0]
	if n < 1 || n > e.capacity {
		return nn.Value{}, fmt.Errorf("batch of %d images for an engine planned for 1 to %d", n, e.capacity)
	}
	if err := e.ANN.CheckInput(x.Shape); err != nil {
		return nn.Value{}, err
	}
	// Binding is a no-op while the networks stay on this backend; it brings
	// them back if something ran them elsewhere in between.
	if err := e.SNN.Bind(e.Backend); err != nil {
		return nn.Value{}, err
	}
	buf := e.x.Slice(0, len(x.Data))
	e.Backend.Upload(buf, x.Data)
	e.m.Bind(l.Input, buf)
	return nn.Value{Shape: x.Shape, Buf: buf}, nil
}

// run runs l's passes for a batch of n: the ANN's forward pass, the SNN's
// passes (reading at ts, T when nil), and for a step the loss and the
// ANN's backward pass; or a surrogate step's three passes over all T
// steps.
func (e *Engine) run(ctx context.Context, l *lower.Lowered, n int, ts []int, read func(t int) error) error {
	if l.Static < 0 { // a surrogate step: no simulation in chunks
		d := program.Dims{N: n, Steps: l.SNN.Steps}
		for _, k := range []int{l.Forward, l.Loss, l.Backward} {
			if err := e.m.Run(l.Program, k, d); err != nil {
				return err
			}
		}
		return nil
	}
	one := program.Dims{N: n, Steps: 1}
	if err := e.m.Run(l.Program, l.Forward, one); err != nil {
		return err
	}
	if ts == nil {
		ts = []int{e.SNN.Config.Timesteps}
	}
	if read == nil {
		read = func(int) error { return nil }
	}
	if err := spiking.RunSteps(ctx, e.m, l, n, ts, read); err != nil {
		return err
	}
	if l.Loss < 0 {
		return nil
	}
	if err := e.m.Run(l.Program, l.Loss, one); err != nil {
		return err
	}
	return e.m.Run(l.Program, l.Backward, one)
}

// Step computes the gradients of one training step (docs/design.md §1).
// Proxy learning: the ANN's forward pass keeping its activations, the
// SNN's forward pass on the same batch giving counts, the loss on the
// counts as if they were the ANN's output, and backpropagation through
// the ANN. Surrogate gradients: the SNN's forward pass over its T steps
// keeping what the backward pass needs, the same loss on the counts, and
// backpropagation through the T steps; the ANN does not run (its
// accuracy is 0 in the result). The caller applies the optimizer.
// batchStats selects BatchNorm's training mode in the networks.
func (e *Engine) Step(x *nn.Tensor, labels []uint8, batchStats bool) (StepResult, error) {
	var r StepResult
	l, err := e.program(engineProgram{step: true, batchStats: batchStats})
	if err != nil {
		return r, err
	}
	be := e.Backend
	xv, err := e.stage(l, x)
	if err != nil {
		return r, err
	}
	b, k := xv.N(), e.classes
	if len(labels) != b {
		return r, fmt.Errorf("batch of %d labels for %d images", len(labels), b)
	}
	for i, lb := range labels {
		if int(lb) >= k {
			return r, fmt.Errorf("label %d out of range for %d outputs", lb, k)
		}
		e.hostL[i] = float32(lb)
	}
	lb := e.labels.Slice(0, b)
	be.Upload(lb, e.hostL[:b])
	e.m.Bind(l.Labels, lb)
	// a step is not interrupted: Run checks the context between batches;
	// it reads nothing back until it ends, so a backend may capture it
	if err := e.m.Captured(l.Program, program.Dims{N: b, Steps: e.steps}, func() error {
		return e.run(context.Background(), l, b, nil, nil)
	}); err != nil {
		return r, err
	}
	hy, hc := e.hostY[:b*k], e.hostC[:b*k]
	if err := be.Download(hc, spiking.Counts(e.m, l, b).Buf); err != nil {
		return r, err
	}
	what, out := "the ANN's output", l.Output
	if out == program.None { // surrogate gradients: the SNN's potentials are not finite once it diverged
		what, out = "the SNN's output potentials", l.SNN.Potentials
	}
	if err := be.Download(hy, e.m.Value(l.Program, out, program.Dims{N: b, Steps: 1})); err != nil {
		return r, err
	}
	if err := nn.CheckFinite(what, hy); err != nil {
		return r, fmt.Errorf("training diverged: %w (a learning rate too high, or an extreme input)", err)
	}
	ann := l.Output != program.None
	for i := 0; i < b; i++ {
		for j := 0; j < k; j++ {
			d := hc[i*k+j]
			if int(labels[i]) == j {
				d--
			}
			r.Loss += float64(d * d)
		}
		if ann && results.FirstMax(hy[i*k:(i+1)*k]) == int(labels[i]) {
			r.ANNCorrect++
		}
		if results.FirstMax(hc[i*k:(i+1)*k]) == int(labels[i]) {
			r.SNNCorrect++
		}
	}
	r.Loss /= float64(b * k)
	return r, be.Err()
}

// output is the ANN's output after a run of l for a batch of n.
func (e *Engine) output(l *lower.Lowered, n int) compute.Buffer {
	return e.m.Value(l.Program, l.Output, program.Dims{N: n, Steps: 1})
}

// Prediction is both networks' outputs on a batch, [B, K] each, as
// Engine.Predict returns them (valid until its next call).
type Prediction struct {
	// Y is the ANN's output, Counts the SNN's output spike counts and
	// Potentials its output layer's membrane potentials after the last
	// step (which break ties between counts: results.MembraneMax).
	Y, Counts, Potentials []float32
}

// Predict runs both networks, BatchNorm in eval mode, on a host batch.
func (e *Engine) Predict(ctx context.Context, x *nn.Tensor) (Prediction, error) {
	if ctx == nil {
		return Prediction{}, fmt.Errorf("no context (nil)")
	}
	l, err := e.program(engineProgram{})
	if err != nil {
		return Prediction{}, err
	}
	xv, err := e.stage(l, x)
	if err != nil {
		return Prediction{}, err
	}
	n, k := xv.N(), e.classes
	if err := e.m.Captured(l.Program, program.Dims{N: n, Steps: e.steps}, func() error { return e.run(ctx, l, n, nil, nil) }); err != nil {
		return Prediction{}, interrupted(ctx, err)
	}
	p := Prediction{Y: e.hostY[:n*k], Counts: e.hostC[:n*k], Potentials: e.hostV[:n*k]}
	if err := e.Backend.Download(p.Counts, spiking.Counts(e.m, l, n).Buf); err != nil {
		return Prediction{}, err
	}
	if err := e.Backend.Download(p.Potentials, spiking.Potentials(e.m, l, n).Buf); err != nil {
		return Prediction{}, err
	}
	if err := e.Backend.Download(p.Y, e.output(l, n)); err != nil {
		return Prediction{}, err
	}
	return p, e.Backend.Err()
}

// Evaluate runs both networks, BatchNorm in eval mode, over a data set,
// stopping with ErrInterrupted between batches once ctx is cancelled.
func (e *Engine) Evaluate(ctx context.Context, d *data.Dataset) (results.Accuracy, error) {
	r, err := e.Report(ctx, d)
	return r.Accuracy, err
}

// Report is Evaluate with the accuracies per class, the confusion
// matrices and, where the paper reports the data set, the comparison with
// its figure under the reference notebook's rules.
func (e *Engine) Report(ctx context.Context, d *data.Dataset) (results.Report, error) {
	var r results.Report
	if _, err := e.program(engineProgram{}); err != nil {
		return r, err
	}
	if err := d.Check(); err != nil {
		return r, err
	}
	if ctx == nil {
		return r, fmt.Errorf("no context (nil)")
	}
	var annOK int
	var all results.Tally
	sz := d.C * d.H * d.W
	k := e.classes
	names := data.ClassNames(d.Name)
	classes := max(k, d.Classes)
	r.Classes = make([]results.ClassAccuracy, classes)
	r.ConfusionANN, r.ConfusionSNN, r.ConfusionSNNMembrane = make([][]int, classes), make([][]int, classes), make([][]int, classes)
	perANN, per := make([]int, classes), make([]results.Tally, classes)
	for c := range r.Classes {
		r.Classes[c].Name = fmt.Sprint(c)
		if c < len(names) {
			r.Classes[c].Name = names[c]
		}
		r.ConfusionANN[c], r.ConfusionSNN[c], r.ConfusionSNNMembrane[c] = make([]int, k), make([]int, k), make([]int, k)
	}
	for lo := 0; lo < d.N; lo += e.capacity {
		if ctx.Err() != nil {
			return r, ErrInterrupted
		}
		hi := min(lo+e.capacity, d.N)
		x := &nn.Tensor{Shape: []int{hi - lo, d.C, d.H, d.W}, Data: d.Images[lo*sz : hi*sz]}
		p, err := e.Predict(ctx, x)
		if err != nil {
			return r, err
		}
		for i := 0; i < hi-lo; i++ {
			label := int(d.Labels[lo+i])
			r.Classes[label].N++
			a := results.FirstMax(p.Y[i*k : (i+1)*k])
			r.ConfusionANN[label][a]++
			if a == label {
				annOK++
				perANN[label]++
			}
			rd := results.Read(p.Counts[i*k:(i+1)*k], p.Potentials[i*k:(i+1)*k], label)
			r.ConfusionSNN[label][rd.Strict]++
			r.ConfusionSNNMembrane[label][rd.Membrane]++
			all.Add(rd, label)
			per[label].Add(rd, label)
		}
	}
	n := max(d.N, 1)
	r.Accuracy = results.Accuracy{N: d.N, ANN: float64(annOK) / float64(n)}
	r.SNNStrict, r.SNNTies, r.SNNMembrane, r.TieShare = all.Shares(n)
	r.SilentShare = all.SilentShare(n)
	for c := range r.Classes {
		m := max(r.Classes[c].N, 1)
		r.Classes[c].ANN = float64(perANN[c]) / float64(m)
		r.Classes[c].SNNStrict, r.Classes[c].SNNTies, r.Classes[c].SNNMembrane, _ = per[c].Shares(m)
	}
	if cmp, ok := results.ComparePaper(d.Name, r.Accuracy); ok {
		r.Paper = &cmp
	}
	return r, nil
}

// Sync copies the parameters and both networks' BatchNorm statistics from
// the backend into host memory.
func (e *Engine) Sync() error {
	if e == nil || e.ANN == nil || e.SNN == nil {
		return errNoEngine
	}
	if err := e.ANN.Sync(); err != nil {
		return err
	}
	return e.SNN.Sync()
}

// Free gives the engine's buffers back to the backend.
func (e *Engine) Free() {
	if e.m == nil || e.Backend == nil {
		return
	}
	e.m.Free()
	for _, b := range []compute.Buffer{e.x, e.labels} {
		if b != nil {
			e.Backend.Free(b)
		}
	}
	e.x, e.labels = nil, nil
}

// interrupted is ErrInterrupted where err comes from ctx's cancellation.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return ErrInterrupted
	}
	return err
}
