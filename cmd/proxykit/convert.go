package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/exporter"
)

func newConvertCmd() *cobra.Command {
	var (
		output string
		opset  int
		mf     *modelFlags
	)
	cmd := &cobra.Command{
		Use:   "convert MODEL -o ann.onnx",
		Short: "Convert a PyTorch checkpoint (or any model) to an ONNX ANN",
		Long: `convert reads MODEL — for instance the reference's ANN_Params.pt, a whole
pickled module, read without Python and without running any of its code —
and writes its ANN as ONNX, which every other tool reads.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput("-o", output, "", args[0]); err != nil {
				return err
			}
			opt := exporter.Options{Opset: opset, ProducerVersion: version(),
				Metadata: map[string]string{"proxykit.source": args[0]}}
			if err := opt.Check(); err != nil {
				return err
			}
			m, err := mf.load(cmd, args[0])
			if err != nil {
				return err
			}
			if err := exporter.WriteANN(output, m.ANN, opt); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d layers, %d parameters\n", output, len(m.ANN.Layers), m.ANN.ParamCount())
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "ONNX file to write")
	cmd.Flags().IntVar(&opset, "opset", exporter.DefaultOpset, "ONNX opset to write (13 to 21)")
	mf = addModelFlags(cmd)
	return cmd
}
