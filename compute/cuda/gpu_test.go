//go:build cuda

package cuda_test

// The checks that need an NVIDIA GPU: built with -tags cuda (CI builds
// them; scripts/gpu_check.sh runs them on a machine with a GPU). Without a
// GPU they fail, saying why: they are never skipped.

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/conformance"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// gpuVariants are the ways the GPU computes: TF32 tensor cores (the
// default), strict FP32, and proxykit's own im2col convolutions instead of
// cuDNN's.
var gpuVariants = []struct {
	name string
	opt  cuda.Options
	tol  conformance.Tolerances
}{
	{"tf32", cuda.Options{}, conformance.TF32},
	{"fp32", cuda.Options{StrictFP32: true}, conformance.FP32},
	{"im2col-tf32", cuda.Options{NoCuDNN: true}, conformance.TF32},
	{"im2col-fp32-chunked", cuda.Options{NoCuDNN: true, StrictFP32: true, WorkspaceBytes: 64 << 10}, conformance.FP32},
}

func openGPU(t testing.TB, opt cuda.Options) *cuda.Backend {
	t.Helper()
	be, err := cuda.Open(opt)
	if err != nil {
		t.Fatalf("no GPU to test on: %v", err)
	}
	t.Logf("device: %s", be.Describe())
	return be
}

// TestGPUConformance runs the conformance suite on the GPU, every variant.
func TestGPUConformance(t *testing.T) {
	for _, v := range gpuVariants {
		t.Run(v.name, func(t *testing.T) {
			be := openGPU(t, v.opt)
			defer be.Close()
			conformance.Test(t, be, v.tol)
		})
	}
}

