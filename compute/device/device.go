// Package device opens the compute backend a --device flag names: "cpu",
// "cuda" (an NVIDIA GPU; needs a binary built with -tags cuda) or
// "cuda-emu" (the CUDA backend on its emulated device, for tests and for
// trying the GPU code path without a GPU).
package device

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
)

// Names lists the devices Open takes.
const Names = "cpu, cuda or cuda-emu"

// Open returns the backend for name. The caller closes it.
func Open(name string) (compute.Backend, error) {
	switch name {
	case "cpu":
		return compute.NewCPU(), nil
	case "cuda", "cuda-emu":
		be, err := cuda.Open(cuda.Options{Emulate: name == "cuda-emu"})
		if err != nil {
			return nil, err
		}
		return be, nil
	}
	return nil, fmt.Errorf("--device %q: want %s", name, Names)
}
