package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/distributed"
)

// distFlags join the data-parallel run a launcher started (mpirun,
// torchrun, srun: docs/guide.md, data-parallel training).
type distFlags struct {
	launcher string
	opt      distributed.Options
	bucketMB int
}

func addDistFlags(cmd *cobra.Command) *distFlags {
	f, fl := &distFlags{}, cmd.Flags()
	fl.StringVar(&f.launcher, "launcher", distributed.LauncherAuto, "data-parallel: auto (join the run that mpirun, torchrun or srun started, read from their environment) or none (run alone whatever the environment)")
	fl.StringVar(&f.opt.BatchNorm, "bn-stats", distributed.SyncBN, "data-parallel: BatchNorm statistics in training mode over the global batch (sync: one process's results) or over each rank's share (rank: PyTorch DDP's default)")
	fl.DurationVar(&f.opt.Timeout, "dist-timeout", distributed.DefaultTimeout, "data-parallel: how long a rank waits for another before stopping every rank, naming the one it waited for")
	fl.IntVar(&f.bucketMB, "bucket-mb", 25, "data-parallel: gradients are all-reduced in buckets of this many MB as the backward pass completes them (NCCL)")
	return f
}

// launch is how this process was started (distributed.LaunchOf).
func (f *distFlags) launch() (distributed.Launch, error) {
	return distributed.LaunchOf(f.launcher, os.Getenv)
}

// check checks a command's outputs (outputs.check) on the rank that writes
// them: alone, or rank 0 (another node may lack the folders; an unreadable
// launch counts as rank 0: with reports it).
func (f *distFlags) check(outs outputs, inputs ...string) error {
	if l, err := f.launch(); err == nil && l.Parallel() && l.Rank != 0 {
		return nil
	}
	return outs.check(inputs...)
}

// rank is this process's part of a run: its backend and its group (nil
// when alone).
type rank struct {
	be compute.Backend
	g  *distributed.Group
}

// device describes the rank's backend (device.Describe).
func (r rank) device() string { return device.Describe(r.be) }

// with opens the device and, when a launcher started this process as one
// of several ranks, joins their run, and calls run with the rank's backend
// (its GPU: the local rank's) and group; then closes both. A rank that
// stops the run for good (a rank lost, an error: the library's Abort) says
// why and ends this process (main's exit).
func (f *distFlags) with(cmd *cobra.Command, df *deviceFlags, run func(rank) error) error {
	l, err := f.launch()
	if err != nil {
		return err
	}
	bucket, err := distributed.BucketBytesOfMB(f.bucketMB)
	if err != nil {
		return fmt.Errorf("--bucket-mb: %w", err)
	}
	f.opt.BucketBytes = bucket
	f.opt.Report, f.opt.Exit = fatal(cmd)
	var gpus func() (int, error)
	if df.name == "cuda" {
		gpus = device.GPUs
	}
	be, g, err := distributed.Join(l, f.opt, func(gpu int) (compute.Backend, error) {
		o := df.opt
		o.GPU = gpu
		return device.Open(df.name, o)
	}, gpus)
	if err != nil {
		return err
	}
	defer be.Close()
	err = run(rank{be, g})
	if g != nil {
		if cerr := g.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
