package lower_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/spiking"
)

// The lowering's own tests: graphs that stress its bookkeeping — views of
// views and of the pass's input, one value read by several nodes or twice
// by one, long skips over reused buffers, a BatchNorm read by an IF layer
// and an Add — and random graphs (FuzzLowering). Each network is held to
// three oracles: its ANN's outputs to a float64 evaluation of the layers'
// own math (nn.Layer.Reference) that shares nothing with the lowering;
// its gradients and its SNN's counts, bit for bit, to the program lowered
// without rewrites and with a buffer for every value (so that neither the
// rewrites nor the memory plan can change a result); and every program to
// its invariants (program.Program.Check).

// gen builds random networks.
type gen struct {
	rng    *rand.Rand
	layers []nn.Layer
	inputs [][]int
	shapes [][]int
	first  int // the first node after the static input layer
	n      int // layers made, for names
}

func (g *gen) param(name string, scale float64, shape ...int) *nn.Param {
	data := make([]float32, nn.Numel(shape))
	for i := range data {
		data[i] = float32(g.rng.NormFloat64() * scale)
	}
	return nn.NewParam(name, data, shape...)
}

// add appends l reading ins, returning its index.
func (g *gen) add(l nn.Layer, ins ...int) int {
	shapes := make([][]int, len(ins))
	for k, j := range ins {
		shapes[k] = g.shape(j)
	}
	out, err := l.OutputShape(shapes)
	if err != nil {
		panic(fmt.Sprintf("generator made an invalid %s: %v", nn.KindOf(l), err))
	}
	g.layers, g.inputs, g.shapes = append(g.layers, l), append(g.inputs, ins), append(g.shapes, out)
	return len(g.layers) - 1
}

func (g *gen) shape(j int) []int {
	if j < 0 {
		return g.inputShape()
	}
	return g.shapes[j]
}

func (g *gen) inputShape() []int { return []int{2, 6, 6} }

func (g *gen) name(kind string) string {
	g.n++
	return fmt.Sprintf("%s%d", kind, g.n)
}

func (g *gen) conv(c, o, k int) *nn.Conv2d {
	name := g.name("conv")
	return &nn.Conv2d{LayerName: name, Weight: g.param(name+".weight", 1/math.Sqrt(float64(c*k*k)), o, c, k, k),
		Bias: g.param(name+".bias", 0.1, o), SH: 1, SW: 1, PT: k / 2, PL: k / 2, PB: k / 2, PR: k / 2, DH: 1, DW: 1}
}

func (g *gen) bn(c int) *nn.BatchNorm2d {
	name := g.name("bn")
	b := &nn.BatchNorm2d{LayerName: name, Gamma: g.param(name+".weight", 0.3, c), Beta: g.param(name+".bias", 0.3, c),
		RunningMean: make([]float32, c), RunningVar: make([]float32, c), Eps: 1e-5, Momentum: 0.1}
	for i := range b.RunningVar {
		b.Gamma.Data[i] += 1
		b.RunningMean[i] = float32(g.rng.NormFloat64() * 0.1)
		b.RunningVar[i] = float32(0.5 + g.rng.Float64())
	}
	return b
}

// pick returns a node after the static input layer whose shape satisfies
// ok, or −1.
func (g *gen) pick(ok func(s []int) bool) int {
	var cands []int
	for j := g.first; j < len(g.layers); j++ {
		if ok(g.shapes[j]) {
			cands = append(cands, j)
		}
	}
	if len(cands) == 0 {
		return -1
	}
	return cands[g.rng.IntN(len(cands))]
}

