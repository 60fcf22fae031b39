package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/recipe"
)

// convertSNNCmd is convert-snn's flags.
type convertSNNCmd struct {
	output  string
	o       convert.Options
	s       recipe.Settings
	jsonOut bool
	mf      modelFlags
	df      deviceFlags
	data    *dataFlags
}

func newConvertSNNCmd() *cobra.Command {
	c := &convertSNNCmd{s: recipe.Default(), o: convert.Options{Percentile: convert.DefaultPercentile}}
	c.s.Threshold, c.s.Timesteps = 1, 128
	cmd := &cobra.Command{
		Use:   "convert-snn MODEL --data DIR --dataset NAME -o CKPT",
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
	c.data = addDataFlags(cmd, &c.s.Dataset)
	f := cmd.Flags()
	f.StringVarP(&c.output, "output", "o", "", "checkpoint to write (safetensors)")
	f.Float64Var(&c.o.Percentile, "percentile", c.o.Percentile, "percentile of each layer's positive activations that fires at every step (100: the maximum)")
	f.IntVar(&c.o.Images, "calib-images", 1000, "training images to calibrate on, from the first (0: all)")
	f.IntVar(&c.o.Batch, "batch-size", 100, "images per forward pass")
	f.IntVar(&c.s.Timesteps, "timesteps", c.s.Timesteps, "simulation length T stored as the checkpoint's default")
	f.Float32Var(&c.s.Threshold, "threshold", c.s.Threshold, "IF threshold v_th of the converted SNN")
	f.Float32Var(&c.s.Reset, "reset", c.s.Reset, "IF reset potential v_reset of the converted SNN")
	f.BoolVar(&c.jsonOut, "json", false, "print JSON")
	c.mf.add(cmd)
	c.df.add(cmd)
	return cmd
}

func (c *convertSNNCmd) run(cmd *cobra.Command, path string) error {
	if c.output == "" {
		return fmt.Errorf("-o is required: the checkpoint to write")
	}
	if err := (outputs{{Name: "-o", Path: c.output}}).check(path); err != nil {
		return err
	}
	if err := checkBatch("batch-size", c.o.Batch); err != nil {
		return err
	}
	if c.o.Images < 0 {
		return fmt.Errorf("--calib-images must not be negative (0: all), got %d", c.o.Images)
	}
	c.o.SNN = c.s.Config
	if err := c.o.SNN.Validate(); err != nil {
		return err
	}
	m, err := c.mf.load(cmd, path)
	if err != nil {
		return err
	}
	c.data.fromModel(m)
	trainSet, err := c.data.load(m, true)
	if err != nil {
		return err
	}
	be, err := c.df.open()
	if err != nil {
		return err
	}
	defer be.Close()
	ctx := cmd.Context()
	r, err := convert.Convert(ctx, be, m.ANN, trainSet, c.o)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	m.SNNState = nil // the converted SNN's BatchNorm statistics are the ANN's
	snn, err := m.SNN(c.s.Config)
	if err != nil {
		return err
	}
	ck := checkpoint.New(m.ANN, snn, c.s)
	ck.Notes = r.Notes(path, trainSet.Name, c.o.Percentile)
	if err := ck.Save(c.output); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if c.jsonOut {
		return printJSON(out, map[string]any{"output": c.output, "percentile": c.o.Percentile, "scales": r.Scales,
			"threshold": c.s.Threshold, "reset": c.s.Reset, "timesteps": c.s.Timesteps, "inserted": r.Inserted})
	}
	fmt.Fprintf(out, "%s: %gth percentile of positive activations on %d %s training images\n", path, c.o.Percentile, r.Images, trainSet.Name)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "IF layer\tλ\tmax\tpositive values\t")
	for _, sc := range r.Scales {
		fmt.Fprintf(tw, "%s\t%.4g\t%.4g\t%d\t\n", sc.Layer, sc.Lambda, sc.Max, sc.Positive)
	}
	tw.Flush()
	if len(r.Inserted) > 0 {
		fmt.Fprintf(out, "shortcut normalisation: %d scaling layer(s) inserted before joins: %s\n", len(r.Inserted), strings.Join(r.Inserted, ", "))
	}
	fmt.Fprintf(out, "wrote %s: SNN with v_th=%g, v_reset=%g, T=%d (eval --timesteps 1-%d shows accuracy against T)\n",
		c.output, c.s.Threshold, c.s.Reset, c.s.Timesteps, c.s.Timesteps)
	return nil
}
