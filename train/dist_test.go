package train_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/dist"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/train"
)

// distRun is what a data-parallel test run left: every rank's state
// (weights, Adam's moments, BatchNorm statistics) and rank 0's history.
type distRun struct {
	states  [][]float32
	history []results.EpochStats
}

// fullState is state() with Adam's moments.
func fullState(t testing.TB, tr *train.Trainer) []float32 {
	t.Helper()
	ck, err := tr.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	out := state(tr)
	for _, p := range tr.ANN.Params() {
		out = append(out, ck.Adam.M[p.Name]...)
		out = append(out, ck.Adam.V[p.Name]...)
	}
	return out
}

// mnistTrainer is the tiny network on the first nTrain real MNIST digits
// (GoMNIST's files) and nTest test digits, settings s.
func mnistTrainer(t testing.TB, s recipe.Settings, nTrain, nTest int) *train.Trainer {
	t.Helper()
	dir := testutil.MNISTDir(t)
	trainSet, err := data.Load(dir, data.MNIST, true)
	if err != nil {
		t.Fatal(err)
	}
	testSet, err := data.Load(dir, data.MNIST, false)
	if err != nil {
		t.Fatal(err)
	}
	net, err := nn.Tiny(2020)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := (&model.Model{ANN: net}).SNN(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.NewTrainer(s, net, snn, trainSet.Subset(nTrain), testSet.Subset(nTest))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// runRanks trains one trainer per rank (mk makes them, each with its own
// network) as size ranks in this process, on the device named, and
// returns their states. One process is size 0.
func runRanks(t *testing.T, size int, devName string, opt dist.Options, mk func() *train.Trainer) distRun {
	t.Helper()
	if size == 0 {
		tr := mk()
		be, err := device.Open(devName, device.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		tr.Backend = be
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := fullState(t, tr)
		tr.Close()
		return distRun{states: [][]float32{st}, history: tr.Progress.History}
	}
	comms := dist.Local(size, time.Minute)
	out := distRun{states: make([][]float32, size)}
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := 0; r < size; r++ {
		tr := mk()
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			errs[r] = func() error {
				be, err := device.Open(devName, device.Options{})
				if err != nil {
					return err
				}
				defer be.Close()
				g, err := dist.New(comms[r], be, opt)
				if err != nil {
					return err
				}
				defer g.Close()
				tr.Backend, tr.Dist = be, g
				if err := tr.Run(context.Background()); err != nil {
					g.Abort(err)
					return err
				}
				ck, err := tr.Checkpoint()
				if err != nil {
					return err
				}
				st := state(tr)
				for _, p := range tr.ANN.Params() {
					st = append(append(st, ck.Adam.M[p.Name]...), ck.Adam.V[p.Name]...)
				}
				out.states[r] = st
				if r == 0 {
					out.history = tr.Progress.History
				}
				return tr.Close()
			}()
		}(r)
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return out
}

// compareRuns reports how far a data-parallel run is from one process:
// the values that differ and the largest relative difference of the
// weights, and checks that every rank holds the same bits.
func compareRuns(t *testing.T, what string, one, many distRun) (differ int, worst float64) {
	t.Helper()
	want := one.states[0]
	for r, st := range many.states {
		if !sameBits(st, many.states[0]) {
			t.Errorf("%s: rank %d's state differs from rank 0's in %d of %d values", what, r, testutil.Differing(st, many.states[0]), len(st))
		}
	}
	got := many.states[0]
	differ = testutil.Differing(got, want)
	for i := range want {
		d := math.Abs(float64(got[i] - want[i]))
		worst = math.Max(worst, d/math.Max(math.Abs(float64(want[i])), 1e-3))
	}
	return differ, worst
}

// TestDataParallelRanksInOneProcess trains the tiny network for one epoch
// (BatchNorm in training mode) on 800 real MNIST digits, global batch 100,
// with 2 and 4 ranks in this process on the CPU backend, synchronised
// BatchNorm statistics: every rank ends with the same bits, and with the
// state of one process training on the same global batches.
func TestDataParallelRanksInOneProcess(t *testing.T) {
	s := recipe.Default()
	s.Dataset, s.Epochs, s.LR, s.BatchSize = data.MNIST, 1, 1e-3, 100
	mk := func() *train.Trainer { return mnistTrainer(t, s, 800, 200) }
	one := runRanks(t, 0, "cpu", dist.Options{}, mk)
	for _, size := range []int{2, 4} {
		many := runRanks(t, size, "cpu", dist.Options{}, mk)
		differ, worst := compareRuns(t, fmt.Sprintf("%d ranks", size), one, many)
		t.Logf("%d ranks: %d of %d values differ from one process, worst relative difference %.3g; loss %.6f vs %.6f, test SNN %.3f vs %.3f",
			size, differ, len(one.states[0]), worst, many.history[0].TrainLoss, one.history[0].TrainLoss,
			many.history[0].Test.SNNStrict, one.history[0].Test.SNNStrict)
	}
}

var _ = compute.NewCPU
