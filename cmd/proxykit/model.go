package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/importer"
	"github.com/proxykit/proxykit/model"
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

// deviceHelp is the --device flag's help text.
const deviceHelp = "where to compute: " + device.Names

// openDevice opens the backend --device names.
func openDevice(name string) (compute.Backend, error) {
	be, err := device.Open(name)
	if err != nil {
		return nil, err
	}
	return be, nil
}
