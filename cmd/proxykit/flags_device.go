package main

import (
	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
)

// deviceFlags choose the backend.
type deviceFlags struct {
	name, precision string
	opt             device.Options
}

func addDeviceFlags(cmd *cobra.Command) *deviceFlags {
	f := &deviceFlags{}
	cmd.Flags().StringVar(&f.name, "device", "cpu", "where to compute: "+device.Names)
	cmd.Flags().BoolVar(&f.opt.StrictFP32, "fp32", false, "cuda: matrix products and convolutions in strict FP32 (default: TF32 tensor cores for both; PyTorch >= 1.12 uses TF32 for cuDNN convolutions only); --precision fp32")
	cmd.Flags().StringVar(&f.precision, "precision", "", "cuda: arithmetic, "+device.Precisions+": fp16 runs the SNN's convolutions and linear layers over spikes on 16-bit spikes, weights and currents with FP32 sums, in proxy learning and inference (surrogate gradients train in float32); it changes results (docs/design.md §1; not yet measured on a GPU) (default tf32)")
	cmd.Flags().BoolVar(&f.opt.NoCuDNN, "no-cudnn", false, "cuda: proxykit's own im2col convolutions even where cuDNN is present")
	cmd.Flags().BoolVar(&f.opt.Graphs, "cuda-graphs", false, "cuda: capture each training step and inference batch as a CUDA graph and replay it (not yet measured on a GPU)")
	cmd.Flags().BoolVar(&f.opt.ChannelsLast, "channels-last", false, "cuda: values around convolutions, and their weights, channels-last (NHWC), so that cuDNN converts nothing (not yet measured on a GPU)")
	return f
}

// with opens the backend, calls run with it and closes it (one process;
// a run that may be data-parallel opens it through distFlags.with).
func (f *deviceFlags) with(run func(compute.Backend) error) error {
	be, err := device.Open(f.name, f.opt)
	if err != nil {
		return err
	}
	defer be.Close()
	return run(be)
}

// check refuses, before a model is read, a device this build or machine
// cannot open (--device cuda without -tags cuda, say).
// It sets --precision's arithmetic first.
func (f *deviceFlags) check() error {
	if err := checkAll(func() error { return f.opt.SetPrecision(f.precision) }, func() error { return f.opt.Check(f.name) }); err != nil {
		return err
	}
	return device.Check(f.name)
}

// stepsAtOnce is how many of T time steps the device runs at once: its
// backend's StepsAtOnce, the emulated device's for cuda where no GPU is
// (plan).
func (f *deviceFlags) stepsAtOnce(T int) (int, error) {
	be, err := device.Open(f.name, f.opt)
	if err != nil && f.name == "cuda" {
		be, err = device.Open("cuda-emu", f.opt)
	}
	if err != nil {
		return 0, err
	}
	defer be.Close()
	return be.StepsAtOnce(T), nil
}
