package lower_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/spiking"
)

// The channels-last rewrite (Options.ChannelsLast) is held to the program
// it rewrites, bit for bit, on the CPU and on the emulated device, whose
// channels-last kernels compute their NCHW kernels' bits: the proxy step
// of the paper's network (narrow) and of a ResNet, and the fuzzer's random
// graphs of every layer kind (their ANN's executor keeps every value for
// its caller, which stays NCHW: transposes everywhere). Every program
// passes program.Program.Check, which holds each op to its operands'
// layouts.

// stepResult is what one proxy step computed.
type stepResult struct{ y, counts, grads []float32 }

// stepRun runs one proxy step of net's body and its SNN (T = 4) on x with
// labels, BatchNorm in training mode with batchStats, lowered with
// channelsLast or not; it returns the ANN's output, the counts and the
// parameters' gradients, and the lowered step.
func stepRun(t *testing.T, be compute.Backend, net *nn.Network, x *nn.Tensor, labels []float32, batchStats, channelsLast bool) (stepResult, *lower.Lowered) {
	t.Helper()
	const T = 4
	n := x.Shape[0]
	snn, err := spiking.New(net, spiking.Config{Timesteps: T, Threshold: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if err := snn.Bind(be); err != nil {
		t.Fatal(err)
	}
	defer snn.Release()
	net.Upload()
	body, _ := net.Body()
	l, err := lower.Step(body, snn.Lowering(), lower.SNNOptions{Options: lower.Options{Capacity: n, BatchStats: batchStats, ChannelsLast: channelsLast},
		Steps: min(be.StepsAtOnce(T), T)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("%s step, channelsLast %v: %v", net.Name, channelsLast, err)
	}
	m := program.NewMachine(be)
	defer m.Free()
	if err := m.Load(l.Program); err != nil {
		t.Fatal(err)
	}
	xb, err := be.Adopt(x.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(xb)
	lb, err := be.Adopt(labels)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(lb)
	m.Bind(l.Input, xb)
	m.Bind(l.Labels, lb)
	one := program.Dims{N: n, Steps: 1}
	if err := m.Run(l.Program, l.Forward, one); err != nil {
		t.Fatal(err)
	}
	if err := spiking.RunSteps(context.Background(), m, l, n, []int{T}, func(int) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(l.Program, l.Loss, one); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(l.Program, l.Backward, one); err != nil {
		t.Fatal(err)
	}
	var r stepResult
	r.y = download(t, be, m.Value(l.Program, l.Output, one))
	r.counts = download(t, be, spiking.Counts(m, l, n).Buf)
	for _, p := range body.Params() {
		g, err := p.Grad()
		if err != nil {
			t.Fatal(err)
		}
		r.grads = append(r.grads, g...)
	}
	return r, l
}

// paperNarrow is the paper's network at width 4.
func paperNarrow(t *testing.T) *nn.Network {
	net, err := nn.Reference(4, 2020)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// resNet8 is a narrow ResNet-8 on 3×12×12 images: strided convolutions,
// 1×1 projection shortcuts, residual joins, global average pooling.
func resNet8(t *testing.T) *nn.Network {
	net, err := nn.ResNet([]int{3, 12, 12}, 4, 1, 10, 2021)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// TestChannelsLastStep: the channels-last proxy step computes the NCHW
// step's ANN output, counts and gradients bit for bit, every convolution
// and the kernels beside it channels-last, with the SNN firing.
func TestChannelsLastStep(t *testing.T) {
	for _, net := range []*nn.Network{paperNarrow(t), resNet8(t)} {
		const n = 3
		x := input(net, n, 5)
		for i := range x.Data {
			x.Data[i] *= 2 // brighter: deep layers fire
		}
		labels := []float32{1, 7, 3}
		for name, be := range backends(t) {
			t.Run(net.Name+"/"+name, func(t *testing.T) {
				want, _ := stepRun(t, be, net, x, labels, true, false)
				got, l := stepRun(t, be, net, x, labels, true, true)
				for what, pair := range map[string][2][]float32{"ANN output": {want.y, got.y}, "counts": {want.counts, got.counts},
					"gradients": {want.grads, got.grads}} {
					if d := differ(pair[0], pair[1]); d > 0 {
						t.Errorf("%d of %d values of the %s differ from the NCHW step's", d, len(pair[0]), what)
					}
				}
				var fired float32
				for _, c := range want.counts {
					fired += c
				}
				if fired == 0 {
					t.Error("the SNN is silent: equal counts would prove nothing")
				}
				convs, last := 0, 0
				for _, op := range l.Ops {
					switch o := op.(type) {
					case *program.Conv2d:
						convs++
						if o.G.Layout.Last() {
							last++
						}
					case *program.Conv2dGrad:
						convs++
						if o.G.Layout.Last() {
							last++
						}
					}
				}
				if convs == 0 || last != convs {
					t.Errorf("%d of %d convolutions channels-last", last, convs)
				}
				if a := l.Rewrites[len(l.Rewrites)-1]; a.Rule != lower.ChannelsLastRule || a.Places == 0 {
					t.Errorf("rewrites %v: want the channels-last rewrite last, in some places", l.Rewrites)
				}
			})
		}
	}
}

// TestChannelsLastRandomGraphs: the fuzzer's random graphs of every layer
// kind (convolutions, BatchNorm, pooling, joins, padding, flattening,
// global pooling, linear layers) lowered channels-last give the NCHW
// programs' bits and pass Check: the proxy step (ANN output, counts,
// gradients) in both BatchNorm modes, and the ANN's executor, which keeps
// every value for its caller in NCHW (transposes around each convolution).
func TestChannelsLastRandomGraphs(t *testing.T) {
	for name, be := range backends(t) {
		for seed := uint64(0); seed < 8; seed++ {
			net := random(seed, int(4+2*seed))
			t.Run(fmt.Sprintf("%s/%s", name, net.Name), func(t *testing.T) {
				x := input(net, 3, 1)
				for _, batchStats := range []bool{false, true} {
					want, _ := stepRun(t, be, net, x, []float32{0, 3, 1}, batchStats, false)
					got, l := stepRun(t, be, net, x, []float32{0, 3, 1}, batchStats, true)
					for what, pair := range map[string][2][]float32{"ANN output": {want.y, got.y}, "counts": {want.counts, got.counts},
						"gradients": {want.grads, got.grads}} {
						if d := differ(pair[0], pair[1]); d > 0 {
							t.Errorf("step, batchStats=%v: %d of %d values of the %s differ from the NCHW step's", batchStats, d, len(pair[0]), what)
						}
					}
					if a := l.Rewrites[len(l.Rewrites)-1]; a.Places == 0 {
						t.Errorf("step, batchStats=%v: no op computes channels-last", batchStats)
					}
					plain := runLowered(t, be, net, x, batchStats, lower.Options{NoRewrites: true, Unshared: true})
					last := runLowered(t, be, net, x, batchStats, lower.Options{ChannelsLast: true})
					for what, pair := range map[string][2][]float32{"output": {plain.y, last.y}, "gradients": {plain.grads, last.grads},
						"SNN counts": {plain.counts, last.counts}} {
						if d := differ(pair[0], pair[1]); d > 0 {
							t.Errorf("executor, batchStats=%v: %d of %d values of the %s differ from the plain program's", batchStats, d, len(pair[0]), what)
						}
					}
				}
			})
		}
	}
}

// TestChannelsLastTransposes: in the paper's step the only layout changes
// are the ones its structure asks for — the two 128-channel convolutions'
// weights and weight gradients (the first convolution's weight, of one
// input channel, is the same in both layouts), the pooled values before
// the first linear layer in the ANN and in the SNN's time steps, and the
// gradient that layer hands back —, and a program where an NHWC value
// reaches an op without a channels-last kernel, or a reshaping view of one,
// fails Check.
func TestChannelsLastTransposes(t *testing.T) {
	net := paperNarrow(t)
	snn, err := spiking.New(net, spiking.Config{Timesteps: 4, Threshold: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := net.Body()
	l, err := lower.Step(body, snn.Lowering(), lower.SNNOptions{Options: lower.Options{Capacity: 5, BatchStats: true, ChannelsLast: true}, Steps: 4})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range l.Ops {
		if tr, ok := op.(*program.Transpose); ok {
			got = append(got, l.Slot(tr.X).Name+"→"+l.Slot(tr.Y).Name)
		}
	}
	want := []string{"conv.1.weight→conv.1.weight.nhwc", "conv.5.weight→conv.5.weight.nhwc", "conv.8→conv.8.nchw", "snn.conv.8→snn.conv.8.nchw",
		"conv.8.grad→conv.8.grad.nhwc", "conv.5.weight.grad.nhwc→conv.5.weight.grad", "conv.1.weight.grad.nhwc→conv.1.weight.grad"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("transposes\n%v\nwant\n%v", got, want)
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	// undo one transpose: the linear layer then reads channels-last values
	// through its flattening view
	for i, op := range l.Ops {
		if lin, ok := op.(*program.Linear); ok {
			lin.X = l.Values[11] // the flattening view of conv.8 (NHWC)
			if err := l.Check(); err == nil {
				t.Errorf("op %d: a linear layer reading a flattening view of channels-last memory passes Check", i)
			}
			break
		}
	}
}

// TestChannelsLastPreference: a backend asks for channels-last programs
// through lower.LayoutPreferrer, seen through a wrapper's Inner.
func TestChannelsLastPreference(t *testing.T) {
	if lower.PrefersChannelsLast(compute.NewCPU()) {
		t.Error("the CPU backend asks for channels-last")
	}
	cpu := compute.NewCPU()
	if !lower.PrefersChannelsLast(wrapped{cpu, prefers{cpu}}) || lower.PrefersChannelsLast(wrapped{cpu, cpu}) {
		t.Error("a wrapped backend's preference is not seen")
	}
}

// prefers is a backend that asks for channels-last.
type prefers struct{ compute.Backend }

func (prefers) ChannelsLast() bool { return true }

// wrapped is a backend wrapping inner (as package distributed's share of a
// batch wraps its rank's).
type wrapped struct {
	compute.Backend
	inner compute.Backend
}

func (w wrapped) Inner() compute.Backend { return w.inner }
