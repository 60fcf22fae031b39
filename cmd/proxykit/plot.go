package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/plots"
)

func newPlotCmd() *cobra.Command {
	var (
		output string
		labels []string
	)
	cmd := &cobra.Command{
		Use:   "plot FILE... -o FIGURE.png",
		Short: "Draw accuracy against T (from eval --json) or a training curve (from a checkpoint or train --json)",
		Long: `plot draws a figure (PNG, SVG or PDF, by -o's extension) and writes its
numbers beside it as CSV (FIGURE.csv).
From the output of eval --timesteps LIST --json, one file per model: accuracy
(ANN, SNN strict, SNN ties), firing rate per IF layer and synaptic operations
per image against T, all models in the same panels — e.g. a converted SNN
beside a proxy-trained one. --label names them (default: the model file).
From a checkpoint written by train, or the lines train --json printed: the
training curve (test and train accuracy, loss) over the epochs of one run.
A figure shows at most 1000 values of T per model (T up to 1048576) and
training logs of up to 100000 epochs; files beyond what eval and train
write are refused, naming the field.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return fmt.Errorf("-o is required: the figure to write (.png, .svg or .pdf)")
			}
			if err := checkPlot("-o", output, args...); err != nil {
				return err
			}
			if len(labels) > 0 && len(labels) != len(args) {
				return fmt.Errorf("--label: %d labels for %d files", len(labels), len(args))
			}
			return draw(cmd.OutOrStdout(), output, false, func(figure string) error { return plots.Files(figure, args, labels) })
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "figure to write: .png, .svg or .pdf (its numbers go to the same name with .csv)")
	cmd.Flags().StringSliceVar(&labels, "label", nil, "legend names, one per file, comma-separated")
	return cmd
}
