package cuda_test

import (
	"testing"

	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// budget is the design's arithmetic for one proxy step (docs/design.md §4,
// §5): what each layer must read and write, in values, and the launches
// it needs, outside the libraries' matrix products. Rows: B in the ANN
// and the static input layer, T·B after it.
type budget struct{ launches, values int64 }

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
	var b budget
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
	for i, l := range ann.Layers { // chains: the ANN's forward, then backward
		switch nn.KindOf(l) {
		case "BatchNorm2d": // statistics, running update, scale/shift, affine map; backward: sums, dx
			b.add(4, 3*B*in(i))
			b.add(2, 5*B*in(i))
		case "ReLU":
			b.add(1, 2*B*in(i))
			b.add(1, 3*B*in(i))
		case "MaxPool2d":
			b.add(1, B*(in(i)+out(i)))
			if i > 0 {
				b.add(1, B*(2*in(i)+out(i)))
			}
		case "Conv2d", "Linear", "Flatten": // the libraries; a view
		default:
			t.Fatalf("no budget for %s", nn.KindOf(l))
		}
	}
	nodes := snn.Nodes
	for i, nd := range nodes {
		n := int64(nn.Numel(shapeOf(t, ann, shapes, i)))
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
			if src >= 0 && nodes[src].Kind() == "BatchNorm2d" && src >= snn.Static { // fused: per-step statistics
				b.add(3, rows*n)
			}
			b.add(1, read+2*B*n+rows*n) // input, potentials in and out, spikes
			b.add(1, B*n)               // potentials start at v_reset
			if i == len(nodes)-1 {
				b.add(1, B*n)         // counts start at 0
				b.values += 2 * B * n // and are added to
			}
		case nd.Kind() == "BatchNorm2d":
			if i < snn.Static {
				b.add(4, 3*rows*n)
			} // else fused into its IF layer
		case nd.Kind() == "MaxPool2d":
			b.add(1, rows*(int64(nn.Numel(shapeOf(t, ann, shapes, nd.Inputs[0])))+n))
		}
	}
	b.add(1, 3*B*int64(nn.Numel(shapes[len(shapes)-1]))) // the proxy loss's gradient
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
	// 0.1 %: the per-channel statistics and scale/shift vectors the budget leaves out
	if float64(bytes) > 1.001*float64(4*want.values) {
		t.Errorf("%.1f MB around the libraries, the design's budget is %.1f MB", float64(bytes)/1e6, float64(4*want.values)/1e6)
	}
}
