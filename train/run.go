package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/setting"
)

// RunOptions say what Run writes and prints around the training.
type RunOptions struct {
	// Output is the checkpoint written after every epoch and when the run
	// is interrupted (required).
	Output string
	// Curve, if set, is given the run's history after every epoch's
	// checkpoint: a program redraws its training curve there
	// (plots.Training).
	Curve func(history []results.EpochStats) error
	// Model names the model file trained, in the header.
	Model string
	// Device describes the backend, in the header of a data-parallel run.
	Device string
	// Stdout, if set, is told the run's setting, each epoch's statistics
	// and, at the end, the last epoch beside the paper's figure and the
	// checkpoint; with JSON, each epoch as one line of JSON and nothing
	// else.
	Stdout io.Writer
	JSON   bool
	// Progress, if set, shows the running epoch's batches (ProgressLine).
	Progress io.Writer
	// Continue, if set, is the command that continues the run from Output,
	// as the program spells it; an interrupt's error says it. Empty: the
	// error names the setting (setting.Resume) and Output.
	Continue string
}

// Run runs t to its last epoch as a program does: it holds Output's lock,
// writes the checkpoint (and the curve) after every epoch and, when ctx is
// cancelled, after the batch under way, and reports on opt's writers. Under
// data parallelism (t.Dist) rank 0 alone writes and prints; every rank
// waits for its checkpoint on an interrupt, and an error on any rank stops
// every rank (t.Dist.Abort). It closes t (Trainer.Close). Its error says
// what Output holds; on an interrupt it wraps ErrInterrupted.
func Run(ctx context.Context, t *Trainer, opt RunOptions) error {
	if err := t.ready(); err != nil {
		return err
	}
	err := run(ctx, t, opt)
	if g := t.Dist; g != nil && err != nil && !errors.Is(err, ErrInterrupted) {
		g.Abort(err)
	}
	return err
}

func run(ctx context.Context, t *Trainer, opt RunOptions) error {
	g := t.Dist
	lead := g == nil || g.Rank() == 0 // writes the checkpoint, prints
	stdout, progress := opt.Stdout, opt.Progress
	if !lead || stdout == nil {
		stdout = io.Discard
	}
	if !lead || opt.JSON {
		progress = nil
	}
	if lead {
		lock, err := atomicfile.Lock(opt.Output) // one run writes a checkpoint at a time
		if err != nil {
			return err
		}
		defer lock.Unlock()
	}
	defer t.Close()
	s := t.Settings
	if t.Progress.Epoch >= s.Epochs {
		return setting.Errorf("nothing to train: %s %d, and the run has finished %d; give more epochs", setting.Name("epochs"), s.Epochs, t.Progress.Epoch)
	}
	if _, err := t.Engine(); err != nil {
		return err
	}
	if !opt.JSON {
		fmt.Fprintf(stdout, "%s: %s on %s (%d train, %d test images), %s; batches of %d, T=%d, v_th=%g\n",
			methodLine(s), opt.Model, s.Dataset, t.Train.N, t.Test.N, epochSpan(t.Progress, s.Epochs, t.Batches()), s.BatchSize, s.Timesteps, s.Threshold)
		if g != nil {
			fmt.Fprintf(stdout, "data-parallel: %s; %s\n", g.Describe(), opt.Device)
		}
	}
	prog := NewProgressLine(progress)
	t.OnBatch = func(p BatchProgress) {
		if prog.Terminal() {
			prog.Show(batchLine(p, s.Epochs), false)
		} else {
			prog.Show(fmt.Sprintf("epoch %d/%d: batch %d/%d, loss %.4f, %.0f images/s", p.Epoch+1, s.Epochs, p.Batch, p.Batches, p.Loss, p.ImagesPerSec), p.Batch == p.Batches)
		}
	}
	saved := -1 // the epoch the last checkpoint this run wrote ends
	save := func() error {
		if !lead {
			return nil
		}
		c, err := t.Checkpoint()
		if err == nil {
			err = c.Save(opt.Output)
		}
		if err == nil {
			saved = len(t.Progress.History)
		}
		return err
	}
	// holds says what Output holds after a failure
	holds := func() string {
		switch {
		case saved > 0:
			return fmt.Sprintf("%s holds the run after epoch %d", opt.Output, t.Progress.History[saved-1].Epoch+1)
		case saved == 0:
			return fmt.Sprintf("%s holds the run before its first epoch ended", opt.Output)
		}
		return fmt.Sprintf("this run wrote no checkpoint to %s", opt.Output)
	}
	t.OnEpoch = func(st results.EpochStats) error {
		if !lead {
			return nil
		}
		prog.Clear()
		if err := save(); err != nil {
			return err
		}
		if opt.Curve != nil {
			if err := opt.Curve(t.Progress.History); err != nil {
				return err
			}
		}
		if opt.JSON {
			return json.NewEncoder(stdout).Encode(st)
		}
		return st.WriteText(stdout)
	}
	err := t.Run(ctx)
	prog.Clear()
	if errors.Is(err, ErrInterrupted) {
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
		where := fmt.Sprintf("in epoch %d/%d after batch %d/%d", t.Progress.Epoch+1, s.Epochs, t.Progress.Batch, t.Batches())
		switch {
		case t.Progress.Batch == 0 && t.Progress.Epoch == 0:
			where = fmt.Sprintf("before epoch 1/%d", s.Epochs)
		case t.Progress.Batch == 0:
			where = fmt.Sprintf("after epoch %d/%d", t.Progress.Epoch, s.Epochs)
		}
		if serr != nil {
			return fmt.Errorf("%w %s, and the checkpoint could not be written (%v); %s", ErrInterrupted, where, serr, holds())
		}
		if opt.Continue == "" {
			return setting.Errorf("%w %s; checkpoint written to %s (continue with %s %[3]s)", ErrInterrupted, where, opt.Output, setting.Resume)
		}
		how := opt.Continue
		if g != nil {
			how += " (started by the launcher, as this run was)"
		}
		return fmt.Errorf("%w %s; checkpoint written to %s; continue with:\n  %s", ErrInterrupted, where, opt.Output, how)
	}
	if err != nil {
		return fmt.Errorf("%w; %s", err, holds())
	}
	if !opt.JSON {
		if h := t.Progress.History; len(h) > 0 && h[len(h)-1].Paper != nil {
			fmt.Fprintf(stdout, "last epoch beside the paper (test set, T=%d):\n", t.Settings.Timesteps)
			h[len(h)-1].Paper.WriteText(stdout)
		}
		fmt.Fprintf(stdout, "done: checkpoint %s\n", opt.Output)
	}
	return nil
}

