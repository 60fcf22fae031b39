package cuda

import (
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/spiking"
)

// TestChannelsLastDescriptors: the cuDNN descriptors the backend builds
// (descriptorsOf, from which cudnn.go sets cuDNN's, and nothing else) for
// every convolution of the paper's channels-last training step and
// inference (full width, B = 100 and 1000, T = 15) describe NHWC tensors
// and KRSC filters, packed (strides of the NHWC order), in float, with
// the geometry's sizes, padding, stride and dilation, cross-correlation,
// TF32 tensor cores (FMA math with StrictFP32): cuDNN is handed nothing
// to convert. The NCHW program's descriptors say NCHW. With 16-bit spikes
// the SNN's two convolutions over spikes have HALF tensors and filter,
// float compute (PSEUDO_HALF) and tensor-op math.
func TestChannelsLastDescriptors(t *testing.T) {
	const T = 15
	ann, err := nn.Reference(128, 2020)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := spiking.New(ann, spiking.Config{Timesteps: T, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ last, half bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
		last := c.last
		for _, train := range []bool{true, false} {
			batch := 100
			if !train {
				batch = 1000
			}
			programs, _, err := lower.Plan(ann, snn.Lowering(), train, batch, T, nil, lower.WithChannelsLast(last), lower.WithHalfSpikes(c.half))
			if err != nil {
				t.Fatal(err)
			}
			convs, halves := 0, 0
			for _, l := range programs {
				for _, run := range l.Runs(batch) {
					ps := l.Passes[run.Pass]
					for _, op := range l.Ops[ps.Lo:ps.Hi] {
						var g compute.ConvGeom
						var rate program.Rate
						switch o := op.(type) {
						case *program.Conv2d:
							g, rate = o.G, o.Rate
						case *program.Conv2dGrad:
							g, rate = o.G, o.Rate
						default:
							continue
						}
						convs++
						n := run.Dims.Rows(rate)
						for _, strict := range []bool{false, true} {
							if g.Elem == compute.F16 && strict {
								continue // refused at Open
							}
							checkDescriptors(t, descriptorsOf(g, n, strict), g, n, strict, last)
						}
						if g.Elem == compute.F16 {
							halves++
						}
						if l := dnnLaunch(g, n, dnnForward, compute.MathTF32); l.Layout != map[bool]compute.Layout{true: compute.NHWC, false: compute.NCHW}[last] {
							t.Errorf("a cuDNN call's record says %s", l.Layout)
						}
					}
				}
			}
			if want := map[bool]int{true: 9, false: 3}[train]; convs != want { // ops: 6 forward, 3 backward
				t.Errorf("train %v: %d convolutions, want %d", train, convs, want)
			}
			if want := map[bool]int{true: 2}[c.half]; halves != want { // conv.1 and conv.5 in the time steps
				t.Errorf("train %v, 16-bit spikes %v: %d convolutions in binary16, want %d", train, c.half, halves, want)
			}
		}
	}
}

// checkDescriptors holds d to convolution g over n samples.
func checkDescriptors(t *testing.T, d dnnDescriptors, g compute.ConvGeom, n int, strict, last bool) {
	t.Helper()
	f := dnnTensorNCHW
	if last {
		f = dnnTensorNHWC
	}
	data, m := dnnDataFloat, dnnDefaultMath
	if strict {
		m = dnnFMAMath
	}
	if g.Elem == compute.F16 {
		data, m = dnnDataHalf, dnnTensorOpMath
	}
	tensor := func(what string, x dnnTensor, c, h, w int) {
		want := dnnTensor{Format: f, DataType: data, N: n, C: c, H: h, W: w, Strides: [4]int{c * h * w, h * w, w, 1}}
		if last {
			want.Strides = [4]int{h * w * c, 1, w * c, c}
		}
		if x != want {
			t.Errorf("%s of %+v (batch %d): %+v, want %+v", what, g, n, x, want)
		}
	}
	tensor("x", d.X, g.C, g.H, g.W)
	tensor("y", d.Y, g.O, g.OutH(), g.OutW())
	if want := (dnnFilterDesc{DataType: data, Format: f, K: g.O, C: g.C, H: g.KH, W: g.KW}); d.W != want {
		t.Errorf("filter of %+v: %+v, want %+v", g, d.W, want)
	}
	want := dnnConv{PadH: g.PT, PadW: g.PL, StrideH: g.SH, StrideW: g.SW, DilationH: g.DH, DilationW: g.DW, Mode: dnnCrossCorrelation,
		ComputeType: dnnDataFloat, Math: m}
	if d.Conv != want || g.PT != g.PB || g.PL != g.PR {
		t.Errorf("convolution of %+v: %+v, want %+v", g, d.Conv, want)
	}
	// what the C side reads, in its order
	v := d.ints()
	got := [][]int{v[0:6], v[6:12], v[12:18], v[18:26]}
	wantInts := [][]int{{f, data, n, g.C, g.H, g.W}, {f, data, n, g.O, g.OutH(), g.OutW()}, {data, f, g.O, g.C, g.KH, g.KW},
		{g.PT, g.PL, g.SH, g.SW, g.DH, g.DW, dnnCrossCorrelation, dnnDataFloat}}
	for i := range got {
		for j := range got[i] {
			if got[i][j] != wantInts[i][j] {
				t.Errorf("descriptor values %v, want %v", v, wantInts)
				return
			}
		}
	}
}

// TestRefusalStatuses: the cuDNN statuses that refuse a configuration
// (bad parameter, not supported) in cuDNN 8's numbering (cudnn.h:
// CUDNN_STATUS_BAD_PARAM 3, CUDNN_STATUS_NOT_SUPPORTED 9) and in 9's
// families (cudnn_graph.h: CUDNN_STATUS_BAD_PARAM 2000 and its 20xx
// subcodes, CUDNN_STATUS_NOT_SUPPORTED 3000 and its 30xx), and no others
// (success, internal errors 4000, execution failures 5000).
func TestRefusalStatuses(t *testing.T) {
	for _, c := range []struct {
		status, major int
		want          bool
	}{
		{3, 8, true}, {9, 8, true}, {0, 8, false}, {4, 8, false}, {8, 8, false},
		{2000, 9, true}, {2002, 9, true}, {3000, 9, true}, {3007, 9, true}, {0, 9, false}, {4000, 9, false}, {5000, 9, false},
		{1001, 9, false}, {3, 9, false},
	} {
		if got := refusal(c.status, c.major); got != c.want {
			t.Errorf("status %d of cuDNN %d: refusal %v, want %v", c.status, c.major, got, c.want)
		}
	}
}

// TestStrictFP32PinsImplicitGEMM: in strict FP32 the forward convolution
// may use cuDNN's implicit-GEMM algorithms only (cudnn.h's
// CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM = 0 and _IMPLICIT_PRECOMP_GEMM =
// 1), never GEMM (2), direct (3), FFT (4, 5) or Winograd (6, 7), whose
// rounding the SNN's counts feel; the backward directions, and every
// direction in TF32, may use any algorithm. Whether this brings the
// H200's strict-FP32 counts to TestGPUFullWidthCountsMatchCPU's 99.5 % is
// for a device to show.
func TestStrictFP32PinsImplicitGEMM(t *testing.T) {
	g := compute.ConvGeom{C: 8, H: 9, W: 9, O: 8, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PB: 1, PL: 1, PR: 1, DH: 1, DW: 1}
	for _, strict := range []bool{false, true} {
		a := descriptorsOf(g, 4, strict).Allowed
		for algo := 0; algo < 8; algo++ {
			want := !strict || algo <= 1
			if got := a[0]>>algo&1 == 1; got != want {
				t.Errorf("strict=%v: forward algorithm %d allowed %v, want %v", strict, algo, got, want)
			}
			if a[1]>>algo&1 != 1 || a[2]>>algo&1 != 1 {
				t.Errorf("strict=%v: backward algorithm %d not allowed", strict, algo)
			}
		}
	}
}
