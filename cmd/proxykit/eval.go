package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

func newEvalCmd() *cobra.Command {
	var (
		dataDir, dataset string
		s                = recipe.Default()
		jsonOut          bool
		timesteps        string
		plotPath         string
		df               deviceFlags
		mf               modelFlags
	)
	cmd := &cobra.Command{
		Use:   "eval MODEL --data DIR --dataset NAME",
		Short: "Test accuracy of the ANN and its SNN",
		Long: `eval runs MODEL's ANN and SNN (BatchNorm in eval mode) over the test split
and prints the ANN's accuracy and the SNN's: strict (first maximum of the
counts is the label, the reference's per-epoch figure), ties (the label's
count equals the maximum, the reference's final figure) and the share of
tied predictions; then, per class (Fashion-MNIST's names: T-shirt/top …
Ankle boot), the ANN's and the SNN's strict and ties accuracy, and the
SNN's and the ANN's confusion matrices (rows: label, columns: prediction).
--data defaults to Debian's Fashion-MNIST folder (` + data.FashionMNISTDir + `).

With a list of simulation lengths (--timesteps 1,2,4,8,16,32,64,128, or
ranges such as 1-32 or 8-128:8) eval simulates once for the longest and
reads the SNN off at each T: strict and ties accuracy, tie share, each IF
layer's firing rate (spikes per neuron per step) and the synaptic
operations per image (each spike reaching a convolution or linear layer
costs its fan-out in additions), beside the ANN's accuracy and
multiply-accumulates; and the first T at which the SNN reaches 95 % of the
ANN's accuracy. --plot FIGURE.png (or .svg, .pdf) draws it and writes the
numbers to FIGURE.csv; --json prints them (proxykit plot draws several
models' --json outputs in one figure).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkBatch("batch-size", s.BatchSize); err != nil {
				return err
			}
			if s.MaxTest < 0 {
				return fmt.Errorf("--max-test must not be negative (0: all), got %d", s.MaxTest)
			}
			m, err := mf.load(args[0])
			if err != nil {
				return err
			}
			applySNNDefaults(cmd.Flags(), m, &s.Timesteps, &s.Threshold, &s.Reset)
			ts := []int{s.Timesteps}
			if cmd.Flags().Changed("timesteps") {
				if ts, err = train.ParseTimesteps(timesteps); err != nil {
					return err
				}
				s.Timesteps = ts[len(ts)-1]
			}
			if plotPath != "" {
				if err := plots.CheckPath(plotPath); err != nil {
					return err
				}
			}
			testSet, err := loadSplit(cmd, m, args[0], dataDir, dataset, false)
			if err != nil {
				return err
			}
			dataset = testSet.Name
			testSet = testSet.Subset(s.MaxTest)
			snn, err := m.SNN(s.Config)
			if err != nil {
				return err
			}
			be, err := df.open()
			if err != nil {
				return err
			}
			defer be.Close()
			if len(ts) > 1 || plotPath != "" {
				return evalSweep(cmd, args[0], dataset, m.ANN, snn, be, testSet, s.BatchSize, ts, plotPath, jsonOut)
			}
			rep, err := train.Evaluate(be, m.ANN, snn, testSet, s.BatchSize)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				b, _ := json.Marshal(rep)
				fmt.Fprintln(out, string(b))
				return nil
			}
			acc := rep.Accuracy
			fmt.Fprintf(out, "%s on %s test (%d images), T=%d, v_th=%g:\n  ANN %.2f%%\n  SNN strict %.2f%%  ties %.2f%%  (tied predictions %.2f%%)\n",
				args[0], dataset, acc.N, s.Timesteps, s.Threshold, 100*acc.ANN, 100*acc.SNNStrict, 100*acc.SNNTies, 100*acc.TieShare)
			printReport(out, rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "", "folder holding the data set's files (default for fashion-mnist: "+data.FashionMNISTDir+")")
	f.StringVar(&dataset, "dataset", data.FashionMNIST, "mnist, fashion-mnist or cifar10 (default: a checkpoint's own)")
	f.StringVar(&timesteps, "timesteps", fmt.Sprint(s.Timesteps), "SNN simulation length T, or a list of them read off one simulation: 1,2,4,8 or 1-32 or 8-128:8 (default: a checkpoint's own)")
	f.StringVar(&plotPath, "plot", "", "draw accuracy, firing rates and synaptic operations against T to this .png, .svg or .pdf (numbers to the same name .csv)")
	f.Float32Var(&s.Threshold, "threshold", s.Threshold, "IF threshold v_th")
	f.Float32Var(&s.Reset, "reset", s.Reset, "IF reset potential v_reset")
	f.IntVar(&s.BatchSize, "batch-size", s.BatchSize, "images per forward pass")
	f.IntVar(&s.MaxTest, "max-test", 0, "use only the first N test images (0: all)")
	f.BoolVar(&jsonOut, "json", false, "print JSON")
	mf.add(cmd)
	df.add(cmd)
	return cmd
}

// printReport prints the per-class accuracies and the confusion matrices.
// evalSweep evaluates at every T in ts from one simulation and prints,
// plots or writes JSON.
func evalSweep(cmd *cobra.Command, path, dataset string, ann *nn.Network, snn *spiking.Network, be compute.Backend,
	testSet *data.Dataset, batch int, ts []int, plotPath string, jsonOut bool) error {
	stderr := cmd.ErrOrStderr()
	tty := isTerminal(stderr)
	last := time.Now()
	opt := train.SweepOptions{Timesteps: ts, OnBatch: func(done, total int) {
		switch {
		case tty:
			fmt.Fprintf(stderr, "\r%d/%d images", done, total)
		case time.Since(last) > 30*time.Second:
			last = time.Now()
			fmt.Fprintf(stderr, "%d/%d images\n", done, total)
		}
	}}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sw, err := train.SweepModel(ctx, be, ann, snn, testSet, batch, opt)
	if tty {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		return err
	}
	sw.Model = filepath.Base(path)
	if plotPath != "" {
		if err := plots.Sweeps(plotPath, []results.Sweep{sw}); err != nil {
			return err
		}
	}
	out := cmd.OutOrStdout()
	if jsonOut {
		b, err := json.Marshal(sw)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, string(b))
		return nil
	}
	fmt.Fprintf(out, "%s on %s test (%d images), v_th=%g, v_reset=%g: ANN %.2f%%, %.3g MACs per image (SNN: %.3g in the static input layer, once)\n\n",
		path, dataset, sw.N, sw.Threshold, sw.Reset, 100*sw.ANN, float64(sw.ANNMACs), float64(sw.StaticMACs))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "T\tSNN strict\tSNN ties\ttied\tsynops/image\t")
	for _, l := range sw.IFLayers {
		fmt.Fprintf(tw, "rate %s\t", l)
	}
	fmt.Fprintln(tw)
	for _, p := range sw.Points {
		fmt.Fprintf(tw, "%d\t%.2f%%\t%.2f%%\t%.1f%%\t%.4g\t", p.T, 100*p.SNNStrict, 100*p.SNNTies, 100*p.TieShare, p.SynOps)
		for _, r := range p.Rates {
			fmt.Fprintf(tw, "%.4f\t", r)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if t, ok := sw.Reach(0.95); ok {
		fmt.Fprintf(out, "\nthe SNN (strict) first reaches 95%% of the ANN's accuracy at T=%d\n", t)
	} else {
		fmt.Fprintf(out, "\nthe SNN (strict) stays below 95%% of the ANN's accuracy up to T=%d\n", sw.Points[len(sw.Points)-1].T)
	}
	if plotPath != "" {
		fmt.Fprintf(out, "wrote %s and %s\n", plotPath, plots.CSVPath(plotPath))
	}
	return nil
}

func printReport(w io.Writer, r results.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "class\timages\tANN\tSNN strict\tSNN ties\t")
	for _, c := range r.Classes {
		if c.N == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%.1f%%\t%.1f%%\t\n", c.Name, c.N, 100*c.ANN, 100*c.SNNStrict, 100*c.SNNTies)
	}
	tw.Flush()
	for _, m := range []struct {
		title string
		rows  [][]int
	}{{"SNN (strict)", r.ConfusionSNN}, {"ANN", r.ConfusionANN}} {
		fmt.Fprintf(w, "\nconfusion matrix, %s: rows are labels, columns predictions\n", m.title)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "\t")
		for j := range m.rows[0] {
			fmt.Fprintf(tw, "%d\t", j)
		}
		fmt.Fprintln(tw)
		for i, row := range m.rows {
			if r.Classes[i].N == 0 {
				continue
			}
			fmt.Fprintf(tw, "%d %s\t", i, r.Classes[i].Name)
			for _, v := range row {
				fmt.Fprintf(tw, "%d\t", v)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
}
