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

// Precisions names the arithmetic SetPrecision takes.
const Precisions = "fp32, tf32 or fp16"

// SetPrecision sets a CUDA device's arithmetic by name: fp32 (StrictFP32:
// strict FP32 matrix products and convolutions), tf32 (TF32 tensor cores
// for both: the default) or fp16 (HalfSpikes: the SNN's convolutions over
// spikes on binary16 spikes, weights and currents with FP32 sums, TF32
// elsewhere; it changes results). "" leaves o as it is. A name that
// contradicts StrictFP32 already set, and any other name, is refused.
func (o *Options) SetPrecision(name string) error {
	if o == nil {
		return setting.Errorf("%s %q: no options to set (nil)", setting.Precision, name)
	}
	switch name {
	case "":
	case "fp32":
		o.StrictFP32, o.HalfSpikes = true, false
	case "tf32", "fp16":
		if o.StrictFP32 {
			return setting.Errorf("%s %s contradicts strict FP32 arithmetic, which is precision fp32", setting.Precision, name)
		}
		o.HalfSpikes = name == "fp16"
	default:
		return setting.Errorf("%s %q: want %s", setting.Precision, name, Precisions)
	}
	return nil
}

// Check refuses options that device name cannot honour: 16-bit spikes on
// the CPU, which computes in float32 only (an unknown name is Open's and
// Check's to refuse).
func (o Options) Check(name string) error {
	if o.HalfSpikes && name == "cpu" {
		return setting.Errorf("%s fp16 needs a CUDA device (%s cuda or cuda-emu): the CPU computes in float32 only", setting.Precision, setting.Device)
	}
	return nil
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
	if err := opt.Check(name); err != nil {
		return nil, err
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
