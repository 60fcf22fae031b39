package compute_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// The CPU backend's end-to-end benchmarks, which scripts/bench_cpu.sh runs
// beside PyTorch's (scripts/bench_cpu.py) in one run:
//
//	PROXYKIT_BENCH_ARCH    fmnist (the paper's network, default) or resnet (ResNet-8, nn.ResNet)
//	PROXYKIT_BENCH_WIDTH   fmnist: channel width (default 128); resnet: the first stage's (default 16)
//	PROXYKIT_BENCH_BATCH   batch of the training step and of the inference (default 100)
//	PROXYKIT_BENCH_INPUT   mnist (the first test digits, default) or random (uniform in [0, 1))
//	PROXYKIT_BENCH_BN      inference: eval (BN's running statistics, as `proxykit bench`; default) or
//	                       batch (each step's batch statistics, as in a training step's SNN)
//	PROXYKIT_BENCH_SECONDS time each measurement for at least this long (default 20)
//
// fmnist and a resnet on mnist inputs take 1×28×28 images; a resnet on
// random inputs takes 3×32×32 (CIFAR-10's shape). T = 15, v_th = 2.

func benchEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func benchInt(b *testing.B, name string, def int) int {
	v, err := strconv.Atoi(benchEnv(name, strconv.Itoa(def)))
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, os.Getenv(name))
	}
	return v
}

// benchSetup builds the network and a batch of inputs the environment
// names.
func benchSetup(b *testing.B) (*nn.Network, *nn.Tensor, []uint8, string) {
	arch, input := benchEnv("PROXYKIT_BENCH_ARCH", "fmnist"), benchEnv("PROXYKIT_BENCH_INPUT", "mnist")
	batch := benchInt(b, "PROXYKIT_BENCH_BATCH", 100)
	shape := []int{1, 28, 28}
	if arch == "resnet" && input == "random" {
		shape = []int{3, 32, 32}
	}
	var net *nn.Network
	var err error
	switch arch {
	case "fmnist":
		net, err = nn.Reference(benchInt(b, "PROXYKIT_BENCH_WIDTH", 128), 2020)
	case "resnet":
		net, err = nn.ResNet(shape, benchInt(b, "PROXYKIT_BENCH_WIDTH", 16), 1, 10, 2020)
	default:
		b.Fatalf("PROXYKIT_BENCH_ARCH=%q: want fmnist or resnet", arch)
	}
	if err != nil {
		b.Fatal(err)
	}
	x, err := nn.NewTensor(append([]int{batch}, shape...)...)
	if err != nil {
		b.Fatal(err)
	}
	labels := make([]uint8, batch)
	switch input {
	case "mnist":
		d, err := data.Load(testutil.MNISTDir(b), data.MNIST, false)
		if err != nil {
			b.Fatal(err)
		}
		copy(x.Data, d.Images[:batch*784])
		copy(labels, d.Labels[:batch])
	case "random":
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range x.Data {
			x.Data[i] = rng.Float32()
		}
		for i := range labels {
			labels[i] = uint8(rng.IntN(10))
		}
	default:
		b.Fatalf("PROXYKIT_BENCH_INPUT=%q: want mnist or random", input)
	}
	return net, x, labels, fmt.Sprintf("%s, %s inputs, batch %d", net.Name, input, batch)
}

// timed runs f once untimed, then for at least the benchmark's seconds
// (once at least), and returns the seconds per run.
func timed(b *testing.B, f func()) float64 {
	f()
	minTime := time.Duration(benchInt(b, "PROXYKIT_BENCH_SECONDS", 20)) * time.Second
	n := 0
	start := time.Now()
	for n == 0 || time.Since(start) < minTime {
		f()
		n++
	}
	return time.Since(start).Seconds() / float64(n)
}

// printWork prints what the CPU backend's product kernels did.
func printWork(b *testing.B, be *compute.CPU) {
	for _, w := range be.Work() {
		b.Logf("  %s: %.1f%% of inputs active, %.1f%% of %.2f GFLOP skipped (%d of %d samples event-driven)",
			w.Kernel, 100*w.ActiveShare(), 100*w.Skipped(), 2*float64(w.DenseMACs)/1e9, w.EventSamples, w.Samples)
	}
}

