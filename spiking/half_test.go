package spiking_test

import (
	"context"
	"testing"

	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/spiking"
)

// TestHalfSpikesAgainstPyTorch holds the 16-bit spikes program
// (lower.Options.HalfSpikes, asked for by cuda.Options.HalfSpikes) on the
// emulated device to PyTorch: scripts/snn_half.py gives the reference
// network (fmnist_w8_bn) weights that binary16 cannot hold in its
// convolutions over spikes (testdata/half/model.onnx), and computes the
// SNN's counts in float32 (c32.npy) and with those convolutions on
// binary16 weights and outputs (torch's .half(); c16.npy). The float32
// sums of this network are exact, so the 16-bit counts must agree
// exactly; the float32 counts differ from them on many entries, so a
// program that rounded nothing, or rounded elsewhere, fails. NCHW and
// channels-last programs alike; float32 too (c32).
func TestHalfSpikesAgainstPyTorch(t *testing.T) {
	m, err := model.Load(testutil.Path("half/model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	c32, c16 := testutil.Array(t, "half/c32.npy").Data, testutil.Array(t, "half/c16.npy").Data
	if d := testutil.Differing(c32, c16); d < len(c16)/10 {
		t.Fatalf("PyTorch's float32 and 16-bit counts differ on %d of %d entries: too few to tell the programs apart", d, len(c16))
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
