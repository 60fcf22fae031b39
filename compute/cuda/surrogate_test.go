package cuda_test

import (
	"testing"

	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/train"
)

// TestLaunchesSurrogate holds leg 1 (the program: cuda.RunLaunches, what
// proxykit plan --method surrogate prices) to leg 2 (what the dry
// emulated device counts from the launches' own arguments) launch by
// launch for one surrogate-gradient step of the paper's network (full
// width, B = 100, T = 15, BatchNorm in training mode: its backward pass
// once per time step) and its Adam update, on each backend configuration
// (channels-last: the step lowered with its transposes, as the engine
// lowers it for a backend that asks).
func TestLaunchesSurrogate(t *testing.T) {
	const B, T = 100, 15
	ann, snn := paper(t, T)
	sg := lower.Surrogate{Alpha: 4}
	for _, c := range launchConfigs {
		dev := c.opt
		dev.WorkspaceBytes = 512 << 20
		be := dry(t, dev)
		eng, err := train.NewMethodEngine(be, ann, snn, B, train.Method{Surrogate: &sg})
		if err != nil {
			t.Fatal(err)
		}
		opt := train.NewAdam(1e-4, 0.8, 0.99, 1e-8, 1e-6)
		x, _ := nn.NewTensor(B, 1, 28, 28)
		labels := make([]uint8, B)
		for range 2 { // the second: workspaces and moments exist
			be.ResetTraffic()
			if _, err := eng.Step(x, labels, true); err != nil {
				t.Fatal(err)
			}
			if err := opt.Update(be, ann.Params()); err != nil {
				t.Fatal(err)
			}
		}
		counted := be.LaunchLog()
		eng.Free()
		opt.Free()
		step, update, err := lower.SurrogatePrograms(snn.Lowering(), sg, lower.Options{Capacity: B, BatchStats: true, ChannelsLast: c.opt.ChannelsLast})
		if err != nil {
			t.Fatal(err)
		}
		planned, err := cuda.RunLaunches(step.Program, step.Runs(B), gpu(c.opt))
		if err != nil {
			t.Fatal(err)
		}
		ul, err := cuda.RunLaunches(update.Program, update.Runs(B), gpu(c.opt))
		if err != nil {
			t.Fatal(err)
		}
		planned = append(planned, ul...)
		if c.name == launchConfigs[0].name {
			t.Logf("one surrogate step and its update: %d launches", len(planned))
		}
		sameLaunches(t, "surrogate step, "+c.name, planned, counted)
	}
}