// BenchmarkTrainStep times one proxy-learning step (ANN forward and
// backward, SNN forward over T = 15 steps with BN in training mode, Adam).
func BenchmarkTrainStep(b *testing.B) {
	net, x, labels, what := benchSetup(b)
	s := recipe.Default()
	snn, err := spiking.New(net, s.Config)
	if err != nil {
		b.Fatal(err)
	}
	be := compute.NewCPU()
	e, err := train.NewEngine(be, net, snn, x.Shape[0])
	if err != nil {
		b.Fatal(err)
	}
	defer e.Free()
	opt := train.NewAdam(s.LR, s.Beta1, s.Beta2, s.Eps, s.WeightDecay)
	defer opt.Free()
	sec := timed(b, func() {
		if _, err := e.Step(x, labels, true); err != nil {
			b.Fatal(err)
		}
		if err := opt.Update(be, net.Params()); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(float64(x.Shape[0])/sec, "images/s")
	b.Logf("proxykit %s kernels: training step, %s: %.2f images/s (%.3f s per step)", be.Kernels(), what, float64(x.Shape[0])/sec, sec)
	printWork(b, be)
}

// BenchmarkSNNInference times the SNN's T = 15 steps on a batch, and
// reports each IF layer's firing rate.
func BenchmarkSNNInference(b *testing.B) {
	net, x, _, what := benchSetup(b)
	bn := benchEnv("PROXYKIT_BENCH_BN", "eval")
	if bn != "eval" && bn != "batch" {
		b.Fatalf("PROXYKIT_BENCH_BN=%q: want eval or batch", bn)
	}
	batchStats := bn == "batch"
	what += ", BN " + bn
	snn, err := spiking.New(net, spiking.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	be := compute.NewCPU()
	n := x.Shape[0]
	if err := snn.Bind(be); err != nil {
		b.Fatal(err)
	}
	sim, err := spiking.NewSimulator(be, snn, n)
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Free()
	in, err := be.Adopt(x.Data)
	if err != nil {
		b.Fatal(err)
	}
	xv := nn.Value{Shape: x.Shape, Buf: in}
	run := func(rates bool) {
		if _, err := sim.Run(context.Background(), xv, batchStats, rates); err != nil {
			b.Fatal(err)
		}
	}
	run(true)
	rates, err := sim.Rates(n)
	if err != nil {
		b.Fatal(err)
	}
	sec := timed(b, func() { run(false) })
	b.ReportMetric(float64(n)/sec, "images/s")
	b.Logf("proxykit %s kernels: SNN inference, %s: %.2f images/s (%.3f s per batch)", be.Kernels(), what, float64(n)/sec, sec)
	var rs []string
	for i, name := range sim.IFNames() {
		rs = append(rs, fmt.Sprintf("%s %.1f%%", name, 100*rates[i]))
	}
	b.Logf("  firing rates: %s", strings.Join(rs, ", "))
	be.ResetWork()
	run(false)
	printWork(b, be)
}

// BenchmarkSgemm times compute.Sgemm (the CPU backend's GEMM) on square
// matrices of PROXYKIT_BENCH_SGEMM (default 2048) and reports GFLOP/s,
// the rate scripts/bench_cpu.sh prints beside torch.mm's.
func BenchmarkSgemm(b *testing.B) {
	n := benchInt(b, "PROXYKIT_BENCH_SGEMM", 2048)
	rng := rand.New(rand.NewPCG(3, 4))
	a, m, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i], m[i] = rng.Float32(), rng.Float32()
	}
	compute.Sgemm(false, false, n, n, n, 1, a, n, m, n, 0, c, n)
	b.ResetTimer()
	for range b.N {
		compute.Sgemm(false, false, n, n, n, 1, a, n, m, n, 0, c, n)
	}
	rate := 2 * float64(n) * float64(n) * float64(n) * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(rate, "GFLOP/s")
	b.Logf("proxykit %s kernels: compute.Sgemm %dx%d: %.1f GFLOP/s", compute.NewCPU().Kernels(), n, n, rate)
}