// random makes a network: a static input layer (a convolution and
// perhaps a BatchNorm), a ReLU, then steps random nodes (every kind, a
// clipped ReLU, a channel shuffle, a channel slice and a constant affine
// map among them), each reading the
// node before it (so that every node feeds a later one) and joins reading
// an earlier node too, and a head down to 4 classes.
func random(seed uint64, steps int) *nn.Network {
	g := &gen{rng: rand.New(rand.NewPCG(seed, 7))}
	last := g.add(g.conv(2, 4, 3), -1)
	if g.rng.IntN(2) == 0 {
		last = g.add(g.bn(4), last)
	}
	last = g.add(&nn.ReLU{LayerName: g.name("relu")}, last)
	g.first = last
	for s := 0; s < steps; s++ {
		sh := g.shapes[last]
		spatial := len(sh) == 3
		switch op := g.rng.IntN(15); {
		case op == 0 && spatial:
			last = g.add(g.conv(sh[0], 1+g.rng.IntN(4), 1+2*g.rng.IntN(2)), last)
		case op == 1 && spatial && sh[1]*sh[2] >= 4:
			// not on 1×1 maps: statistics of the 3 samples' 3 values make
			// the normalisation ill-conditioned, so that float32 rounding,
			// multiplied by |x|/σ, exceeds the reference's tolerance
			// (FuzzLowering's corpus entry 830e86824cc097ab)
			last = g.add(g.bn(sh[0]), last)
		case op == 2:
			last = g.add(&nn.ReLU{LayerName: g.name("relu")}, last)
		case op == 3 && spatial && sh[1] >= 2 && sh[2] >= 2:
			last = g.add(&nn.Pool2d{LayerName: g.name("pool"), Max: g.rng.IntN(2) == 0, KH: 2, KW: 2, SH: 2, SW: 2}, last)
		case op == 4:
			other := g.pick(func(s []int) bool { return equal(s, sh) })
			last = g.add(&nn.Add{LayerName: g.name("add")}, last, other)
		case op == 5 && spatial:
			other := g.pick(func(s []int) bool { return len(s) == 3 && s[1] == sh[1] && s[2] == sh[2] })
			last = g.add(&nn.Concat{LayerName: g.name("cat")}, last, other)
		case op == 6 && spatial:
			last = g.add(&nn.Pad2d{LayerName: g.name("pad"), PT: 1, PL: 0, PB: 0, PR: 1}, last)
		case op == 7:
			last = g.add(&nn.Flatten{LayerName: g.name("flat")}, last)
		case op == 8 && !spatial:
			name := g.name("fc")
			o := 2 + g.rng.IntN(8)
			last = g.add(&nn.Linear{LayerName: name, Weight: g.param(name+".weight", 1/math.Sqrt(float64(sh[0])), o, sh[0]),
				Bias: g.param(name+".bias", 0.1, o)}, last)
		case op == 9 && spatial:
			last = g.add(&nn.GlobalAvgPool{LayerName: g.name("gap")}, last)
		case op == 10:
			last = g.add(&nn.ReLU{LayerName: g.name("relu")}, last)
		case op == 11:
			last = g.add(&nn.Clip{LayerName: g.name("clip"), Ceiling: 0.25 + g.rng.Float32()}, last)
		case op == 12 && spatial && sh[0]%2 == 0:
			groups := 2
			if sh[0]%3 == 0 && g.rng.IntN(2) == 0 {
				groups = 3
			}
			last = g.add(&nn.ChannelShuffle{LayerName: g.name("shuffle"), Groups: groups}, last)
		case op == 14:
			c := 1
			if g.rng.IntN(2) == 0 {
				c = sh[0]
			}
			scale, shift := make([]float32, c), make([]float32, c)
			for i := range scale {
				scale[i], shift[i] = float32(0.5+g.rng.Float64()), float32(0.3*g.rng.NormFloat64())
			}
			last = g.add(nn.NewAffine(g.name("affine"), scale, shift), last)
		case op == 13 && sh[0] >= 2:
			start := g.rng.IntN(sh[0] - 1)
			last = g.add(&nn.ChannelSlice{LayerName: g.name("slice"), Start: start, Stop: start + 1 + g.rng.IntN(sh[0]-start)}, last)
		}
	}
	if len(g.shapes[last]) != 1 {
		last = g.add(&nn.Flatten{LayerName: g.name("flat")}, last)
	}
	name := g.name("head")
	k := g.shapes[last][0]
	g.add(&nn.Linear{LayerName: name, Weight: g.param(name+".weight", 2/math.Sqrt(float64(k)), 4, k)}, last)
	return &nn.Network{Name: fmt.Sprintf("random-%d", seed), InputShape: g.inputShape(), Layers: g.layers, Inputs: g.inputs}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// reference evaluates net on x in float64, node by node, each by its
// layer's own math.
func reference(net *nn.Network, x []float64, n int, batchStats bool) []float64 {
	shapes, _ := net.Shapes()
	vals := make([][]float64, len(net.Layers))
	for i, l := range net.Layers {
		var xs [][]float64
		var in [][]int
		for _, j := range net.InputsOf(i) {
			if j < 0 {
				xs, in = append(xs, x), append(in, net.InputShape)
			} else {
				xs, in = append(xs, vals[j]), append(in, shapes[j])
			}
		}
		vals[i] = l.Reference(xs, in, n, batchStats)
	}
	return vals[len(vals)-1]
}

// input is n random images for net.
func input(net *nn.Network, n int, seed uint64) *nn.Tensor {
	rng := rand.New(rand.NewPCG(seed, 11))
	x, err := nn.NewTensor(append([]int{n}, net.InputShape...)...)
	if err != nil {
		panic(err) // a test network's input shape
	}
	for i := range x.Data {
		x.Data[i] = rng.Float32()
	}
	return x
}

// backends are the backends every case runs on.
func backends(t testing.TB) map[string]compute.Backend {
	emu, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return map[string]compute.Backend{"cpu": compute.NewCPU(), "cuda-emu": emu}
}

// checkNetwork holds net to the three oracles on be.
func checkNetwork(t testing.TB, be compute.Backend, net *nn.Network, n int) {
	t.Helper()
	if err := nn.Validate(net); err != nil {
		t.Fatalf("%s: %v", net.Name, err)
	}
	x := input(net, n, 1)
	x64 := make([]float64, len(x.Data))
	for i, v := range x.Data {
		x64[i] = float64(v)
	}
	for _, batchStats := range []bool{false, true} {
		// the ANN against the float64 reference
		plain, rewritten := run(t, be, net, x, batchStats, true), run(t, be, net, x, batchStats, false)
		want := reference(net, x64, n, batchStats)
		if i, d := offReference(rewritten.y, want); i >= 0 {
			t.Errorf("%s batchStats=%v: ANN output %d is %g, the float64 reference %g (off by %.3g)", net.Name, batchStats, i, rewritten.y[i], want[i], d)
		}
		// the memory plan and the rewrites change no bit
		for what, pair := range map[string][2][]float32{"output": {plain.y, rewritten.y}, "gradients": {plain.grads, rewritten.grads},
			"SNN counts": {plain.counts, rewritten.counts}} {
			if d := differ(pair[0], pair[1]); d > 0 {
				t.Errorf("%s batchStats=%v: %d of %d values of the %s differ from the plain program's", net.Name, batchStats, d, len(pair[0]), what)
			}
		}
	}
}

// result is what one lowering computed.
type result struct{ y, grads, counts []float32 }

// run runs net's ANN forward and backward passes (from dy = 1) and its SNN
// on x, lowered plainly (no rewrites, a buffer per value) or as usual,
// checking every program's invariants.
func run(t testing.TB, be compute.Backend, net *nn.Network, x *nn.Tensor, batchStats, plain bool) result {
	return runLowered(t, be, net, x, batchStats, lower.Options{NoRewrites: plain, Unshared: plain})
}

// runLowered is run with the programs lowered with lo's rewrite options
// (NoRewrites, Rules, Unshared, ChannelsLast).
func runLowered(t testing.TB, be compute.Backend, net *nn.Network, x *nn.Tensor, batchStats bool, lo lower.Options) result {
	t.Helper()
	n := x.Shape[0]
	var r result
	opt := lower.Options{Capacity: n, BatchStats: batchStats, Backward: true, NoRewrites: lo.NoRewrites, Rules: lo.Rules, Unshared: lo.Unshared,
		ChannelsLast: lo.ChannelsLast}
	if err := net.Bind(be); err != nil {
		t.Fatal(err)
	}
	net.Upload()
	e, err := lower.NewExecutor(be, net, opt)
	if err != nil {
		t.Fatalf("%s: %v", net.Name, err)
	}
	defer e.Free()
	if err := e.Program().Check(); err != nil {
		t.Fatalf("%s ANN program: %v", net.Name, err)
	}
	xb, err := be.Alloc(len(x.Data))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(xb)
	be.Upload(xb, x.Data)
	y, err := e.Forward(nn.Value{Shape: x.Shape, Buf: xb})
	if err != nil {
		t.Fatal(err)
	}
	r.y = download(t, be, y.Buf)
	dy, err := be.Alloc(y.Buf.Len())
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(dy)
	be.Fill(dy, 1)
	if err := e.Backward(nn.Value{Shape: y.Shape, Buf: dy}); err != nil {
		t.Fatal(err)
	}
	for _, p := range net.Params() {
		g, err := p.Grad()
		if err != nil {
			t.Fatal(err)
		}
		r.grads = append(r.grads, g...)
	}
	// the SNN, with a low threshold so that deep layers fire, its IF
	// neurons starting at v_reset or charged part of the way to v_th
	// (Config.InitialCharge: 0, 0.25, 0.5 or 0.75, as the graph's size
	// draws it, so that the fuzzer varies it)
	charge := float32(len(net.Layers)%4) / 4
	snn, err := spiking.New(net, spiking.Config{Timesteps: 5, Threshold: 0.25, InitialCharge: charge})
	if err != nil {
		t.Fatalf("%s: %v", net.Name, err)
	}
	if err := snn.Bind(be); err != nil {
		t.Fatal(err)
	}
	l, err := lower.Simulation(snn.Lowering(), lower.SNNOptions{Options: lower.Options{Capacity: n, BatchStats: batchStats, NoRewrites: lo.NoRewrites,
		Unshared: lo.Unshared, ChannelsLast: lo.ChannelsLast}, Steps: min(be.StepsAtOnce(5), 5)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("%s SNN program: %v", net.Name, err)
	}
	m := program.NewMachine(be)
	defer m.Free()
	if err := m.Load(l.Program); err != nil {
		t.Fatal(err)
	}
	m.Bind(l.Input, xb)
	if err := spiking.RunSteps(context.Background(), m, l, n, []int{5}, func(int) error { return nil }); err != nil {
		t.Fatal(err)
	}
	r.counts = download(t, be, spiking.Counts(m, l, n).Buf)
	if err := net.Release(); err != nil {
		t.Fatal(err)
	}
	return r
}

func download(t testing.TB, be compute.Backend, b compute.Buffer) []float32 {
	t.Helper()
	h := make([]float32, b.Len())
	if err := be.Download(h, b); err != nil {
		t.Fatal(err)
	}
	return h
}

func differ(a, b []float32) int {
	if len(a) != len(b) {
		return max(len(a), len(b))
	}
	d := 0
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			d++
		}
	}
	return d
}

