// Package device opens the compute backend a device name names: "cpu",
// "cuda" (an NVIDIA GPU; needs a binary built with -tags cuda) or
// "cuda-emu" (the CUDA backend on its emulated device, for tests and for
// trying the GPU code path without a GPU).
package device

import (
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/setting"
)

// Names lists the devices Open takes.
const Names = "cpu, cuda or cuda-emu"

// Options tune the CUDA backend (the CPU backend ignores them).
type Options struct {
	// StrictFP32 computes matrix products in FP32 instead of TF32.
	StrictFP32 bool
	// NoCuDNN uses proxykit's own convolutions where cuDNN is present.
	NoCuDNN bool
	// Graphs captures a training step and an inference batch as CUDA
	// graphs and replays them (cuda.Options.Graphs).
	Graphs bool
	// GPU is the ordinal of the GPU to use (cuda), among the visible ones.
	GPU int
	// ChannelsLast lays the values around convolutions out channels-last
	// (cuda.Options.ChannelsLast).
	ChannelsLast bool
	// HalfSpikes stores the spikes and currents around the SNN's
	// convolutions in 16 bits (cuda.Options.HalfSpikes).
	HalfSpikes bool
}

// GPUs counts the GPUs the cuda device can use here.
func GPUs() (int, error) { return cuda.VisibleGPUs() }

// Check says, before any work, whether Open could open name here: a name
// Open takes and, for cuda, a build with GPU support (-tags cuda) whose
// driver sees a GPU. It opens nothing: a program calls it before loading
// a model that may take seconds to read.
func Check(name string) error {
	switch name {
	case "cpu", "cuda-emu":
		return nil
	case "cuda":
		n, err := GPUs()
		if err == nil && n == 0 {
			err = setting.Errorf("%s cuda: the NVIDIA driver sees no GPU (CUDA_VISIBLE_DEVICES may hide them)", setting.Device)
		}
		return err
	}
	return unknown(name)
}

// unknown refuses a name that is no device.
func unknown(name string) error { return setting.Errorf("%s %q: want %s", setting.Device, name, Names) }

// Open returns the backend for name. The caller closes it.
func Open(name string, opt Options) (compute.Backend, error) {
	if opt.GPU < 0 {
		return nil, setting.Errorf("%s cuda: GPU %d: GPUs number from 0", setting.Device, opt.GPU)
	}
	switch name {
	case "cpu":
		return compute.NewCPU(), nil
	case "cuda", "cuda-emu":
		be, err := cuda.Open(cuda.Options{Emulate: name == "cuda-emu", StrictFP32: opt.StrictFP32, NoCuDNN: opt.NoCuDNN, Graphs: opt.Graphs,
			Device: opt.GPU, ChannelsLast: opt.ChannelsLast, HalfSpikes: opt.HalfSpikes})
		if err != nil {
			return nil, err
		}
		return be, nil
	}
	return nil, unknown(name)
}

// Describe names the device behind a backend and how it computes.
func Describe(be compute.Backend) string {
	if be == nil {
		return "no backend"
	}
	if d, ok := be.(interface{ Describe() string }); ok {
		return d.Describe()
	}
	return be.Name()
}
