package train_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/proxykit/proxykit/internal/testutil"
)

// TestSameBitsOnAnyCoreCount: training gives bitwise identical weights and
// BatchNorm statistics whether it runs on 1, 2 or 7 cores, so that a run
// resumed on another machine continues exactly (no kernel splits a sum by
// the number of cores).
func TestSameBitsOnAnyCoreCount(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var want []float32
	for _, procs := range []int{1, 2, 7} {
		runtime.GOMAXPROCS(procs)
		// 3 steps with BN in training mode, then 3 with BN in eval mode
		s := newTrainer(t, testutil.Path("proxy/net.onnx"), 2).Settings
		s.MaxTrain, s.BatchSize = 150, 50
		s.Epochs = 2
		s.Augment, s.Shuffle = true, true
		tr := proxyTrainer(t, testutil.Path("proxy/net.onnx"), s)
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := state(tr)
		if want == nil {
			want = got
			continue
		}
		if !sameBits(got, want) {
			t.Errorf("GOMAXPROCS=%d: %d of %d values differ from the run on 1 core", procs, testutil.Differing(got, want), len(want))
		}
	}
}
