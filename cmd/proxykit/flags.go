package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
)

// The flag groups the commands share, one file each (flags_*.go): each
// group registers its flags on a command and turns them into what the
// library takes. Here the small ones, and what every command uses.

// modelFlags read MODEL: --arch and --like give a PyTorch state dict its
// structure.
type modelFlags struct{ opt model.Options }

func (f *modelFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.opt.Arch, "arch", "", "structure of a PyTorch state dict: "+nn.ArchitectureNames()+" (sized after the state dict)")
	cmd.Flags().StringVar(&f.opt.Like, "like", "", "structure of a PyTorch state dict: any model file with the same parameter names")
}

// load reads the model file, and the settings the groups take from it
// that the user did not give. What the reader had to assume about a
// PyTorch module (its children applied in order, say) is printed on
// stderr by every command, not by import alone: a wrong guess would
// otherwise go unseen.
func (f *modelFlags) load(cmd *cobra.Command, path string, groups ...interface{ fromModel(*model.Model) error }) (*model.Model, error) {
	m, err := model.LoadWith(path, f.opt)
	if err != nil {
		return nil, err
	}
	if (m.PT != nil || m.NIR != nil) && cmd.Name() != "import" { // import prints them in its table
		for _, n := range m.Notes() {
			fmt.Fprintln(cmd.ErrOrStderr(), "note:", model.Printable(n))
		}
	}
	for _, g := range groups {
		if err := g.fromModel(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// loadSNN is load (sf among the groups), and the model's SNN with sf's
// setting.
func (f *modelFlags) loadSNN(cmd *cobra.Command, path string, sf *snnFlags, groups ...interface{ fromModel(*model.Model) error }) (*model.Model, *spiking.Network, error) {
	m, err := f.load(cmd, path, append(groups, sf)...)
	if err != nil {
		return nil, nil, err
	}
	snn, err := m.SNN(*sf.cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, snn, nil
}

// deviceFlags choose the backend.
type deviceFlags struct {
	name string
	opt  device.Options
}

func (f *deviceFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.name, "device", "cpu", "where to compute: "+device.Names)
	cmd.Flags().BoolVar(&f.opt.StrictFP32, "fp32", false, "cuda: matrix products and convolutions in strict FP32 (default: TF32 tensor cores for both; PyTorch >= 1.12 uses TF32 for cuDNN convolutions only)")
	cmd.Flags().BoolVar(&f.opt.NoCuDNN, "no-cudnn", false, "cuda: proxykit's own im2col convolutions even where cuDNN is present")
	cmd.Flags().BoolVar(&f.opt.Graphs, "cuda-graphs", false, "cuda: capture each training step and inference batch as a CUDA graph and replay it (not yet measured on a GPU)")
	cmd.Flags().BoolVar(&f.opt.ChannelsLast, "channels-last", false, "cuda: values around convolutions, and their weights, channels-last (NHWC), so that cuDNN converts nothing (not yet measured on a GPU)")
}

func (f *deviceFlags) open() (compute.Backend, error) { return device.Open(f.name, f.opt) }

// check refuses, before a model is read, a device this build or machine
// cannot open (--device cuda without -tags cuda, say).
func (f *deviceFlags) check() error { return device.Check(f.name) }

// defaultInWords ends a flag's usage with its default in words — one that
// depends on the model file, say — in place of the value pflag would print
// after it (DefValue, which only help texts read, set to the zero value
// pflag leaves unprinted): one default per flag in --help and docs/cli.md.
func defaultInWords(cmd *cobra.Command, name, words string) {
	f := cmd.Flags().Lookup(name)
	f.Usage += " (default: " + words + ")"
	f.DefValue = "0" // a number's zero
	if f.Value.Type() == "string" {
		f.DefValue = ""
	}
}

// checkAll runs a command's checks of its flags in order, before the model
// is read (it may take seconds): the first error, if any.
func checkAll(checks ...func() error) error {
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// checkBatch checks a --batch-size (or similar) flag before any work.
func checkBatch(flag string, n int) error {
	if n < 1 || n > recipe.MaxBatchSize {
		return fmt.Errorf("--%s must lie between 1 and %d, got %d", flag, recipe.MaxBatchSize, n)
	}
	return nil
}