// offReference finds an output further from the float64 reference than
// float32 arithmetic explains: by more than 1e-4 of the value plus 1e-5 of
// the outputs' scale (at least 1: activations are of order 1 by
// construction, and an output that is a small difference of such values
// carries their absolute error). It returns the output's index and the
// difference, or −1.
func offReference(got []float32, want []float64) (int, float64) {
	if len(got) != len(want) {
		return 0, math.Inf(1)
	}
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	for i, w := range want {
		if d := math.Abs(float64(got[i]) - w); !(d <= 1e-4*math.Abs(w)+1e-5*scale) {
			return i, d
		}
	}
	return -1, 0
}

func relErr(got []float32, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	return math.Sqrt(num / math.Max(den, 1e-30))
}

// TestLoweringCases: graphs that stress the lowering's bookkeeping.
func TestLoweringCases(t *testing.T) {
	cases := map[string]func(g *gen) int{
		// a view of a view of the pass's input (a .pt of Sequential(Flatten(),
		// Flatten(), Linear(...)) once made the planner index slot −1)
		"view of a view of the input": func(g *gen) int {
			a := g.add(&nn.Flatten{LayerName: "f1"}, -1)
			b := g.add(&nn.Flatten{LayerName: "f2"}, a)
			return g.add(&nn.Linear{LayerName: "fc", Weight: g.param("fc.weight", 0.2, 4, 72)}, b)
		},
		"Add(h, h)": func(g *gen) int {
			h := g.add(&nn.ReLU{LayerName: "r"}, g.add(g.conv(2, 3, 3), -1))
			s := g.add(&nn.Add{LayerName: "add"}, h, h)
			return g.add(&nn.GlobalAvgPool{LayerName: "gap"}, s)
		},
		"Concat(s, s)": func(g *gen) int {
			h := g.add(&nn.ReLU{LayerName: "r"}, g.add(g.conv(2, 3, 3), -1))
			s := g.add(&nn.Concat{LayerName: "cat"}, h, h)
			return g.add(g.conv(6, 2, 1), s)
		},
		"one value read by three nodes": func(g *gen) int {
			h := g.add(&nn.ReLU{LayerName: "r"}, g.add(g.conv(2, 3, 3), -1))
			a := g.add(g.conv(3, 3, 1), h)
			b := g.add(&nn.Pool2d{LayerName: "pool", Max: true, KH: 1, KW: 1, SH: 1, SW: 1}, h)
			s := g.add(&nn.Add{LayerName: "add1"}, a, b)
			return g.add(&nn.Add{LayerName: "add2"}, s, h)
		},
		"a long skip over reused buffers": func(g *gen) int {
			h := g.add(&nn.ReLU{LayerName: "r0"}, g.add(g.conv(2, 3, 3), -1))
			x := h
			for i := 0; i < 6; i++ {
				x = g.add(&nn.ReLU{LayerName: fmt.Sprintf("r%d", i+1)}, g.add(g.conv(3, 3, 3), x))
			}
			return g.add(&nn.Add{LayerName: "skip"}, x, h)
		},
		"a BatchNorm read by an IF layer and an Add": func(g *gen) int {
			h := g.add(&nn.ReLU{LayerName: "r0"}, g.add(g.conv(2, 3, 3), -1))
			b := g.add(g.bn(3), g.add(g.conv(3, 3, 3), h))
			r := g.add(&nn.ReLU{LayerName: "r1"}, b)
			return g.add(&nn.Add{LayerName: "add"}, r, b)
		},
	}
	for name, build := range cases {
		g := &gen{rng: rand.New(rand.NewPCG(3, 4))}
		last := build(g)
		if len(g.shapes[last]) != 1 {
			last = g.add(&nn.Flatten{LayerName: "flat"}, last)
		}
		k := g.shapes[last][0]
		g.add(&nn.Linear{LayerName: "head", Weight: g.param("head.weight", 1/math.Sqrt(float64(k)), 4, k)}, last)
		net := &nn.Network{Name: name, InputShape: g.inputShape(), Layers: g.layers, Inputs: g.inputs}
		for bname, be := range backends(t) {
			t.Run(name+"/"+bname, func(t *testing.T) { checkNetwork(t, be, net, 3) })
		}
	}
}

// FuzzLowering checks random graphs of every layer kind: the ANN against
// the float64 reference, the rewritten and planned programs against the
// plain ones bit for bit, every program's invariants. CI fuzzes for
// seconds (scripts/test.sh); a 10-minute run is a command in docs/testing.md.
func FuzzLowering(f *testing.F) {
	for seed := uint64(0); seed < 8; seed++ {
		f.Add(seed, uint8(4+seed))
	}
	cpu := compute.NewCPU()
	f.Fuzz(func(t *testing.T, seed uint64, steps uint8) {
		net := random(seed, int(steps%16))
		checkNetwork(t, cpu, net, 3)
	})
}

// TestRandomGraphsOnEveryBackend runs the fuzzer's seeds on the emulated
// device too.
func TestRandomGraphsOnEveryBackend(t *testing.T) {
	for name, be := range backends(t) {
		for seed := uint64(0); seed < 6; seed++ {
			net := random(seed, int(4+2*seed))
			t.Run(fmt.Sprintf("%s/%s", name, net.Name), func(t *testing.T) { checkNetwork(t, be, net, 3) })
		}
	}
}
