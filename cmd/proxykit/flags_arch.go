package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// archFlags choose and size an architecture of the registry.
type archFlags struct {
	name, input string
	opt         nn.ArchOptions
}

func addArchFlags(cmd *cobra.Command) *archFlags {
	f, fl := &archFlags{}, cmd.Flags()
	fl.StringVar(&f.name, "arch", "fmnist", "architecture: "+nn.ArchitectureNames())
	fl.IntVar(&f.opt.Width, "width", 0, "channel width (default: the architecture's own: fmnist 128, the paper's; resnet 16, the first stage's)")
	fl.IntVar(&f.opt.Blocks, "blocks", 0, "resnet: basic blocks per stage (default 1: ResNet-8; 3: ResNet-20)")
	fl.StringVar(&f.input, "input", "", "resnet: input shape CxHxW (default 3x32x32; 1x28x28 for MNIST and Fashion-MNIST)")
	fl.Uint64Var(&f.opt.Seed, "seed", 2020, "seed of the weight initialisation")
	return f
}

// build makes the network.
func (f *archFlags) build() (*nn.Network, error) {
	a, err := nn.ArchitectureNamed(f.name)
	if err != nil {
		return nil, fmt.Errorf("--arch: %w", err)
	}
	if f.input != "" {
		if f.opt.Input, err = parseInputShape(f.input); err != nil {
			return nil, err
		}
	}
	return a.Build(f.opt)
}

// checkModel refuses, for a command that measures MODEL when given (bench),
// a flag that sizes a network of the registry along with MODEL.
func (f *archFlags) checkModel(cmd *cobra.Command, args []string) func() error {
	return func() error {
		for _, flag := range []string{"width", "blocks", "input", "seed"} {
			if len(args) == 1 && cmd.Flags().Changed(flag) {
				return fmt.Errorf("--%s sizes a network of the registry; %s brings its own", flag, args[0])
			}
		}
		return nil
	}
}

// snn is the SNN a command measures: MODEL's when given (m; --arch then
// gives a PyTorch state dict its structure), else that of the registry's
// network (build); sf's setting either way.
func (f *archFlags) snn(cmd *cobra.Command, args []string, sf *snnFlags) (m *model.Model, snn *spiking.Network, err error) {
	if len(args) == 1 {
		mf := &modelFlags{}
		if cmd.Flags().Changed("arch") {
			mf.opt.Arch = f.name
		}
		return mf.loadSNN(cmd, args[0], sf)
	}
	net, err := f.build()
	if err == nil {
		snn, err = spiking.New(net, *sf.cfg)
	}
	return nil, snn, err
}

// parseInputShape reads CxHxW.
func parseInputShape(s string) ([]int, error) {
	parts := strings.Split(s, "x")
	if len(parts) == 3 {
		out := make([]int, 3)
		for i, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || v < 1 || v > 1<<14 {
				return nil, fmt.Errorf("--input %q: want CxHxW of positive integers, e.g. 3x32x32", s)
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("--input %q: want CxHxW, e.g. 3x32x32", s)
}
