package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/recipe"
)

func newExportCmd() *cobra.Command {
	var (
		annPath, snnPath, nirPath string
		nirOpt                    exporter.NIROptions
		opset                     int
		foldBN                    bool
		s                         = recipe.Default()
		mf                        modelFlags
	)
	cmd := &cobra.Command{
		Use:   "export MODEL [--ann ann.onnx] [--snn snn.onnx] [--nir snn.nir]",
		Short: "Write the ANN as ONNX, the SNN as ONNX and as NIR",
		Long: `export writes any of:
  --ann  the ANN as ONNX: standard operators, BatchNormalization with the ANN's
         running statistics (or folded into the convolutions with --fold-bn),
         initializers named after the parameters;
  --snn  the SNN as ONNX: input the image batch, output the spike counts [B,K];
         the T steps unrolled with standard operators (Add, GreaterOrEqual,
         Cast, Where), weights stored once, the SNN's own BN statistics folded;
  --nir  the SNN as a NIR graph (HDF5): Input, Conv2d, IF, SumPool2d + IF
         for max-pooling on spikes (their OR; SumPool2d + Threshold with
         --nir-maxpool-threshold), AvgPool2d, Flatten, Affine or Linear,
         Output. NIR's IF fires on v > v_threshold, proxykit's on v >= v_th:
         v_threshold is written as the float32 just below v_th, which fires
         on the same potentials. T and dt = 1 are in the metadata.
MODEL is an ONNX file, a PyTorch checkpoint or a proxykit checkpoint (whose
SNN settings, like an SNN module's, are the defaults).
Nothing is written unless every requested file can be.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if annPath == "" && snnPath == "" && nirPath == "" {
				return fmt.Errorf("nothing to do: give --ann, --snn or --nir")
			}
			m, err := mf.load(args[0])
			if err != nil {
				return err
			}
			applySNNDefaults(cmd.Flags(), m, &s.Timesteps, &s.Threshold, &s.Reset)
			snn, err := m.SNN(s.Config)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			meta := map[string]string{"proxykit.source": args[0], "proxykit.version": version}
			if ck := m.Checkpoint; ck != nil {
				b, err := json.Marshal(ck.Settings)
				if err != nil {
					return err
				}
				meta["proxykit.training_settings"] = string(b)
				meta["proxykit.epochs_trained"] = fmt.Sprint(ck.Progress.Epoch)
			}
			opt := exporter.Options{Opset: opset, Metadata: meta, ProducerVersion: version, FoldBN: foldBN}
			// encode and check everything before writing anything
			var annBytes, snnBytes []byte
			if annPath != "" {
				if annBytes, err = exporter.ANN(m.ANN, opt); err != nil {
					return fmt.Errorf("--ann %s: %w", annPath, err)
				}
			}
			if snnPath != "" {
				if snnBytes, err = exporter.SNN(snn, opt); err != nil {
					return fmt.Errorf("--snn %s: %w", snnPath, err)
				}
			}
			if nirPath != "" {
				if err := exporter.CheckNIR(snn, nirOpt); err != nil {
					return fmt.Errorf("--nir %s: %w", nirPath, err)
				}
			}
			// every file is written under a temporary name first; they
			// are renamed into place only once all of them were written
			for _, p := range []string{annPath, snnPath, nirPath} {
				if p == "" {
					continue
				}
				if err := checkOutput(p, args[0]); err != nil {
					return err
				}
			}
			var pending []*atomicfile.Pending
			abort := func() {
				for _, p := range pending {
					p.Abort()
				}
			}
			var lines []string
			if annBytes != nil {
				p, err := atomicfile.Prepare(annPath, annBytes)
				if err != nil {
					abort()
					return err
				}
				pending = append(pending, p)
				lines = append(lines, fmt.Sprintf("wrote %s: the ANN (%d bytes)", annPath, len(annBytes)))
			}
			if snnBytes != nil {
				p, err := atomicfile.Prepare(snnPath, snnBytes)
				if err != nil {
					abort()
					return err
				}
				pending = append(pending, p)
				lines = append(lines, fmt.Sprintf("wrote %s: the SNN, T=%d unrolled (%d bytes)", snnPath, s.Timesteps, len(snnBytes)))
			}
			if nirPath != "" {
				p, err := exporter.PrepareNIR(nirPath, snn, nirOpt)
				if err != nil {
					abort()
					return err
				}
				pending = append(pending, p)
				lines = append(lines, fmt.Sprintf("wrote %s: the SNN as a NIR graph", nirPath))
			}
			for i, p := range pending {
				if err := p.Commit(); err != nil {
					for _, q := range pending[i+1:] {
						q.Abort()
					}
					return err
				}
			}
			out := cmd.OutOrStdout()
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&annPath, "ann", "", "write the ANN as ONNX here")
	fl.StringVar(&snnPath, "snn", "", "write the SNN as ONNX here")
	fl.StringVar(&nirPath, "nir", "", "write the SNN as NIR (HDF5) here")
	fl.BoolVar(&nirOpt.MaxPoolThreshold, "nir-maxpool-threshold", false, "NIR: max-pooling as SumPool2d + Threshold (NIR's literal OR; norse, sinabs and snntorch cannot load it) instead of SumPool2d + IF")
	fl.IntVar(&s.Timesteps, "timesteps", s.Timesteps, "SNN: time steps T (default: a checkpoint's own, else 15)")
	fl.Float32Var(&s.Threshold, "threshold", s.Threshold, "SNN: threshold v_th")
	fl.Float32Var(&s.Reset, "reset", s.Reset, "SNN: reset potential v_reset")
	fl.IntVar(&opset, "opset", exporter.DefaultOpset, "ONNX opset to write (13 to 21)")
	fl.BoolVar(&foldBN, "fold-bn", false, "ANN: fold BatchNorm into the convolutions")
	mf.add(cmd)
	return cmd
}
