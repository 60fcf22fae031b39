package lower_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/spiking"
)

// TestLaunchesOfRandomGraphs holds what the program says the CUDA backend
// queues (cuda.RunLaunches over Lowered.Runs) to what the dry emulated
// device counts from each launch's own arguments, launch by launch, for
// the fuzzer's random graphs of every layer kind (half with a softmax
// head): the ANN's forward and
// backward passes and the SNN's passes (chunks of 2 of T = 5 steps, a
// short last one), BatchNorm in both modes, every layer's firing rates and
// synaptic operations counted, for a batch below the programs' capacity,
// and for a network of a grouped and an asymmetrically padded convolution;
// with convolutions on cuDNN (where the backend hands them there) and on
// im2col in chunks of a small workspace; in NCHW and channels-last.
func TestLaunchesOfRandomGraphs(t *testing.T) {
	const capacity, n = 4, 3
	configs := map[string]cuda.Options{
		"cudnn":                 {DryRunCuDNN: true},
		"im2col":                {WorkspaceBytes: 2048},
		"cudnn, channels-last":  {DryRunCuDNN: true, ChannelsLast: true},
		"im2col, channels-last": {WorkspaceBytes: 2048, ChannelsLast: true},
	}
	for seed := uint64(0); seed < 13; seed++ {
		var net *nn.Network
		switch {
		case seed == 12:
			net = odd()
		default:
			net = random(seed, int(4+seed))
			if seed%2 == 0 { // a softmax head, which the ANN computes and the SNN leaves out
				net.Layers = append(net.Layers, &nn.Softmax{LayerName: "softmax", Log: seed%4 == 0})
				net.Inputs = append(net.Inputs, []int{len(net.Layers) - 2})
			}
		}
		for name, opt := range configs {
			t.Run(fmt.Sprintf("%s/%s", net.Name, name), func(t *testing.T) {
				opt.Emulate, opt.DryRun = true, true
				be, err := cuda.Open(opt)
				if err != nil {
					t.Fatal(err)
				}
				defer be.Close()
				be.LogLaunches(true)
				snn, err := spiking.New(net, spiking.Config{Timesteps: 5, Threshold: 0.25})
				if err != nil {
					t.Fatal(err)
				}
				if err := snn.Bind(be); err != nil {
					t.Fatal(err)
				}
				defer snn.Release()
				for _, batchStats := range []bool{false, true} {
					ann, err := lower.ANN(net, lower.Options{Capacity: capacity, BatchStats: batchStats, Backward: true, ChannelsLast: opt.ChannelsLast})
					if err != nil {
						t.Fatal(err)
					}
					sim, err := lower.Simulation(snn.Lowering(), lower.SNNOptions{Options: lower.Options{Capacity: capacity, BatchStats: batchStats,
						ChannelsLast: opt.ChannelsLast}, Steps: 2, Rates: true, SynOps: true})
					if err != nil {
						t.Fatal(err)
					}
					for what, l := range map[string]*lower.Lowered{"ANN": ann, "SNN": sim} {
						planned, err := cuda.RunLaunches(l.Program, l.Runs(n), opt)
						if err != nil {
							t.Fatal(err)
						}
						counted := countRuns(t, be, l, n)
						if !reflect.DeepEqual(planned, counted) {
							t.Errorf("%s batchStats=%v: the program says %d launches, the device counted %d", what, batchStats, len(planned), len(counted))
							for i := 0; i < max(len(planned), len(counted)); i++ {
								var a, b compute.Launch
								if i < len(planned) {
									a = planned[i]
								}
								if i < len(counted) {
									b = counted[i]
								}
								if a != b {
									t.Logf("%d: program %+v, device %+v", i, a, b)
								}
							}
						}
					}
				}
			})
		}
	}
}

// odd is a network of the convolutions the backend never hands to cuDNN:
// a grouped one and one padded asymmetrically.
func odd() *nn.Network {
	g := &gen{rng: rand.New(rand.NewPCG(5, 6))}
	grouped := g.conv(2, 4, 3)
	grouped.Weight = g.param("grouped.weight", 0.3, 4, 1, 3, 3)
	grouped.Groups = 2
	last := g.add(&nn.ReLU{LayerName: "r0"}, g.add(grouped, -1))
	asym := g.conv(4, 3, 3)
	asym.PB, asym.PR = 0, 0
	last = g.add(&nn.ReLU{LayerName: "r1"}, g.add(asym, last))
	last = g.add(&nn.Flatten{LayerName: "flat"}, last)
	g.add(&nn.Linear{LayerName: "head", Weight: g.param("head.weight", 0.1, 4, g.shapes[last][0])}, last)
	return &nn.Network{Name: "grouped and asymmetric convolutions", InputShape: g.inputShape(), Layers: g.layers, Inputs: g.inputs}
}

// countRuns runs l's pass runs for a batch of n on the dry backend be
// twice and returns the launches be counted in the second (the first
// allocates the workspaces, which the backend zeroes).
func countRuns(t *testing.T, be *cuda.Backend, l *lower.Lowered, n int) []compute.Launch {
	t.Helper()
	m := program.NewMachine(be)
	defer m.Free()
	if err := m.Load(l.Program); err != nil {
		t.Fatal(err)
	}
	for _, r := range []program.Ref{l.Input, l.DY} {
		if r == program.None {
			continue
		}
		s := l.Slot(r)
		buf, err := be.Alloc(l.Capacity.Rows(s.Rate) * s.Numel())
		if err != nil {
			t.Fatal(err)
		}
		defer be.Free(buf)
		m.Bind(r, buf)
	}
	for range 2 {
		be.ResetTraffic()
		for _, r := range l.Runs(n) {
			if err := m.Run(l.Program, r.Pass, r.Dims); err != nil {
				t.Fatal(err)
			}
		}
	}
	return be.LaunchLog()
}
