package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/spiking"
)

// inferCmd is infer's flags.
type inferCmd struct {
	input, output, network string
	potentials             string
	batch                  int
	scaleUint8             bool
	cfg                    spiking.Config
	mf                     modelFlags
	df                     deviceFlags
	sf                     *snnFlags
}

func newInferCmd() *cobra.Command {
	c := &inferCmd{cfg: spiking.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "infer MODEL --input x.npy --output y.npy",
		Short: "Run the ANN or its SNN on a batch from a .npy file",
		Long: `infer runs MODEL on the float32 batch [B,C,H,W] in --input and writes
[B,K] to --output: the ANN's outputs with --network ann, the SNN's spike
counts over --timesteps steps (as float32) with --network snn (and, with
--potentials, the output layer's final membrane potentials).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.run(cmd, args[0]) },
	}
	c.sf = addSNNFlags(cmd, &c.cfg)
	f := cmd.Flags()
	f.StringVar(&c.input, "input", "", "input batch, a .npy array [B,C,H,W] (float32, or uint8 with --scale-uint8)")
	f.StringVar(&c.output, "output", "", "where to write the [B,K] result as a float32 .npy")
	f.StringVar(&c.potentials, "potentials", "", "with --network snn, also write the output layer's final membrane potentials [B,K] here (they break ties between equal counts: docs/design.md §1)")
	f.StringVar(&c.network, "network", "ann", "which network to run: ann or snn")
	f.IntVar(&c.batch, "batch-size", 100, "inputs per forward pass")
	f.BoolVar(&c.scaleUint8, "scale-uint8", false, "divide uint8 input by 255 (pixels to [0,1])")
	c.mf.add(cmd)
	c.df.add(cmd)
	return cmd
}

func (c *inferCmd) run(cmd *cobra.Command, path string) error {
	if c.input == "" || c.output == "" {
		return fmt.Errorf("both --input and --output are required")
	}
	if c.network != "ann" && c.network != "snn" {
		return fmt.Errorf("--network must be ann or snn, not %q", c.network)
	}
	if err := checkBatch("batch-size", c.batch); err != nil {
		return err
	}
	if c.potentials != "" && c.network != "snn" {
		return fmt.Errorf("--potentials needs --network snn: the ANN has no membrane")
	}
	outs := outputs{{Name: "--output", Path: c.output}}
	outs.add("--potentials", c.potentials)
	if err := outs.check(path, c.input); err != nil {
		return err
	}
	m, err := c.mf.load(cmd, path)
	if err != nil {
		return err
	}
	c.sf.fromModel(m)
	x, err := npy.ReadFile(c.input, c.scaleUint8)
	if err != nil {
		return err
	}
	if err := checkInputDtype(c.input, x.Dtype, c.scaleUint8); err != nil {
		return err
	}
	if err := m.ANN.CheckInput(x.Shape); err != nil {
		return fmt.Errorf("%s: %w", c.input, err)
	}
	if err := nn.CheckFinite("the input "+c.input, x.Data); err != nil {
		return err
	}
	be, err := c.df.open()
	if err != nil {
		return err
	}
	defer be.Close()
	start, xt := time.Now(), &nn.Tensor{Shape: x.Shape, Data: x.Data}
	var y, v *nn.Tensor
	what := "ANN"
	if c.network == "snn" {
		snn, err := m.SNN(c.cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		r, err := snn.RunOn(cmd.Context(), be, xt, false, c.batch)
		if err != nil {
			return err
		}
		y, v, what = r.Counts, r.Potentials, fmt.Sprintf("SNN (T=%d, v_th=%g, v_reset=%g)", c.cfg.Timesteps, c.cfg.Threshold, c.cfg.Reset)
	} else if y, err = lower.Forward(be, m.ANN, xt, c.batch); err != nil {
		return err
	}
	var set atomicfile.Set // both files or neither
	defer set.Abort()
	if err := addNPY(&set, c.output, y); err != nil {
		return fmt.Errorf("--output %s: %w", c.output, err)
	}
	if c.potentials != "" {
		if err := addNPY(&set, c.potentials, v); err != nil {
			return fmt.Errorf("--potentials %s: %w", c.potentials, err)
		}
	}
	if err := set.Commit(); err != nil {
		return err
	}
	el := time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "%s: %d inputs through the %s in %.2f s (%.0f inputs/s) -> %s %s\n", path, x.Shape[0], what,
		el, float64(x.Shape[0])/max(el, 1e-9), c.output, nn.ShapeString(y.Shape))
	return nil
}

// checkInputDtype holds infer's input to what its help promises: float32
// or float64 values, or uint8 pixels with --scale-uint8 (used raw, 0–255
// would silently be the wrong input).
func checkInputDtype(path, dtype string, scaleUint8 bool) error {
	switch {
	case strings.HasSuffix(dtype, "f4") || strings.HasSuffix(dtype, "f8"):
		return nil
	case strings.HasSuffix(dtype, "u1"):
		if scaleUint8 {
			return nil
		}
		return fmt.Errorf("%s holds uint8 values: pass --scale-uint8 to divide them by 255 (pixels to [0, 1]), or save float32", path)
	}
	return fmt.Errorf("%s holds %s values; infer takes float32 or float64 (or uint8 with --scale-uint8)", path, dtype)
}

// addNPY adds a tensor's .npy file to set.
func addNPY(set *atomicfile.Set, path string, t *nn.Tensor) error {
	b, err := npy.Encode(t.Shape, t.Data)
	if err != nil {
		return err
	}
	return set.Add(path, b)
}
