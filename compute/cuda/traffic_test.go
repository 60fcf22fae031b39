package cuda_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/gpumodel"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// budget is the design's arithmetic for one proxy step (docs/design.md §4,
// §5): what each kernel must read and write, in values, and the launches
// it needs, outside the libraries; and the libraries' calls with their
// arithmetic, on a GPU with cuDNN. Rows: B in the ANN and the static input
// layer, T·B after it. A per-channel vector counts like any value. Values
// are float32 (4 bytes) unless said.
type budget struct {
	launches, bytes  int64
	gemms, gemmFLOPs int64            // cuBLAS
	dnn              map[string]int64 // cuDNN calls by direction
	dnnFLOPs         int64
}

// add counts launches moving float32 values.
func (b *budget) add(launches int, values int64) { b.addBytes(launches, 4*values) }

// addBytes counts launches moving bytes.
func (b *budget) addBytes(launches int, bytes int64) {
	b.launches += int64(launches)
	b.bytes += bytes
}

// stepBudget walks the paper's network: the ANN's forward and backward
// passes in BatchNorm's training mode, the SNN's T steps (BatchNorm fused
// into the IF layer reading it, the max-pooling after an IF layer computed
// in its kernel, the potentials and counts started by the IF kernels
// themselves, the static input layer once), the loss, the gradients'
// zeroing and Adam. With last, the program is channels-last (lower's
// channelsLast): every kernel moves the same values, and transposes are
// added where the layouts meet — a convolution's weight of more than one
// input channel and tap to [O, KH, KW, C] before the forward pass and its
// gradient back after the backward pass, and the flattened values before
// the first linear layer (ANN and SNN) and their gradient after it. With
// half (lower's halfSpikes), the SNN's convolutions and linear layers
// over spikes read binary16 spikes and a binary16 copy of their weight
// (converted once a step) and write binary16 currents: the IF layers
// writing those spikes and reading those currents, the statistics of the
// currents and channels-last's copy of the spikes before the first linear
// layer move 2 bytes a value there.
func stepBudget(t *testing.T, ann *nn.Network, snn *spiking.Network, B, T int64, last, half bool) budget {
	b := budget{dnn: map[string]int64{}}
	shapes, err := ann.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	in := func(i int) int64 { // per-sample values read by layer i
		if i == 0 {
			return int64(nn.Numel(ann.InputShape))
		}
		return int64(nn.Numel(shapes[i-1]))
	}
	out := func(i int) int64 { return int64(nn.Numel(shapes[i])) }
	// weights is a convolution's or linear layer's weight values (its
	// multiply-adds per output position); a bias has no budget here
	weights := func(l nn.Layer) int64 {
		ps := l.Params()
		if len(ps) != 1 {
			t.Fatalf("no budget for %s with a bias", nn.NameOf(l))
		}
		return int64(len(ps[0].Data))
	}
	conv := func(dir string, rows int64, l nn.Layer, outValues, outChannels int64) {
		b.dnn[dir]++
		b.dnnFLOPs += 2 * rows * outValues * (weights(l) / outChannels)
	}
	gemm := func(rows int64, l nn.Layer) {
		b.gemms++
		b.gemmFLOPs += 2 * rows * weights(l)
	}
	// laidOut: node i's [C H W] values differ between the layouts
	laidOut := func(s []int) bool { return len(s) == 3 && s[0] > 1 && s[1]*s[2] > 1 }
	for i, l := range ann.Layers { // chains: the ANN's forward, then backward
		switch nn.KindOf(l) {
		case "BatchNorm2d":
			c := int64(shapes[i][0])
			// statistics (x; mean and variance out), running update (both
			// and the running pair in, the pair out), scale and shift (γ, β,
			// mean, variance; scale, shift out), affine map (x, scale, shift;
			// y out)
			b.add(4, 3*B*in(i)+(2*c)+(4*c+2*c)+(4*c+2*c)+2*c)
			// backward: sums (x, dy, mean, variance; dγ and dβ written, not
			// added into — NoGradFill —, and the two sums out), dx (x, dy, γ,
			// mean, variance, the sums; dx out)
			b.add(2, 5*B*in(i)+(2*c+4*c)+5*c)
		case "ReLU":
			if i == 0 || nn.KindOf(ann.Layers[i-1]) != "BatchNorm2d" { // else the BatchNorm's map writes the ReLU (FuseReLU)
				b.add(1, 2*B*in(i))
			}
			if i+1 == len(ann.Layers) || nn.KindOf(ann.Layers[i+1]) != "MaxPool2d" { // else the pooling's gradient goes through it (FuseReLUGrad)
				b.add(1, 3*B*in(i))
			}
		case "MaxPool2d":
			b.add(1, B*(in(i)+out(i)))
			if i > 0 {
				b.add(1, B*(2*in(i)+out(i)))
			}
		case "Conv2d": // cuDNN: forward; backward filter, and data where the input has a gradient
			o := int64(shapes[i][0])
			if c := l.(*nn.Conv2d); last && c.Weight.Shape[1] > 1 && c.Weight.Shape[2]*c.Weight.Shape[3] > 1 {
				b.add(2, 4*weights(l)) // the weight transposed, its gradient transposed back
			}
			conv(compute.CallConvForward, B, l, out(i), o)
			conv(compute.CallConvBackwardFilter, B, l, out(i), o)
			if i > 0 {
				conv(compute.CallConvBackwardData, B, l, out(i), o)
			}
		case "Linear": // cuBLAS: forward; weight gradient, and input gradient where it has one
			gemm(B, l)
			gemm(B, l)
			if i > 0 {
				gemm(B, l)
			}
		case "Flatten": // a view; channels-last, an NCHW copy, and the gradient's channels-last copy
			if last && laidOut(shapes[i-1]) {
				b.add(2, 4*B*in(i))
			}
		default:
			t.Fatalf("no budget for %s", nn.KindOf(l))
		}
	}
	nodes := snn.Nodes
	// pooledIF: the IF layers whose only reader is a max-pooling, computed
	// in their kernel (its windows tile the planes: the paper's 2×2)
	pooledIF := map[int]bool{}
	for _, nd := range nodes {
		if nd.Kind() == "MaxPool2d" && nodes[nd.Inputs[0]].IF {
			pooledIF[nd.Inputs[0]] = true
		}
	}
	// spikesOf: the node whose output node j reads, through a flatten (a
	// view), the IF layer for max-pooled spikes
	spikesOf := func(j int) int {
		src := nodes[j].Inputs[0]
		if src >= 0 && nodes[src].Kind() == "Flatten" {
			src = nodes[src].Inputs[0]
		}
		if src >= 0 && nodes[src].Kind() == "MaxPool2d" && pooledIF[nodes[src].Inputs[0]] {
			return nodes[src].Inputs[0]
		}
		return src
	}
	// halfLayer: with half, the SNN's convolutions over spikes read by a
	// BatchNorm and its linear layers over spikes read by an IF layer;
	// halfSpikes: the IF layers writing those spikes
	halfLayer, halfSpikes := map[int]bool{}, map[int]bool{}
	for i, nd := range nodes {
		if !half || i < snn.Static || (nd.Kind() != "Conv2d" && nd.Kind() != "Linear") || spikesOf(i) < 0 || !nodes[spikesOf(i)].IF {
			continue
		}
		for _, r := range nodes {
			if r.Inputs[0] == i && (nd.Kind() == "Conv2d" && r.Kind() == "BatchNorm2d" || nd.Kind() == "Linear" && r.IF) {
				halfLayer[i], halfSpikes[spikesOf(i)] = true, true
			}
		}
	}
	size := func(binary16 bool) int64 { // bytes of a value
		if binary16 {
			return 2
		}
		return 4
	}
	for i, nd := range nodes {
		shape := shapeOf(t, ann, shapes, i)
		n := int64(nn.Numel(shape))
		rows := T * B
		if i < snn.Static {
			rows = B
		}
		switch {
		case nd.IF:
			src := nd.Inputs[0]
			var read int64
			switch {
			case src < snn.Static:
				read = 4 * B * n // the static layer's output, once
			case nodes[src].Kind() == "BatchNorm2d":
				read = rows * n * size(halfLayer[nodes[src].Inputs[0]]) // one current per step
			case nodes[src].Kind() == "Linear":
				read = rows * n * size(halfLayer[src])
			default:
				read = 4 * rows * n
			}
			if src >= 0 && nodes[src].Kind() == "BatchNorm2d" && src < snn.Static {
				// the static layer's BatchNorm applied by the constant-input
				// IF kernel: its scale and shift
				read += 4 * 2 * int64(shape[0])
			}
			if src >= 0 && nodes[src].Kind() == "BatchNorm2d" && src >= snn.Static {
				// fused: per-step statistics (T rows of C) of the currents,
				// the running update step by step, per-step scale and shift,
				// which the IF kernel reads
				c := int64(shape[0])
				b.addBytes(1, read+4*2*T*c)
				b.add(2, (2*T*c+2*c+2*c)+(2*c+2*T*c+2*T*c))
				read += 4 * 2 * T * c
			}
			spikes := rows * n * size(halfSpikes[i])
			if pooledIF[i] {
				spikes /= 4 // the max-pooled spikes, 2×2
			}
			// input, potentials out (they start at v_reset, unread: one
			// chunk of all T steps), spikes
			b.addBytes(1, read+4*B*n+spikes)
			if i == len(nodes)-1 {
				b.bytes += 4 * B * n // counts out (they start at 0, unread)
			}
		case nd.Kind() == "BatchNorm2d":
			if i < snn.Static {
				// statistics, running update, scale and shift, as in the ANN;
				// the IF layer reading the static layer's output applies them
				// (the paper's static BatchNorm has no other reader)
				c := int64(shape[0])
				b.add(3, rows*n+(2*c)+(4*c+2*c)+(4*c+2*c))
			} // else fused into its IF layer
		case nd.Kind() == "MaxPool2d":
			if !pooledIF[nd.Inputs[0]] {
				b.add(1, rows*(int64(nn.Numel(shapeOf(t, ann, shapes, nd.Inputs[0])))+n))
			}
		case nd.Kind() == "Conv2d":
			if halfLayer[i] { // the weight's binary16 copy
				b.addBytes(1, (4+2)*weights(nd.Layer))
			}
			conv(compute.CallConvForward, rows, nd.Layer, n, int64(shape[0]))
		case nd.Kind() == "Linear":
			if halfLayer[i] { // the weight's binary16 copy
				b.addBytes(1, (4+2)*weights(nd.Layer))
			}
			gemm(rows, nd.Layer)
		case nd.Kind() == "Flatten": // channels-last: the spikes' NCHW copy (binary16 where they are)
			if src := shapeOf(t, ann, shapes, nd.Inputs[0]); last && laidOut(src) {
				b.addBytes(1, 2*rows*int64(nn.Numel(src))*size(halfSpikes[spikesOf(i)]))
			}
		default:
			t.Fatalf("no budget for the SNN's %s", nd.Kind())
		}
	}
	k := int64(nn.Numel(shapes[len(shapes)-1]))
	b.add(1, 2*B*k+B) // the proxy loss's gradient: counts and labels in
	for _, p := range ann.Params() {
		n := int64(len(p.Data))
		b.add(1, 7*n) // Adam: parameter, gradient, two moments (the gradient written by its backward op: no fill, NoGradFill)
	}
	return b
}

