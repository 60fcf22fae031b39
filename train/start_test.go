package train_test

import (
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// TestStepStartsAfresh: each proxy step starts its SNN's neurons at their
// start potentials (v_reset, or charged: Config.InitialCharge), not where
// the previous step left them: two steps on one batch, with BatchNorm in
// eval mode and no optimizer between them, give the same loss, the same
// correct counts and every gradient bit for bit, uncharged and charged;
// and the charge changes the step (its loss differs).
func TestStepStartsAfresh(t *testing.T) {
	m, err := model.Load(testutil.Path("proxy/net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	x := testutil.Array(t, "proxy/x.npy")
	n, sz := 8, nn.Numel(x.Shape[1:])
	batch := &nn.Tensor{Shape: append([]int{n}, x.Shape[1:]...), Data: x.Data[:n*sz]}
	labels := []uint8{1, 2, 3, 4, 5, 6, 7, 8}
	losses := map[float32]float64{}
	for _, q := range []float32{0, 0.5} {
		snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: 4, Threshold: 2, InitialCharge: q})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := train.NewMethodEngine(compute.NewCPU(), m.ANN, snn, n, train.Method{})
		if err != nil {
			t.Fatal(err)
		}
		var grads [2][]float32
		var res [2]train.StepResult
		for k := range res {
			if res[k], err = eng.Step(batch, labels, false); err != nil {
				t.Fatal(err)
			}
			for _, p := range m.ANN.Params() {
				g, err := p.Grad()
				if err != nil {
					t.Fatal(err)
				}
				grads[k] = append(grads[k], g...)
			}
		}
		eng.Free()
		if res[0] != res[1] || testutil.Differing(grads[0], grads[1]) != 0 {
			t.Errorf("charge %g: a second step on the same batch differs: %+v then %+v, %d of %d gradients", q, res[0], res[1],
				testutil.Differing(grads[0], grads[1]), len(grads[0]))
		}
		losses[q] = res[0].Loss
	}
	if losses[0] == losses[0.5] {
		t.Errorf("the charge does not change the step's loss (%g): the test cannot tell the starts apart", losses[0])
	}
}
