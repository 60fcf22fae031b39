package cuda_test

import (
	"reflect"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/gpumodel"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// budget is the design's arithmetic for one proxy step (docs/design.md §4,
// §5): what each kernel must read and write, in values, and the launches
// it needs, outside the libraries; and the libraries' calls with their
// arithmetic, on a GPU with cuDNN. Rows: B in the ANN and the static input
// layer, T·B after it. A per-channel vector counts like any value.
type budget struct {
	launches, values int64
	gemms, gemmFLOPs int64            // cuBLAS
	dnn              map[string]int64 // cuDNN calls by direction
	dnnFLOPs         int64
}

func (b *budget) add(launches int, values int64) {
	b.launches += int64(launches)
	b.values += values
}

// stepBudget walks the paper's network: the ANN's forward and backward
// passes in BatchNorm's training mode, the SNN's T steps (BatchNorm fused
// into the IF layer reading it, the static input layer once), the
// potentials' and counts' initialisation, the loss, the gradients'
// zeroing and Adam.
func stepBudget(t *testing.T, ann *nn.Network, snn *spiking.Network, B, T int64) budget {
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
	for i, l := range ann.Layers { // chains: the ANN's forward, then backward
		switch nn.KindOf(l) {
		case "BatchNorm2d":
			c := int64(shapes[i][0])
			// statistics (x; mean and variance out), running update (both
			// and the running pair in, the pair out), scale and shift (γ, β,
			// mean, variance; scale, shift out), affine map (x, scale, shift;
			// y out)
			b.add(4, 3*B*in(i)+(2*c)+(4*c+2*c)+(4*c+2*c)+2*c)
			// backward: sums (x, dy, mean, variance, dγ, dβ; dγ, dβ and the
			// two sums out), dx (x, dy, γ, mean, variance, the sums; dx out)
			b.add(2, 5*B*in(i)+(4*c+4*c)+5*c)
		case "ReLU":
			b.add(1, 2*B*in(i))
			b.add(1, 3*B*in(i))
		case "MaxPool2d":
			b.add(1, B*(in(i)+out(i)))
			if i > 0 {
				b.add(1, B*(2*in(i)+out(i)))
			}
		case "Conv2d": // cuDNN: forward; backward filter, and data where the input has a gradient
			o := int64(shapes[i][0])
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
		case "Flatten": // a view
		default:
			t.Fatalf("no budget for %s", nn.KindOf(l))
		}
	}
	nodes := snn.Nodes
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
			read := rows * n // one input per step
			if src < snn.Static {
				read = B * n // the static layer's output, once
			}
			if src >= 0 && nodes[src].Kind() == "BatchNorm2d" && src >= snn.Static {
				// fused: per-step statistics (T rows of C), the running update
				// step by step, per-step scale and shift, which the IF kernel
				// reads
				c := int64(shape[0])
				b.add(3, (rows*n+2*T*c)+(2*T*c+2*c+2*c)+(2*c+2*T*c+2*T*c))
				read += 2 * T * c
			}
			b.add(1, read+2*B*n+rows*n) // input, potentials in and out, spikes
			b.add(1, B*n)               // potentials start at v_reset
			if i == len(nodes)-1 {
				b.add(1, B*n)         // counts start at 0
				b.values += 2 * B * n // and are added to
			}
		case nd.Kind() == "BatchNorm2d":
			if i < snn.Static {
				c := int64(shape[0])
				b.add(4, 3*rows*n+16*c)
			} // else fused into its IF layer
		case nd.Kind() == "MaxPool2d":
			b.add(1, rows*(int64(nn.Numel(shapeOf(t, ann, shapes, nd.Inputs[0])))+n))
		case nd.Kind() == "Conv2d":
			conv(compute.CallConvForward, rows, nd.Layer, n, int64(shape[0]))
		case nd.Kind() == "Linear":
			gemm(rows, nd.Layer)
		case nd.Kind() == "Flatten":
		default:
			t.Fatalf("no budget for the SNN's %s", nd.Kind())
		}
	}
	k := int64(nn.Numel(shapes[len(shapes)-1]))
	b.add(1, 2*B*k+B) // the proxy loss's gradient: counts and labels in
	for _, p := range ann.Params() {
		n := int64(len(p.Data))
		b.add(1, n)   // the gradient zeroed (GEMMs accumulate into it)
		b.add(1, 7*n) // Adam: parameter, gradient, two moments
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
	x, labels := nn.NewTensor(B, 1, 28, 28), make([]uint8, B)
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
	want := stepBudget(t, ann, snn, B, T)
	t.Logf("one proxy step: %d launches and %.1f MB around the libraries (budget %d and %.1f MB); %d GEMMs, %.0f GFLOP",
		launches, float64(bytes)/1e6, want.launches, float64(4*want.values)/1e6, c.Calls["cublas gemm"], float64(c.GemmFLOPs)/1e9)
	if launches > want.launches {
		t.Errorf("%d launches, the design's budget is %d: %v", launches, want.launches, c.Launches)
	}
	if bytes > 4*want.values {
		t.Errorf("%.1f MB around the libraries, the design's budget is %.1f MB", float64(bytes)/1e6, float64(4*want.values)/1e6)
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
		x, labels := nn.NewTensor(B, 1, 28, 28), make([]uint8, B)
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
