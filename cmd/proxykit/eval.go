package main

import (
	"encoding/json"
	"fmt"

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
tied predictions.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return fmt.Errorf("--data is required")
			}
			m, err := mf.load(args[0])
			if err != nil {
				return err
			}
			applySNNDefaults(cmd.Flags(), m, &s.Timesteps, &s.Threshold, &s.Reset)
			if m.Checkpoint != nil && !cmd.Flags().Changed("dataset") {
				dataset = m.Checkpoint.Settings.Dataset
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
			acc, err := train.Evaluate(be, m.ANN, snn, testSet, s.BatchSize)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				b, _ := json.Marshal(acc)
				fmt.Fprintln(out, string(b))
				return nil
			}
			fmt.Fprintf(out, "%s on %s test (%d images), T=%d, v_th=%g:\n  ANN %.2f%%\n  SNN strict %.2f%%  ties %.2f%%  (tied predictions %.2f%%)\n",
				args[0], dataset, acc.N, s.Timesteps, s.Threshold, 100*acc.ANN, 100*acc.SNNStrict, 100*acc.SNNTies, 100*acc.TieShare)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "folder holding the data set's files")
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
