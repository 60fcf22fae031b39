package train

import (
	"context"
	"errors"
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
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
// fixed size: the proxy-learning step and evaluation. It binds both
// networks to the backend and owns every buffer a step needs, allocated
// once. Host and backend meet in three places: staging a batch (images and
// labels), reading the [B, K] outputs for metrics, and Sync before a
// checkpoint or an export.
type Engine struct {
	Backend compute.Backend
	ANN     *nn.Network
	SNN     *spiking.Network

	capacity  int
	ann       *nn.Executor
	sim       *spiking.Simulator
	x, labels compute.Buffer
	dy        compute.Buffer
	classes   int
	hostY     []float32
	hostC     []float32
	hostV     []float32
	hostL     []float32
}

// NewEngine binds ann and snn to be and plans them for batches of up to
// capacity images.
func NewEngine(be compute.Backend, ann *nn.Network, snn *spiking.Network, capacity int) (*Engine, error) {
	if err := snn.Bind(be); err != nil {
		return nil, fmt.Errorf("%s: %w", be.Name(), err)
	}
	e := &Engine{Backend: be, ANN: ann, SNN: snn, capacity: capacity}
	var err error
	// proxy learning trains the body: the counts stand in for its output
	body, _ := ann.Body()
	if e.ann, err = nn.NewExecutor(be, body, capacity, nn.ExecOptions{Backward: true}); err != nil {
		return nil, fmt.Errorf("%s: ANN: %w", be.Name(), err)
	}
	if e.sim, err = spiking.NewSimulator(be, snn, capacity); err != nil {
		e.Free()
		return nil, fmt.Errorf("%s: %w", be.Name(), err)
	}
	out := e.ann.OutputShape()
	if len(out) != 1 {
		e.Free()
		return nil, fmt.Errorf("the network's output has shape %s; proxy learning needs [K]", nn.ShapeString(out))
	}
	e.classes = out[0]
	for _, b := range []struct {
		dst *compute.Buffer
		n   int
	}{{&e.x, capacity * nn.Numel(ann.InputShape)}, {&e.labels, capacity}, {&e.dy, capacity * e.classes}} {
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

// Capacity is the largest batch the engine takes.
func (e *Engine) Capacity() int { return e.capacity }

// stage uploads a host batch and returns it as a backend value.
func (e *Engine) stage(x *nn.Tensor) (nn.Value, error) {
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
	return nn.Value{Shape: x.Shape, Buf: buf}, nil
}

// Step computes the gradients of one proxy-learning step (docs/design.md
// §1): the ANN's forward pass keeping its activations, the SNN's forward
// pass on the same batch giving counts, the loss on the counts as if they
// were the ANN's output, and backpropagation through the ANN. The caller applies the optimizer. batchStats selects BatchNorm's
// training mode in both networks.
func (e *Engine) Step(x *nn.Tensor, labels []uint8, batchStats bool) (StepResult, error) {
	var r StepResult
	be := e.Backend
	xv, err := e.stage(x)
	if err != nil {
		return r, err
	}
	b, k := xv.N(), e.classes
	if len(labels) != b {
		return r, fmt.Errorf("batch of %d labels for %d images", len(labels), b)
	}
	for i, l := range labels {
		if int(l) >= k {
			return r, fmt.Errorf("label %d out of range for %d outputs", l, k)
		}
		e.hostL[i] = float32(l)
	}
	lb := e.labels.Slice(0, b)
	be.Upload(lb, e.hostL[:b])
	y := e.ann.Forward(xv, nn.Mode{BatchStats: batchStats})
	// a step is not interrupted: Run checks the context between batches
	counts, err := e.sim.Run(context.Background(), xv, batchStats, false)
	if err != nil {
		return r, err
	}
	dy := nn.Value{Shape: []int{b, k}, Buf: e.dy.Slice(0, b*k)}
	be.ProxyLossGrad(b, k, counts.Buf, lb, dy.Buf)
	e.ANN.ZeroGrad()
	e.ann.Backward(dy)
	hy, hc := e.hostY[:b*k], e.hostC[:b*k]
	if err := be.Download(hc, counts.Buf); err != nil {
		return r, err
	}
	if err := be.Download(hy, y.Buf); err != nil {
		return r, err
	}
	if err := nn.CheckFinite("the ANN's output", hy); err != nil {
		return r, fmt.Errorf("training diverged: %w (a learning rate too high, or an extreme input)", err)
	}
	for i := 0; i < b; i++ {
		for j := 0; j < k; j++ {
			d := hc[i*k+j]
			if int(labels[i]) == j {
				d--
			}
			r.Loss += float64(d * d)
		}
		if results.FirstMax(hy[i*k:(i+1)*k]) == int(labels[i]) {
			r.ANNCorrect++
		}
		if results.FirstMax(hc[i*k:(i+1)*k]) == int(labels[i]) {
			r.SNNCorrect++
		}
	}
	r.Loss /= float64(b * k)
	return r, be.Err()
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
	xv, err := e.stage(x)
	if err != nil {
		return Prediction{}, err
	}
	n, k := xv.N(), e.classes
	yv := e.ann.Forward(xv, nn.Mode{})
	cv, err := e.sim.Run(ctx, xv, false, false)
	if err != nil {
		return Prediction{}, interrupted(ctx, err)
	}
	p := Prediction{Y: e.hostY[:n*k], Counts: e.hostC[:n*k], Potentials: e.hostV[:n*k]}
	if err := e.Backend.Download(p.Counts, cv.Buf); err != nil {
		return Prediction{}, err
	}
	if err := e.Backend.Download(p.Potentials, e.sim.OutputPotentials(n).Buf); err != nil {
		return Prediction{}, err
	}
	if err := e.Backend.Download(p.Y, yv.Buf); err != nil {
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
	if err := e.ANN.Sync(); err != nil {
		return err
	}
	return e.SNN.Sync()
}

// Free gives the engine's buffers back to the backend.
func (e *Engine) Free() {
	if e.ann != nil {
		e.ann.Free()
	}
	if e.sim != nil {
		e.sim.Free()
	}
	for _, b := range []compute.Buffer{e.x, e.labels, e.dy} {
		if b != nil {
			e.Backend.Free(b)
		}
	}
	e.x, e.labels, e.dy = nil, nil, nil
}

// interrupted is ErrInterrupted where err comes from ctx's cancellation.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return ErrInterrupted
	}
	return err
}
