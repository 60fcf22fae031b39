package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/gpumodel"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/spiking"
)

func newPlanCmd() *cobra.Command {
	var (
		mf            *modelFlags
		df            *deviceFlags
		sf            *snnFlags
		mth           *methodFlags
		infer, asJSON bool
		batch         int
		gpu           string
	)
	cfg := spiking.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "plan MODEL [--infer | --method M] [--batch-size N] [--timesteps T] [--device D] [--gpu G] [--json]",
		Short: "Show the program a model's training step or inference becomes: ops, buffers, FLOPs, bytes",
		Long: `plan lowers MODEL as train (one proxy-learning step, or with --method
surrogate one surrogate-gradient step through all T steps, and the
optimizer's update, BatchNorm in training mode) or, with --infer, as the SNN's
inference would run it on --device, and prints the program: each pass
and its ops with their operands, FLOPs and bytes; every slot with its
size, its buffer and its lifetime; the rewrites applied; the totals and
the peak activation memory. Nothing runs: planning for cuda needs no GPU
(the emulated device runs the same program). With --gpu it also prices
the program on that GPU with proxykit's time model (docs/gpu-model.md):
the launches the CUDA backend would queue, the predicted time and
images/s, the kernels' shares.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkAll(batchSize("batch-size", batch), sf.check, mth.check, func() error { return df.opt.SetPrecision(df.precision) }); err != nil {
				return err
			}
			if err := df.check(); err != nil && df.name != "cuda" && gpu == "" { // planning for cuda needs no GPU (deviceFlags.stepsAtOnce)
				return err
			}
			m, snn, err := mf.loadSNN(cmd, args[0], sf)
			if err != nil {
				return err
			}
			steps, err := df.stepsAtOnce(snn.Config.Timesteps)
			if gpu != "" { // priced as the GPU runs it: all T steps at once
				steps, err = snn.Config.Timesteps, nil
			}
			if err != nil {
				return err
			}
			// channels-last where a CUDA backend would ask for it
			onCUDA := gpu != "" || df.name == "cuda" || df.name == "cuda-emu"
			last, half := df.opt.ChannelsLast && onCUDA, df.opt.HalfSpikes && onCUDA
			programs, list, err := lower.Plan(m.ANN, snn.Lowering(), !infer, batch, steps, mth.chosen.Surrogate, lower.WithChannelsLast(last), lower.WithHalfSpikes(half))
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out := struct {
				program.Listing
				GPU *gpumodel.Plan `json:"gpu,omitempty"`
			}{Listing: list}
			if gpu != "" {
				p, err := gpumodel.PlanPrograms(gpu, cuda.Options{StrictFP32: df.opt.StrictFP32, NoCuDNN: df.opt.NoCuDNN, ChannelsLast: last, HalfSpikes: half}, batch, programs...)
				if err != nil {
					return err
				}
				out.GPU = &p
			}
			return emit(cmd.OutOrStdout(), asJSON, out, func(w io.Writer) error {
				if err := list.WriteText(w); err != nil || out.GPU == nil {
					return err
				}
				fmt.Fprintln(w)
				return gpumodel.WritePlan(w, *out.GPU, 12)
			})
		},
	}
	mf, df, sf, mth = addModelFlags(cmd), addDeviceFlags(cmd), addSNNFlags(cmd, &cfg), addMethodFlags(cmd)
	cmd.Flags().BoolVar(&infer, "infer", false, "plan the SNN's inference instead of a training step")
	cmd.Flags().IntVar(&batch, "batch-size", 100, "batch size the program is planned for")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the listing as JSON")
	cmd.Flags().StringVar(&gpu, "gpu", "", "also price the program on a GPU with the time model: h200 or h100 (docs/gpu-model.md; only the H200 is calibrated)")
	return cmd
}
