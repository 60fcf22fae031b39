package cuda_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// stepGrads runs steps proxy steps of the paper's network at width 4 (B =
// 6, T = 4) on be, without updates, and returns the last step's result and
// the parameters' gradients.
func stepGrads(t *testing.T, be compute.Backend, steps int) (train.StepResult, []float32) {
	t.Helper()
	ann, err := nn.Reference(4, 2020)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := spiking.New(ann, spiking.Config{Timesteps: 4, Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := train.NewEngine(be, ann, snn, 6)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Free()
	x, _ := nn.NewTensor(6, 1, 28, 28)
	for i := range x.Data {
		x.Data[i] = float32(math.Abs(math.Sin(float64(i) * 0.37)))
	}
	labels := []uint8{3, 1, 4, 1, 5, 9}
	var r train.StepResult
	for range steps {
		if r, err = eng.Step(x, labels, true); err != nil {
			t.Fatal(err)
		}
	}
	var grads []float32
	for _, p := range ann.Params() {
		g, err := p.Grad()
		if err != nil {
			t.Fatal(err)
		}
		grads = append(grads, g...)
	}
	return r, grads
}

// TestChannelsLastFallback forces cuDNN to refuse every channels-last
// convolution (cuda.RefuseDNN; it refuses NCHW ones too, so that those run
// on the emulated device's im2col): each refused configuration — a
// geometry and a direction — gives one line of notice, once however often
// it runs, and runs in NCHW with transposes around it, computing the NCHW
// program's bits.
func TestChannelsLastFallback(t *testing.T) {
	var notices bytes.Buffer
	last, err := cuda.Open(cuda.Options{Emulate: true, ChannelsLast: true, Notices: &notices})
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	cuda.RefuseDNN(last)
	plain, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	want, wantGrads := stepGrads(t, plain, 1)
	got, gotGrads := stepGrads(t, last, 2) // the second step refuses nothing new
	if got != want {
		t.Errorf("step %+v, the NCHW program's %+v", got, want)
	}
	if len(gotGrads) != len(wantGrads) {
		t.Fatalf("%d gradients, want %d", len(gotGrads), len(wantGrads))
	}
	bad := 0
	for i := range wantGrads {
		if math.Float32bits(gotGrads[i]) != math.Float32bits(wantGrads[i]) {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d gradients differ from the NCHW program's", bad, len(wantGrads))
	}
	// the paper's three convolutions: forward and weight gradient each,
	// the data gradient of the two that have one
	lines := strings.Split(strings.TrimSpace(notices.String()), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		if !strings.HasPrefix(l, "proxykit: cuda-emu: cuDNN refused the channels-last convolution") || !strings.Contains(l, "it runs in NCHW") || seen[l] {
			t.Errorf("notice %q", l)
		}
		seen[l] = true
	}
	if len(lines) != 8 {
		t.Errorf("%d notices, want 8 (one per refused geometry and direction):\n%s", len(lines), notices.String())
	}
}