// TestGPUCountsMatchPyTorch: the dyadic fixtures' sums are exact in TF32
// too, so the GPU's counts must equal PyTorch's.
func TestGPUCountsMatchPyTorch(t *testing.T) {
	for _, v := range gpuVariants[:3] {
		t.Run(v.name, func(t *testing.T) {
			be := openGPU(t, v.opt)
			defer be.Close()
			total, differ := 0, 0
			for _, name := range append(testutil.Models, testutil.Graphs...) {
				m, err := model.Load(testutil.Path(name + ".onnx"))
				if err != nil {
					t.Fatal(err)
				}
				snn, err := spiking.New(m.ANN, spiking.DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				res, err := snn.RunOn(context.Background(), be, testutil.Array(t, name+".x.npy"), false, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := snn.Release(); err != nil {
					t.Fatal(err)
				}
				want := testutil.Array(t, name+".snn.npy")
				total += len(want.Data)
				differ += testutil.Differing(res.Counts.Data, want.Data)
			}
			t.Logf("%s: %d of %d counts differ from PyTorch's", v.name, differ, total)
			// TF32 rounds the fixtures' weights (more than 10 mantissa
			// bits): their sums are exact in FP32 only.
			if limit := map[bool]float64{true: 0.005, false: 0.15}[v.opt.StrictFP32]; float64(differ) > limit*float64(total) {
				t.Errorf("%s: %d of %d counts differ from PyTorch's", v.name, differ, total)
			}
		})
	}
}

// TestGPUHalfSpikesMatchPyTorch: the 16-bit spikes program (cuDNN in
// PSEUDO_HALF, NCHW and channels-last, and im2col) on testdata/half's
// network, whose emulated counts equal PyTorch's 16-bit counts exactly
// (spiking's TestHalfSpikesAgainstPyTorch): the GPU's may differ where
// another summation order rounds a current to another binary16 value, so
// at most 1 % of them, and they must be nearer PyTorch's 16-bit counts
// than its float32 ones.
func TestGPUHalfSpikesMatchPyTorch(t *testing.T) {
	m, err := model.Load(testutil.Path("half/model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	c32, c16 := testutil.Array(t, "half/c32.npy").Data, testutil.Array(t, "half/c16.npy").Data
	x := testutil.Array(t, "fmnist_w8_bn.x.npy")
	for _, opt := range []cuda.Options{{HalfSpikes: true}, {HalfSpikes: true, ChannelsLast: true}, {HalfSpikes: true, NoCuDNN: true}} {
		be := openGPU(t, opt)
		snn, err := spiking.New(m.ANN, spiking.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		res, err := snn.RunOn(context.Background(), be, x, false, 0)
		what := be.Precision()
		be.Close()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		d16, d32 := testutil.Differing(res.Counts.Data, c16), testutil.Differing(res.Counts.Data, c32)
		t.Logf("%s: %d of %d counts differ from PyTorch's 16-bit ones (%d from its float32 ones)", what, d16, len(c16), d32)
		if float64(d16) > 0.01*float64(len(c16)) || d16 >= d32 {
			t.Errorf("%s: %d of %d counts differ from PyTorch's 16-bit ones, %d from its float32 ones", what, d16, len(c16), d32)
		}
	}
}

// TestGPUFullWidthCountsMatchCPU: the paper's network at full width, its
// initial weights scaled by 4 so that every IF layer fires, on 16 digits
// and 84 random images: the GPU's counts must equal the CPU backend's in at
// least 99.5 % of entries in FP32. (With unrounded weights another
// summation order flips some threshold crossings; TF32's rounding of the
// weights flips many more, and the share is reported and held to 75 %.)
func TestGPUFullWidthCountsMatchCPU(t *testing.T) {
	net, err := nn.Reference(128, 2020)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range net.Layers {
		var w []float32
		switch l := l.(type) {
		case *nn.Conv2d:
			w = l.Weight.Data
		case *nn.Linear:
			w = l.Weight.Data
		}
		for i := range w {
			w[i] *= 4
		}
	}
	digits := testutil.Array(t, "proxy/x.npy")
	x, _ := nn.NewTensor(100, 1, 28, 28)
	copy(x.Data, digits.Data)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := len(digits.Data); i < len(x.Data); i++ {
		x.Data[i] = rng.Float32()
	}
	snn, err := spiking.New(net, spiking.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := snn.RunOn(context.Background(), compute.NewCPU(), x, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range cpu.Rates {
		if r < 0.005 {
			t.Fatalf("IF layer %d fires at rate %.4f: the check would compare silence", i, r)
		}
	}
	for _, v := range gpuVariants[:3] {
		be := openGPU(t, v.opt)
		res, err := snn.RunOn(context.Background(), be, x, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := snn.Release(); err != nil {
			t.Fatal(err)
		}
		be.Close()
		same := len(cpu.Counts.Data) - testutil.Differing(res.Counts.Data, cpu.Counts.Data)
		t.Logf("%s: %d of %d counts equal to the CPU's (%.2f %%); IF rates GPU %.3f, CPU %.3f", v.name, same,
			len(cpu.Counts.Data), 100*float64(same)/float64(len(cpu.Counts.Data)), res.Rates, cpu.Rates)
		// measured on an H100: FP32 100 %, TF32 85 % (cuDNN) and 81 % (im2col)
		if limit := map[bool]float64{true: 0.995, false: 0.75}[v.opt.StrictFP32]; float64(same) < limit*float64(len(cpu.Counts.Data)) {
			t.Errorf("%s: only %d of %d counts equal the CPU's", v.name, same, len(cpu.Counts.Data))
		}
	}
}

// TestGPUTrainsLikeTheCPU: 4 proxy steps of the narrow reference network
// on the GPU and on the CPU from the same start land within 2 % of the
// training's effect of each other (measured on the ANN's outputs).
func TestGPUTrainsLikeTheCPU(t *testing.T) {
	x := testutil.Array(t, "proxy/x.npy")
	run := func(be compute.Backend) (before, after []float32) {
		m, err := model.Load(testutil.Path("proxy/net.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		s := recipe.Default()
		s.Dataset, s.Epochs, s.BatchSize, s.LR = data.MNIST, 2, 100, 1e-3
		s.FreezeBNAfter, s.MaxTrain = 1, 200
		trainSet, err := data.Load(testutil.Path("proxy"), data.MNIST, true)
		if err != nil {
			t.Fatal(err)
		}
		testSet, err := data.Load(testutil.Path("proxy"), data.MNIST, false)
		if err != nil {
			t.Fatal(err)
		}
		snn, err := spiking.New(m.ANN, s.Config)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := train.NewTrainer(s, m.ANN, snn, trainSet.Subset(s.MaxTrain), testSet)
		if err != nil {
			t.Fatal(err)
		}
		y, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		tr.Backend = be
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		y2, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
		if err != nil {
			t.Fatal(err)
		}
		return y.Data, y2.Data
	}
	b0, a0 := run(compute.NewCPU())
	for _, v := range gpuVariants[:3] {
		be := openGPU(t, v.opt)
		b1, a1 := run(be)
		be.Close()
		if rel := testutil.RelErr(b1, b0); rel > 1e-6 {
			t.Errorf("%s: outputs before training differ (%g)", v.name, rel)
		}
		moved, off := testutil.Dist(a0, b0), testutil.Dist(a1, a0)
		t.Logf("%s: training moved the CPU's outputs by %.4g; the GPU lands %.4g from them (%.2f %%)", v.name, moved, off, 100*off/moved)
		if off > 0.02*moved {
			t.Errorf("%s: the GPU's training is %.2f %% of the training's effect away from the CPU's", v.name, 100*off/moved)
		}
	}
}

// TestGPUOutOfMemory: a batch that cannot fit gives an error that says so.
func TestGPUOutOfMemory(t *testing.T) {
	be := openGPU(t, cuda.Options{})
	defer be.Close()
	_, _, total := be.DeviceMemory()
	if _, err := be.Alloc(int(total/4) + 1<<28); err == nil {
		t.Fatal("allocating more than the GPU holds succeeded")
	} else {
		t.Logf("error: %v", err)
	}
	if b, err := be.Alloc(1 << 20); err != nil {
		t.Fatalf("after a failed allocation, a small one fails: %v", err)
	} else {
		be.Free(b)
	}
}

// TestGPUDeterministic: two training steps from the same start give the
// same bits (cuBLAS and the deterministic cuDNN algorithms).
func TestGPUDeterministic(t *testing.T) {
	be := openGPU(t, cuda.Options{})
	defer be.Close()
	var first []float32
	for run := 0; run < 2; run++ {
		net, err := nn.Reference(16, 7)
		if err != nil {
			t.Fatal(err)
		}
		snn, err := spiking.New(net, spiking.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		e, err := train.NewEngine(be, net, snn, 64)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		x, _ := nn.NewTensor(64, 1, 28, 28)
		for i := range x.Data {
			x.Data[i] = rng.Float32()
		}
		got := threeSteps(t, be, e, net, x)
		if first == nil {
			first = got
		} else if d := testutil.Differing(got, first); d != 0 {
			t.Errorf("two runs differ in %d of %d weights", d, len(got))
		}
	}
}

// TestGPUChannelsLast: the paper's network at full width run by programs
// lowered channels-last (Options.ChannelsLast; cuDNN handed NHWC tensors
// and KRSC filters) counts as the CPU does, held to the NCHW programs'
// bars (TestGPUFullWidthCountsMatchCPU: 99.5 % of the counts in FP32, 75 %
// in TF32), cuDNN refuses none of its convolutions (no notice: nothing
// runs in NCHW), and two training steps from one start give the same bits.
func TestGPUChannelsLast(t *testing.T) {
	net, err := nn.Reference(128, 2020)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range net.Layers {
		if c, ok := l.(*nn.Conv2d); ok {
			for i := range c.Weight.Data {
				c.Weight.Data[i] *= 4
			}
		}
		if f, ok := l.(*nn.Linear); ok {
			for i := range f.Weight.Data {
				f.Weight.Data[i] *= 4
			}
		}
	}
	x, _ := nn.NewTensor(100, 1, 28, 28)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range x.Data {
		x.Data[i] = rng.Float32()
	}
	snn, err := spiking.New(net, spiking.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := snn.RunOn(context.Background(), compute.NewCPU(), x, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, strict := range []bool{false, true} {
		var notices strings.Builder
		be := openGPU(t, cuda.Options{StrictFP32: strict, ChannelsLast: true, Notices: &notices})
		res, err := snn.RunOn(context.Background(), be, x, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := snn.Release(); err != nil {
			t.Fatal(err)
		}
		same := len(cpu.Counts.Data) - testutil.Differing(res.Counts.Data, cpu.Counts.Data)
		t.Logf("channels-last, strict FP32 %v: %d of %d counts equal to the CPU's (%.2f %%)", strict, same, len(cpu.Counts.Data),
			100*float64(same)/float64(len(cpu.Counts.Data)))
		if limit := map[bool]float64{true: 0.995, false: 0.75}[strict]; float64(same) < limit*float64(len(cpu.Counts.Data)) {
			t.Errorf("channels-last, strict FP32 %v: only %d of %d counts equal the CPU's", strict, same, len(cpu.Counts.Data))
		}
		// training steps: deterministic, and nothing refused
		var first []float32
		for run := 0; run < 2; run++ {
			tnet, err := nn.Reference(16, 7)
			if err != nil {
				t.Fatal(err)
			}
			tsnn, err := spiking.New(tnet, spiking.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			e, err := train.NewEngine(be, tnet, tsnn, 64)
			if err != nil {
				t.Fatal(err)
			}
			xs, _ := nn.NewTensor(64, 1, 28, 28)
			copy(xs.Data, x.Data)
			got := threeSteps(t, be, e, tnet, xs)
			if first == nil {
				first = got
			} else if d := testutil.Differing(got, first); d != 0 {
				t.Errorf("channels-last, strict FP32 %v: two training runs differ in %d of %d weights", strict, d, len(got))
			}
		}
		if notices.Len() > 0 {
			t.Errorf("channels-last, strict FP32 %v: cuDNN refused configurations, which ran in NCHW:\n%s", strict, notices.String())
		}
		t.Logf("device: %s", be.Describe())
		be.Close()
	}
}

// threeSteps trains net through e for three Adam steps on x, labels i mod
// 10 (BatchNorm in training mode in the first), frees e and returns the
// weights: what the determinism checks compare run against run.
func threeSteps(t *testing.T, be compute.Backend, e *train.Engine, net *nn.Network, x *nn.Tensor) []float32 {
	t.Helper()
	labels := make([]uint8, x.Shape[0])
	for i := range labels {
		labels[i] = uint8(i % 10)
	}
	opt := train.NewAdam(1e-3, 0.8, 0.99, 1e-8, 1e-6)
	for step := 0; step < 3; step++ {
		if _, err := e.Step(x, labels, step == 0); err != nil {
			t.Fatal(err)
		}
		if err := opt.Update(be, net.Params()); err != nil {
			t.Fatal(err)
		}
	}
	if err := net.Sync(); err != nil {
		t.Fatal(err)
	}
	var got []float32
	for _, p := range net.Params() {
		got = append(got, p.Data...)
	}
	e.Free()
	return got
}