// methodLine names the run's method in its header.
func methodLine(s recipe.Settings) string {
	g := s.Surrogate
	if s.TrainingMethod() != recipe.MethodSurrogate || g == nil {
		return "proxy learning"
	}
	reset := "through the reset"
	if g.DetachReset {
		reset = "reset detached"
	}
	return fmt.Sprintf("surrogate gradients through time (%s, α = %g, %s)", g.Function, g.Alpha, reset)
}

// epochSpan says which epochs a run at p trains to reach epochs in all,
// counted from 1 as people count: "epochs 1 to 100", or for a run resumed
// in the middle of an epoch "epochs 3 to 100, resumed in epoch 3 after
// batch 40/600".
func epochSpan(p checkpoint.Progress, epochs, batches int) string {
	span := fmt.Sprintf("epochs %d to %d", p.Epoch+1, epochs)
	if p.Epoch+1 == epochs {
		span = fmt.Sprintf("epoch %d", epochs)
	}
	if p.Batch > 0 {
		span += fmt.Sprintf(", resumed in epoch %d after batch %d/%d", p.Epoch+1, p.Batch, batches)
	}
	return span
}

// batchLine is the progress of an epoch as a bar, redrawn on a terminal.
func batchLine(p BatchProgress, epochs int) string {
	const width = 30
	done := width * p.Batch / max(p.Batches, 1)
	bar := strings.Repeat("=", done) + strings.Repeat(" ", width-done)
	return fmt.Sprintf("epoch %d/%d [%s] %d/%d  %.0f img/s  ETA %s  loss %.4f", p.Epoch+1, epochs, bar, p.Batch, p.Batches,
		p.ImagesPerSec, p.ETA.Round(time.Second), p.Loss)
}

// ProgressLine shows the progress of long work on a writer: a line
// redrawn in place on a terminal, else a line every 30 seconds. A nil
// ProgressLine, or one on a nil writer, shows nothing.
type ProgressLine struct {
	w    io.Writer
	tty  bool
	last time.Time
}

// NewProgressLine is a progress line on w (nil: none).
func NewProgressLine(w io.Writer) *ProgressLine {
	if w == nil {
		return nil
	}
	p := &ProgressLine{w: w, last: time.Now()}
	if f, ok := w.(*os.File); ok {
		st, err := f.Stat()
		p.tty = err == nil && st.Mode()&os.ModeCharDevice != 0
	}
	return p
}

// Terminal says whether the line is redrawn in place.
func (p *ProgressLine) Terminal() bool { return p != nil && p.tty }

// Show shows line (final: the last of a phase, printed without a terminal
// too).
func (p *ProgressLine) Show(line string, final bool) {
	switch {
	case p == nil || p.w == nil:
	case p.tty:
		fmt.Fprintf(p.w, "\r%s", line)
	case final || time.Since(p.last) > 30*time.Second:
		p.last = time.Now()
		fmt.Fprintln(p.w, line)
	}
}

// Clear removes the redrawn line.
func (p *ProgressLine) Clear() {
	if p.Terminal() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
