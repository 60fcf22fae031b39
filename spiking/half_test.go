package spiking_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/spiking"
)

// TestHalfSpikesAgainstPyTorch holds the 16-bit spikes program
// (lower.Options.HalfSpikes, asked for by cuda.Options.HalfSpikes) on the
// emulated device to PyTorch: scripts/snn_half.py gives the reference
// network (fmnist_w8_bn) weights that binary16 cannot hold in its
// convolutions over spikes, and computes the SNN's counts in float32 and
// with those convolutions on binary16 weights and outputs (torch's
// .half()). Every float32 sum is exact, so the 16-bit counts must agree
// exactly; the float32 counts differ from them on many entries, so a
// program that rounded nothing, or rounded elsewhere, fails.
func TestHalfSpikesAgainstPyTorch(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(testutil.Dir(), "..", "scripts", "snn_half.py")
	cmd := exec.Command("/usr/bin/python3", script, testutil.Path("fmnist_w8_bn.onnx"), testutil.Path("fmnist_w8_bn.x.npy"), "15", "2", dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/snn_half.py: %v\n%s", err, b)
	}
	m, err := model.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []float32 {
		a, err := npy.ReadFile(filepath.Join(dir, name), false)
		if err != nil {
			t.Fatal(err)
		}
		return a.Data
	}
	c32, c16 := read("c32.npy"), read("c16.npy")
	if d := testutil.Differing(c32, c16); d < len(c16)/10 {
		t.Fatalf("PyTorch's float32 and 16-bit counts differ on %d of %d entries: too few to tell the programs apart", d, len(c16))
	}
	x := testutil.Array(t, "fmnist_w8_bn.x.npy")
	for _, opt := range []cuda.Options{{}, {HalfSpikes: true}, {HalfSpikes: true, ChannelsLast: true}} {
		opt.Emulate = true
		half := opt.HalfSpikes
		be, err := cuda.Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		snn, err := spiking.New(m.ANN, spiking.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		res, err := snn.RunOn(context.Background(), be, x, false, 0)
		be.Close()
		if err != nil {
			t.Fatalf("%s: %v", be.Precision(), err)
		}
		want := c32
		if half {
			want = c16
		}
		d := testutil.Differing(res.Counts.Data, want)
		t.Logf("%s, channels-last %v: %d of %d counts differ from PyTorch's", be.Precision(), opt.ChannelsLast, d, len(want))
		if d != 0 {
			t.Errorf("%s, channels-last %v: %d of %d counts differ from PyTorch's", be.Precision(), opt.ChannelsLast, d, len(want))
		}
	}
}
