package lower_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/spiking"
)

// bnNet is a network with a BatchNorm in the SNN's time steps read by an
// IF layer alone, where FuseBatchNormIF applies.
func bnNet() *nn.Network { return smallNet(true, false) }

// smallNet is a static convolution (followed by a BatchNorm with
// staticBN, where FuseStaticBatchNormIF applies) and its ReLU, a
// convolution (followed by a BatchNorm with bn), a ReLU, a max-pooling and
// a linear head (with a bias without bn): without bn, the convolution's
// and the head's biases are read by IF layers alone, where FuseBiasIF
// applies.
func smallNet(bn, staticBN bool) *nn.Network {
	g := &gen{rng: rand.New(rand.NewPCG(5, 6))}
	s := g.add(g.conv(2, 4, 3), -1)
	if staticBN {
		s = g.add(g.bn(4), s)
	}
	h := g.add(&nn.ReLU{LayerName: "r0"}, s)
	b := g.add(g.conv(4, 4, 3), h)
	var bias *nn.Param
	if bn {
		b = g.add(g.bn(4), b)
	} else {
		bias = g.param("head.bias", 0.3, 4)
	}
	r := g.add(&nn.ReLU{LayerName: "r1"}, b)
	f := g.add(&nn.Flatten{LayerName: "flat"}, g.add(&nn.Pool2d{LayerName: "pool", Max: true, KH: 2, KW: 2, SH: 2, SW: 2}, r))
	g.add(&nn.Linear{LayerName: "head", Weight: g.param("head.weight", 0.3, 4, 36), Bias: bias}, f)
	return &nn.Network{Name: "small", InputShape: g.inputShape(), Layers: g.layers, Inputs: g.inputs}
}

// simulate runs net's SNN lowered with rules (nil: none) and returns its
// output counts, every IF layer's counts and the rewrites applied.
func simulate(t *testing.T, be compute.Backend, net *nn.Network, batchStats bool, rules []lower.Rule) (out, all []float32, applied []program.Applied) {
	t.Helper()
	snn, err := spiking.New(net, spiking.Config{Timesteps: 6, Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if err := snn.Bind(be); err != nil {
		t.Fatal(err)
	}
	defer snn.Release()
	x := input(net, 4, 2)
	xb, err := be.Alloc(len(x.Data))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(xb)
	be.Upload(xb, x.Data)
	opt := lower.SNNOptions{Options: lower.Options{Capacity: 4, BatchStats: batchStats, Rules: rules, NoRewrites: rules == nil},
		Steps: min(be.StepsAtOnce(6), 6), Rates: true}
	l, err := lower.Simulation(snn.Lowering(), opt)
	if err != nil {
		t.Fatal(err)
	}
	m := program.NewMachine(be)
	defer m.Free()
	if err := m.Load(l.Program); err != nil {
		t.Fatal(err)
	}
	m.Bind(l.Input, xb)
	if err := spiking.RunSteps(context.Background(), m, l, 4, []int{6}, func(int) error { return nil }); err != nil {
		t.Fatal(err)
	}
	out = download(t, be, spiking.Counts(m, l, 4).Buf)
	for _, r := range l.SNN.IFCounts {
		all = append(all, download(t, be, m.Value(l.Program, r, program.Dims{N: 4, Steps: 1}))...)
	}
	return out, all, l.Rewrites
}

// TestFusions: each fusion rule's program gives the plain program's bits
// on every backend, in both BatchNorm modes, with every IF layer firing.
func TestFusions(t *testing.T) {
	for _, c := range []struct {
		rule         lower.Rule
		places       int
		bn, staticBN bool
	}{
		{lower.FuseBatchNormIF(), 1, true, false},
		{lower.FuseStaticBatchNormIF(), 1, false, true},
		{lower.FuseBiasIF(), 3, false, false}, // the static convolution, the convolution and the head
		{lower.FuseIFMaxPool(), 1, true, false},
		{lower.StartIF(), 6, true, false}, // three IF layers' potentials and counts
	} {
		rule := c.rule
		for name, be := range backends(t) {
			for _, batchStats := range []bool{false, true} {
				net := smallNet(c.bn, c.staticBN)
				_, plain, _ := simulate(t, be, net, batchStats, nil)
				_, fused, applied := simulate(t, be, net, batchStats, []lower.Rule{rule})
				if len(applied) != 1 || applied[0].Places != c.places {
					t.Fatalf("%s %s: rewrites %v, want it in %d places", rule.Name, name, applied, c.places)
				}
				if d := differ(plain, fused); d > 0 {
					t.Errorf("%s %s batchStats=%v: %d of %d counts differ", rule.Name, name, batchStats, d, len(plain))
				}
				// r0, r1, output: each layer's share of the counts
				sizes := []int{4 * 4 * 36, 4 * 4 * 36, 4 * 4}
				off := 0
				for k, sz := range sizes[:2] {
					var s float32
					for _, v := range plain[off : off+sz] {
						s += v
					}
					if s == 0 {
						t.Errorf("%s: IF layer %d is silent: equal counts would prove nothing", name, k)
					}
					off += sz
				}
			}
		}
	}
}

// TestFuseReLU: the ANN's forward and backward passes with FuseReLU alone
// give the plain program's output and gradients bit for bit on every
// backend, in both BatchNorm modes, where it fuses two BatchNorms' maps
// (smallNet with BatchNorms) and two convolutions' biases (without; the
// head's bias, which no ReLU reads, stays).
func TestFuseReLU(t *testing.T) {
	for _, bn := range []bool{true, false} {
		for name, be := range backends(t) {
			for _, batchStats := range []bool{false, true} {
				net := smallNet(bn, bn)
				rules := []lower.Rule{lower.FuseReLU()}
				l, err := lower.ANN(net, lower.Options{Capacity: 3, BatchStats: batchStats, Backward: true, Rules: rules})
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Rewrites) != 1 || l.Rewrites[0].Places != 2 {
					t.Fatalf("bn=%v: rewrites %v, want FuseReLU in 2 places", bn, l.Rewrites)
				}
				x := input(net, 3, 1)
				plain := runLowered(t, be, net, x, batchStats, lower.Options{NoRewrites: true})
				fused := runLowered(t, be, net, x, batchStats, lower.Options{Rules: rules})
				for what, pair := range map[string][2][]float32{"output": {plain.y, fused.y}, "gradients": {plain.grads, fused.grads}} {
					if d := differ(pair[0], pair[1]); d > 0 {
						t.Errorf("%s bn=%v batchStats=%v: %d of %d values of the %s differ", name, bn, batchStats, d, len(pair[0]), what)
					}
				}
			}
		}
	}
}

// TestFuseReLUGrad: the ANN's backward pass with FuseReLUGrad alone gives
// the plain program's gradients bit for bit on every backend, in both
// BatchNorm modes, where the max-pooling's backward pass takes the
// gradient through the ReLU before it (smallNet's r1 and pool).
func TestFuseReLUGrad(t *testing.T) {
	for _, bn := range []bool{true, false} {
		for name, be := range backends(t) {
			for _, batchStats := range []bool{false, true} {
				net := smallNet(bn, bn)
				rules := []lower.Rule{lower.FuseReLUGrad()}
				l, err := lower.ANN(net, lower.Options{Capacity: 3, BatchStats: batchStats, Backward: true, Rules: rules})
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Rewrites) != 1 || l.Rewrites[0].Places != 1 {
					t.Fatalf("bn=%v: rewrites %v, want FuseReLUGrad in 1 place", bn, l.Rewrites)
				}
				x := input(net, 3, 1)
				plain := runLowered(t, be, net, x, batchStats, lower.Options{NoRewrites: true})
				fused := runLowered(t, be, net, x, batchStats, lower.Options{Rules: rules})
				zeros := 0
				for _, g := range plain.grads {
					if g == 0 {
						zeros++
					}
				}
				if zeros == len(plain.grads) {
					t.Fatalf("bn=%v: every gradient is 0: equal gradients would prove nothing", bn)
				}
				if d := differ(plain.grads, fused.grads); d > 0 {
					t.Errorf("%s bn=%v batchStats=%v: %d of %d gradients differ", name, bn, batchStats, d, len(plain.grads))
				}
			}
		}
	}
}

