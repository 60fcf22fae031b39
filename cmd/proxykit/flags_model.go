package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// modelFlags read MODEL: --arch and --like give a PyTorch state dict its
// structure.
type modelFlags struct{ opt model.Options }

func addModelFlags(cmd *cobra.Command) *modelFlags {
	f := &modelFlags{}
	cmd.Flags().StringVar(&f.opt.Arch, "arch", "", "structure of a PyTorch state dict: "+nn.ArchitectureNames()+" (sized after the state dict)")
	cmd.Flags().StringVar(&f.opt.Like, "like", "", "structure of a PyTorch state dict: any model file with the same parameter names")
	return f
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
