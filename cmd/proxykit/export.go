package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/spiking"
)

// exportCmd is export's flags.
type exportCmd struct {
	annPath, snnPath, nirPath string
	nir                       exporter.NIROptions
	opt                       exporter.Options
	cfg                       spiking.Config
	mf                        *modelFlags
	sf                        *snnFlags
}

func newExportCmd() *cobra.Command {
	c := &exportCmd{cfg: spiking.DefaultConfig()}
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
         --snn-potential adds the output layer's final membrane potentials;
  --nir  the SNN as a NIR graph (HDF5) for neuromorphic tools (docs/design.md
         §3): v_threshold is the float32 just below v_th, which fires on the
         same potentials as proxykit's v >= v_th; T and dt = 1 in the metadata;
         Affine (a zero bias for a bias-free layer), Flatten (dims counted from
         the end). Out of the box, with each consumer's documented import
         call and defaults, norse gives proxykit's counts; sinabs's from_nir
         does not (its IAF fires several spikes per step, subtracts θ and
         floors at −θ) and runs no graph with joins; snnTorch's
         import_from_nir fails (IF becomes a Leaky whose tuple output
         reaches the next layer). With the settings docs/nir.md gives,
         sinabs and snnTorch give proxykit's counts too.
MODEL is any model file (a checkpoint's or an SNN module's settings are the
SNN's defaults). Nothing is written unless every requested file can be.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.run(cmd, args[0]) },
	}
	c.mf, c.sf = addModelFlags(cmd), addSNNFlags(cmd, &c.cfg)
	f := cmd.Flags()
	f.StringVar(&c.annPath, "ann", "", "write the ANN as ONNX here")
	f.StringVar(&c.snnPath, "snn", "", "write the SNN as ONNX here")
	f.StringVar(&c.nirPath, "nir", "", "write the SNN as NIR (HDF5) here")
	f.BoolVar(&c.nir.MaxPoolThreshold, "nir-maxpool-threshold", false, "NIR: max-pooling as SumPool2d + Threshold (NIR's literal OR; norse, sinabs and snntorch cannot load it) instead of SumPool2d + IF")
	f.BoolVar(&c.nir.AvgPoolAsConv, "nir-avgpool-conv", false, "NIR: average pooling as a Conv2d (1/(kh*kw) from each channel to itself), which sinabs's loader maps, instead of AvgPool2d")
	f.BoolVar(&c.opt.Potential, "snn-potential", false, "SNN ONNX: a second output \"potential\" [B,K], the output layer's final membrane potentials, which break ties between equal counts")
	f.IntVar(&c.opt.Opset, "opset", exporter.DefaultOpset, "ONNX opset to write (13 to 21)")
	f.BoolVar(&c.opt.FoldBN, "fold-bn", false, "ANN: fold BatchNorm into the convolutions")
	return cmd
}

func (c *exportCmd) run(cmd *cobra.Command, path string) error {
	outs := outputsOf("--ann", c.annPath, "--snn", c.snnPath, "--nir", c.nirPath)
	if len(outs) == 0 {
		return fmt.Errorf("nothing to do: give --ann, --snn or --nir")
	}
	if err := checkAll(func() error { return outs.check(path) }, c.opt.Check, c.sf.check); err != nil {
		return err
	}
	m, snn, err := c.mf.loadSNN(cmd, path, c.sf)
	if err != nil {
		return err
	}
	c.opt.Metadata, c.opt.ProducerVersion = m.Metadata(path), version()
	c.opt.Metadata["proxykit.version"] = version()
	if c.nirPath != "" {
		warnings, err := exporter.NIRWarnings(snn, c.nir)
		if err == nil {
			err = exporter.CheckNIR(snn, c.nir)
		}
		if err != nil {
			return fmt.Errorf("--nir %s: %w", c.nirPath, err)
		}
		for _, w := range warnings {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: --nir %s: %s\n", c.nirPath, w)
		}
	}
	set := fileSet{cmd: cmd} // all files or none
	set.add("--ann", c.annPath, "the ANN", func() ([]byte, error) { return exporter.ANN(m.ANN, c.opt) })
	set.add("--snn", c.snnPath, fmt.Sprintf("the SNN, T=%d unrolled", c.cfg.Timesteps), func() ([]byte, error) { return exporter.SNN(snn, c.opt) })
	set.addFunc("--nir", c.nirPath, func() (string, error) {
		return "the SNN as a NIR graph", set.AddFunc(c.nirPath, func(tmp string) error { return exporter.WriteNIRFile(tmp, snn, c.nir) })
	})
	return set.commit(cmd.OutOrStdout())
}
