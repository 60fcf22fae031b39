package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/train"
)

// evalCmd is eval's flags.
type evalCmd struct {
	s        recipe.Settings
	plotPath string
	jsonOut  bool
	mf       *modelFlags
	df       *deviceFlags
	sf       *snnFlags
	data     *dataFlags
}

func newEvalCmd() *cobra.Command {
	c := &evalCmd{s: recipe.Default()}
	cmd := &cobra.Command{
		Use:   "eval MODEL [--data DIR] [--dataset NAME] [--timesteps T|LIST]",
		Short: "Test accuracy of the ANN and its SNN",
		Long: `eval runs MODEL's ANN and SNN (BatchNorm in eval mode) over the test split and
prints the ANN's accuracy and the SNN's under three readings of its spike
counts, which often tie (an SNN that never fires ties every class at 0):
  strict    the first class with the most spikes (the reference notebook's
            per-epoch figure): a tie goes to the lowest class index;
  ties      right when the label's count equals the maximum (the notebook's
            final figure, the rule of the paper's 94.56 %): every tie that
            includes the label counts, so a silent SNN scores 100 %;
  membrane  the most spikes, ties broken by the output neurons' membrane
            potential after the last step (the charge each holds towards its
            next spike), then by index: no tie is credited, so it is the
            reading to trust when the counts tie often;
and the share of tied predictions. When half the predictions or more are
ties, or the output layer is silent on half the images or more, a warning
says so in words (--json: tie_share, silent_share). For Fashion-MNIST one
more line sets the ties figure beside the paper's 94.56 % and the released
model's 93.37 % (both under the ties rule), strict and membrane after it:
under the warning, that figure is not comparable with the paper's. Then per
class the accuracies, and the confusion matrices.

With a list of simulation lengths (--timesteps 1,2,4,8 or 1-32 or 8-128:8)
eval simulates once for the longest and reads the SNN off at each T:
accuracies, each IF layer's firing rate, synaptic operations per image (each
spike reaching a convolution or linear layer costs its fan-out in
additions) beside the ANN's multiply-accumulates, and the first T at which
the SNN reaches 95 % of the ANN. --plot FIGURE.png (.svg, .pdf) draws it
and writes FIGURE.csv; --json prints it (proxykit plot draws several).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.run(cmd, args[0]) },
	}
	c.mf, c.df, c.sf, c.data = addModelFlags(cmd), addDeviceFlags(cmd), addSweepSNNFlags(cmd, &c.s.Config), addDataFlags(cmd, &c.s.Dataset)
	cmd.Flags().StringVar(&c.plotPath, "plot", "", "draw accuracy, firing rates and synaptic operations against T to this .png, .svg or .pdf (numbers to the same name .csv)")
	cmd.Flags().IntVar(&c.s.BatchSize, "batch-size", c.s.BatchSize, "images per forward pass")
	cmd.Flags().IntVar(&c.s.MaxTest, "max-test", 0, "use only the first N test images (0: all)")
	cmd.Flags().BoolVar(&c.jsonOut, "json", false, "print JSON")
	return cmd
}

func (c *evalCmd) run(cmd *cobra.Command, path string) error {
	plot := func() error { return checkPlot("--plot", c.plotPath, path) }
	if err := checkAll(c.s.ValidateExceptSNN, plot, c.sf.check, c.data.check, c.df.check); err != nil { // ValidateExceptSNN: --batch-size, --max-test
		return err
	}
	m, snn, err := c.mf.loadSNN(cmd, path, c.sf, c.data)
	if err != nil {
		return err
	}
	testSet, err := c.data.load(m, false, c.s.MaxTest)
	if err != nil {
		return err
	}
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	return c.df.with(func(be compute.Backend) error {
		if len(c.sf.ts) == 1 && c.plotPath == "" {
			rep, err := train.Evaluate(ctx, be, m.ANN, snn, testSet, c.s.BatchSize)
			if err != nil {
				return err
			}
			return emit(out, c.jsonOut, rep, func(w io.Writer) error { return rep.WriteText(w, path, testSet.Name, c.s.Timesteps, c.s.Threshold) })
		}
		sw, err := train.SweepModel(ctx, be, m.ANN, snn, testSet, c.s.BatchSize, train.SweepOptions{Timesteps: c.sf.ts, Progress: cmd.ErrOrStderr(), Model: path})
		if err == nil { // the numbers first: a figure that cannot be drawn loses nothing
			err = emit(out, c.jsonOut, sw, func(w io.Writer) error { return sw.WriteText(w, path, testSet.Name) })
		}
		if err != nil {
			return err
		}
		return draw(out, c.plotPath, c.jsonOut, func(figure string) error { return plots.Sweeps(figure, []results.Sweep{sw}) })
	})
}