// TestNoGradFill: the ANN's backward pass with NoGradFill alone has no fill
// left (every parameter gradient is written by its backward op) and gives
// the plain program's gradients bit for bit on every backend, in both
// BatchNorm modes, with and without BatchNorm (convolutions, BatchNorms
// and the head, with and without biases).
func TestNoGradFill(t *testing.T) {
	for _, bn := range []bool{true, false} {
		for name, be := range backends(t) {
			for _, batchStats := range []bool{false, true} {
				net := smallNet(bn, bn)
				rules := []lower.Rule{lower.NoGradFill()}
				l, err := lower.ANN(net, lower.Options{Capacity: 3, BatchStats: batchStats, Backward: true, Rules: rules})
				if err != nil {
					t.Fatal(err)
				}
				k, _ := l.Program.Find(program.ANNBackward)
				for i := l.Passes[k].Lo; i < l.Passes[k].Hi; i++ {
					if _, ok := l.Ops[i].(*program.Fill); ok {
						t.Errorf("bn=%v: a fill is left in the backward pass: op %d", bn, i)
					}
				}
				want := 3 // two convolutions and the head
				if bn {
					want = 5 // and two BatchNorms
				}
				if len(l.Rewrites) != 1 || l.Rewrites[0].Places != want {
					t.Fatalf("bn=%v: rewrites %v, want NoGradFill in %d places", bn, l.Rewrites, want)
				}
				x := input(net, 3, 1)
				plain := runLowered(t, be, net, x, batchStats, lower.Options{NoRewrites: true})
				written := runLowered(t, be, net, x, batchStats, lower.Options{Rules: rules})
				if d := differ(plain.grads, written.grads); d > 0 {
					t.Errorf("%s bn=%v batchStats=%v: %d of %d gradients differ", name, bn, batchStats, d, len(plain.grads))
				}
			}
		}
	}
}

