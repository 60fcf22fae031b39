package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// Settings are a training run's hyper-parameters. The defaults are the
// reference's (docs/design.md §1).
type Settings struct {
	Dataset       string  `json:"dataset"`
	Epochs        int     `json:"epochs"`
	BatchSize     int     `json:"batch_size"`
	LR            float64 `json:"lr"`
	Beta1         float64 `json:"beta1"`
	Beta2         float64 `json:"beta2"`
	Eps           float64 `json:"eps"`
	WeightDecay   float64 `json:"weight_decay"`
	Timesteps     int     `json:"timesteps"`
	Threshold     float32 `json:"threshold"`
	Reset         float32 `json:"reset"`
	FreezeBNAfter int     `json:"freeze_bn_after"`
	Seed          uint64  `json:"seed"`
	Shuffle       bool    `json:"shuffle"`
	Augment       bool    `json:"augment"`
	MaxTrain      int     `json:"max_train"`
	MaxTest       int     `json:"max_test"`
}

// DefaultSettings are the reference notebook's.
func DefaultSettings() Settings {
	return Settings{Dataset: FashionMNIST, Epochs: 100, BatchSize: 100, LR: 1e-4, Beta1: 0.8, Beta2: 0.99, Eps: 1e-8,
		WeightDecay: 1e-6, Timesteps: 15, Threshold: 2, Reset: 0, FreezeBNAfter: 1, Seed: 2020, Shuffle: true, Augment: true}
}

// MaxBatchSize bounds a batch: 2^16 images (memory is checked too, when
// the buffers are planned).
const MaxBatchSize = 1 << 16

// SNNConfig is the IF setting the run uses.
func (s Settings) SNNConfig() spiking.Config {
	return spiking.Config{Timesteps: s.Timesteps, Threshold: s.Threshold, Reset: s.Reset}
}

// Validate checks the settings.
func (s Settings) Validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case s.Epochs < 0:
		return fmt.Errorf("epochs must not be negative")
	case s.BatchSize < 1 || s.BatchSize > MaxBatchSize:
		return fmt.Errorf("batch size must lie between 1 and %d, got %d", MaxBatchSize, s.BatchSize)
	case !(s.LR > 0) || !finite(s.LR):
		return fmt.Errorf("learning rate must be positive and finite, got %g", s.LR)
	case !(s.Beta1 >= 0 && s.Beta1 < 1 && s.Beta2 >= 0 && s.Beta2 < 1):
		return fmt.Errorf("betas must lie in [0, 1), got %g, %g", s.Beta1, s.Beta2)
	case !(s.Eps >= 0) || !finite(s.Eps):
		return fmt.Errorf("eps must be finite and not negative, got %g", s.Eps)
	case !(s.WeightDecay >= 0) || !finite(s.WeightDecay):
		return fmt.Errorf("weight decay must be finite and not negative, got %g", s.WeightDecay)
	case s.FreezeBNAfter < 0:
		return fmt.Errorf("freeze-bn-after must not be negative")
	case s.MaxTrain < 0 || s.MaxTest < 0:
		return fmt.Errorf("max-train and max-test must not be negative")
	}
	return s.SNNConfig().Validate()
}

// EpochTotals accumulates an epoch's training measurements.
type EpochTotals struct {
	Images     int     `json:"images"`
	LossSum    float64 `json:"loss_sum"` // Σ over batches of loss × batch size
	ANNCorrect int     `json:"ann_correct"`
	SNNCorrect int     `json:"snn_correct"`
	Seconds    float64 `json:"seconds"`
}

// EpochStats is one finished epoch.
type EpochStats struct {
	Epoch        int      `json:"epoch"`
	BNMode       string   `json:"bn_mode"` // "train" or "eval"
	TrainLoss    float64  `json:"train_loss"`
	TrainANN     float64  `json:"train_ann_acc"`
	TrainSNN     float64  `json:"train_snn_acc"`
	Test         Accuracy `json:"test"`
	Seconds      float64  `json:"seconds"`
	ImagesPerSec float64  `json:"images_per_sec"`
}

// BatchProgress is reported after each training batch.
type BatchProgress struct {
	Epoch, Batch, Batches int
	Loss                  float64 // running mean over the epoch so far
	ImagesPerSec          float64
	ETA                   time.Duration // to the end of the epoch
}

