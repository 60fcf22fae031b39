package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
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
		df                     deviceFlags
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
			if input == "" || output == "" {
				return fmt.Errorf("both --input and --output are required")
			}
			if network != "ann" && network != "snn" {
				return fmt.Errorf("--network must be ann or snn, not %q", network)
			}
			if err := checkBatch("batch-size", batch); err != nil {
				return err
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
			if err := checkInputDtype(input, x.Dtype, scaleUint8); err != nil {
				return err
			}
			if err := m.ANN.CheckInput(x.Shape); err != nil {
				return fmt.Errorf("%s: %w", input, err)
			}
			if err := nn.CheckFinite("the input "+input, x.Data); err != nil {
				return err
			}
			if err := checkOutput(output, input, args[0]); err != nil {
				return err
			}
			var snn *spiking.Network
			if network == "snn" {
				if snn, err = m.SNN(cfg); err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
			}
			be, err := df.open()
			if err != nil {
				return err
			}
			defer be.Close()
			start := time.Now()
			n := x.Shape[0]
			result, outShape, err := infer(be, m.ANN, snn, &nn.Tensor{Shape: x.Shape, Data: x.Data}, batch)
			if err != nil {
				return err
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
	mf.add(cmd)
	df.add(cmd)
	return cmd
}

// infer runs the ANN (snn nil) or the SNN on x, batch inputs at a time.
func infer(be compute.Backend, ann *nn.Network, snn *spiking.Network, x *nn.Tensor, batch int) ([]float32, []int, error) {
	n := x.Shape[0]
	outShape, err := ann.OutputShape()
	if err != nil {
		return nil, nil, err
	}
	if snn != nil {
		err = snn.Bind(be)
	} else {
		err = ann.Bind(be)
	}
	if err != nil || n == 0 {
		return nil, append([]int{n}, outShape...), err
	}
	batch = min(batch, n)
	per := nn.Numel(x.Shape[1:])
	in, err := be.Alloc(batch * per)
	if err != nil {
		return nil, nil, err
	}
	defer be.Free(in)
	var run func(nn.Value) nn.Value
	if snn != nil {
		sim, err := spiking.NewSimulator(be, snn, batch)
		if err != nil {
			return nil, nil, err
		}
		defer sim.Free()
		outShape = sim.OutputShape()
		run = func(v nn.Value) nn.Value { return sim.Run(v, false, false) }
	} else {
		e, err := nn.NewExecutor(be, ann, batch, nn.ExecOptions{})
		if err != nil {
			return nil, nil, err
		}
		defer e.Free()
		run = func(v nn.Value) nn.Value { return e.Forward(v, nn.Mode{}) }
	}
	k := nn.Numel(outShape)
	result := make([]float32, n*k)
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		buf := in.Slice(0, (hi-lo)*per)
		be.Upload(buf, x.Data[lo*per:hi*per])
		y := run(nn.Value{Shape: append([]int{hi - lo}, x.Shape[1:]...), Buf: buf})
		if err := be.Download(result[lo*k:hi*k], y.Buf); err != nil {
			return nil, nil, err
		}
	}
	return result, append([]int{n}, outShape...), be.Err()
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
