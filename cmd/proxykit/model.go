package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/importer"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/recipe"
)

// modelFlags are the flags of every command that reads a model.
type modelFlags struct{ arch, like string }

func (f *modelFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.arch, "arch", "", "structure of a PyTorch state dict: fmnist (the reference network)")
	cmd.Flags().StringVar(&f.like, "like", "", "structure of a PyTorch state dict: a model file with the same parameter names")
}

// load reads MODEL: ONNX, a PyTorch checkpoint or a proxykit checkpoint.
func (f *modelFlags) load(path string) (*model.Model, error) {
	return model.LoadWith(path, importer.Options{Arch: f.arch, Like: f.like})
}

// applySNNDefaults takes T, v_th and v_reset from the model file (a
// checkpoint, an SNN module) where the user gave no flag for them.
func applySNNDefaults(flags *pflag.FlagSet, m *model.Model, timesteps *int, threshold, reset *float32) {
	cfg, ok := m.SNNDefaults()
	if !ok {
		return
	}
	if !flags.Changed("timesteps") {
		*timesteps = cfg.Timesteps
	}
	if !flags.Changed("threshold") {
		*threshold = cfg.Threshold
	}
	if !flags.Changed("reset") {
		*reset = cfg.Reset
	}
}

// loadSplit reads one split of the data set a model is used with: the
// --dataset flag, else a checkpoint's own; the --data folder, else the
// data set's default one. It checks that the images fit the model.
func loadSplit(cmd *cobra.Command, m *model.Model, modelPath, dataDir, dataset string, trainSplit bool) (*data.Dataset, error) {
	if m.Checkpoint != nil && !cmd.Flags().Changed("dataset") {
		dataset = m.Checkpoint.Settings.Dataset
	}
	if dataDir == "" {
		var err error
		if dataDir, err = data.DefaultDir(dataset); err != nil {
			return nil, err
		}
	}
	d, err := data.Load(dataDir, dataset, trainSplit)
	if err != nil {
		return nil, err
	}
	if err := m.ANN.CheckInput([]int{1, d.C, d.H, d.W}); err != nil {
		return nil, fmt.Errorf("data set %s does not fit %s: %w", d.Name, modelPath, err)
	}
	return d, nil
}

// checkOutput checks, before any work, that output can be written: not
// one of the inputs, in a folder that exists, not a special file.
func checkOutput(output string, inputs ...string) error {
	for _, in := range inputs {
		a, err1 := os.Stat(in)
		b, err2 := os.Stat(output)
		if err1 == nil && err2 == nil && os.SameFile(a, b) {
			return fmt.Errorf("-o %s is the input file; write the result elsewhere", output)
		}
	}
	return atomicfile.Check(output)
}

// checkBatch checks a --batch-size (or similar) flag before any work.
func checkBatch(flag string, n int) error {
	if n < 1 || n > recipe.MaxBatchSize {
		return fmt.Errorf("--%s must lie between 1 and %d, got %d", flag, recipe.MaxBatchSize, n)
	}
	return nil
}

// deviceFlags are the flags of every command that computes.
type deviceFlags struct {
	name string
	opt  device.Options
}

func (f *deviceFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.name, "device", "cpu", "where to compute: "+device.Names)
	cmd.Flags().BoolVar(&f.opt.StrictFP32, "fp32", false, "cuda: matrix products in strict FP32 instead of TF32 tensor cores")
	cmd.Flags().BoolVar(&f.opt.NoCuDNN, "no-cudnn", false, "cuda: proxykit's own im2col convolutions even where cuDNN is present")
}

// open opens the backend --device names.
func (f *deviceFlags) open() (compute.Backend, error) { return device.Open(f.name, f.opt) }
