package main

import (
	"io"

	"github.com/spf13/cobra"

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
	mf       modelFlags
	df       deviceFlags
	sf       *snnFlags
	data     *dataFlags
}

func newEvalCmd() *cobra.Command {
	c := &evalCmd{s: recipe.Default()}
	cmd := &cobra.Command{
		Use:   "eval MODEL --data DIR --dataset NAME",
		Short: "Test accuracy of the ANN and its SNN",
		Long: `eval runs MODEL's ANN and SNN (BatchNorm in eval mode) over the test split and
prints the ANN's accuracy and the SNN's: strict (the first maximum of the
counts is the label: the reference's per-epoch figure), ties (the label's
count equals the maximum: the reference's final figure) and the share of
tied predictions; then per class the accuracies, and the confusion matrices.

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
	c.sf, c.data = addSweepSNNFlags(cmd, &c.s.Config), addDataFlags(cmd, &c.s.Dataset)
	f := cmd.Flags()
	f.StringVar(&c.plotPath, "plot", "", "draw accuracy, firing rates and synaptic operations against T to this .png, .svg or .pdf (numbers to the same name .csv)")
	f.IntVar(&c.s.BatchSize, "batch-size", c.s.BatchSize, "images per forward pass")
	f.IntVar(&c.s.MaxTest, "max-test", 0, "use only the first N test images (0: all)")
	f.BoolVar(&c.jsonOut, "json", false, "print JSON")
	c.mf.add(cmd)
	c.df.add(cmd)
	return cmd
}

func (c *evalCmd) run(cmd *cobra.Command, path string) error {
	if err := c.s.Validate(); err != nil { // --batch-size, --max-test
		return err
	}
	if err := checkPlot("--plot", c.plotPath, path); err != nil {
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
	be, err := c.df.open()
	if err != nil {
		return err
	}
	defer be.Close()
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	if len(c.sf.ts) == 1 && c.plotPath == "" {
		rep, err := train.Evaluate(ctx, be, m.ANN, snn, testSet, c.s.BatchSize)
		if err != nil {
			return err
		}
		return emit(out, c.jsonOut, rep, func(w io.Writer) error { return rep.WriteText(w, path, testSet.Name, c.s.Timesteps, c.s.Threshold) })
	}
	sw, err := train.SweepModel(ctx, be, m.ANN, snn, testSet, c.s.BatchSize, train.SweepOptions{Timesteps: c.sf.ts, Progress: cmd.ErrOrStderr(), Model: path})
	if err != nil {
		return err
	}
	// the numbers first: a figure that cannot be drawn loses nothing
	if err := emit(out, c.jsonOut, sw, func(w io.Writer) error { return sw.WriteText(w, path, testSet.Name) }); err != nil {
		return err
	}
	return draw(out, c.plotPath, c.jsonOut, func(figure string) error { return plots.Sweeps(figure, []results.Sweep{sw}) })
}
