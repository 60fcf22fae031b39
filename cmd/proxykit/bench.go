package main

import (
	"time"

	"github.com/spf13/cobra"

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
	af         *archFlags
	df         *deviceFlags
	dfl        *distFlags
	sf         *snnFlags
	data       *dataFlags
	mth        *methodFlags
}

func newBenchCmd() *cobra.Command {
	c := &benchCmd{cfg: spiking.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "bench [MODEL] [--arch NAME] [--width N] [--device D] [--batch-size N] [--timesteps T] [--dataset NAME]",
		Short: "Measure training and SNN inference speed",
		Long: `bench reports images/s for SNN inference and for one proxy-learning step
(ANN forward and backward, SNN forward over T steps, BN in training mode,
Adam), the SNN's firing rates, and the process's peak memory (the
device's on a GPU); with --method surrogate the same for a
surrogate-gradient step beside it.

It measures MODEL (any file the other commands read: a checkpoint keeps
its T, v_th, v_reset and BatchNorm statistics) as given — inference
first, since the training steps change the weights — or, without MODEL,
a network of the architecture registry (--arch, --width, --blocks,
--input, --seed). Inputs are random images, or with --dataset that data
set's test images: a trained network's spikes, and so the speed of the
CPU's event-driven kernels, depend on them, so time a trained model on
its own data. scripts/bench_cpu.sh and scripts/bench_torch_gpu.py run
PyTorch's step beside it.

Started by mpirun, torchrun or srun (see train), each step is a global
batch of --batch-size images split across the ranks, and bench reports
the images/s in total and of each rank, and the bytes and time the
gradients' all-reduce adds to each step.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.run(cmd, args) },
	}
	c.af, c.df, c.dfl = addArchFlags(cmd), addDeviceFlags(cmd), addDistFlags(cmd)
	c.sf, c.data, c.mth = addSNNFlags(cmd, &c.cfg), addDataFlags(cmd, &c.dataset), addMethodFlags(cmd)
	f := cmd.Flags()
	f.Lookup("arch").Usage += "; with MODEL, the structure of a PyTorch state dict"
	f.IntVar(&c.batch, "batch-size", 100, "training batch")
	f.IntVar(&c.inf, "infer-batch-size", 1000, "SNN inference batch")
	f.Float64Var(&c.seconds, "seconds", 5, "time each measurement for at least this long")
	f.BoolVar(&c.jsonOut, "json", false, "print JSON")
	f.Lookup("dataset").Usage = "time on this data set's test images (mnist, fashion-mnist, cifar10) instead of random ones"
	return cmd
}

func (c *benchCmd) run(cmd *cobra.Command, args []string) error {
	var minTime time.Duration
	seconds := func() (err error) { minTime, err = train.BenchTime(c.seconds); return err }
	if err := checkAll(seconds, batchSize("batch-size", c.batch), batchSize("infer-batch-size", c.inf), c.af.checkModel(cmd, args),
		c.sf.check, c.data.check, c.df.check, c.mth.check); err != nil { // before building the network and reading the data
		return err
	}
	m, snn, err := c.af.snn(cmd, args, c.sf)
	if err != nil {
		return err
	}
	d, err := c.data.benchImages(m, args)
	if err != nil {
		return err
	}
	return c.dfl.with(cmd, c.df, func(r rank) error {
		b, err := train.BenchReport(r.g, r.be, snn, c.batch, c.inf, minTime, d, c.mth.chosen)
		if err != nil || r.g != nil && r.g.Rank() != 0 { // rank 0 prints
			return err
		}
		b.Device, b.DeviceDescription, b.Images = c.df.name, r.device(), "random images"
		if b.Arch = c.af.name; m != nil {
			b.Model, b.Arch = args[0], ""
		}
		if d != nil {
			b.Images = d.Name + " test images"
		}
		return emit(cmd.OutOrStdout(), c.jsonOut, b, b.WriteText)
	})
}
