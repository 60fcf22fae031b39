package main

import (
	"fmt"
	"path/filepath"

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
	if err := checkBatch("batch-size", c.s.BatchSize); err != nil {
		return err
	}
	if c.s.MaxTest < 0 {
		return fmt.Errorf("--max-test must not be negative (0: all), got %d", c.s.MaxTest)
	}
	var outs outputs
	if err := addPlotOutputs(&outs, "--plot", c.plotPath); err != nil {
		return err
	}
	if err := outs.check(path); err != nil {
		return err
	}
	m, err := c.mf.load(cmd, path)
	if err != nil {
		return err
	}
	c.sf.fromModel(m)
	c.data.fromModel(m)
	ts, err := c.sf.sweep()
	if err != nil {
		return err
	}
	testSet, err := c.data.load(m, false)
	if err != nil {
		return err
	}
	testSet = testSet.Subset(c.s.MaxTest)
	snn, err := m.SNN(c.s.Config)
	if err != nil {
		return err
	}
	be, err := c.df.open()
	if err != nil {
		return err
	}
	defer be.Close()
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	if len(ts) == 1 && c.plotPath == "" {
		rep, err := train.Evaluate(ctx, be, m.ANN, snn, testSet, c.s.BatchSize)
		if err != nil {
			return err
		}
		if c.jsonOut {
			return printJSON(out, rep)
		}
		acc := rep.Accuracy
		fmt.Fprintf(out, "%s on %s test (%d images), T=%d, v_th=%g:\n", path, testSet.Name, acc.N, c.s.Timesteps, c.s.Threshold)
		printAccuracy(out, acc, rep.Paper)
		printReport(out, rep)
		return nil
	}
	prog := newProgress(cmd)
	opt := train.SweepOptions{Timesteps: ts, OnBatch: func(done, total int) {
		prog.show(fmt.Sprintf("%d/%d images", done, total), false)
	}}
	sw, err := train.SweepModel(ctx, be, m.ANN, snn, testSet, c.s.BatchSize, opt)
	prog.clear()
	if err != nil {
		return err
	}
	sw.Model = filepath.Base(path)
	// the numbers first: a figure that cannot be drawn loses nothing
	if c.jsonOut {
		if err := printJSON(out, sw); err != nil {
			return err
		}
	} else {
		printSweep(out, path, testSet.Name, sw)
	}
	if c.plotPath == "" {
		return nil
	}
	if err := plots.Sweeps(c.plotPath, []results.Sweep{sw}); err != nil {
		return err
	}
	if !c.jsonOut {
		fmt.Fprintf(out, "wrote %s and %s\n", c.plotPath, plots.CSVPath(c.plotPath))
	}
	return nil
}
