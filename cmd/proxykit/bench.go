package main

import (
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/results"
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
	mth        *methodFlags
}

func newBenchCmd() *cobra.Command {
	c := &benchCmd{cfg: spiking.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "bench [--arch NAME] [--width N] [--device D] [--batch-size N] [--timesteps T] [--dataset NAME]",
		Short: "Measure training and SNN inference speed",
		Long: `bench builds a network of the architecture registry and reports images/s
for one proxy-learning step (ANN forward and backward, SNN forward over T
steps, BN in training mode, Adam) and for SNN inference, and the process's
peak memory (the device's on a GPU); with --method surrogate the same for
a surrogate-gradient step beside it. Inputs are random images, or with
--dataset real test images (sparser in spikes). scripts/bench_cpu.sh and
scripts/bench_torch_gpu.py run PyTorch's step beside it.

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
	c.data, c.mth = addDataFlags(cmd, &c.dataset), addMethodFlags(cmd)
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
	if err := checkAll(c.cfg.Validate, c.data.check, c.df.check, c.mth.check); err != nil { // before building the network and reading the data
		return err
	}
	net, err := c.af.build()
	if err != nil {
		return err
	}
	var d *data.Dataset
	if c.dataset != "" {
		if d, err = c.data.load(nil, false, 0); err != nil {
			return err
		}
	}
	return c.dfl.with(cmd, &c.df, func(r rank) error {
		res, err := train.BenchRanks(r.g, r.be, net, c.cfg, c.batch, c.inf, time.Duration(c.seconds*float64(time.Second)), d, c.mth.chosen)
		if err != nil || r.g != nil && r.g.Rank() != 0 { // rank 0 prints
			return err
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		b := results.Bench{Arch: c.af.name, BatchSize: c.batch, Cores: runtime.GOMAXPROCS(0), Device: c.df.name, DeviceDescription: device.Describe(r.be),
			Network: net.Name, PeakMemoryMB: float64(ru.Maxrss) / 1024, Result: res, Timesteps: c.cfg.Timesteps}
		if r.g != nil {
			b.DataParallel = r.g.Describe()
		}
		return emit(cmd.OutOrStdout(), c.jsonOut, b, b.WriteText)
	})
}