// shapeOf is SNN node i's per-sample output shape (the output IF layer's
// is the last layer's).
func shapeOf(t *testing.T, ann *nn.Network, shapes [][]int, i int) []int {
	if i < 0 {
		return ann.InputShape
	}
	return shapes[min(i, len(shapes)-1)]
}

// TestTrafficBudget counts, on the emulated device without running (a dry
// run), one steady-state proxy step of the paper's network at full width,
// batch 100, T = 15, and holds its launches and the bytes of proxykit's own
// kernels to the design's arithmetic (stepBudget): a change that adds a
// launch or traffic around the libraries fails here, without a GPU.
func TestTrafficBudget(t *testing.T) {
	const B, T = 100, 15
	be, err := cuda.Open(cuda.Options{Emulate: true, DryRun: true, WorkspaceBytes: 512 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ann, err := nn.Reference(128, 2020)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := spiking.New(ann, spiking.Config{Timesteps: T, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := train.NewEngine(be, ann, snn, B)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Free()
	opt := train.NewAdam(1e-4, 0.8, 0.99, 1e-8, 1e-6)
	x, _ := nn.NewTensor(B, 1, 28, 28)
	labels := make([]uint8, B)
	for step := 0; step < 2; step++ { // the second: workspaces and moments exist
		be.ResetTraffic()
		if _, err := eng.Step(x, labels, true); err != nil {
			t.Fatal(err)
		}
		if err := opt.Update(be, ann.Params()); err != nil {
			t.Fatal(err)
		}
	}
	c := be.Traffic()
	launches, bytes := c.Glue(cuda.ConvKernels) // on a GPU, cuDNN's work
	want := stepBudget(t, ann, snn, B, T, false, false)
	t.Logf("one proxy step: %d launches and %.1f MB around the libraries (budget %d and %.1f MB); %d GEMMs, %.0f GFLOP",
		launches, float64(bytes)/1e6, want.launches, float64(want.bytes)/1e6, c.Calls["cublas gemm"], float64(c.GemmFLOPs)/1e9)
	if launches > want.launches {
		t.Errorf("%d launches, the design's budget is %d: %v", launches, want.launches, c.Launches)
	}
	if bytes > want.bytes {
		t.Errorf("%.1f MB around the libraries, the design's budget is %.1f MB", float64(bytes)/1e6, float64(want.bytes)/1e6)
	}
}

// TestLaunchLog counts one proxy step of a narrow paper network on the dry
// emulated device, with convolutions on im2col and as cuDNN calls: the
// launch log sums to the aggregate count, and the cuDNN calls are the
// network's convolutions in order, each with its tensors' bytes, its
// multiply-adds and its implicit matrix product.
func TestLaunchLog(t *testing.T) {
	const B, T, w = 10, 4, 8
	// conv is a 3×3 convolution (pad 1) of c channels to w at s×s pixels
	// over n rows: forward, backward filter or backward data
	conv := func(kind string, n, c, s int64) compute.Launch {
		x, y, f := 4*n*c*s*s, 4*n*w*s*s, 4*w*c*9
		l := compute.Launch{Kernel: kind, Library: true, FLOPs: 2 * n * s * s * w * c * 9, Math: compute.MathFP32, Layout: compute.NCHW}
		switch kind {
		case compute.CallConvForward:
			l.Read, l.Written, l.M, l.N, l.K = x+f, y, n*s*s, w, c*9
		case compute.CallConvBackwardFilter:
			l.Read, l.Written, l.M, l.N, l.K = x+y, f, w, c*9, n*s*s
		default:
			l.Read, l.Written, l.M, l.N, l.K = y+f, x, n*s*s, c, w*9
		}
		return l
	}
	fwd, dw, dx := compute.CallConvForward, compute.CallConvBackwardFilter, compute.CallConvBackwardData
	wantDNN := []compute.Launch{
		conv(fwd, B, 1, 28), conv(fwd, B, w, 28), conv(fwd, B, w, 14), // the ANN
		conv(fwd, B, 1, 28), conv(fwd, T*B, w, 28), conv(fwd, T*B, w, 14), // the SNN: static layer once, then T steps at once
		conv(dw, B, w, 14), conv(dx, B, w, 14), conv(dw, B, w, 28), conv(dx, B, w, 28), conv(dw, B, 1, 28), // no gradient of the input
	}
	for _, dnn := range []bool{false, true} {
		be, err := cuda.Open(cuda.Options{Emulate: true, DryRun: true, DryRunCuDNN: dnn, StrictFP32: dnn})
		if err != nil {
			t.Fatal(err)
		}
		ann, err := nn.Reference(w, 2020)
		if err != nil {
			t.Fatal(err)
		}
		snn, err := spiking.New(ann, spiking.Config{Timesteps: T, Threshold: 2})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := train.NewEngine(be, ann, snn, B)
		if err != nil {
			t.Fatal(err)
		}
		be.LogLaunches(true)
		be.ResetTraffic()
		x, _ := nn.NewTensor(B, 1, 28, 28)
		labels := make([]uint8, B)
		if _, err := eng.Step(x, labels, true); err != nil {
			t.Fatal(err)
		}
		log := be.LaunchLog()
		if got, want := compute.TrafficOf(log), be.Traffic(); !reflect.DeepEqual(got, want) {
			t.Errorf("cuDNN %v: the log sums to %+v, the count is %+v", dnn, got, want)
		}
		var convs []compute.Launch
		for _, l := range log {
			switch {
			case !l.Library && (l.FLOPs != 0 || l.Math != "" || l.Layout != ""):
				t.Errorf("kernel %s has a library call's fields: %+v", l.Kernel, l)
			case l.Kernel == compute.CallGEMM && (l.FLOPs != 2*l.M*l.N*l.K || l.Read != 4*(l.M*l.K+l.K*l.N) || l.Written != 4*l.M*l.N):
				t.Errorf("a %d×%d×%d GEMM: %+v", l.M, l.N, l.K, l)
			case l.Kernel == compute.CallGEMM && l.Math != map[bool]compute.Math{false: compute.MathTF32, true: compute.MathFP32}[dnn]:
				t.Errorf("a GEMM in %s with StrictFP32 %v", l.Math, dnn)
			case l.Library && l.Kernel != compute.CallGEMM:
				convs = append(convs, l)
			}
		}
		var want []compute.Launch // im2col: no library convolution
		if dnn {
			want = wantDNN
		}
		if !reflect.DeepEqual(convs, want) {
			t.Errorf("cuDNN %v: convolution calls\n%+v\nwant\n%+v", dnn, convs, want)
		}
		eng.Free()
		be.Close()
	}
}

// TestKernelsHaveAKind: the time model (package gpumodel) prices every
// kernel the backend launches, and device copies, by the bandwidth of
// their kind; a new kernel must be given one there.
func TestKernelsHaveAKind(t *testing.T) {
	for _, k := range append(cuda.KernelNames(), "copy") {
		if _, ok := gpumodel.KindOf(k); !ok {
			t.Errorf("kernel %s has no kind in gpumodel.KindOf", k)
		}
	}
}

// counters are what the three legs of TestThreeLegs count: proxykit's own
// kernel launches (and copies) with their bytes, cuBLAS GEMMs with their
// FLOPs, cuDNN calls by direction with their FLOPs.
type counters struct {
	Launches, Bytes  int64
	GEMMs, GEMMFLOPs int64
	DNN              map[string]int64
	DNNFLOPs         int64
}

// countersOf counts a traffic and the library calls' FLOPs of a log.
func countersOf(c compute.Traffic, log []compute.Launch) counters {
	n := counters{GEMMs: c.Calls[compute.CallGEMM], GEMMFLOPs: c.GemmFLOPs, DNN: map[string]int64{}}
	n.Launches, n.Bytes = c.Glue(nil)
	for k, v := range c.Calls {
		if k != compute.CallGEMM {
			n.DNN[k] = v
		}
	}
	for _, l := range log {
		if l.Library && l.Kernel != compute.CallGEMM {
			n.DNNFLOPs += l.FLOPs
		}
	}
	return n
}

// paper is the paper's network at full width with its SNN of T steps.
func paper(t *testing.T, T int) (*nn.Network, *spiking.Network) {
	t.Helper()
	ann, err := nn.Reference(128, 2020)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := spiking.New(ann, spiking.Config{Timesteps: T, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	return ann, snn
}

// dry opens the dry emulated device configured as opt says, logging.
func dry(t *testing.T, opt cuda.Options) *cuda.Backend {
	t.Helper()
	opt.Emulate, opt.DryRun = true, true
	be, err := cuda.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	be.LogLaunches(true)
	return be
}

// countedStep is leg 2: a steady-state proxy step and its Adam update of
// ann and snn at batch B, counted by be from each launch's own arguments.
func countedStep(t *testing.T, be *cuda.Backend, ann *nn.Network, snn *spiking.Network, B int) ([]compute.Launch, compute.Traffic) {
	t.Helper()
	eng, err := train.NewEngine(be, ann, snn, B)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Free()
	opt := train.NewAdam(1e-4, 0.8, 0.99, 1e-8, 1e-6)
	defer opt.Free()
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
	return be.LaunchLog(), be.Traffic()
}

// plannedStep is leg 1: the launches of the step's and the optimizer's
// programs as lowered for the CUDA backend (all T steps at once),
// computed from the programs by cuda.RunLaunches for a backend opened
// with opt.
func plannedStep(t *testing.T, ann *nn.Network, snn *spiking.Network, B int, opt cuda.Options) []compute.Launch {
	t.Helper()
	body, _ := ann.Body()
	step, update, err := lower.StepPrograms(body, snn.Lowering(), lower.SNNOptions{Options: lower.Options{Capacity: B, BatchStats: true,
		ChannelsLast: opt.ChannelsLast, HalfSpikes: opt.HalfSpikes}, Steps: snn.Config.Timesteps})
	if err != nil {
		t.Fatal(err)
	}
	var out []compute.Launch
	for _, l := range []*lower.Lowered{step, update} {
		ls, err := cuda.RunLaunches(l.Program, l.Runs(B), opt)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ls...)
	}
	return out
}

// TestThreeLegs holds three independent counts of one proxy step of the
// paper's network (full width, B = 100, T = 15, BatchNorm in training
// mode, then Adam) on a GPU with cuDNN to each other, exactly: what the
// program says the CUDA backend queues (leg 1, cuda.RunLaunches: what
// proxykit plan prices), what the dry emulated device counts from the
// launches' own arguments and buffer extents (leg 2), and the design's
// arithmetic (leg 3, stepBudget). Counters: proxykit's kernel launches
// and their bytes, cuBLAS GEMMs and their FLOPs, cuDNN calls by direction
// and their FLOPs. Legs 1 and 2 also agree launch by launch. The step is
// held in NCHW and channels-last (Options.ChannelsLast: every cuDNN call's
// tensors NHWC, the transposes the layouts' meeting points need), each
// with and without 16-bit spikes (Options.HalfSpikes).
func TestThreeLegs(t *testing.T) {
	const B, T = 100, 15
	ann, snn := paper(t, T)
	for _, mode := range []struct{ last, half bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		last := mode.last
		opt := cuda.Options{DryRunCuDNN: true, WorkspaceBytes: 512 << 20, ChannelsLast: last, HalfSpikes: mode.half}
		log, count := countedStep(t, dry(t, opt), ann, snn, B)
		planned := plannedStep(t, ann, snn, B, cuda.Options{ChannelsLast: last, HalfSpikes: mode.half}) // a GPU's
		want := stepBudget(t, ann, snn, B, T, last, mode.half)
		legs := map[string]counters{
			"leg 1 (the program)":       countersOf(compute.TrafficOf(planned), planned),
			"leg 2 (the device counts)": countersOf(count, log),
			"leg 3 (the arithmetic)": {Launches: want.launches, Bytes: want.bytes, GEMMs: want.gemms, GEMMFLOPs: want.gemmFLOPs,
				DNN: want.dnn, DNNFLOPs: want.dnnFLOPs},
		}
		ref := legs["leg 3 (the arithmetic)"]
		t.Logf("one proxy step, channels-last %v, 16-bit spikes %v: %d launches moving %d bytes around the libraries; %d GEMMs, %d FLOPs; cuDNN %v, %d FLOPs",
			last, mode.half, ref.Launches, ref.Bytes, ref.GEMMs, ref.GEMMFLOPs, ref.DNN, ref.DNNFLOPs)
		for name, c := range legs {
			if !reflect.DeepEqual(c, ref) {
				t.Errorf("channels-last %v, 16-bit spikes %v: %s counts %+v, the arithmetic %+v", last, mode.half, name, c, ref)
			}
		}
		layout := compute.NCHW
		if last {
			layout = compute.NHWC
		}
		for _, l := range log {
			if l.Library && l.Kernel != compute.CallGEMM && l.Layout != layout {
				t.Errorf("channels-last %v: a cuDNN call handed %s tensors: %+v", last, l.Layout, l)
			}
		}
		sameLaunches(t, fmt.Sprintf("training step, TF32, cuDNN, channels-last %v, 16-bit spikes %v", last, mode.half), planned, log)
	}
}

// sameLaunches holds leg 1's launches to leg 2's, one by one.
func sameLaunches(t *testing.T, what string, planned, counted []compute.Launch) {
	t.Helper()
	if reflect.DeepEqual(planned, counted) {
		return
	}
	t.Errorf("%s: the program says %d launches, the device counted %d", what, len(planned), len(counted))
	bad := 0
	for i := 0; i < max(len(planned), len(counted)) && bad < 10; i++ {
		var a, b compute.Launch
		if i < len(planned) {
			a = planned[i]
		}
		if i < len(counted) {
			b = counted[i]
		}
		if a != b {
			t.Logf("%s launch %d: program %+v, device %+v", what, i, a, b)
			bad++
		}
	}
}

// The backends the per-launch tests configure: a GPU with cuDNN in TF32
// and in FP32, and the im2col path, as the calibration's workloads ran.
var launchConfigs = []struct {
	name string
	opt  cuda.Options
}{
	{"TF32, cuDNN", cuda.Options{DryRunCuDNN: true}},
	{"FP32, cuDNN", cuda.Options{DryRunCuDNN: true, StrictFP32: true}},
	{"TF32, im2col", cuda.Options{DryRunCuDNN: true, NoCuDNN: true}},
	{"TF32, cuDNN, channels-last", cuda.Options{DryRunCuDNN: true, ChannelsLast: true}},
	{"TF32, im2col, channels-last", cuda.Options{DryRunCuDNN: true, NoCuDNN: true, ChannelsLast: true}},
	{"TF32, cuDNN, 16-bit spikes", cuda.Options{DryRunCuDNN: true, HalfSpikes: true}},
	{"TF32, im2col, channels-last, 16-bit spikes", cuda.Options{DryRunCuDNN: true, NoCuDNN: true, ChannelsLast: true, HalfSpikes: true}},
}

// gpu is the options of the GPU whose launches the dry device counts as
// configured by opt (and of the 512 MB im2col workspace a GPU has).
func gpu(opt cuda.Options) cuda.Options {
	opt.DryRunCuDNN = false
	return opt
}

// TestLaunchesTraining holds leg 1 to leg 2 launch by launch for the
// paper's training step (B = 100, T = 15) and its Adam update, on each
// backend configuration: the program's launches for a GPU are what the
// dry emulated device counts with a GPU's im2col workspace.
func TestLaunchesTraining(t *testing.T) {
	const B, T = 100, 15
	ann, snn := paper(t, T)
	for _, c := range launchConfigs {
		dev := c.opt
		dev.WorkspaceBytes = 512 << 20
		log, _ := countedStep(t, dry(t, dev), ann, snn, B)
		sameLaunches(t, "training step, "+c.name, plannedStep(t, ann, snn, B, gpu(c.opt)), log)
	}
}

// TestLaunchesInference holds leg 1 to leg 2 launch by launch for the
// paper's inference at batch 1000 (T = 15, BatchNorm in eval mode): the
// SNN as the simulator runs it (lower.Simulation) and both networks as
// the trainer evaluates them (lower.Predict), on each backend
// configuration. The second run of each is counted: a first run may
// allocate (the im2col workspaces, a program loaded on first use), and
// the backend zeroes what it allocates.
func TestLaunchesInference(t *testing.T) {
	const N, T = 1000, 15
	ann, snn := paper(t, T)
	body, _ := ann.Body()
	x, _ := nn.NewTensor(N, 1, 28, 28)
	for _, c := range launchConfigs {
		sopt := lower.SNNOptions{Options: lower.Options{Capacity: N, ChannelsLast: c.opt.ChannelsLast, HalfSpikes: c.opt.HalfSpikes}, Steps: T}
		dev := c.opt
		dev.WorkspaceBytes = 512 << 20
		be := dry(t, dev)
		if err := snn.Bind(be); err != nil {
			t.Fatal(err)
		}
		// the simulator
		sim, err := spiking.NewSimulator(be, snn, N)
		if err != nil {
			t.Fatal(err)
		}
		in, err := be.Alloc(len(x.Data))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			be.ResetTraffic()
			if _, err := sim.Run(context.Background(), nn.Value{Shape: x.Shape, Buf: in}, false, false); err != nil {
				t.Fatal(err)
			}
		}
		counted := be.LaunchLog()
		sim.Free()
		be.Free(in)
		l, err := lower.Simulation(snn.Lowering(), sopt)
		if err != nil {
			t.Fatal(err)
		}
		planned, err := cuda.RunLaunches(l.Program, l.Runs(N), gpu(c.opt))
		if err != nil {
			t.Fatal(err)
		}
		sameLaunches(t, "SNN inference, "+c.name, planned, counted)
		// both networks, as evaluation runs them
		eng, err := train.NewEngine(be, ann, snn, N)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			be.ResetTraffic()
			if _, err := eng.Predict(context.Background(), x); err != nil {
				t.Fatal(err)
			}
		}
		counted = be.LaunchLog()
		eng.Free()
		l, err = lower.Predict(body, snn.Lowering(), sopt)
		if err != nil {
			t.Fatal(err)
		}
		if planned, err = cuda.RunLaunches(l.Program, l.Runs(N), gpu(c.opt)); err != nil {
			t.Fatal(err)
		}
		sameLaunches(t, "ANN and SNN inference, "+c.name, planned, counted)
	}
}
