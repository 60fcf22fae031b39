package train

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// BatchProgress is reported after each training batch.
type BatchProgress struct {
	Epoch, Batch, Batches int
	Loss                  float64 // running mean over the epoch so far
	ImagesPerSec          float64
	ETA                   time.Duration // to the end of the epoch
}

// ErrInterrupted is returned by long work (Run, Evaluate, Sweep, a
// conversion's calibration) when its context is cancelled: Run stops
// between batches with a state that can be checkpointed.
var ErrInterrupted = errors.New("interrupted")

// Trainer runs a training run: proxy learning, or surrogate gradients
// through time (Settings.Method). NewTrainer makes one; a nil Trainer, or
// one without its networks, data sets or optimizer, refuses to run.
type Trainer struct {
	Settings recipe.Settings
	ANN      *nn.Network
	SNN      *spiking.Network
	Opt      *Adam
	Train    *data.Dataset
	Test     *data.Dataset
	Progress checkpoint.Progress
	// Backend computes the training; nil means a CPU backend.
	Backend compute.Backend
	// OnBatch and OnEpoch, if set, are called as training advances.
	OnBatch func(BatchProgress)
	OnEpoch func(results.EpochStats) error
	// Dist, if set, makes the trainer one rank of a data-parallel run
	// (train/dist.go): each global batch of Settings.BatchSize images is
	// split across the ranks, the gradients summed once per step, the
	// evaluation split; every rank ends each step in the same state.
	Dist *distributed.Group

	engine *Engine
	shard  *distributed.Backend // the engine's backend under Dist
	agreed bool                 // the ranks agreed on the run (agree.go)
	// observe, if set (tests), sees every batch Run trains on.
	observe func(epoch, batch int, x *nn.Tensor, labels []uint8)
}

// NewTrainer prepares a run from the start.
func NewTrainer(s recipe.Settings, ann *nn.Network, snn *spiking.Network, trainSet, testSet *data.Dataset) (*Trainer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	switch {
	case ann == nil || snn == nil:
		return nil, fmt.Errorf("no network, or no SNN (nil)")
	case snn.ANN != ann:
		return nil, fmt.Errorf("the SNN is not the network's (spiking.New of it makes it)")
	}
	for _, d := range []*data.Dataset{trainSet, testSet} {
		if err := d.Check(); err != nil {
			return nil, err
		}
	}
	if trainSet.N == 0 {
		return nil, fmt.Errorf("the training set %s holds no images", trainSet.Name)
	}
	if testSet.N == 0 {
		return nil, fmt.Errorf("the test set %s holds no images", testSet.Name)
	}
	for _, d := range []*data.Dataset{trainSet, testSet} {
		if err := ann.CheckInput([]int{1, d.C, d.H, d.W}); err != nil {
			return nil, fmt.Errorf("data set %s does not fit the model: %w", d.Name, err)
		}
	}
	out, err := ann.OutputShape()
	if err != nil {
		return nil, err
	}
	if len(out) != 1 {
		return nil, fmt.Errorf("the model's output is %s; proxy learning needs [K] classes", nn.ShapeString(out))
	}
	if out[0] < trainSet.Classes {
		return nil, fmt.Errorf("the model has %d outputs; data set %s has %d classes", out[0], trainSet.Name, trainSet.Classes)
	}
	return &Trainer{Settings: s, ANN: ann, SNN: snn, Train: trainSet, Test: testSet,
		Opt: NewAdam(s.LR, s.Beta1, s.Beta2, s.Eps, s.WeightDecay)}, nil
}

