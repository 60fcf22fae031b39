package spiking_test

import (
	"context"
	"testing"

	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// TestHalfSpikesAgainstPyTorch holds the 16-bit spikes program
// (lower.Options.HalfSpikes, asked for by cuda.Options.HalfSpikes) on the
// emulated device to PyTorch: scripts/snn_half.py gives the reference
// network (fmnist_w8_bn) weights that binary16 cannot hold in its
// convolutions and linear layers over spikes (testdata/half/model.onnx),
// and computes the SNN's counts in float32 (c32.npy) and with those layers
// on binary16 weights and outputs (torch's .half(); c16.npy). The float32
// sums of this network are exact, so the 16-bit counts must agree
// exactly; the float32 counts, and those with 16-bit convolutions alone
// (c16conv.npy), differ from them on many entries, so a program that
// rounded nothing, or rounded elsewhere or in fewer layers, fails. NCHW and
// channels-last programs alike; float32 too (c32).
func TestHalfSpikesAgainstPyTorch(t *testing.T) {
	m, err := model.Load(testutil.Path("half/model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	c32, c16 := testutil.Array(t, "half/c32.npy").Data, testutil.Array(t, "half/c16.npy").Data
	c16conv := testutil.Array(t, "half/c16conv.npy").Data
	if d := testutil.Differing(c32, c16); d < len(c16)/10 {
		t.Fatalf("PyTorch's float32 and 16-bit counts differ on %d of %d entries: too few to tell the programs apart", d, len(c16))
	}
	if d := testutil.Differing(c16conv, c16); d < len(c16)/10 {
		t.Fatalf("PyTorch's counts with 16-bit convolutions alone and with 16-bit linear layers too differ on %d of %d entries: "+
			"too few to tell the programs apart", d, len(c16))
	}
	x := testutil.Array(t, "fmnist_w8_bn.x.npy")
	for _, opt := range []cuda.Options{{}, {HalfSpikes: true}, {HalfSpikes: true, ChannelsLast: true}} {
		opt.Emulate = true
		be, err := cuda.Open(opt)
		if err != nil {
			t.Fatal(err)
		}
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
		want := c32
		if opt.HalfSpikes {
			want = c16
		}
		d := testutil.Differing(res.Counts.Data, want)
		t.Logf("%s, channels-last %v: %d of %d counts differ from PyTorch's", what, opt.ChannelsLast, d, len(want))
		if d != 0 {
			t.Errorf("%s, channels-last %v: %d of %d counts differ from PyTorch's", what, opt.ChannelsLast, d, len(want))
		}
	}
}

// TestHalfSpikesWithSynOps: a simulation that also counts synaptic
// operations (as eval's sweeps and plots do) still runs the 16-bit program:
// the counting ops read float32 copies of the binary16 spikes, and the
// counts equal PyTorch's 16-bit ones as without counting.
func TestHalfSpikesWithSynOps(t *testing.T) {
	m, err := model.Load(testutil.Path("half/model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	c16 := testutil.Array(t, "half/c16.npy").Data
	x := testutil.Array(t, "fmnist_w8_bn.x.npy")
	be, err := cuda.Open(cuda.Options{Emulate: true, HalfSpikes: true})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	snn, err := spiking.New(m.ANN, spiking.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := snn.Bind(be); err != nil {
		t.Fatal(err)
	}
	sim, err := spiking.NewSimulator(be, snn, x.Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Free()
	if err := sim.CountSynOps(); err != nil {
		t.Fatal(err)
	}
	xb, err := be.Adopt(x.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(xb)
	counts, err := sim.Run(context.Background(), nn.Value{Shape: x.Shape, Buf: xb}, false, true)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, counts.Buf.Len())
	if err := be.Download(got, counts.Buf); err != nil {
		t.Fatal(err)
	}
	if d := testutil.Differing(got, c16); d != 0 {
		t.Errorf("counting synaptic operations: %d of %d counts differ from PyTorch's 16-bit ones", d, len(c16))
	}
	names, ops := sim.SynOps()
	total := 0.0
	for _, o := range ops {
		total += o
	}
	if len(names) == 0 || total <= 0 {
		t.Errorf("no synaptic operations counted: %v %v", names, ops)
	}
}