// ErrInterrupted is returned by Run when its context is cancelled between
// batches; the trainer's state is consistent and can be checkpointed.
var ErrInterrupted = errors.New("training interrupted")

// Trainer runs proxy learning.
type Trainer struct {
	Settings Settings
	ANN      *nn.Network
	SNN      *spiking.Network
	Opt      *Adam
	Train    *Dataset
	Test     *Dataset
	Progress Progress
	// Backend computes the training; nil means a CPU backend.
	Backend compute.Backend
	// OnBatch and OnEpoch, if set, are called as training advances.
	OnBatch func(BatchProgress)
	OnEpoch func(EpochStats) error

	engine *Engine
}

// NewTrainer prepares a run from the start.
func NewTrainer(s Settings, ann *nn.Network, snn *spiking.Network, trainSet, testSet *Dataset) (*Trainer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if trainSet.N == 0 {
		return nil, fmt.Errorf("the training set %s holds no images", trainSet.Name)
	}
	if testSet.N == 0 {
		return nil, fmt.Errorf("the test set %s holds no images", testSet.Name)
	}
	for _, d := range []*Dataset{trainSet, testSet} {
		if err := ann.CheckInput([]int{1, d.C, d.H, d.W}); err != nil {
			return nil, fmt.Errorf("data set %s does not fit the model: %w", d.Name, err)
		}
	}
	out, err := ann.OutputShape()
	if err != nil {
		return nil, err
	}
	if out[0] < trainSet.Classes {
		return nil, fmt.Errorf("the model has %d outputs; data set %s has %d classes", out[0], trainSet.Name, trainSet.Classes)
	}
	return &Trainer{Settings: s, ANN: ann, SNN: snn, Train: trainSet, Test: testSet,
		Opt: NewAdam(s.LR, s.Beta1, s.Beta2, s.Eps, s.WeightDecay)}, nil
}

// order is the sample order of an epoch over n samples: a permutation drawn
// from (seed, epoch), or the identity without shuffling.
func (s Settings) order(n, epoch int) []int {
	if !s.Shuffle {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		return p
	}
	return rand.New(rand.NewPCG(s.Seed, uint64(epoch))).Perm(n)
}

// augmentRNG is the generator for one batch's augmentation draws.
func (s Settings) augmentRNG(epoch, batch int) *rand.Rand {
	return rand.New(rand.NewPCG(s.Seed^0x9e3779b97f4a7c15, uint64(epoch)<<32|uint64(batch)))
}

// Schedule is epoch's sample order over n training images and, for 28×28
// images with augmentation, each position's crop offset (row, column in
// [0, 2]) — what Run draws, from (seed, epoch, batch) — so that another
// implementation of the recipe can train on the very same data stream.
func (s Settings) Schedule(n, epoch int) (order []int, crops [][2]int) {
	order = s.order(n, epoch)
	if !s.Augment {
		return order, nil
	}
	crops = make([][2]int, n)
	for b := 0; b*s.BatchSize < n; b++ {
		rng := s.augmentRNG(epoch, b)
		for i := b * s.BatchSize; i < min((b+1)*s.BatchSize, n); i++ {
			crops[i] = [2]int{rng.IntN(3), rng.IntN(3)} // as Augment draws them for 28×28 images
		}
	}
	return order, crops
}

// Batches is the number of training batches per epoch.
func (t *Trainer) Batches() int {
	return (t.Train.N + t.Settings.BatchSize - 1) / t.Settings.BatchSize
}

// Engine returns the trainer's engine on its backend, making it on first use.
func (t *Trainer) Engine() (*Engine, error) {
	if t.engine != nil {
		return t.engine, nil
	}
	if t.Backend == nil {
		t.Backend = compute.NewCPU()
	}
	e, err := NewEngine(t.Backend, t.ANN, t.SNN, t.Settings.BatchSize)
	if err != nil {
		return nil, err
	}
	t.engine = e
	return e, nil
}

// Close brings the networks and the optimizer back into host memory and
// gives the trainer's backend buffers back; the backend may then be closed.
func (t *Trainer) Close() error {
	if t.engine == nil {
		return nil
	}
	err := t.Opt.Free()
	t.engine.Free()
	t.engine = nil
	if rerr := t.SNN.Release(); err == nil {
		err = rerr
	}
	return err
}

