package train_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/train"
)

// distRun is what a data-parallel test run left: every rank's state
// (weights, then BatchNorm statistics and Adam's moments), rank 0's
// history, and the initial weights.
type distRun struct {
	states  [][]float32
	history []results.EpochStats
	initial []float32
	ckpt    *checkpoint.Checkpoint // rank 0's at the end
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
// returns their states (the device opened with dopt). One process is size
// 0. The ranks join through distributed.Local's communicators, or through
// join when it is not nil.
func runRanks(t *testing.T, size int, devName string, dopt device.Options, opt distributed.Options, mk func() *train.Trainer,
	join ...func(rank int, be compute.Backend) (*distributed.Group, error)) distRun {
	t.Helper()
	var initial []float32
	for _, p := range mk().ANN.Params() {
		initial = append(initial, p.Data...)
	}
	if size == 0 {
		tr := mk()
		be, err := device.Open(devName, dopt)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		tr.Backend = be
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := fullState(t, tr)
		ck, err := tr.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		tr.Close()
		return distRun{states: [][]float32{st}, history: tr.Progress.History, initial: initial, ckpt: ck}
	}
	comms, err := distributed.Local(size, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	out := distRun{states: make([][]float32, size), initial: initial}
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := 0; r < size; r++ {
		tr := mk()
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			errs[r] = func() error {
				be, err := device.Open(devName, dopt)
				if err != nil {
					return err
				}
				defer be.Close()
				var g *distributed.Group
				if len(join) > 0 {
					g, err = join[0](r, be)
				} else {
					g, err = distributed.New(comms[r], be, opt)
				}
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
					out.history, out.ckpt = tr.Progress.History, ck
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

// compareRuns checks that every rank of a data-parallel run holds the
// same bits and reports how far it is from one process: the values that
// differ and the weights' distance to one process's as a share of the
// training's effect (their distance from the initial weights).
func compareRuns(t *testing.T, what string, one, many distRun) (differ int, rel float64) {
	t.Helper()
	want := one.states[0]
	for r, st := range many.states {
		if !sameBits(st, many.states[0]) {
			t.Errorf("%s: rank %d's state differs from rank 0's in %d of %d values", what, r, testutil.Differing(st, many.states[0]), len(st))
		}
	}
	got := many.states[0]
	nw := len(one.initial)
	return testutil.Differing(got, want), testutil.Dist(got[:nw], want[:nw]) / testutil.Dist(want[:nw], one.initial)
}

// TestDataParallelRanksInOneProcess trains the tiny network for one epoch
// (BatchNorm in training mode) on 1,003 real MNIST digits, global batch
// 100, with 2 and 4 ranks in this process on the CPU backend, synchronised
// BatchNorm statistics: every rank ends with the same bits, and with the
// bits of one process training on the same global batches (weights, Adam's
// moments, BatchNorm's statistics, the epoch's statistics and test report). The last
// batch, of 3 images, leaves one of 4 ranks without an image: it runs a
// stand-in that counts for nothing.
func TestDataParallelRanksInOneProcess(t *testing.T) {
	s := recipe.Default()
	s.Dataset, s.Epochs, s.LR, s.BatchSize = data.MNIST, 1, 3e-3, 100
	mk := func() *train.Trainer { return mnistTrainer(t, s, 1003, 300) }
	one := runRanks(t, 0, "cpu", device.Options{}, distributed.Options{}, mk)
	for _, size := range []int{2, 4} {
		many := runRanks(t, size, "cpu", device.Options{}, distributed.Options{}, mk)
		differ, rel := compareRuns(t, fmt.Sprintf("%d ranks", size), one, many)
		t.Logf("%d ranks: %d of %d values differ from one process (%.2g of the training's effect); loss %.6f vs %.6f, test SNN %.3f vs %.3f",
			size, differ, len(one.states[0]), rel, many.history[0].TrainLoss, one.history[0].TrainLoss,
			many.history[0].Test.SNNStrict, one.history[0].Test.SNNStrict)
		// the shares are subtrees of the CPU backend's batch reduction tree
		// and the ranks add them in its order (docs/design.md §8)
		if differ != 0 {
			t.Errorf("%d ranks: %d values differ from one process's (%.3g of the training's effect); want its bits", size, differ, rel)
		}
		a, b := many.history[0], one.history[0]
		a.Seconds, a.ImagesPerSec, b.Seconds, b.ImagesPerSec = 0, 0, 0, 0 // timing
		if a != b {
			t.Errorf("%d ranks' epoch: %+v\none process's: %+v", size, a, b)
		}
	}
}

// TestDataParallelEmulatedNCCL: the same on the CUDA backend's emulated
// device, whose collectives are NCCL's calls served on host memory (the
// code the GPU runs above libnccl): 2 ranks in this process, gradients
// all-reduced in buckets as the backward pass completes them.
func TestDataParallelEmulatedNCCL(t *testing.T) {
	s := recipe.Default()
	s.Dataset, s.Epochs, s.LR, s.BatchSize = data.MNIST, 1, 1e-3, 100
	mk := func() *train.Trainer { return mnistTrainer(t, s, 400, 100) }
	one := runRanks(t, 0, "cuda-emu", device.Options{}, distributed.Options{}, mk)
	many := runRanks(t, 2, "cuda-emu", device.Options{}, distributed.Options{BucketBytes: 64 << 10}, mk)
	differ, rel := compareRuns(t, "2 ranks", one, many)
	t.Logf("2 ranks: %d of %d values differ from one process (%.2g of the training's effect); loss %.6f vs %.6f",
		differ, len(one.states[0]), rel, many.history[0].TrainLoss, one.history[0].TrainLoss)
	if rel > 1e-3 {
		t.Errorf("2 ranks land %.3g of the training's effect from one process", rel)
	}
}

// TestDataParallelChannelsLast: 2 ranks on the emulated device with
// channels-last programs (the BatchNorm statistics' and backward pass's
// sums over a share in NHWC, synchronised; the program asked for through
// the rank's wrapper of the backend) end with the bits of 2 ranks with
// NCHW programs: the layout changes no bit of data-parallel training.
func TestDataParallelChannelsLast(t *testing.T) {
	s := recipe.Default()
	s.Dataset, s.Epochs, s.LR, s.BatchSize = data.MNIST, 1, 1e-3, 100
	mk := func() *train.Trainer { return mnistTrainer(t, s, 200, 100) }
	nchw := runRanks(t, 2, "cuda-emu", device.Options{}, distributed.Options{}, mk)
	nhwc := runRanks(t, 2, "cuda-emu", device.Options{ChannelsLast: true}, distributed.Options{}, mk)
	if differ, _ := compareRuns(t, "2 ranks, channels-last", distRun{states: nchw.states[:1], initial: nchw.initial}, nhwc); differ != 0 {
		t.Errorf("2 ranks, channels-last: %d of %d values differ from 2 ranks in NCHW", differ, len(nchw.states[0]))
	}
	a, b := nhwc.history[0], nchw.history[0]
	a.Seconds, a.ImagesPerSec, b.Seconds, b.ImagesPerSec = 0, 0, 0, 0 // timing
	if a != b {
		t.Errorf("channels-last epoch: %+v\nNCHW's: %+v", a, b)
	}
}

// TestDataParallelHalfSpikes: 2 ranks on the emulated device with 16-bit
// spikes (the rank's wrapper of the backend stores binary16 values through
// its inner backend, and SyncBN's sums over a share read them) land where
// one process with 16-bit spikes does, as TestDataParallelEmulatedNCCL's
// float32 ranks do.
func TestDataParallelHalfSpikes(t *testing.T) {
	s := recipe.Default()
	s.Dataset, s.Epochs, s.LR, s.BatchSize = data.MNIST, 1, 1e-3, 100
	mk := func() *train.Trainer { return mnistTrainer(t, s, 200, 100) }
	one := runRanks(t, 0, "cuda-emu", device.Options{HalfSpikes: true}, distributed.Options{}, mk)
	many := runRanks(t, 2, "cuda-emu", device.Options{HalfSpikes: true}, distributed.Options{}, mk)
	differ, rel := compareRuns(t, "2 ranks, 16-bit spikes", one, many)
	t.Logf("2 ranks, 16-bit spikes: %d of %d values differ from one process (%.2g of the training's effect)", differ, len(one.states[0]), rel)
	if rel > 1e-3 {
		t.Errorf("2 ranks with 16-bit spikes land %.3g of the training's effect from one process", rel)
	}
	f32 := runRanks(t, 0, "cuda-emu", device.Options{}, distributed.Options{}, mk)
	if d, _ := compareRuns(t, "float32", f32, one); d == 0 {
		t.Errorf("16-bit spikes trained to the float32 run's bits: the setting did nothing")
	}
}

// TestDataParallelTorchrunEnvironment: ranks started with torchrun's
// variables and no MPI bootstrap NCCL through the rendezvous at
// MASTER_ADDR:MASTER_PORT (a real TCP exchange of the unique id) and
// carry every sum, the trainer's small host sums too, on NCCL's calls —
// here the emulated device's, between the ranks of this process. The CPU
// backend has no collectives without MPI and is refused, saying so.
func TestDataParallelTorchrunEnvironment(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	launch := func(r int) distributed.Launch {
		host, port, _ := net.SplitHostPort(addr)
		l, err := distributed.Detect(func(k string) string {
			return map[string]string{"RANK": fmt.Sprint(r), "WORLD_SIZE": "2", "LOCAL_RANK": fmt.Sprint(r), "MASTER_ADDR": host, "MASTER_PORT": port}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if _, err := distributed.Open(launch(0), compute.NewCPU(), distributed.Options{}); err == nil || !strings.Contains(err.Error(), "runs on MPI's collectives") {
		t.Errorf("the CPU backend under torchrun without MPI: %v", err)
	}
	s := recipe.Default()
	s.Dataset, s.Epochs, s.LR, s.BatchSize = data.MNIST, 1, 1e-3, 100
	mk := func() *train.Trainer { return mnistTrainer(t, s, 200, 100) }
	one := runRanks(t, 0, "cuda-emu", device.Options{}, distributed.Options{}, mk)
	many := runRanks(t, 2, "cuda-emu", device.Options{}, distributed.Options{}, mk, func(r int, be compute.Backend) (*distributed.Group, error) {
		g, err := distributed.Open(launch(r), be, distributed.Options{Timeout: 30 * time.Second, Report: func(err error) { t.Errorf("rank %d: %v", r, err) }})
		if err == nil && !strings.Contains(g.Describe(), "2 ranks: NCCL emulated on host memory over 2 ranks in this process, started by torchrun (bootstrapped at "+addr+")") {
			t.Errorf("rank %d: %s", r, g.Describe())
		}
		return g, err
	})
	differ, rel := compareRuns(t, "2 ranks", one, many)
	t.Logf("2 ranks through the rendezvous: %d of %d values differ from one process (%.2g of the training's effect)", differ, len(one.states[0]), rel)
	if rel > 1e-3 {
		t.Errorf("2 ranks land %.3g of the training's effect from one process", rel)
	}
}

// TestDataParallelResumeOnAnyRanks: a run of 2 ranks interrupted in the
// middle of its first epoch (one rank's Ctrl-C: every rank stops at the
// same batch), resumed from rank 0's checkpoint by 4 ranks for the rest of
// the epoch, then by one process for a second epoch (BatchNorm in eval
// mode), ends where one process training both epochs ends.
func TestDataParallelResumeOnAnyRanks(t *testing.T) {
	s := recipe.Default()
	s.Dataset, s.Epochs, s.LR, s.BatchSize = data.MNIST, 2, 3e-3, 100
	mk := func() *train.Trainer { return mnistTrainer(t, s, 600, 100) }
	one := runRanks(t, 0, "cpu", device.Options{}, distributed.Options{}, mk)

	// 2 ranks; rank 1's context is cancelled after its third batch
	comms, err := distributed.Local(2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cks := make([]*checkpoint.Checkpoint, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		tr := mk()
		tr.Settings.Epochs = 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if r == 1 {
				tr.OnBatch = func(p train.BatchProgress) {
					if p.Batch == 3 {
						cancel()
					}
				}
			}
			be := compute.NewCPU()
			g, err := distributed.New(comms[r], be, distributed.Options{})
			if err != nil {
				errs[r] = err
				return
			}
			defer g.Close()
			tr.Backend, tr.Dist = be, g
			errs[r] = tr.Run(ctx)
			cks[r], _ = tr.Checkpoint()
			tr.Close()
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != train.ErrInterrupted {
			t.Fatalf("rank %d: %v, want ErrInterrupted", r, err)
		}
		if cks[r].Progress.Epoch != 0 || cks[r].Progress.Batch != 3 {
			t.Errorf("rank %d stopped at epoch %d, batch %d; want every rank at batch 3", r, cks[r].Progress.Epoch, cks[r].Progress.Batch)
		}
	}
	path := filepath.Join(t.TempDir(), "run.ckpt")
	if err := cks[0].Save(path); err != nil {
		t.Fatal(err)
	}
	resume := func() *train.Trainer {
		tr := mk()
		c, err := checkpoint.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Resume(c); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	// 4 ranks finish epoch 0
	four := runRanks(t, 4, "cpu", device.Options{}, distributed.Options{}, func() *train.Trainer {
		tr := resume()
		tr.Settings.Epochs = 1
		return tr
	})
	if len(four.history) != 1 {
		t.Fatalf("4 ranks ran %d epochs", len(four.history))
	}
	if err := four.ckpt.Save(path); err != nil {
		t.Fatal(err)
	}
	// one process trains epoch 1
	final := runRanks(t, 0, "cpu", device.Options{}, distributed.Options{}, resume)
	differ, rel := compareRuns(t, "2, then 4 ranks, then one process", one, final)
	t.Logf("2 ranks, then 4, then one process: %d of %d values differ from one process throughout (%.2g of the training's effect)",
		differ, len(one.states[0]), rel)
	if rel > 1e-3 {
		t.Errorf("the resumed runs land %.3g of the training's effect from one process", rel)
	}
}

// TestDataParallelRankBatchNorm: with per-rank BatchNorm statistics
// (PyTorch DDP's default) every rank ends with the same bits — rank 0's
// running statistics, broadcast —, and the run differs from one process
// (its batch statistics are the shares'), where synchronised ones do not.
func TestDataParallelRankBatchNorm(t *testing.T) {
	s := recipe.Default()
	s.Dataset, s.Epochs, s.LR, s.BatchSize = data.MNIST, 1, 3e-3, 100
	mk := func() *train.Trainer { return mnistTrainer(t, s, 300, 100) }
	one := runRanks(t, 0, "cpu", device.Options{}, distributed.Options{}, mk)
	s.BNStats = recipe.BNRank
	many := runRanks(t, 2, "cpu", device.Options{}, distributed.Options{BatchNorm: distributed.RankBN}, mk)
	_, rel := compareRuns(t, "2 ranks, per-rank statistics", one, many)
	t.Logf("per-rank BatchNorm statistics: %.2g of the training's effect from one process", rel)
	if rel < 1e-3 {
		t.Errorf("per-rank statistics land %.3g of the training's effect from one process: as if synchronised", rel)
	}
}
