package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/setting"
)

// convertSNNCmd is convert-snn's flags.
type convertSNNCmd struct {
	output  string
	o       convert.Options
	s       recipe.Settings
	jsonOut bool
	mf      *modelFlags
	df      *deviceFlags
	data    *dataFlags
}

func newConvertSNNCmd() *cobra.Command {
	c := &convertSNNCmd{s: recipe.Default(), o: convert.Options{Percentile: convert.DefaultPercentile}}
	c.s.Threshold, c.s.Timesteps = 1, 128
	cmd := &cobra.Command{
		Use:   "convert-snn MODEL -o CKPT [--data DIR] [--dataset NAME]",
		Short: "Convert a trained ANN to an SNN by data-based weight normalisation (the baseline proxy learning beats)",
		Long: `convert-snn is the classic ANN-to-SNN conversion, Rueckauer et al. (2017)'s robust
normalisation (docs/design.md §1): it runs MODEL's ANN (BatchNorm in eval
mode) over the first --calib-images training images, takes for every neuron
layer (each ReLU, and the last layer) the --percentile-th percentile λ of
its positive activations, and rescales the weights so that an activation of
λ makes its IF neuron fire at every step. Where branches join, an identity
shortcut gets a 1×1 depthwise scaling convolution (Hu et al.'s shortcut
normalisation; listed). The result is a checkpoint (no optimizer state)
with the SNN setting it was converted for and the scales; eval, export,
infer and train take it like any checkpoint (train fine-tunes it).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.run(cmd, args[0]) },
	}
	c.mf, c.df, c.data = addModelFlags(cmd), addDeviceFlags(cmd), addDataFlags(cmd, &c.s.Dataset)
	f := cmd.Flags()
	f.StringVarP(&c.output, "output", "o", "", "checkpoint to write (safetensors)")
	f.Float64Var(&c.o.Percentile, "percentile", c.o.Percentile, "percentile of each layer's positive activations that fires at every step (100: the maximum)")
	f.IntVar(&c.o.Images, "calib-images", 1000, "training images to calibrate on, from the first (0: all)")
	f.IntVar(&c.o.Batch, "batch-size", 100, "images per forward pass")
	f.IntVar(&c.s.Timesteps, "timesteps", c.s.Timesteps, "simulation length T stored as the checkpoint's default")
	f.Float32Var(&c.s.Threshold, "threshold", c.s.Threshold, "IF threshold v_th of the converted SNN")
	f.Float32Var(&c.s.Reset, "reset", c.s.Reset, "IF reset potential v_reset of the converted SNN")
	f.Float32Var(&c.s.InitialCharge, "initial-charge", 0, "where the converted SNN's IF neurons start, as the fraction of the way from v_reset to v_th (0.5: halfway, Bu et al. 2022)")
	f.BoolVar(&c.jsonOut, "json", false, "print JSON")
	return cmd
}

func (c *convertSNNCmd) run(cmd *cobra.Command, path string) error {
	if err := checkOutput("-o", c.output, "the checkpoint to write", path); err != nil {
		return err
	}
	c.o.SNN = c.s.Config
	snn := func() error { return c.s.CheckGiven(func(setting.Name) bool { return true }) } // its errors name the flags
	if err := checkAll(snn, c.o.Check, c.data.check, c.df.check); err != nil {
		return err
	}
	m, err := c.mf.load(cmd, path, c.data)
	if err != nil {
		return err
	}
	trainSet, err := c.data.load(m, true, 0)
	if err != nil {
		return err
	}
	return c.df.with(func(be compute.Backend) error {
		r, err := convert.Convert(cmd.Context(), be, m.ANN, trainSet, c.o)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		ck, err := r.Checkpoint(m.ANN, c.s, path, trainSet.Name, c.o.Percentile)
		if err == nil {
			err = ck.Save(c.output)
		}
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if c.jsonOut {
			return printJSON(out, map[string]any{"output": c.output, "percentile": c.o.Percentile, "scales": r.Scales,
				"threshold": c.s.Threshold, "reset": c.s.Reset, "initial_charge": c.s.InitialCharge, "timesteps": c.s.Timesteps, "inserted": r.Inserted})
		}
		if err := r.WriteText(out, path, trainSet.Name, c.o.Percentile); err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "wrote %s: SNN with v_th=%g, v_reset=%g, initial charge %g, T=%d (eval --timesteps 1-%d shows accuracy against T)\n",
			c.output, c.s.Threshold, c.s.Reset, c.s.InitialCharge, c.s.Timesteps, c.s.Timesteps)
		return err
	})
}
