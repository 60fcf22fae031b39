package train_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// BenchmarkProxyStep times one proxy-learning step (ANN forward and
// backward, SNN forward over T=15 steps, Adam) of the reference network on
// a batch of real MNIST digits, BN in training mode as in epoch 0.
// PROXYKIT_BENCH_WIDTH sets the width (default 128, the paper's) and
// PROXYKIT_BENCH_BATCH the batch (default 100). scripts/bench_cpu.sh runs
// it beside PyTorch's step on the same machine.
func BenchmarkProxyStep(b *testing.B) {
	width, batch := envInt("PROXYKIT_BENCH_WIDTH", 128), envInt("PROXYKIT_BENCH_BATCH", 100)
	d, err := data.Load(testutil.MNISTDir(b), data.MNIST, false)
	if err != nil {
		b.Fatal(err)
	}
	net, err := nn.Reference(width, 2020)
	if err != nil {
		b.Fatal(err)
	}
	s := recipe.Default()
	snn, err := spiking.New(net, s.Config)
	if err != nil {
		b.Fatal(err)
	}
	be := compute.NewCPU()
	e, err := train.NewEngine(be, net, snn, batch)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Free()
	opt := train.NewAdam(s.LR, s.Beta1, s.Beta2, s.Eps, s.WeightDecay)
	x := &nn.Tensor{Shape: []int{batch, 1, 28, 28}, Data: d.Images[:batch*784]}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Step(x, d.Labels[:batch], true); err != nil {
			b.Fatal(err)
		}
		if err := opt.Update(be, net.Params()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
