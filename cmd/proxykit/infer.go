package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/spiking"
)

func newInferCmd() *cobra.Command {
	var (
		input, output, network string
		cfg                    = spiking.DefaultConfig()
		batch                  int
		scaleUint8             bool
		device                 string
		mf                     modelFlags
	)
	cmd := &cobra.Command{
		Use:   "infer MODEL --input x.npy --output y.npy",
		Short: "Run the ANN or its SNN on a batch from a .npy file",
		Long: `infer runs MODEL on the float32 batch [B,C,H,W] in --input and writes
[B,K] to --output: the ANN's outputs with --network ann, the SNN's spike
counts over --timesteps steps (as float32) with --network snn.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkDevice(device); err != nil {
				return err
			}
			if input == "" || output == "" {
				return fmt.Errorf("both --input and --output are required")
			}
			if network != "ann" && network != "snn" {
				return fmt.Errorf("--network must be ann or snn, not %q", network)
			}
			if batch < 1 {
				return fmt.Errorf("--batch-size must be at least 1")
			}
			m, err := mf.load(args[0])
			if err != nil {
				return err
			}
			applySNNDefaults(cmd.Flags(), m, &cfg.Timesteps, &cfg.Threshold, &cfg.Reset)
			x, err := npy.ReadFile(input, scaleUint8)
			if err != nil {
				return err
			}
			if err := m.ANN.CheckInput(x.Shape); err != nil {
				return fmt.Errorf("%s: %w", input, err)
			}
			var snn *spiking.Network
			if network == "snn" {
				if snn, err = m.SNN(cfg); err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
			}
			start := time.Now()
			n := x.Shape[0]
			per := nn.Numel(x.Shape[1:])
			var result []float32
			var outShape []int
			for lo := 0; lo < n; lo += batch {
				hi := min(lo+batch, n)
				xb := &nn.Tensor{Shape: append([]int{hi - lo}, x.Shape[1:]...), Data: x.Data[lo*per : hi*per]}
				var y *nn.Tensor
				if snn != nil {
					r, err := snn.Run(xb)
					if err != nil {
						return err
					}
					y = r.Counts
				} else if y, err = m.ANN.Forward(xb); err != nil {
					return err
				}
				result = append(result, y.Data...)
				outShape = y.Shape
			}
			if n == 0 {
				os, err := m.ANN.OutputShape()
				if err != nil {
					return err
				}
				outShape = append([]int{0}, os...)
			} else {
				outShape = append([]int{n}, outShape[1:]...)
			}
			if err := npy.WriteFile(output, outShape, result); err != nil {
				return err
			}
			el := time.Since(start).Seconds()
			fmt.Fprintf(os.Stderr, "%s: %d inputs through the %s in %.2f s (%.0f inputs/s) -> %s %s\n", args[0], n,
				map[string]string{"ann": "ANN", "snn": fmt.Sprintf("SNN (T=%d, v_th=%g, v_reset=%g)", cfg.Timesteps, cfg.Threshold, cfg.Reset)}[network],
				el, float64(n)/max(el, 1e-9), output, nn.ShapeString(outShape))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "input batch, a .npy array [B,C,H,W] (float32, or uint8 with --scale-uint8)")
	f.StringVar(&output, "output", "", "where to write the [B,K] result as a float32 .npy")
	f.StringVar(&network, "network", "ann", "which network to run: ann or snn")
	f.IntVar(&cfg.Timesteps, "timesteps", cfg.Timesteps, "SNN: number of time steps T (default: a checkpoint's own, else 15)")
	f.Float32Var(&cfg.Threshold, "threshold", cfg.Threshold, "SNN: firing threshold v_th (spike when v >= v_th)")
	f.Float32Var(&cfg.Reset, "reset", cfg.Reset, "SNN: reset potential v_reset (also the initial potential)")
	f.IntVar(&batch, "batch-size", 100, "inputs per forward pass")
	f.BoolVar(&scaleUint8, "scale-uint8", false, "divide uint8 input by 255 (pixels to [0,1])")
	f.StringVar(&device, "device", "cpu", "cpu or cuda")
	mf.add(cmd)
	return cmd
}
