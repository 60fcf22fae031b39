package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/spiking"
)

// inferCmd is infer's flags.
type inferCmd struct {
	input, output, network, potentials string
	batch                              int
	scaleUint8                         bool
	cfg                                spiking.Config
	mf                                 *modelFlags
	df                                 *deviceFlags
	sf                                 *snnFlags
}

func newInferCmd() *cobra.Command {
	c := &inferCmd{cfg: spiking.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "infer MODEL --input x.npy --output y.npy [--network ann|snn]",
		Short: "Run the ANN or its SNN on a batch from a .npy file",
		Long: `infer runs MODEL on the float32 batch [B,C,H,W] in --input and writes
[B,K] to --output: the ANN's outputs with --network ann, the SNN's spike
counts over --timesteps steps (as float32) with --network snn (and, with
--potentials, the output layer's final membrane potentials).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.run(cmd, args[0]) },
	}
	c.mf, c.df, c.sf = addModelFlags(cmd), addDeviceFlags(cmd), addSNNFlags(cmd, &c.cfg)
	f := cmd.Flags()
	f.StringVar(&c.input, "input", "", "input batch, a .npy array [B,C,H,W] (float32, or uint8 with --scale-uint8)")
	f.StringVar(&c.output, "output", "", "where to write the [B,K] result as a float32 .npy")
	f.StringVar(&c.potentials, "potentials", "", "with --network snn, also write the output layer's final membrane potentials [B,K] here (they break ties between equal counts: docs/design.md §1)")
	f.StringVar(&c.network, "network", "ann", "which network to run: ann or snn")
	f.IntVar(&c.batch, "batch-size", 100, "inputs per forward pass")
	f.BoolVar(&c.scaleUint8, "scale-uint8", false, "divide uint8 input by 255 (pixels to [0,1])")
	return cmd
}

func (c *inferCmd) run(cmd *cobra.Command, path string) error {
	switch {
	case c.input == "" || c.output == "":
		return fmt.Errorf("both --input and --output are required")
	case c.network != "ann" && c.network != "snn":
		return fmt.Errorf("--network must be ann or snn, not %q", c.network)
	case c.potentials != "" && c.network != "snn":
		return fmt.Errorf("--potentials needs --network snn: the ANN has no membrane")
	}
	outs := outputsOf("--output", c.output, "--potentials", c.potentials)
	if err := checkAll(batchSize("batch-size", c.batch), c.sf.check, c.df.check, func() error { return outs.check(path, c.input) }); err != nil {
		return err
	}
	m, err := c.mf.load(cmd, path, c.sf)
	if err != nil {
		return err
	}
	x, err := m.Input(c.input, c.scaleUint8)
	if err != nil {
		return err
	}
	return c.df.with(func(be compute.Backend) (err error) {
		start, what := time.Now(), "ANN"
		var y, v *nn.Tensor
		if c.network == "snn" {
			snn, err := m.SNN(c.cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			r, err := snn.RunOn(cmd.Context(), be, x, false, c.batch)
			if err != nil {
				return err
			}
			y, v, what = r.Counts, r.Potentials, fmt.Sprintf("SNN (T=%d, v_th=%g, v_reset=%g, initial charge %g)", c.cfg.Timesteps, c.cfg.Threshold, c.cfg.Reset, c.cfg.InitialCharge)
		} else if y, err = lower.Forward(be, m.ANN, x, c.batch); err != nil {
			return err
		}
		set := fileSet{cmd: cmd} // both files or neither
		set.add("--output", c.output, "", func() ([]byte, error) { return npy.Encode(y.Shape, y.Data) })
		set.add("--potentials", c.potentials, "", func() ([]byte, error) { return npy.Encode(v.Shape, v.Data) })
		if err := set.commit(nil); err != nil {
			return err
		}
		el := time.Since(start).Seconds()
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d inputs through the %s in %.2f s (%.0f inputs/s) -> %s %s\n", path, x.Shape[0], what,
			el, float64(x.Shape[0])/max(el, 1e-9), c.output, nn.ShapeString(y.Shape))
		return nil
	})
}
