package lower_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/spiking"
)

// TestHalfSpikesPlaces holds where the 16-bit spikes rewrite applies: a
// bias-free convolution and linear layers over one IF layer's spikes —
// read through a flatten, and in channels-last through its transpose —
// whose currents only BatchNorm's statistics or an IF layer read; not
// where two layers read the same spikes, nor where an Add reads the
// currents. Each changed layer reads a 16-bit copy of its weight, in the
// training step's and the inference's SNN passes alike, and no other op
// than those that take binary16 operands touches an F16 slot.
func TestHalfSpikesPlaces(t *testing.T) {
	chain := func() *nn.Network {
		g := &gen{rng: rand.New(rand.NewPCG(16, 1))}
		h := g.add(&nn.ReLU{LayerName: "r0"}, g.add(g.conv(2, 4, 3), -1))
		c := g.conv(4, 4, 3)
		c.Bias = nil
		r := g.add(&nn.ReLU{LayerName: "r1"}, g.add(g.bn(4), g.add(c, h)))
		f := g.add(&nn.Flatten{LayerName: "flat"}, g.add(&nn.Pool2d{LayerName: "pool", Max: true, KH: 2, KW: 2, SH: 2, SW: 2}, r))
		l := g.add(&nn.Linear{LayerName: "fc1", Weight: g.param("fc1.weight", 0.3, 5, 36)}, f)
		// the head's bias goes into the output IF layer (FuseBiasIF)
		g.add(&nn.Linear{LayerName: "head", Weight: g.param("head.weight", 0.3, 3, 5), Bias: g.param("head.bias", 0.3, 3)},
			g.add(&nn.ReLU{LayerName: "r2"}, l))
		return &nn.Network{Name: "chain", InputShape: g.inputShape(), Layers: g.layers, Inputs: g.inputs}
	}
	branches := func() *nn.Network {
		g := &gen{rng: rand.New(rand.NewPCG(16, 2))}
		f := g.add(&nn.Flatten{LayerName: "flat"}, g.add(&nn.ReLU{LayerName: "r0"}, g.add(g.conv(2, 4, 3), -1)))
		a := g.add(&nn.Linear{LayerName: "a", Weight: g.param("a.weight", 0.1, 6, 144)}, f)
		b := g.add(&nn.Linear{LayerName: "b", Weight: g.param("b.weight", 0.1, 6, 144)}, f)
		r := g.add(&nn.ReLU{LayerName: "r1"}, g.add(&nn.Add{LayerName: "add"}, a, b))
		g.add(&nn.Linear{LayerName: "head", Weight: g.param("head.weight", 0.3, 3, 6)}, r)
		return &nn.Network{Name: "branches", InputShape: g.inputShape(), Layers: g.layers, Inputs: g.inputs}
	}
	for _, c := range []struct {
		name   string
		net    *nn.Network
		layers []string // the layers over 16-bit spikes
	}{
		{"chain", chain(), []string{"conv2", "fc1", "head"}},
		{"two linear layers over the same spikes, read by an Add", branches(), []string{"head"}},
	} {
		snn, err := spiking.New(c.net, spiking.Config{Timesteps: 4, Threshold: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, last := range []bool{false, true} {
			for _, train := range []bool{false, true} {
				programs, _, err := lower.Plan(c.net, snn.Lowering(), train, 3, 4, nil, lower.WithHalfSpikes(true), lower.WithChannelsLast(last))
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				p := programs[0].Program
				places := -1
				for _, a := range p.Rewrites {
					if a.Rule == lower.HalfSpikesRule {
						places = a.Places
					}
				}
				var got []string
				for _, op := range p.Ops {
					if w, ok := halfWeight(p, op); ok {
						got = append(got, p.Slot(w).Name)
					}
					checkHalfOperands(t, p, op)
				}
				var want []string
				for _, l := range c.layers {
					want = append(want, l+".weight"+map[bool]string{false: "", true: ".nhwc"}[last && l == "conv2"]+".f16")
				}
				if places != len(c.layers) || !slices.Equal(got, want) {
					t.Errorf("%s, channels-last %v, training %v: %d places, layers on 16-bit weights %v, want %d and %v",
						c.name, last, train, places, got, len(c.layers), want)
				}
			}
		}
	}
}

// halfWeight is the weight op reads where it is a convolution or linear
// layer on a binary16 weight.
func halfWeight(p *program.Program, op program.Op) (program.Ref, bool) {
	var w program.Ref
	switch o := op.(type) {
	case *program.Conv2d:
		w = o.W
	case *program.Linear:
		w = o.W
	default:
		return 0, false
	}
	return w, p.Slot(w).Elem == program.F16
}

// checkHalfOperands fails where op, which takes float32 operands only,
// touches an F16 slot: binary16 values go to the ops whose kernels read
// them (IF, BatchNorm statistics, convolutions, linear layers, Convert,
// Transpose) and, read as float32 anywhere else, would be garbage.
func checkHalfOperands(t *testing.T, p *program.Program, op program.Op) {
	t.Helper()
	switch op.(type) {
	case *program.IF, *program.BatchNormStats, *program.Conv2d, *program.Linear, *program.Convert, *program.Transpose:
		return
	}
	reads, writes := op.Operands()
	for _, r := range append(reads, writes...) {
		if s := p.Slot(r); s != nil && s.Elem != program.F32 {
			t.Errorf("%s touches %s, stored as %s", op.Kernel(), s.Name, s.Elem)
		}
	}
}
