package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/recipe"
)

func newConvertSNNCmd() *cobra.Command {
	var (
		dataDir, dataset, output string
		percentile               float64
		images, batch            int
		s                        = recipe.Default()
		jsonOut                  bool
		df                       deviceFlags
		mf                       modelFlags
	)
	s.Threshold, s.Timesteps = 1, 128
	cmd := &cobra.Command{
		Use:   "convert-snn MODEL --data DIR --dataset NAME -o CKPT",
		Short: "Convert a trained ANN to an SNN by data-based weight normalisation (the baseline proxy learning beats)",
		Long: `convert-snn is the classic ANN-to-SNN conversion: Rueckauer et al. (2017),
"Conversion of continuous-valued deep networks to efficient event-driven
networks for image classification", robust normalisation. It runs MODEL's
ANN (BatchNorm in eval mode) over the first --calib-images training images,
takes for every neuron layer (each ReLU, and the last layer) the
--percentile-th percentile λ of its positive activations, and rescales the
weights so that an activation of λ makes its IF neuron fire at every step:
a layer's weights by λ_prev·θ/λ, its biases by θ/λ (θ = v_th − v_reset;
into BatchNorm's γ and β where a BatchNorm precedes the ReLU, so the running
statistics stay valid). In a branching network (residual Add, Concat) the
branches that meet carry one scale: an identity shortcut, which carries IF
spikes, gets a 1×1 depthwise convolution that rescales it, inserted before
the join (Hu et al.'s shortcut normalisation; the command lists them).

The result is a proxykit checkpoint (no optimizer state) carrying the
settings it was converted for (--threshold, --reset, --timesteps) and the
scales; eval, export, infer and train take it like any checkpoint — train
fine-tunes it with proxy learning. The IF neurons keep proxykit's semantics
(spike when v >= v_th, reset to v_reset). With the default --threshold 1
the converted ANN predicts as the original does; the SNN approaches it as T
grows (eval --timesteps 1,2,4,...,128 shows how fast).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return fmt.Errorf("-o is required: the checkpoint to write")
			}
			if err := checkOutput(output, args[0]); err != nil {
				return err
			}
			if err := checkBatch("batch-size", batch); err != nil {
				return err
			}
			if images < 0 {
				return fmt.Errorf("--calib-images must not be negative (0: all), got %d", images)
			}
			if err := s.Config.Validate(); err != nil {
				return err
			}
			m, err := mf.load(args[0])
			if err != nil {
				return err
			}
			trainSet, err := loadSplit(cmd, m, args[0], dataDir, dataset, true)
			if err != nil {
				return err
			}
			dataset = trainSet.Name
			if images < 1 || images > trainSet.N {
				images = trainSet.N
			}
			be, err := df.open()
			if err != nil {
				return err
			}
			defer be.Close()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			scales, err := convert.Calibrate(ctx, be, m.ANN, trainSet, images, batch, percentile)
			if err != nil {
				return fmt.Errorf("%s: calibration: %w", args[0], err)
			}
			before := map[string]bool{}
			for _, l := range m.ANN.Layers {
				before[l.Name()] = true
			}
			if err := convert.Normalize(m.ANN, scales, float64(s.Threshold-s.Reset)); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			var inserted []string
			for _, l := range m.ANN.Layers {
				if !before[l.Name()] {
					inserted = append(inserted, l.Name())
				}
			}
			// The SNN's BatchNorm statistics are the ANN's: the converted
			// SNN's layers see what the ANN's did, scaled.
			m.SNNStats = nil
			s.Dataset = dataset
			snn, err := m.SNN(s.Config)
			if err != nil {
				return err
			}
			scaleJSON, _ := json.Marshal(scales)
			ck := checkpoint.New(m.ANN, snn, s)
			ck.Notes = map[string]string{
				"converted_from": filepath.Base(args[0]),
				"conversion":     fmt.Sprintf("Rueckauer et al. 2017 robust normalisation, %gth percentile of positive activations on %d %s training images", percentile, images, dataset),
				"scales":         string(scaleJSON),
			}
			if len(inserted) > 0 {
				ck.Notes["shortcut_scaling"] = strings.Join(inserted, ", ")
			}
			if err := ck.Save(output); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				b, _ := json.Marshal(map[string]any{"output": output, "percentile": percentile, "scales": scales,
					"threshold": s.Threshold, "reset": s.Reset, "timesteps": s.Timesteps, "inserted": inserted})
				fmt.Fprintln(out, string(b))
				return nil
			}
			fmt.Fprintf(out, "%s: %gth percentile of positive activations on %d %s training images\n", args[0], percentile,
				images, dataset)
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "IF layer\tλ\tmax\tpositive values\t")
			for _, sc := range scales {
				fmt.Fprintf(tw, "%s\t%.4g\t%.4g\t%d\t\n", sc.Layer, sc.Lambda, sc.Max, sc.Positive)
			}
			tw.Flush()
			if len(inserted) > 0 {
				fmt.Fprintf(out, "shortcut normalisation: %d scaling layer(s) inserted before joins: %s\n", len(inserted), strings.Join(inserted, ", "))
			}
			fmt.Fprintf(out, "wrote %s: SNN with v_th=%g, v_reset=%g, T=%d (eval --timesteps 1-%d shows accuracy against T)\n",
				output, s.Threshold, s.Reset, s.Timesteps, s.Timesteps)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "", "folder holding the data set's files (default for fashion-mnist: "+data.FashionMNISTDir+")")
	f.StringVar(&dataset, "dataset", data.FashionMNIST, "mnist, fashion-mnist or cifar10 (default: a checkpoint's own)")
	f.StringVarP(&output, "output", "o", "", "checkpoint to write (safetensors)")
	f.Float64Var(&percentile, "percentile", convert.DefaultPercentile, "percentile of each layer's positive activations that fires at every step (100: the maximum)")
	f.IntVar(&images, "calib-images", 1000, "training images to calibrate on, from the first (0: all)")
	f.IntVar(&batch, "batch-size", 100, "images per forward pass")
	f.IntVar(&s.Timesteps, "timesteps", s.Timesteps, "simulation length T stored as the checkpoint's default")
	f.Float32Var(&s.Threshold, "threshold", s.Threshold, "IF threshold v_th of the converted SNN")
	f.Float32Var(&s.Reset, "reset", s.Reset, "IF reset potential v_reset of the converted SNN")
	f.BoolVar(&jsonOut, "json", false, "print JSON")
	mf.add(cmd)
	df.add(cmd)
	return cmd
}
