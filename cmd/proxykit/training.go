package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/train"
)

// runTraining runs a trainer on --device, reporting progress, writing the
// checkpoint (and the curve) after every epoch and on an interrupt. Under
// a launcher it is one rank of a data-parallel run: rank 0 alone writes
// and prints; an error on any rank stops every rank.
func runTraining(cmd *cobra.Command, t *train.Trainer, df deviceFlags, dfl *distFlags, path, output, plotPath string, jsonOut bool) error {
	be, g, err := dfl.join(&df, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer be.Close()
	err = train1(cmd, t, be, g, path, output, plotPath, jsonOut)
	if g != nil {
		if err != nil && !errors.Is(err, train.ErrInterrupted) {
			abortRun(g, cmd.ErrOrStderr(), err)
		}
		if cerr := g.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// train1 is runTraining on be, as rank g (nil: alone).
func train1(cmd *cobra.Command, t *train.Trainer, be compute.Backend, g *distributed.Group, path, output, plotPath string, jsonOut bool) error {
	lead := g == nil || g.Rank() == 0 // writes the checkpoint, prints
	if lead {
		lock, err := atomicfile.Lock(output) // one run writes a checkpoint at a time
		if err != nil {
			return err
		}
		defer lock.Unlock()
	}
	t.Backend, t.Dist = be, g
	defer t.Close()
	s := t.Settings
	if t.Progress.Epoch >= s.Epochs {
		return fmt.Errorf("nothing to train: --epochs %d, and the run has finished %d; give more epochs", s.Epochs, t.Progress.Epoch)
	}
	if _, err := t.Engine(); err != nil {
		return err
	}
	stdout := cmd.OutOrStdout()
	if !lead {
		stdout = io.Discard
	}
	if !jsonOut {
		fmt.Fprintf(stdout, "proxy learning: %s on %s (%d train, %d test images), %d epochs from epoch %d, batch %d, T=%d, v_th=%g\n",
			path, s.Dataset, t.Train.N, t.Test.N, s.Epochs, t.Progress.Epoch, s.BatchSize, s.Timesteps, s.Threshold)
		if g != nil {
			fmt.Fprintf(stdout, "data-parallel: %s; %s\n", g.Describe(), device.Describe(be))
		}
	}
	prog := newProgress(cmd)
	t.OnBatch = func(p train.BatchProgress) {
		if jsonOut || !lead {
			return
		}
		if prog.tty {
			prog.show(batchLine(p, s.Epochs), false)
		} else {
			prog.show(fmt.Sprintf("epoch %d: batch %d/%d, loss %.4f, %.0f images/s", p.Epoch, p.Batch, p.Batches, p.Loss, p.ImagesPerSec), p.Batch == p.Batches)
		}
	}
	saved := -1 // the epoch the last checkpoint this run wrote ends
	save := func() error {
		if !lead {
			return nil
		}
		c, err := t.Checkpoint()
		if err == nil {
			err = c.Save(output)
		}
		if err == nil {
			saved = len(t.Progress.History)
		}
		return err
	}
	// holds says what -o holds after a failure
	holds := func() string {
		switch {
		case saved > 0:
			return fmt.Sprintf("%s holds the run after epoch %d", output, t.Progress.History[saved-1].Epoch)
		case saved == 0:
			return fmt.Sprintf("%s holds the run before its first epoch ended", output)
		}
		return fmt.Sprintf("this run wrote no checkpoint to %s", output)
	}
	t.OnEpoch = func(st results.EpochStats) error {
		if !lead {
			return nil
		}
		prog.clear()
		if err := save(); err != nil {
			return err
		}
		if plotPath != "" {
			if err := plots.Training(plotPath, filepath.Base(path), t.Progress.History); err != nil {
				return err
			}
		}
		return printEpoch(stdout, st, jsonOut)
	}
	ctx := cmd.Context()
	err := t.Run(ctx)
	prog.clear()
	if errors.Is(err, train.ErrInterrupted) {
		serr := save()
		if g != nil && g.Lost() == nil {
			// every rank waits until rank 0 has written the checkpoint: a
			// launcher that ends the job when one rank exits (torchrun,
			// srun) must not end it in the middle of the write. (A failure
			// here is another rank gone; the checkpoint is written anyway.)
			_ = g.Host().AllReduceF64([]float64{0})
		}
		if !lead {
			return err
		}
		if serr != nil {
			return fmt.Errorf("%w at epoch %d, batch %d, and the checkpoint could not be written (%v); %s",
				train.ErrInterrupted, t.Progress.Epoch, t.Progress.Batch, serr, holds())
		}
		return fmt.Errorf("%w at epoch %d, batch %d; checkpoint written to %s (continue with --resume %s)",
			train.ErrInterrupted, t.Progress.Epoch, t.Progress.Batch, output, output)
	}
	if err != nil {
		return fmt.Errorf("%w; %s", err, holds())
	}
	if !jsonOut {
		if h := t.Progress.History; len(h) > 0 && h[len(h)-1].Paper != nil {
			fmt.Fprintf(stdout, "last epoch beside the paper (test set, T=%d):\n", t.Settings.Timesteps)
			printPaper(stdout, h[len(h)-1].Paper)
		}
		fmt.Fprintf(stdout, "done: checkpoint %s\n", output)
	}
	return nil
}
