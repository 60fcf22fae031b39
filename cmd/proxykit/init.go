package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/nn"
)

func newInitCmd() *cobra.Command {
	var (
		arch, output string
		width        int
		seed         uint64
	)
	cmd := &cobra.Command{
		Use:   "init --arch fmnist -o net.onnx",
		Short: "Write a freshly initialised reference network as ONNX",
		Long: `init writes the paper's Fashion-MNIST network (docs/design.md §1) with PyTorch's
default initialisation — weights U(−1/√fan_in, 1/√fan_in), BN γ=1, β=0 — as an
ONNX file that every other command reads. --width scales the channels (128 is
the paper's) and the fully connected layers with them. --arch tiny is a small
network for quick runs: conv 1→8 + BN, ReLU, maxpool, conv 8→16 + BN, ReLU,
maxpool, linear 784→64, ReLU, 64→10.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				return fmt.Errorf("-o is required")
			}
			var net *nn.Network
			var err error
			switch arch {
			case "fmnist":
				net, err = nn.Reference(width, seed)
			case "tiny":
				net, err = nn.Tiny(seed)
			default:
				return fmt.Errorf("--arch %q: want fmnist (the paper's network) or tiny", arch)
			}
			if err != nil {
				return err
			}
			meta := map[string]string{"proxykit.arch": arch, "proxykit.width": fmt.Sprint(width), "proxykit.seed": fmt.Sprint(seed)}
			if err := exporter.WriteANN(output, net, exporter.Options{Metadata: meta, ProducerVersion: version}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %d parameters, seed %d\n", output, net.Name, net.ParamCount(), seed)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&arch, "arch", "fmnist", "architecture: fmnist (the paper's Fashion-MNIST network) or tiny")
	f.StringVarP(&output, "output", "o", "", "ONNX file to write")
	f.IntVar(&width, "width", 128, "channels of the convolutions (the paper: 128)")
	f.Uint64Var(&seed, "seed", 2020, "seed of the weight initialisation")
	return cmd
}