// Run trains until Settings.Epochs epochs are done or ctx is cancelled.
func (t *Trainer) Run(ctx context.Context) error {
	s := t.Settings
	eng, err := t.Engine()
	if err != nil {
		return err
	}
	d := t.Train
	sz := d.C * d.H * d.W
	for t.Progress.Epoch < s.Epochs {
		epoch := t.Progress.Epoch
		batchStats := epoch < s.FreezeBNAfter
		perm := s.order(d.N, epoch)
		nb := t.Batches()
		start := time.Now()
		prior := t.Progress.Partial.Seconds
		for t.Progress.Batch < nb {
			if ctx.Err() != nil {
				t.Progress.Partial.Seconds = prior + time.Since(start).Seconds()
				return ErrInterrupted
			}
			b := t.Progress.Batch
			lo, hi := b*s.BatchSize, min((b+1)*s.BatchSize, d.N)
			x := nn.NewTensor(hi-lo, d.C, d.H, d.W)
			labels := make([]uint8, hi-lo)
			rng := s.augmentRNG(epoch, b)
			for i, idx := range perm[lo:hi] {
				dst := x.Data[i*sz : (i+1)*sz]
				if s.Augment {
					Augment(rng, d.C, d.H, d.W, d.Image(idx), dst)
				} else {
					copy(dst, d.Image(idx))
				}
				labels[i] = d.Labels[idx]
			}
			r, err := eng.Step(x, labels, batchStats)
			if err != nil {
				return err
			}
			if err := t.Opt.Update(eng.Backend, t.ANN.Params()); err != nil {
				return err
			}
			p := &t.Progress.Partial
			p.Images += hi - lo
			p.LossSum += r.Loss * float64(hi-lo)
			p.ANNCorrect += r.ANNCorrect
			p.SNNCorrect += r.SNNCorrect
			t.Progress.Batch++
			if t.OnBatch != nil {
				el := prior + time.Since(start).Seconds()
				ips := float64(p.Images) / max(el, 1e-9)
				t.OnBatch(BatchProgress{Epoch: epoch, Batch: b + 1, Batches: nb, Loss: p.LossSum / float64(p.Images),
					ImagesPerSec: ips, ETA: time.Duration(float64(d.N-p.Images) / max(ips, 1e-9) * float64(time.Second))})
			}
		}
		t.Progress.Partial.Seconds = prior + time.Since(start).Seconds()
		p := t.Progress.Partial
		// An interruption here leaves the position at the end of the epoch's
		// batches: a resumed run goes straight to this evaluation.
		acc, err := eng.Evaluate(ctx, t.Test)
		if err != nil {
			return err
		}
		mode := "eval"
		if batchStats {
			mode = "train"
		}
		st := EpochStats{Epoch: epoch, BNMode: mode, TrainLoss: p.LossSum / float64(max(p.Images, 1)),
			TrainANN: float64(p.ANNCorrect) / float64(max(p.Images, 1)), TrainSNN: float64(p.SNNCorrect) / float64(max(p.Images, 1)),
			Test: acc, Seconds: p.Seconds, ImagesPerSec: float64(p.Images) / max(p.Seconds, 1e-9)}
		t.Progress = Progress{Epoch: epoch + 1, History: append(t.Progress.History, st)}
		if t.OnEpoch != nil {
			if err := t.OnEpoch(st); err != nil {
				return err
			}
		}
	}
	return nil
}

// Checkpoint captures the trainer's state, synced from its backend.
func (t *Trainer) Checkpoint() (*Checkpoint, error) {
	if t.engine != nil {
		if err := t.engine.Sync(); err != nil {
			return nil, fmt.Errorf("reading the state back from %s: %w", t.engine.Backend.Name(), err)
		}
	}
	if err := t.Opt.Sync(); err != nil {
		return nil, fmt.Errorf("reading the optimizer back: %w", err)
	}
	params := map[string]*nn.Param{}
	for _, p := range t.ANN.Params() {
		if err := nn.CheckFinite("parameter "+p.Name, p.Data); err != nil {
			return nil, fmt.Errorf("training diverged: %w; no checkpoint is written", err)
		}
		params[p.Name] = p
	}
	var annBNs []*nn.BatchNorm2d
	for _, bn := range nn.BatchNormStats(t.ANN) {
		annBNs = append(annBNs, bn)
	}
	return &Checkpoint{Arch: nn.ArchOf(t.ANN), Params: params, ANNStats: statsOf(annBNs),
		SNNStats: statsOf(t.SNN.BatchNorms()), Adam: t.Opt, Settings: t.Settings, Progress: t.Progress}, nil
}

