package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/train"
)

func newEvalCmd() *cobra.Command {
	var (
		data, dataset string
		s             = train.DefaultSettings()
		jsonOut       bool
		df            deviceFlags
		mf            modelFlags
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
--data defaults to Debian's Fashion-MNIST folder (` + train.FashionMNISTDir + `).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := mf.load(args[0])
			if err != nil {
				return err
			}
			applySNNDefaults(cmd.Flags(), m, &s.Timesteps, &s.Threshold, &s.Reset)
			if m.Checkpoint != nil && !cmd.Flags().Changed("dataset") {
				dataset = m.Checkpoint.Settings.Dataset
			}
			if data == "" {
				if data, err = train.DefaultDir(dataset); err != nil {
					return err
				}
			}
			testSet, err := train.Load(data, dataset, false)
			if err != nil {
				return err
			}
			testSet = testSet.Subset(s.MaxTest)
			if err := m.ANN.CheckInput([]int{1, testSet.C, testSet.H, testSet.W}); err != nil {
				return fmt.Errorf("data set %s does not fit %s: %w", dataset, args[0], err)
			}
			snn, err := m.SNN(s.SNNConfig())
			if err != nil {
				return err
			}
			be, err := df.open()
			if err != nil {
				return err
			}
			defer be.Close()
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
	f.StringVar(&data, "data", "", "folder holding the data set's files (default for fashion-mnist: "+train.FashionMNISTDir+")")
	f.StringVar(&dataset, "dataset", train.FashionMNIST, "mnist, fashion-mnist or cifar10 (default: a checkpoint's own)")
	f.IntVar(&s.Timesteps, "timesteps", s.Timesteps, "SNN simulation length T")
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
func printReport(w io.Writer, r train.Report) {
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