// order is the sample order of an epoch over n samples: a permutation drawn
// from (seed, epoch), or the identity without shuffling.
func order(s recipe.Settings, n, epoch int) []int {
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
func augmentRNG(s recipe.Settings, epoch, batch int) *rand.Rand {
	return rand.New(rand.NewPCG(s.Seed^0x9e3779b97f4a7c15, uint64(epoch)<<32|uint64(batch)))
}

// Schedule is epoch's sample order over n training images and, for 28×28
// images with augmentation, each position's crop offset (row, column in
// [0, 2]) — what Run draws, from (seed, epoch, batch) — so that another
// implementation of the recipe can train on the very same data stream. It
// refuses settings Validate refuses, n below 0 or above MaxImages, and an
// epoch below 0.
func Schedule(s recipe.Settings, n, epoch int) (perm []int, crops [][2]int, err error) {
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	if n < 0 || n > MaxImages || epoch < 0 {
		return nil, nil, fmt.Errorf("a schedule of epoch %d over %d images (0 to %d)", epoch, n, MaxImages)
	}
	perm = order(s, n, epoch)
	if !s.Augment {
		return perm, nil, nil
	}
	crops = make([][2]int, n)
	for b := 0; b*s.BatchSize < n; b++ {
		rng := augmentRNG(s, epoch, b)
		for i := b * s.BatchSize; i < min((b+1)*s.BatchSize, n); i++ {
			crops[i] = [2]int{rng.IntN(3), rng.IntN(3)} // as Augment draws them for 28×28 images
		}
	}
	return perm, crops, nil
}

// MaxImages bounds the images of a schedule (Schedule): 2^31, more than
// any data set proxykit holds in memory.
const MaxImages = 1 << 31

// Batches is the number of training batches per epoch (0 for a Trainer
// without its training set or a batch size).
func (t *Trainer) Batches() int {
	if t.Train == nil || t.Settings.BatchSize < 1 {
		return 0
	}
	return (t.Train.N + t.Settings.BatchSize - 1) / t.Settings.BatchSize
}

// errNoTrainer is the error of a Trainer that NewTrainer did not make.
var errNoTrainer = errors.New("not a trainer (nil, or without its networks, data sets or optimizer: make one with NewTrainer)")

// ready refuses a Trainer that NewTrainer did not make.
func (t *Trainer) ready() error {
	if t == nil || t.ANN == nil || t.SNN == nil || t.Opt == nil || t.Train == nil || t.Test == nil {
		return errNoTrainer
	}
	return nil
}

// Engine returns the trainer's engine on its backend, making it on first use.
func (t *Trainer) Engine() (*Engine, error) {
	if err := t.ready(); err != nil {
		return nil, err
	}
	if t.engine != nil {
		return t.engine, nil
	}
	if t.Backend == nil {
		t.Backend = compute.NewCPU()
	}
	be, capacity := t.Backend, t.Settings.BatchSize
	if t.Dist != nil {
		if s, g := t.Settings.BatchNormStats(), t.Dist.Options().BatchNorm; s != g {
			return nil, fmt.Errorf("the settings take BatchNorm's statistics %s, the data-parallel group %s: give both the same", s, g)
		}
		sb, err := t.Dist.Shard(t.Backend)
		if err != nil {
			return nil, err
		}
		be, capacity, t.shard = sb, max(distributed.MaxShare(capacity, t.Dist.Size()), 1), sb
	}
	e, err := NewMethodEngine(be, t.ANN, t.SNN, capacity, MethodOf(t.Settings))
	if err != nil {
		return nil, err
	}
	if t.shard != nil {
		t.shard.WatchGradients(t.ANN.Params())
	}
	t.engine = e
	return e, nil
}

// Close brings the networks and the optimizer back into host memory and
// gives the trainer's backend buffers back; the backend may then be closed.
func (t *Trainer) Close() error {
	if err := t.ready(); err != nil {
		return err
	}
	if t.engine == nil {
		return nil
	}
	err := t.Opt.Free()
	t.engine.Free()
	t.engine = nil
	if t.shard != nil {
		t.shard.FreeScratch()
		t.shard = nil
	}
	if rerr := t.SNN.Release(); err == nil {
		err = rerr
	}
	return err
}

// Run trains until Settings.Epochs epochs are done or ctx is cancelled.
func (t *Trainer) Run(ctx context.Context) error {
	if err := t.ready(); err != nil {
		return err
	}
	if ctx == nil {
		return fmt.Errorf("no context (nil)")
	}
	s := t.Settings
	eng, err := t.Engine()
	if err != nil {
		return err
	}
	if err := t.agree(); err != nil {
		return err
	}
	d := t.Train
	for t.Progress.Epoch < s.Epochs {
		epoch := t.Progress.Epoch
		batchStats := epoch < s.FreezeBNAfter
		perm := order(s, d.N, epoch)
		nb := t.Batches()
		start := time.Now()
		prior := t.Progress.Partial.Seconds
		for t.Progress.Batch < nb {
			stop, err := t.stopping(ctx)
			if err != nil {
				return err
			}
			if stop {
				t.Progress.Partial.Seconds = prior + time.Since(start).Seconds()
				if err := t.syncRankStats(); err != nil {
					return err
				}
				return ErrInterrupted
			}
			b := t.Progress.Batch
			lo, hi := b*s.BatchSize, min((b+1)*s.BatchSize, d.N)
			x, labels, real, total := t.batch(perm, epoch, b, lo, hi)
			if t.observe != nil && real > 0 {
				t.observe(epoch, b, x, labels)
			}
			r, err := t.step(eng, x, labels, real, total, batchStats)
			if err != nil {
				return err
			}
			p := &t.Progress.Partial
			p.Images += total
			p.LossSum += r.Loss * float64(total)
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
		acc, err := t.evaluate(ctx, eng)
		if err != nil {
			return err
		}
		mode := "eval"
		if batchStats {
			mode = "train"
		}
		st := results.EpochStats{Epoch: epoch, BNMode: mode, Method: eng.Method().named(), TrainLoss: p.LossSum / float64(max(p.Images, 1)),
			TrainANN: float64(p.ANNCorrect) / float64(max(p.Images, 1)), TrainSNN: float64(p.SNNCorrect) / float64(max(p.Images, 1)),
			Test: acc, Seconds: p.Seconds, ImagesPerSec: float64(p.Images) / max(p.Seconds, 1e-9)}
		if cmp, ok := results.ComparePaper(t.Test.Name, acc); ok {
			st.Paper = &cmp
		}
		t.Progress = checkpoint.Progress{Epoch: epoch + 1, History: append(t.Progress.History, st)}
		if t.OnEpoch != nil {
			if err := t.OnEpoch(st); err != nil {
				return err
			}
		}
	}
	return nil
}

// Checkpoint captures the trainer's state, synced from its backend.
func (t *Trainer) Checkpoint() (*checkpoint.Checkpoint, error) {
	if err := t.ready(); err != nil {
		return nil, err
	}
	if t.engine != nil {
		if err := t.engine.Sync(); err != nil {
			return nil, fmt.Errorf("reading the state back from %s: %w", t.engine.Backend.Name(), err)
		}
	}
	if err := t.Opt.Sync(); err != nil {
		return nil, fmt.Errorf("reading the optimizer back: %w", err)
	}
	for _, p := range t.ANN.Params() {
		if err := nn.CheckFinite("parameter "+p.Name, p.Data); err != nil {
			return nil, fmt.Errorf("training diverged: %w; no checkpoint is written", err)
		}
	}
	c := checkpoint.New(t.ANN, t.SNN, t.Settings)
	c.Adam, c.Progress = &t.Opt.AdamState, t.Progress
	return c, nil
}

// Resume restores a checkpoint's state into the trainer: weights, BN
// statistics, optimizer, progress. The architecture must match.
func (t *Trainer) Resume(c *checkpoint.Checkpoint) error {
	if err := t.ready(); err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("no checkpoint to resume (nil)")
	}
	if !checkpoint.SameArch(c.Arch, nn.ArchOf(t.ANN)) {
		return fmt.Errorf("the checkpoint holds a different architecture than the model")
	}
	if err := c.CheckResumable(t.ANN, t.SNN, t.Batches()); err != nil {
		return err
	}
	for _, p := range t.ANN.Params() {
		copy(p.Data, c.Params[p.Name].Data)
	}
	if err := checkpoint.RestoreState("ANN", c.ANNState, nn.StatefulLayers(t.ANN.Layers)); err != nil {
		return err
	}
	if err := checkpoint.RestoreState("SNN", c.SNNState, t.SNN.Stateful()); err != nil {
		return err
	}
	t.ANN.Upload()
	t.SNN.Upload()
	if err := t.Opt.Free(); err != nil {
		return err
	}
	t.Opt = &Adam{AdamState: *c.Adam}
	t.Progress = c.Progress
	return nil
}

// Resumed is the settings a resumed run continues with: saved (the
// checkpoint's), with the number of epochs to reach taken from asked when
// changed("epochs"). Any other setting the user gave (changed reports it by
// its name in recipe.Settings.Fields) must equal the checkpoint's, so that
// the resumed run ends exactly where an uninterrupted one would; the error
// names the setting as a setting.Name.
func Resumed(saved, asked recipe.Settings, changed func(name string) bool) (recipe.Settings, error) {
	if changed == nil {
		return saved, fmt.Errorf("no function saying which settings were given (nil)")
	}
	want := saved.Fields()
	for i, f := range asked.Fields() {
		if f.Flag != "epochs" && changed(f.Flag) && f.Value != want[i].Value {
			return saved, setting.Errorf("%s %s differs from the checkpoint's %s: a resumed run continues exactly, with the checkpoint's settings; "+
				"to change them, start a new run from the checkpoint", setting.Name(f.Flag), f.Value, want[i].Value)
		}
	}
	s := saved
	if changed("epochs") {
		s.Epochs = asked.Epochs
	}
	return s, nil
}
