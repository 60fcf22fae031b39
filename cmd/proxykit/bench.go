package main

import (
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// benchCmd is bench's flags.
type benchCmd struct {
	dataset    string
	batch, inf int
	seconds    float64
	jsonOut    bool
	cfg        spiking.Config
	af         archFlags
	df         deviceFlags
	dfl        distFlags
	data       *dataFlags
}

func newBenchCmd() *cobra.Command {
	c := &benchCmd{cfg: spiking.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "bench --device cpu --arch fmnist [--width 128] --batch-size 100 --timesteps 15",
		Short: "Measure training and SNN inference speed",
		Long: `bench builds a network of the architecture registry and reports images/s
for one proxy-learning step (ANN forward and backward, SNN forward over T
steps, BN in training mode, Adam) and for SNN inference, and the process's
peak memory (and the device's, on a GPU). Inputs are random images, or
with --dataset real test images (sparser in spikes). scripts/bench_cpu.sh
and scripts/bench_torch_gpu.py run PyTorch's step beside it.

Started by mpirun, torchrun or srun (see train), each step is a global
batch of --batch-size images split across the ranks, and bench reports
the images/s in total and of each rank, and the bytes and time the
gradients' all-reduce adds to each step.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.run(cmd) },
	}
	c.af.add(cmd)
	c.df.add(cmd)
	c.dfl.add(cmd)
	c.data = addDataFlags(cmd, &c.dataset)
	f := cmd.Flags()
	f.IntVar(&c.batch, "batch-size", 100, "training batch")
	f.IntVar(&c.inf, "infer-batch-size", 1000, "SNN inference batch")
	f.IntVar(&c.cfg.Timesteps, "timesteps", c.cfg.Timesteps, "SNN time steps T")
	f.Float64Var(&c.seconds, "seconds", 5, "time each measurement for at least this long")
	f.BoolVar(&c.jsonOut, "json", false, "print JSON")
	f.Lookup("dataset").Usage = "time on this data set's test images (mnist, fashion-mnist, cifar10) instead of random ones"
	return cmd
}

func (c *benchCmd) run(cmd *cobra.Command) error {
	if !(c.seconds >= 0 && c.seconds <= 86400) {
		return fmt.Errorf("--seconds must lie between 0 (one measurement) and a day, got %g", c.seconds)
	}
	if err := checkBatch("batch-size", c.batch); err != nil {
		return err
	}
	if err := checkBatch("infer-batch-size", c.inf); err != nil {
		return err
	}
	net, err := c.af.build()
	if err != nil {
		return err
	}
	var d *data.Dataset
	if c.dataset != "" {
		if d, err = c.data.load(nil, false); err != nil {
			return err
		}
	}
	be, g, err := c.dfl.join(&c.df, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer be.Close()
	r, err := train.BenchRanks(g, be, net, c.cfg, c.batch, c.inf, time.Duration(c.seconds*float64(time.Second)), d)
	if g != nil {
		if err != nil {
			abortRun(g, cmd.ErrOrStderr(), err)
		}
		if err := g.Close(); err != nil {
			return err
		}
		if g.Rank() != 0 {
			return nil // rank 0 prints
		}
	}
	if err != nil {
		return err
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	peakMB := float64(ru.Maxrss) / 1024
	out := cmd.OutOrStdout()
	if c.jsonOut {
		return printJSON(out, map[string]any{"device": c.df.name, "device_description": device.Describe(be), "arch": c.af.name,
			"network": net.Name, "batch_size": c.batch, "timesteps": c.cfg.Timesteps, "cores": runtime.GOMAXPROCS(0),
			"result": r, "peak_memory_mb": peakMB})
	}
	fmt.Fprintf(out, "%s, %s, %d cores, T=%d\n", net.Name, device.Describe(be), runtime.GOMAXPROCS(0), c.cfg.Timesteps)
	if g != nil {
		fmt.Fprintf(out, "  data-parallel: %s\n", g.Describe())
	}
	fmt.Fprintf(out, "  training step, batch %d: %.2f images/s (%.4f s per step, %d steps; %.2f GFLOP per image, %.2f TFLOP/s)\n",
		c.batch, r.TrainImagesPerSec, r.TrainStepSeconds, r.TrainSteps, r.TrainGFLOPPerImage, r.TrainTFLOPS)
	if g != nil {
		fmt.Fprintf(out, "    per rank (its share of the batch): %s images/s\n", joinRates(r.RankTrainImagesPerSec))
		fmt.Fprintf(out, "    gradients' all-reduce: %.1f MB per step, %.4f s per step (%.1f %% of the step)\n",
			float64(r.AllReduceBytes)/1e6, r.AllReduceSeconds, 100*r.AllReduceSeconds/r.TrainStepSeconds)
	}
	fmt.Fprintf(out, "  SNN inference, batch %d: %.2f images/s (%.2f GFLOP per image, %.2f TFLOP/s)\n", r.InferBatch,
		r.InferImagesPerSec, r.InferGFLOPPerImage, r.InferTFLOPS)
	if g != nil {
		fmt.Fprintf(out, "    per rank (each alone): %s images/s\n", joinRates(r.RankInferImagesPerSec))
	}
	if len(r.FiringRates) > 0 {
		var rs []string
		for i, name := range r.IFLayers {
			rs = append(rs, fmt.Sprintf("%s %.1f%%", name, 100*r.FiringRates[i]))
		}
		fmt.Fprintf(out, "    firing rates: %s\n", strings.Join(rs, ", "))
	}
	for _, w := range r.InferWork {
		fmt.Fprintf(out, "    %s: %.1f%% of inputs active, %.1f%% of %.2f GFLOP skipped (%d of %d samples event-driven)\n",
			w.Kernel, 100*w.ActiveShare(), 100*w.Skipped(), 2*float64(w.DenseMACs)/1e9, w.EventSamples, w.Samples)
	}
	fmt.Fprintf(out, "  peak memory: %.0f MB (process)", peakMB)
	if r.TrainDeviceMB > 0 {
		fmt.Fprintf(out, "; on the device %.0f MB training, %.0f MB inference", r.TrainDeviceMB, r.InferDeviceMB)
	}
	fmt.Fprintln(out)
	for _, tr := range []struct {
		what string
		t    *compute.Traffic
	}{{fmt.Sprintf("one training step, batch %d", c.batch), r.StepTraffic}, {fmt.Sprintf("one SNN inference batch of %d", r.InferBatch), r.InferTraffic}} {
		if tr.t != nil {
			printTraffic(out, tr.what, *tr.t)
		}
	}
	return nil
}

// joinRates prints rates by rank: "12.3, 12.1".
func joinRates(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, ", ")
}