// TestFoldBatchNorm: the folded network (what the exporters write)
// computes the unfolded one's ANN outputs within float rounding, and the
// rule is refused where BatchNorm uses batch statistics.
func TestFoldBatchNorm(t *testing.T) {
	net := bnNet()
	x := input(net, 4, 3)
	cpu := compute.NewCPU()
	want, err := lower.Forward(cpu, net, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lower.ANN(net, lower.Options{Capacity: 4, Rules: []lower.Rule{lower.FoldBatchNorm()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Rewrites) != 1 || l.Rewrites[0].Places != 1 {
		t.Fatalf("rewrites %v, want the fold in one place", l.Rewrites)
	}
	for _, op := range l.Ops {
		if _, ok := op.(*program.ChannelAffine); ok {
			t.Errorf("a BatchNorm's affine map is left after folding")
		}
	}
	e, err := lower.NewExecutor(cpu, net, lower.Options{Capacity: 4, Rules: []lower.Rule{lower.FoldBatchNorm()}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	if err := net.Bind(cpu); err != nil {
		t.Fatal(err)
	}
	xb, _ := cpu.Adopt(x.Data)
	y, err := e.Forward(nn.Value{Shape: x.Shape, Buf: xb})
	if err != nil {
		t.Fatal(err)
	}
	got := download(t, cpu, y.Buf)
	w64 := make([]float64, len(want.Data))
	for i, v := range want.Data {
		w64[i] = float64(v)
	}
	if e := relErr(got, w64); e > 1e-5 {
		t.Errorf("folded output off the unfolded one by %.3g", e)
	}
	if _, err := lower.ANN(net, lower.Options{Capacity: 4, BatchStats: true, Rules: []lower.Rule{lower.FoldBatchNorm()}}); err == nil {
		t.Error("folding accepted with batch statistics")
	}
}

// TestFoldBatchNormUnfoldable: a BatchNorm that reads no convolution or
// linear layer of its own (here a ReLU's output) folds into an Affine
// layer of its per-channel map, which the program runs with its
// constants put on the backend as it loads (no network binds them): the
// outputs are the unfolded network's within float rounding.
func TestFoldBatchNormUnfoldable(t *testing.T) {
	g := &gen{rng: rand.New(rand.NewPCG(1, 2))}
	h := g.add(&nn.ReLU{LayerName: "r0"}, g.add(g.conv(2, 4, 3), -1))
	f := g.add(&nn.Flatten{LayerName: "f"}, g.add(g.bn(4), h))
	g.add(&nn.Linear{LayerName: "fc", Weight: g.param("fc.weight", 0.3, 3, 144)}, f)
	net := &nn.Network{Name: "bn after a ReLU", InputShape: g.inputShape(), Layers: g.layers, Inputs: g.inputs}
	x := input(net, 4, 3)
	cpu := compute.NewCPU()
	want, err := lower.Forward(cpu, net, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	nodes, _, places, err := lower.Fold(lower.NodesOf(net))
	if err != nil || places != 1 || nn.KindOf(nodes[2].Layer) != "Affine" {
		t.Fatalf("folded into %d places (%v), node 2 a %s; want one Affine", places, err, nn.KindOf(nodes[2].Layer))
	}
	e, err := lower.NewExecutor(cpu, net, lower.Options{Capacity: 4, Rules: []lower.Rule{lower.FoldBatchNorm()}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	xb, _ := cpu.Adopt(x.Data)
	y, err := e.Forward(nn.Value{Shape: x.Shape, Buf: xb})
	if err != nil {
		t.Fatal(err)
	}
	w64 := make([]float64, len(want.Data))
	for i, v := range want.Data {
		w64[i] = float64(v)
	}
	if e := relErr(download(t, cpu, y.Buf), w64); e > 1e-5 {
		t.Errorf("folded output off the unfolded one by %.3g", e)
	}
}

// TestStartPotential: an IF node starts at v_reset + q·(v_th − v_reset),
// rounded to float32 after each operation; uncharged, at v_reset itself,
// its sign of zero included, so that StartIF's fills are as before.
func TestStartPotential(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	for _, c := range []struct {
		s    lower.SNN
		th   float32
		want float32
	}{
		{lower.SNN{Reset: 0, InitialCharge: 0.5}, 2, 1},
		{lower.SNN{Reset: -1, InitialCharge: 0.25}, 1, -0.5},
		{lower.SNN{Reset: 0.1, InitialCharge: 0.1}, 0.3, 0.1 + float32(0.1*float32(float32(0.3)-0.1))},
		{lower.SNN{Reset: negZero}, 2, negZero},
	} {
		got := c.s.StartPotential(lower.Node{IF: true, Threshold: c.th})
		if math.Float32bits(got) != math.Float32bits(c.want) {
			t.Errorf("v_reset %g, charge %g, v_th %g: starts at %g, want %g", c.s.Reset, c.s.InitialCharge, c.th, got, c.want)
		}
	}
}
