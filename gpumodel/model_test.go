package gpumodel_test

import (
	"math"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/gpumodel"
)

// model is the H200's.
func model(t *testing.T) gpumodel.Model {
	t.Helper()
	m, err := gpumodel.ForGPU("h200")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func price(t *testing.T, m gpumodel.Model, l ...compute.Launch) gpumodel.Estimate {
	t.Helper()
	e, err := m.Price(l)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

// TestConvolutionLayouts: a tensor-core cuDNN call handed NCHW tensors
// runs cuDNN's three conversions beside it (two over its operands, one
// over its result, at the layout bandwidth); handed NHWC tensors, in FP32,
// or too thin for tensor cores (K below MinTensorK) it runs alone.
func TestConvolutionLayouts(t *testing.T) {
	m := model(t)
	p, g := m.Params, m.GPU
	conv := compute.Launch{Kernel: compute.CallConvForward, Library: true, Read: 600e6, Written: 600e6, FLOPs: 347e9,
		M: 1176000, N: 128, K: 1152, Math: compute.MathTF32, Layout: compute.NCHW}
	nchw := price(t, m, conv)
	nhwc := conv
	nhwc.Layout = compute.NHWC
	alone := price(t, m, nhwc)
	if nchw.Kernels != 4 || alone.Kernels != 1 {
		t.Errorf("NCHW: %d kernels, NHWC: %d; want 4 and 1", nchw.Kernels, alone.Kernels)
	}
	conversions := 3*p.LaunchOverhead + 2*float64(conv.Read+conv.Written)/(p.Bandwidth[gpumodel.Layout]*g.Bandwidth)
	if !near(nchw.Seconds-alone.Seconds, conversions) {
		t.Errorf("the conversions cost %g s, want %g", nchw.Seconds-alone.Seconds, conversions)
	}
	names := map[string]int{}
	for _, s := range nchw.Shares() {
		names[s.Name] = s.Count
	}
	if names[gpumodel.ToNHWC] != 2 || names[gpumodel.ToNCHW] != 1 || names[compute.CallConvForward] != 1 {
		t.Errorf("kernels of an NCHW convolution: %v", names)
	}
	fp32 := conv
	fp32.Math = compute.MathFP32
	thin := conv
	thin.K = 9
	for _, l := range []compute.Launch{fp32, thin} {
		e := price(t, m, l)
		if e.Kernels != 1 || e.Launches[0].Kernels[0].Name != compute.CallConvForward+gpumodel.OnCUDACores {
			t.Errorf("%s K %d: %+v, want one kernel on CUDA cores", l.Math, l.K, e.Launches[0].Kernels)
		}
	}
}

// TestArithmetic: a matrix product bound by arithmetic takes its FLOPs
// over the peak of its arithmetic times the call's efficiency, half as
// long in FP16 as in TF32; one bound by memory takes its bytes at the
// elementwise bandwidth.
func TestArithmetic(t *testing.T) {
	m := model(t)
	p, g := m.Params, m.GPU
	gemm := compute.Launch{Kernel: compute.CallGEMM, Library: true, Read: 100e6, Written: 15e6, FLOPs: 48e9, M: 1500,
		N: 2560, K: 6272, Math: compute.MathTF32}
	tf32 := price(t, m, gemm).Seconds - p.LaunchOverhead
	if want := 48e9 / (p.TensorCores[compute.CallGEMM] * g.Peak[compute.MathTF32]); !near(tf32, want) {
		t.Errorf("a TF32 GEMM: %g s, want %g", tf32, want)
	}
	gemm.Math = compute.MathFP16
	if fp16 := price(t, m, gemm).Seconds - p.LaunchOverhead; !near(fp16, tf32/2) {
		t.Errorf("FP16: %g s, TF32 %g s", fp16, tf32)
	}
	thin := compute.Launch{Kernel: compute.CallGEMM, Library: true, Read: 28e6, Written: 400e6, FLOPs: 1.8e9, M: 128,
		N: 784000, K: 9, Math: compute.MathTF32}
	if got, want := price(t, m, thin).Seconds-p.LaunchOverhead, 428e6/(p.Bandwidth[gpumodel.Elementwise]*g.Bandwidth); !near(got, want) {
		t.Errorf("a GEMM bound by memory: %g s, want %g", got, want)
	}
}

// TestKernelsByKind: a kernel of the backend costs τ and its bytes at its
// kind's bandwidth; kernels of one kind share it; an unknown kernel is
// refused by name.
func TestKernelsByKind(t *testing.T) {
	m := model(t)
	p, g := m.Params, m.GPU
	for _, k := range []string{"pk_if", "pk_relu", "pk_fill", "copy", "pk_im2col", "pk_maxpool_backward", "pk_bn_stats"} {
		kind, ok := gpumodel.KindOf(k)
		if !ok {
			t.Fatalf("%s has no kind", k)
		}
		got := price(t, m, compute.Launch{Kernel: k, Read: 3e8, Written: 1e8}).Seconds
		if want := p.LaunchOverhead + 4e8/(p.Bandwidth[kind]*g.Bandwidth); !near(got, want) {
			t.Errorf("%s (%s): %g s, want %g", k, kind, got, want)
		}
	}
	_, err := m.Price([]compute.Launch{{Kernel: "pk_if"}, {Kernel: "pk_new_fusion", Read: 1}})
	if err == nil || !strings.Contains(err.Error(), "pk_new_fusion") || !strings.Contains(err.Error(), "launch 1") {
		t.Errorf("an unknown kernel: %v", err)
	}
}

// TestEstimate: the shares of an estimate add up to its time, the kernels
// to its count, and images/s is the batch over the time.
func TestEstimate(t *testing.T) {
	c, err := gpumodel.H200Calibration()
	if err != nil {
		t.Fatal(err)
	}
	w := gpumodel.Workload{Pass: gpumodel.Train, Batch: 100, Math: compute.MathTF32}
	e := price(t, model(t), c.Launches[w]...)
	var s float64
	var n int
	for _, sh := range e.Shares() {
		s += sh.Fraction
		n += sh.Count
	}
	if math.Abs(s-1) > 1e-12 || n != e.Kernels {
		t.Errorf("shares sum to %g over %d kernels; the estimate has %d", s, n, e.Kernels)
	}
	if !near(e.ImagesPerSecond(100), 100/e.Seconds) {
		t.Errorf("%g images/s for %g s a batch of 100", e.ImagesPerSecond(100), e.Seconds)
	}
	if _, err := gpumodel.ForGPU("a100"); err == nil || !strings.Contains(err.Error(), "h200") {
		t.Errorf("an unknown GPU: %v", err)
	}
	if m, _ := gpumodel.ForGPU("H100"); m.Calibrated != "" || m.GPU.Name != "h100" {
		t.Errorf("the H100 model says it is calibrated on %q", m.Calibrated)
	}
}
