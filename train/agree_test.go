package train_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// startRanks runs trainers[r] as rank r of len(trainers) ranks in this
// process (the CPU backend, each rank's group with opts[r]) and returns
// each rank's error and the batches any rank trained.
func startRanks(t *testing.T, trainers []*train.Trainer, opts []distributed.Options) ([]error, int) {
	t.Helper()
	comms, err := distributed.Local(len(trainers), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, len(trainers))
	var mu sync.Mutex
	batches := 0
	var wg sync.WaitGroup
	for r, tr := range trainers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			be := compute.NewCPU()
			g, err := distributed.New(comms[r], be, opts[r])
			if err != nil {
				errs[r] = err
				return
			}
			defer g.Close()
			tr.Backend, tr.Dist = be, g
			tr.OnBatch = func(train.BatchProgress) {
				mu.Lock()
				batches++
				mu.Unlock()
			}
			errs[r] = tr.Run(context.Background())
			tr.Close()
		}()
	}
	wg.Wait()
	return errs, batches
}

// TestRanksAgreeBeforeTraining: two ranks that differ in a setting that
// changes the result (the learning rate, seed, threshold, augmentation,
// test split, T, batch size, BatchNorm statistics), in the model (its
// width), in where they resume from (the position and weights of another
// checkpoint) or in their data refuse the run on both ranks before the
// first batch, each naming the field and both ranks' values; ranks that
// agree train. (On 8d3f05f the ranks trained together: nothing was
// compared.)
func TestRanksAgreeBeforeTraining(t *testing.T) {
	base := recipe.Default()
	base.Dataset, base.Epochs, base.LR, base.BatchSize = data.MNIST, 1, 1e-3, 50
	mk := func(s recipe.Settings) *train.Trainer { return mnistTrainer(t, s, 100, 50) }
	for _, c := range []struct {
		name   string
		change func(s *recipe.Settings)
		rank1  func() *train.Trainer // instead of change
		opt1   distributed.Options
		want   []string
	}{
		{name: "lr", change: func(s *recipe.Settings) { s.LR = 3e-3 }, want: []string{"setting lr", "rank 0 has 0.001", "rank 1 has 0.003"}},
		{name: "seed", change: func(s *recipe.Settings) { s.Seed = 7 }, want: []string{"setting seed", "rank 0 has 2020", "rank 1 has 7"}},
		{name: "threshold", change: func(s *recipe.Settings) { s.Threshold = 1.5 }, want: []string{"setting threshold", "rank 1 has 1.5"}},
		{name: "no-augment", change: func(s *recipe.Settings) { s.Augment = false }, want: []string{"setting no-augment", "rank 0 has false", "rank 1 has true"}},
		{name: "max-test", rank1: func() *train.Trainer { s := base; s.MaxTest = 20; return mnistTrainer(t, s, 100, 20) },
			want: []string{"setting max-test", "rank 0 has 0", "rank 1 has 20"}},
		{name: "timesteps", change: func(s *recipe.Settings) { s.Timesteps = 7 }, want: []string{"setting timesteps", "rank 0 has 15", "rank 1 has 7"}},
		{name: "batch-size", change: func(s *recipe.Settings) { s.BatchSize = 25 }, want: []string{"setting batch-size", "rank 0 has 50", "rank 1 has 25"}},
		{name: "bn-stats", change: func(s *recipe.Settings) { s.BNStats = recipe.BNRank }, opt1: distributed.Options{BatchNorm: distributed.RankBN},
			want: []string{"setting bn-stats", "rank 0 has sync", "rank 1 has rank"}},
		{name: "width", rank1: func() *train.Trainer { return widthTrainer(t, base, 4) },
			want: []string{"model layer 0 (static_conv.0): kind, width and shapes", "8×1×3×3", "4×1×3×3"}},
		{name: "data", rank1: func() *train.Trainer {
			tr := mk(base)
			tr.Train = tr.Train.Subset(99)
			return tr
		}, want: []string{"training data", "100 images", "99 images"}},
		{name: "resume", rank1: func() *train.Trainer {
			tr := mk(base)
			tr.Progress.Batch, tr.Progress.Partial.Images = 1, 50
			return tr
		}, want: []string{"checkpoint position", "epoch 0, batch 0", "epoch 0, batch 1"}},
		{name: "weights", rank1: func() *train.Trainer {
			tr := mk(base)
			tr.ANN.Params()[0].Data[0] += 1e-3
			return tr
		}, want: []string{"model weights", "rank 0 has sha256", "rank 1 has sha256"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var tr1 *train.Trainer
			if c.rank1 != nil {
				tr1 = c.rank1()
			} else {
				s := base
				c.change(&s)
				tr1 = mk(s)
			}
			tr0 := mk(base)
			if c.name == "width" {
				tr0 = widthTrainer(t, base, 8)
			}
			trainers := []*train.Trainer{tr0, tr1}
			errs, batches := startRanks(t, trainers, []distributed.Options{{}, c.opt1})
			if batches > 0 {
				t.Errorf("%d batches trained before the ranks disagreed", batches)
			}
			for r, err := range errs {
				if err == nil {
					t.Errorf("rank %d trained", r)
					continue
				}
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("rank %d: %v\nwant it to say %q", r, err, w)
					}
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("rank %d: a message of several lines: %q", r, err)
				}
			}
			if errs[0] != nil && errs[1] != nil && errs[0].Error() != errs[1].Error() {
				t.Errorf("the ranks say different things:\n%v\n%v", errs[0], errs[1])
			}
		})
	}
	// ranks that agree train
	errs, batches := startRanks(t, []*train.Trainer{mk(base), mk(base)}, []distributed.Options{{}, {}})
	if errs[0] != nil || errs[1] != nil || batches != 2*2 {
		t.Errorf("ranks that agree: %v, %v, %d batches seen", errs[0], errs[1], batches)
	}
}

// widthTrainer is the paper's network at width w on the MNIST digits of
// mnistTrainer.
func widthTrainer(t *testing.T, s recipe.Settings, w int) *train.Trainer {
	t.Helper()
	tr := mnistTrainer(t, s, 100, 50)
	net, err := nn.Reference(w, 2020)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := (&model.Model{ANN: net}).SNN(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := train.NewTrainer(s, net, snn, tr.Train, tr.Test)
	if err != nil {
		t.Fatal(err)
	}
	return tr2
}
