package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/exporter"
)

func newInitCmd() *cobra.Command {
	var (
		output string
		af     *archFlags
	)
	cmd := &cobra.Command{
		Use:   "init [--arch NAME] -o net.onnx",
		Short: "Write a freshly initialised network (the paper's, a tiny one or a ResNet) as ONNX",
		Long: `init writes a network of proxykit's architecture registry with PyTorch's
default initialisation — weights U(−1/√fan_in, 1/√fan_in) drawn from a seeded
generator, BN γ=1, β=0 — as an ONNX file that every other command reads:
fmnist is the paper's Fashion-MNIST network (docs/design.md §1; --width
scales its channels and fully connected layers, 128 is the paper's); tiny is
a small network for quick runs (conv 1→8 + BN, ReLU, maxpool, conv 8→16 +
BN, ReLU, maxpool, linear 784→64, ReLU, 64→10); resnet is a CIFAR-style
residual network of basic blocks (He et al. 2016): --blocks per stage,
--width channels in the first stage (twice and four times after),
projection shortcuts where the resolution halves, global average pooling,
linear to 10 classes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput("-o", output, ""); err != nil {
				return err
			}
			net, err := af.build()
			if err != nil {
				return err
			}
			meta := map[string]string{"proxykit.arch": af.name, "proxykit.network": net.Name, "proxykit.seed": fmt.Sprint(af.opt.Seed)}
			if err := exporter.WriteANN(output, net, exporter.Options{Metadata: meta, ProducerVersion: version()}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %d parameters, seed %d\n", output, net.Name, net.ParamCount(), af.opt.Seed)
			return nil
		},
	}
	af = addArchFlags(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "ONNX file to write")
	return cmd
}
