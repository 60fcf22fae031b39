package spiking_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/spiking"
)

// TestClipTwinsAgainstPyTorch holds the SNN of networks with clipped ReLUs
// (ReLU6, Hardtanh(0, 1.5)), a channel shuffle, a channel slice and a
// Split, arithmetic with constants (normnet's input normalisation and
// scale-and-shift: Affine layers), and BatchNorm over a linear layer's
// features (mlp_bn1d, in the SNN's steps too), to a PyTorch simulation written from docs/design.md §1
// (scripts/make_zoo_fixtures.py) under both IF twins of a clipped ReLU —
// saturate: the layer's v_th is v_reset + its ceiling; relu: v_th as for
// a ReLU — on the CPU and the emulated device: every count equal (dyadic
// weights, so exact), every IF layer's firing rate torch's. The twins'
// counts differ from each other, so each comparison tells them apart.
// Each network is also run with every IF layer starting charged (charged).
func TestClipTwinsAgainstPyTorch(t *testing.T) {
	emu, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, name := range []string{"zoo/relu6net", "zoo/splitnet", "zoo/normnet", "zoo/mlp_bn1d"} {
		m, err := model.Load(testutil.Path(name + ".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		x := testutil.Array(t, name+".x.npy")
		var rates map[string][]float64
		if err := json.Unmarshal(testutil.ReadFile(t, name+".rates.json"), &rates); err != nil {
			t.Fatal(err)
		}
		counts := map[spiking.ClipTwin][]float32{}
		for _, twin := range spiking.ClipTwins() {
			want := testutil.Array(t, name+".snn_"+string(twin)+".npy")
			snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: 8, Threshold: 1, Clip: twin})
			if err != nil {
				t.Fatal(err)
			}
			for bname, be := range map[string]compute.Backend{"cpu": compute.NewCPU(), "cuda-emu": emu} {
				res, err := snn.RunOn(context.Background(), be, x, false, 0)
				if err != nil {
					t.Fatal(err)
				}
				if d := testutil.Differing(res.Counts.Data, want.Data); d != 0 {
					t.Errorf("%s %s on %s: %d of %d counts differ from torch's", name, twin, bname, d, len(want.Data))
				}
				if len(res.Rates) != len(rates[string(twin)]) {
					t.Fatalf("%s %s: %d IF layers, torch %d", name, twin, len(res.Rates), len(rates[string(twin)]))
				}
				for i, r := range res.Rates {
					if w := rates[string(twin)][i]; math.Abs(r-w) > 1e-9 {
						t.Errorf("%s %s on %s: IF layer %d fires at %.6f, torch %.6f", name, twin, bname, i, r, w)
					}
				}
				counts[twin] = res.Counts.Data
			}
		}
		d := testutil.Differing(counts[spiking.ClipSaturate], counts[spiking.ClipAsReLU])
		t.Logf("%s: the twins' counts differ in %d of %d", name, d, len(counts[spiking.ClipSaturate]))
		if d == 0 && name != "zoo/mlp_bn1d" { // the MLP has no clipped ReLU
			t.Errorf("%s: both twins give the same counts: the fixture cannot tell them apart", name)
		}
		charged(t, m, name, emu, counts)
	}
}

// charged holds the SNN of m (fixture name) started charged halfway to
// each IF layer's own v_th (Config.InitialCharge 0.5: v(0) = 0.5·v_th;
// under the saturating twin a clipped ReLU's layer starts at half its
// ceiling) to torch's counts, on the CPU and the emulated device; counts
// are each twin's counts uncharged, which they must differ from.
func charged(t *testing.T, m *model.Model, name string, emu compute.Backend, counts map[spiking.ClipTwin][]float32) {
	t.Helper()
	moved := 0
	for _, twin := range spiking.ClipTwins() {
		want := testutil.Array(t, name+".charged_"+string(twin)+".npy")
		moved += testutil.Differing(want.Data, counts[twin])
		snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: 8, Threshold: 1, Clip: twin, InitialCharge: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		for bname, be := range map[string]compute.Backend{"cpu": compute.NewCPU(), "cuda-emu": emu} {
			res, err := snn.RunOn(context.Background(), be, testutil.Array(t, name+".x.npy"), false, 0)
			if err != nil {
				t.Fatal(err)
			}
			if d := testutil.Differing(res.Counts.Data, want.Data); d != 0 {
				t.Errorf("%s %s charged 0.5 on %s: %d of %d counts differ from torch's", name, twin, bname, d, len(want.Data))
			}
		}
	}
	if t.Logf("%s: the charge moves %d counts of both twins", name, moved); moved == 0 {
		t.Errorf("%s: torch's charged counts equal the uncharged ones: the fixture cannot tell them apart", name)
	}
}

// TestClipThresholds: the IF layer of a clipped ReLU gets v_reset + c
// under the saturating twin, v_th under the other (the default); a ReLU's
// and the output layer's get v_th under both; an unknown twin is refused.
func TestClipThresholds(t *testing.T) {
	m, err := model.Load(testutil.Path("zoo/relu6net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for twin, want := range map[spiking.ClipTwin][]float32{"": {0.5, 0.5, 0.5, 0.5, 0.5}, spiking.ClipSaturate: {5.5, 1, 0.5, 5.5, 0.5},
		spiking.ClipAsReLU: {0.5, 0.5, 0.5, 0.5, 0.5}} {
		snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: 4, Threshold: 0.5, Reset: -0.5, Clip: twin})
		if err != nil {
			t.Fatal(err)
		}
		var got []float32
		for _, nd := range snn.Nodes {
			if nd.IF {
				got = append(got, nd.Threshold)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d IF layers, want %d", twin, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("twin %q: IF layer %d has v_th %g, want %g", twin, i, got[i], want[i])
			}
		}
	}
	if _, err := spiking.New(m.ANN, spiking.Config{Timesteps: 4, Threshold: 1, Clip: "floor"}); err == nil {
		t.Error("an unknown clip twin was accepted")
	}
}
