package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/nn"
)

// parseInputShape reads CxHxW.
func parseInputShape(s string) ([]int, error) {
	parts := strings.Split(s, "x")
	if len(parts) != 3 {
		return nil, fmt.Errorf("--input %q: want CxHxW, e.g. 3x32x32", s)
	}
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

func newInitCmd() *cobra.Command {
	var (
		arch, output, input string
		width, blocks       int
		seed                uint64
	)
	cmd := &cobra.Command{
		Use:   "init --arch fmnist|tiny|resnet -o net.onnx",
		Short: "Write a freshly initialised network (the paper's, a tiny one or a ResNet) as ONNX",
		Long: `init writes the paper's Fashion-MNIST network (docs/design.md §1) with PyTorch's
default initialisation — weights U(−1/√fan_in, 1/√fan_in), BN γ=1, β=0 — as an
ONNX file that every other command reads. --width scales the channels (128 is
the paper's) and the fully connected layers with them. --arch tiny is a small
network for quick runs: conv 1→8 + BN, ReLU, maxpool, conv 8→16 + BN, ReLU,
maxpool, linear 784→64, ReLU, 64→10. --arch resnet is a CIFAR-style residual
network of basic blocks (He et al. 2016): --blocks per stage (1: ResNet-8,
3: ResNet-20), --width channels in the first stage (16; 32 and 64 after),
projection shortcuts where the resolution halves, global average pooling,
linear to 10 classes; --input 3x32x32 (CIFAR-10) by default, 1x28x28 for
MNIST and Fashion-MNIST.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				return fmt.Errorf("-o is required")
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			var net *nn.Network
			var err error
			switch arch {
			case "fmnist":
				net, err = nn.Reference(width, seed)
			case "tiny":
				net, err = nn.Tiny(seed)
			case "resnet":
				w := width
				if !cmd.Flags().Changed("width") {
					w = 16
				}
				in, perr := parseInputShape(input)
				if perr != nil {
					return perr
				}
				net, err = nn.ResNet(in, w, blocks, 10, seed)
				width = w
			default:
				return fmt.Errorf("--arch %q: want fmnist (the paper's network), tiny or resnet", arch)
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
	f.StringVar(&arch, "arch", "fmnist", "architecture: fmnist (the paper's Fashion-MNIST network), tiny or resnet")
	f.IntVar(&blocks, "blocks", 1, "resnet: basic blocks per stage (1: ResNet-8, 3: ResNet-20)")
	f.StringVar(&input, "input", "3x32x32", "resnet: input shape CxHxW")
	f.StringVarP(&output, "output", "o", "", "ONNX file to write")
	f.IntVar(&width, "width", 128, "channels of the convolutions (fmnist: 128, the paper's; resnet: 16, the first stage's)")
	f.Uint64Var(&seed, "seed", 2020, "seed of the weight initialisation")
	return cmd
}
