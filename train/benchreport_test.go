package train_test

import (
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// TestBenchTime: from 0 (one measurement) to a day, in seconds; NaN,
// negative and longer times refused naming the setting.
func TestBenchTime(t *testing.T) {
	for s, want := range map[float64]time.Duration{0: 0, 0.25: 250 * time.Millisecond, 86400: 24 * time.Hour} {
		if got, err := train.BenchTime(s); err != nil || got != want {
			t.Errorf("%g s: %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []float64{-1e-9, 86400.5, math.NaN(), math.Inf(1)} {
		if _, err := train.BenchTime(s); err == nil || !strings.HasPrefix(err.Error(), "seconds must lie between 0") {
			t.Errorf("%g s: %v, want a refusal naming seconds", s, err)
		}
	}
}

// TestBenchReport: the report carries the measurement and what it ran:
// the network, its T, the batch, the cores Go runs on, a peak memory no
// smaller than the live heap, alone (no ranks);
// and a refusal of BenchRanks's comes back as it is.
func TestBenchReport(t *testing.T) {
	net, err := nn.Tiny(1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := spiking.DefaultConfig()
	cfg.Timesteps = 3
	snn, err := spiking.New(net, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := train.BenchReport(nil, compute.NewCPU(), snn, 4, 8, 0, nil, train.Method{})
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	switch {
	case b.Network != net.Name || b.Timesteps != 3 || b.BatchSize != 4:
		t.Errorf("network %q T=%d batch %d, want %q T=3 batch 4", b.Network, b.Timesteps, b.BatchSize, net.Name)
	case b.Cores != runtime.GOMAXPROCS(0) || b.DataParallel != "":
		t.Errorf("cores %d, ranks %q; want %d, alone", b.Cores, b.DataParallel, runtime.GOMAXPROCS(0))
	case b.PeakMemoryMB*(1<<20) < float64(ms.HeapAlloc):
		t.Errorf("peak memory %.1f MB below the live heap's %.1f MB", b.PeakMemoryMB, float64(ms.HeapAlloc)/(1<<20))
	case !(b.Result.InferImagesPerSec > 0) || !(b.Result.TrainImagesPerSec > 0):
		t.Errorf("no speeds: %+v", b.Result)
	}
	if _, err := train.BenchReport(nil, compute.NewCPU(), snn, 0, 8, 0, nil, train.Method{}); err == nil {
		t.Error("a batch of 0 is measured")
	}
}
