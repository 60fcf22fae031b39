package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "proxykit",
		Short: "Train spiking neural networks by proxy learning",
		Long: `proxykit imports an ANN (ONNX), builds the integrate-and-fire SNN that
shares its weights, fine-tunes both with proxy learning and runs them (Kheradpisheh, Mirsadeghi, Masquelier,
"Spiking neural networks trained via proxy", arXiv 2109.13208).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd(), newImportCmd(), newInferCmd(), newInitCmd(), newTrainCmd(), newEvalCmd(), newExportCmd(), newConvertCmd(), newConvertSNNCmd(), newPlotCmd(), newBenchCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print proxykit's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "proxykit %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
