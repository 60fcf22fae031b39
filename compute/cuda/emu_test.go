package cuda_test

import (
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/conformance"
	"github.com/proxykit/proxykit/compute/cuda"
)

// TestEmulatorConformance runs the conformance suite on the CUDA backend's
// emulated device: the kernels of kernels.cu, compiled for the host, behind
// the same Go launch code as on a GPU. The workspace is small so that
// convolutions run in several chunks.
func TestEmulatorConformance(t *testing.T) {
	be, err := cuda.Open(cuda.Options{Emulate: true, WorkspaceBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	conformance.Test(t, be, conformance.FP32)
}

// TestKernelTables: every kernel in kernels.cu is launched by the backend
// and registered in the emulator's table, and nothing else is.
func TestKernelTables(t *testing.T) {
	inSource := cuda.KernelsInSource()
	if len(inSource) < 20 {
		t.Fatalf("found only %d kernels in kernels.cu", len(inSource))
	}
	launched := map[string]bool{}
	for _, k := range cuda.KernelNames() {
		launched[k] = true
	}
	for _, k := range inSource {
		if !launched[k] {
			t.Errorf("kernel %s of kernels.cu is not in the backend's list", k)
		}
		delete(launched, k)
	}
	for k := range launched {
		t.Errorf("the backend launches %s, which kernels.cu lacks", k)
	}
	if _, err := cuda.Open(cuda.Options{Emulate: true}); err != nil {
		t.Errorf("a kernel is missing from emu.cpp's table: %v", err)
	}
}

// TestConvBiasOfTheCuDNNPath: the bias the cuDNN path adds after cuDNN's
// convolution goes to every position of its channel, in NCHW (a plane of
// positions a channel) and channels-last (a channel every O values).
func TestConvBiasOfTheCuDNNPath(t *testing.T) {
	be, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	for _, layout := range []compute.Layout{compute.NCHW, compute.NHWC} {
		g := compute.ConvGeom{C: 1, H: 3, W: 2, O: 4, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1, Layout: layout}
		n, p := 2, 6
		yh := make([]float32, n*g.O*p)
		for i := range yh {
			yh[i] = float32(i)
		}
		y, _ := be.Adopt(yh)
		bias, _ := be.Adopt([]float32{10, 20, 30, 40})
		cuda.AddConvBias(be, g, n, y, bias)
		got := make([]float32, len(yh))
		if err := be.Download(got, y); err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			channel := (i / p) % g.O
			if layout.Last() {
				channel = i % g.O
			}
			if want := float32(i) + float32(10*(channel+1)); v != want {
				t.Fatalf("%s: element %d is %g, want %g", layout, i, v, want)
			}
		}
	}
}
