package cuda_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// TestGraphReplayIsDirectRun: with Options.Graphs the emulated device
// captures a training step and an inference batch as graphs (recording
// the kernels, GEMMs and copies with their arguments, running nothing)
// and replays them; the weights, Adam's moments, losses and counts are
// bit for bit those of the same steps launched one kernel at a time, and
// each graph holds as many nodes as the direct step launches; with
// 16-bit spikes too (Options.HalfSpikes).
func TestGraphReplayIsDirectRun(t *testing.T) {
	for _, half := range []bool{false, true} {
		name := "float32"
		if half {
			name = "16-bit spikes"
		}
		t.Run(name, func(t *testing.T) { graphReplay(t, half) })
	}
}

func graphReplay(t *testing.T, half bool) {
	const B, T = 12, 4
	type run struct {
		params, counts []float32
		losses         []float64
		stepLaunches   int
		nodes          []int
		notCaptured    []string
	}
	do := func(graphs bool) run {
		be, err := cuda.Open(cuda.Options{Emulate: true, Graphs: graphs, HalfSpikes: half})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		ann, err := nn.Reference(4, 7)
		if err != nil {
			t.Fatal(err)
		}
		snn, err := spiking.New(ann, spiking.Config{Timesteps: T, Threshold: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := train.NewEngine(be, ann, snn, B)
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Free()
		opt := train.NewAdam(1e-3, 0.8, 0.99, 1e-8, 1e-6)
		rng := rand.New(rand.NewPCG(1, 2))
		x, _ := nn.NewTensor(B, 1, 28, 28)
		labels := make([]uint8, B)
		var r run
		for step := 0; step < 5; step++ {
			for i := range x.Data {
				x.Data[i] = rng.Float32()
			}
			for i := range labels {
				labels[i] = uint8(rng.IntN(10))
			}
			be.LogLaunches(true)
			be.ResetTraffic()
			res, err := eng.Step(x, labels, step < 3)
			if err != nil {
				t.Fatal(err)
			}
			r.stepLaunches = len(be.LaunchLog())
			be.LogLaunches(false)
			r.losses = append(r.losses, res.Loss)
			if err := opt.Update(be, ann.Params()); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			p, err := eng.Predict(context.Background(), x)
			if err != nil {
				t.Fatal(err)
			}
			r.counts = append(r.counts, p.Counts...)
		}
		// loading the inference program moved buffers, which dropped the
		// step's graphs: steps again, captured anew
		for step := 0; step < 3; step++ {
			if _, err := eng.Step(x, labels, false); err != nil {
				t.Fatal(err)
			}
		}
		r.nodes, r.notCaptured = be.Graphs()
		if err := eng.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := opt.Sync(); err != nil {
			t.Fatal(err)
		}
		for _, p := range ann.Params() {
			r.params = append(append(append(r.params, p.Data...), opt.M[p.Name]...), opt.V[p.Name]...)
		}
		return r
	}
	direct, replayed := do(false), do(true)
	same := func(a, b []float32) int {
		d := max(len(a), len(b)) - min(len(a), len(b))
		for i := range min(len(a), len(b)) {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				d++
			}
		}
		return d
	}
	if d := same(direct.params, replayed.params); d > 0 {
		t.Errorf("%d of %d weights and moments differ after replayed steps", d, len(direct.params))
	}
	if d := same(direct.counts, replayed.counts); d > 0 {
		t.Errorf("%d of %d counts differ after replayed inference", d, len(direct.counts))
	}
	for i := range direct.losses {
		if direct.losses[i] != replayed.losses[i] {
			t.Errorf("step %d: loss %v replayed, %v direct", i, replayed.losses[i], direct.losses[i])
		}
	}
	nodes, notCaptured := replayed.nodes, replayed.notCaptured
	if len(notCaptured) > 0 {
		t.Errorf("work that could not be captured: %v", notCaptured)
	}
	// the step in eval mode (captured again after inference moved buffers) and inference
	if len(nodes) != 2 {
		t.Fatalf("%d graphs (nodes %v), want 2: a step in eval mode, an inference batch", len(nodes), nodes)
	}
	found := false
	for _, n := range nodes {
		found = found || n == direct.stepLaunches
	}
	if !found {
		t.Errorf("graphs of %v nodes; a direct step (eval mode) launches %d", nodes, direct.stepLaunches)
	}
	if replayed.stepLaunches != direct.stepLaunches {
		t.Errorf("a replayed step counts %d launches, a direct one %d", replayed.stepLaunches, direct.stepLaunches)
	}
}
