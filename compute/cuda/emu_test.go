package cuda_test

import (
	"testing"

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