// checkResumable checks, before anything is restored, that the checkpoint
// holds all a resumed run needs, of the right sizes and finite: every
// parameter, both networks' BatchNorm statistics, Adam's settings and both
// moments of every parameter (once a step was made), and a position
// inside the run.
func (c *Checkpoint) checkResumable(ann *nn.Network, snn *spiking.Network, batches int) error {
	for _, p := range ann.Params() {
		q, ok := c.Params[p.Name]
		if !ok || len(q.Data) != len(p.Data) {
			return fmt.Errorf("the checkpoint lacks parameter %q", p.Name)
		}
		if err := nn.CheckFinite("parameter "+p.Name, q.Data); err != nil {
			return err
		}
	}
	stats := func(which string, m map[string]BNStats, name string, c int) error {
		s, ok := m[name]
		if !ok || len(s.Mean) != c || len(s.Var) != c {
			return fmt.Errorf("the checkpoint lacks the %s's statistics for BatchNorm layer %q", which, name)
		}
		if err := nn.CheckFinite(which+" BatchNorm "+name+" running_mean", s.Mean); err != nil {
			return err
		}
		return nn.CheckFinite(which+" BatchNorm "+name+" running_var", s.Var)
	}
	for name, bn := range nn.BatchNormStats(ann) {
		if err := stats("ANN", c.ANNStats, name, len(bn.RunningMean)); err != nil {
			return err
		}
	}
	for _, bn := range snn.BatchNorms() {
		if err := stats("SNN", c.SNNStats, bn.LayerName, len(bn.RunningMean)); err != nil {
			return err
		}
	}
	a := c.Adam
	if a == nil {
		return fmt.Errorf("the checkpoint has no optimizer state: it cannot be resumed (train from it without --resume to start a new run)")
	}
	if a.Step < 0 {
		return fmt.Errorf("the checkpoint's optimizer has made %d steps", a.Step)
	}
	if a.Step > 0 {
		for _, p := range ann.Params() {
			m, v := a.M[p.Name], a.V[p.Name]
			if len(m) != len(p.Data) || len(v) != len(p.Data) {
				return fmt.Errorf("the checkpoint's optimizer state for %q holds %d and %d values, want %d", p.Name, len(m), len(v), len(p.Data))
			}
			if err := nn.CheckFinite("Adam's first moment of "+p.Name, m); err != nil {
				return err
			}
			if err := nn.CheckFinite("Adam's second moment of "+p.Name, v); err != nil {
				return err
			}
		}
	}
	pr := c.Progress
	if pr.Epoch < 0 || pr.Batch < 0 || pr.Batch > batches || pr.Partial.Images < 0 {
		return fmt.Errorf("the checkpoint's position (epoch %d, batch %d of %d, %d images) is not one a run can be at", pr.Epoch, pr.Batch, batches, pr.Partial.Images)
	}
	return nil
}

// Resume restores a checkpoint's state into the trainer: weights, BN
// statistics, optimizer, progress. The architecture must match.
func (t *Trainer) Resume(c *Checkpoint) error {
	if !archEqual(c.Arch, nn.ArchOf(t.ANN)) {
		return fmt.Errorf("the checkpoint holds a different architecture than the model")
	}
	if err := c.checkResumable(t.ANN, t.SNN, t.Batches()); err != nil {
		return err
	}
	for _, p := range t.ANN.Params() {
		copy(p.Data, c.Params[p.Name].Data)
	}
	for name, bn := range nn.BatchNormStats(t.ANN) {
		s := c.ANNStats[name]
		copy(bn.RunningMean, s.Mean)
		copy(bn.RunningVar, s.Var)
	}
	for _, bn := range t.SNN.BatchNorms() {
		s := c.SNNStats[bn.LayerName]
		copy(bn.RunningMean, s.Mean)
		copy(bn.RunningVar, s.Var)
	}
	t.ANN.Upload()
	t.SNN.Upload()
	if err := t.Opt.Free(); err != nil {
		return err
	}
	t.Opt = c.Adam
	t.Progress = c.Progress
	return nil
}
