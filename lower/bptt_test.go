package lower_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/spiking"
)

// The lowering of surrogate-gradient training (SurrogateStep). Its
// gradients are held to PyTorch in package train (the parity tests); here
// the program itself: its memory plan and its rewrites must not change a
// bit, no rewrite rule may touch its passes, what it keeps shows in the
// listing, and it refuses what it cannot train.

var sg = lower.Surrogate{Alpha: 4}

// surrogateStep runs one surrogate step of net's SNN (T = 5, a low
// threshold so that deep layers fire) on a batch of n, lowered with opt
// (Capacity set here), and returns the output counts and every
// parameter's gradient, in order.
func surrogateStep(t *testing.T, be compute.Backend, net *nn.Network, n int, opt lower.Options) (counts, grads []float32, l *lower.Lowered) {
	t.Helper()
	snn, err := spiking.New(net, spiking.Config{Timesteps: 5, Threshold: 0.25})
	if err != nil {
		t.Fatalf("%s: %v", net.Name, err)
	}
	if err := snn.Bind(be); err != nil {
		t.Fatal(err)
	}
	defer snn.Release()
	opt.Capacity = n
	l, err = lower.SurrogateStep(snn.Lowering(), sg, opt)
	if err != nil {
		t.Fatalf("%s: %v", net.Name, err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("%s surrogate program: %v", net.Name, err)
	}
	x := input(net, n, 3)
	xb, err := be.Adopt(x.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(xb)
	labels := make([]float32, n)
	for i := range labels {
		labels[i] = float32(i % 4)
	}
	lb, err := be.Adopt(labels)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(lb)
	m := program.NewMachine(be)
	defer m.Free()
	if err := m.Load(l.Program); err != nil {
		t.Fatal(err)
	}
	m.Bind(l.Input, xb)
	m.Bind(l.Labels, lb)
	d := program.Dims{N: n, Steps: 5}
	for _, k := range []int{l.Forward, l.Loss, l.Backward} {
		if err := m.Run(l.Program, k, d); err != nil {
			t.Fatal(err)
		}
	}
	counts = download(t, be, m.Value(l.Program, l.SNN.Counts, d))
	for _, p := range net.Params() {
		g, err := p.Grad()
		if err != nil {
			t.Fatal(err)
		}
		grads = append(grads, g...)
	}
	return counts, grads, l
}

// TestSurrogateStepPlan: on random graphs (joins, views, pooling,
// BatchNorm in both modes) and every backend, the surrogate step lowered
// as it runs — rewrite rules on, buffers shared by liveness — gives the
// bits of the plain program with a buffer for every value (and so does
// it lowered channels-last): what the forward pass keeps for the
// backward pass lives until it is read.
func TestSurrogateStepPlan(t *testing.T) {
	for name, be := range backends(t) {
		for seed := uint64(0); seed < 6; seed++ {
			for _, batchStats := range []bool{true, false} {
				net := random(seed, int(4+2*seed))
				t.Run(fmt.Sprintf("%s/%s/batchStats=%v", name, net.Name, batchStats), func(t *testing.T) {
					c0, g0, _ := surrogateStep(t, be, net, 3, lower.Options{BatchStats: batchStats, NoRewrites: true, Unshared: true})
					c1, g1, _ := surrogateStep(t, be, net, 3, lower.Options{BatchStats: batchStats})
					if d := differ(c0, c1); d > 0 {
						t.Errorf("%d of %d counts differ", d, len(c0))
					}
					if d := differ(g0, g1); d > 0 {
						t.Errorf("%d of %d gradients differ", d, len(g0))
					}
					// channels-last, as a CUDA backend asks for it: transposes
					// around the BPTT kernels, which compute in NCHW
					c2, g2, _ := surrogateStep(t, be, net, 3, lower.Options{BatchStats: batchStats, ChannelsLast: true})
					if d := differ(c0, c2); d > 0 {
						t.Errorf("channels-last: %d of %d counts differ", d, len(c0))
					}
					if d := differ(g0, g2); d > 0 {
						t.Errorf("channels-last: %d of %d gradients differ", d, len(g0))
					}
					nonzero := slices.ContainsFunc(g0, func(v float32) bool { return v != 0 })
					if !nonzero {
						t.Errorf("every gradient is 0")
					}
				})
			}
		}
	}
}

// TestNoRuleRewritesBPTT: rules that drop what backpropagation through
// time needs (a fused BatchNorm writes no normalised values, a fused IF
// and max-pooling no unpooled spikes) are valid only in the passes they
// name. No default rule names a BPTT pass, and a surrogate step lowered
// with every default rule, on networks where they apply to a simulation,
// is op for op the plain program.
func TestNoRuleRewritesBPTT(t *testing.T) {
	for _, r := range lower.Rules() {
		if slices.Contains(r.Passes, program.BPTTForward) || slices.Contains(r.Passes, program.BPTTBackward) {
			t.Errorf("rule %q rewrites a pass of backpropagation through time", r.Name)
		}
	}
	for _, net := range []*nn.Network{bnNet(), random(3, 10), random(5, 14)} {
		snn, err := spiking.New(net, spiking.Config{Timesteps: 4, Threshold: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		sim, err := lower.Simulation(snn.Lowering(), lower.SNNOptions{Options: lower.Options{Capacity: 2, BatchStats: true}, Steps: 4})
		if err != nil {
			t.Fatal(err)
		}
		simPlaces := 0
		for _, a := range sim.Rewrites {
			simPlaces += a.Places
		}
		plain, err := lower.SurrogateStep(snn.Lowering(), sg, lower.Options{Capacity: 2, BatchStats: true, NoRewrites: true})
		if err != nil {
			t.Fatal(err)
		}
		ruled, err := lower.SurrogateStep(snn.Lowering(), sg, lower.Options{Capacity: 2, BatchStats: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range ruled.Rewrites {
			if a.Places != 0 {
				t.Errorf("%s: rule %q rewrote %d places of the surrogate step", net.Name, a.Rule, a.Places)
			}
		}
		if len(plain.Ops) != len(ruled.Ops) {
			t.Fatalf("%s: %d ops with the rules, %d without", net.Name, len(ruled.Ops), len(plain.Ops))
		}
		for i := range plain.Ops {
			if !reflect.DeepEqual(plain.Ops[i], ruled.Ops[i]) {
				t.Errorf("%s: op %d is %s %s with the rules, %s %s without", net.Name, i, ruled.Ops[i].Kernel(), ruled.Ops[i].Detail(),
					plain.Ops[i].Kernel(), plain.Ops[i].Detail())
			}
		}
		t.Logf("%s: the default rules rewrite %d places of the simulation, none of the surrogate step", net.Name, simPlaces)
		if net.Name == "bn" && simPlaces == 0 {
			t.Errorf("bn: no rule applies to the simulation; the test proves nothing there")
		}
	}
}

// TestSurrogateStepKeepsTimeSteps: the surrogate step's listing shows its
// memory: at least, for every IF layer, T steps of spikes and of
// potentials before the spikes at the batch capacity, and about twice as
// much for twice the steps.
func TestSurrogateStepKeepsTimeSteps(t *testing.T) {
	net, err := nn.Reference(4, 1)
	if err != nil {
		t.Fatal(err)
	}
	bytes := func(T int) (got, floor int64) {
		snn, err := spiking.New(net, spiking.Config{Timesteps: T, Threshold: 2})
		if err != nil {
			t.Fatal(err)
		}
		list, err := lower.SurrogateStepListing(snn.Lowering(), sg, lower.Options{Capacity: 8, BatchStats: true})
		if err != nil {
			t.Fatal(err)
		}
		shapes, err := net.Shapes()
		if err != nil {
			t.Fatal(err)
		}
		for i, nd := range snn.Nodes {
			if !nd.IF || i < snn.Static {
				continue
			}
			floor += 2 * int64(T) * 8 * int64(nn.Numel(shapes[nd.Inputs[0]])) * 4
		}
		var kernels []string
		for _, ps := range list.Passes {
			kernels = append(kernels, ps.Kind)
		}
		if !slices.Contains(kernels, program.BPTTForward.String()) || !slices.Contains(kernels, program.BPTTBackward.String()) {
			t.Errorf("the listing's passes are %v", kernels)
		}
		return list.Totals.ActivationBytes, floor
	}
	b5, f5 := bytes(5)
	b10, f10 := bytes(10)
	t.Logf("activations: %.2f MB at T = 5 (IF layers' spikes and potentials %.2f MB), %.2f MB at T = 10", float64(b5)/1e6, float64(f5)/1e6, float64(b10)/1e6)
	if b5 < f5 || b10 < f10 {
		t.Errorf("the plan holds %d and %d bytes, less than the IF layers' %d and %d", b5, b10, f5, f10)
	}
	if r := float64(b10) / float64(b5); r < 1.8 || r > 2.1 {
		t.Errorf("twice the steps take %.2f times the memory", r)
	}
}

// lif is a neuron kind other than IF's ReLU, for the refusal.
type lif struct{ nn.ReLU }

func (l *lif) Info() nn.Info {
	i := l.ReLU.Info()
	i.Kind = "LIF"
	return i
}

// TestSurrogateStepRefuses: a neuron that is not an IF layer's ReLU is
// refused by name, and so is a rewrite of the network's nodes.
func TestSurrogateStepRefuses(t *testing.T) {
	net := bnNet()
	snn, err := spiking.New(net, spiking.Config{Timesteps: 3, Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	s := snn.Lowering()
	s.Nodes = slices.Clone(s.Nodes)
	s.Nodes[len(s.Nodes)-1].Layer = &lif{nn.ReLU{LayerName: "out"}}
	_, err = lower.SurrogateStep(s, sg, lower.Options{Capacity: 2})
	if err == nil || !strings.Contains(err.Error(), `LIF "out"`) || !strings.Contains(err.Error(), "IF neurons") {
		t.Errorf("another neuron kind: %v", err)
	}
	_, err = lower.SurrogateStep(snn.Lowering(), sg, lower.Options{Capacity: 2, Rules: []lower.Rule{lower.FoldBatchNorm()}})
	if err == nil || !strings.Contains(err.Error(), "fold") {
		t.Errorf("a graph rule: %v", err)
	}
	_, err = lower.SurrogateStep(snn.Lowering(), lower.Surrogate{}, lower.Options{Capacity: 2})
	if err == nil || !strings.Contains(err.Error(), "sharpness") {
		t.Errorf("α = 0: %v", err)
	}
}
