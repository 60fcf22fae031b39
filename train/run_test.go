package train_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// TestRunWritesAndReports: Run, as a program embedding proxykit calls it,
// writes the checkpoint after every epoch and prints each epoch (as text,
// or as JSON lines) and the end; on an interrupt it writes the checkpoint
// of the batch reached and says how to continue; a finished run refuses to
// train more.
func TestRunWritesAndReports(t *testing.T) {
	s := recipe.Default()
	s.Dataset, s.Epochs, s.BatchSize, s.LR = data.MNIST, 2, 50, 1e-3
	dir := t.TempDir()
	for _, asJSON := range []bool{false, true} {
		out := filepath.Join(dir, "run.ckpt")
		tr := mnistTrainer(t, s, 100, 50)
		var stdout bytes.Buffer
		opt := train.RunOptions{Output: out, Model: "tiny", Stdout: &stdout, JSON: asJSON}
		if err := train.Run(context.Background(), tr, opt); err != nil {
			t.Fatal(err)
		}
		c, err := checkpoint.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if c.Progress.Epoch != 2 || len(c.Progress.History) != 2 {
			t.Fatalf("the checkpoint holds epoch %d and %d epochs' statistics, want 2 and 2", c.Progress.Epoch, len(c.Progress.History))
		}
		// what Run printed is the checkpoint's history, as results writes it
		var want bytes.Buffer
		for _, h := range c.Progress.History {
			if asJSON {
				b, _ := json.Marshal(h)
				want.Write(append(b, '\n'))
			} else {
				h.WriteText(&want)
			}
		}
		if asJSON && stdout.String() != want.String() {
			t.Errorf("JSON: printed\n%s\nwant the checkpoint's history\n%s", stdout.String(), want.String())
		}
		if !asJSON && (!strings.HasPrefix(stdout.String(), "proxy learning: tiny on mnist (100 train, 50 test images), epochs 1 to 2; batches of 50, T=15") ||
			!strings.Contains(stdout.String(), want.String()) || !strings.HasSuffix(stdout.String(), "done: checkpoint "+out+"\n")) {
			t.Errorf("printed\n%s\nwant the setting, the checkpoint's history\n%s\nand the checkpoint", stdout.String(), want.String())
		}
		if err := train.Run(context.Background(), tr, opt); err == nil || !strings.Contains(err.Error(), "nothing to train: epochs 2") {
			t.Errorf("a finished run trained again: %v", err)
		}
	}

	out := filepath.Join(dir, "stopped.ckpt")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout bytes.Buffer
	err := train.Run(ctx, mnistTrainer(t, s, 100, 50), train.RunOptions{Output: out, Stdout: &stdout})
	if !errors.Is(err, train.ErrInterrupted) || !strings.Contains(err.Error(), "interrupted before epoch 1/2; checkpoint written to "+out+" (continue with resume from "+out+")") {
		t.Errorf("interrupted: %v", err)
	}
	// a program that says how it continues a run has its command printed
	err = train.Run(ctx, mnistTrainer(t, s, 100, 50), train.RunOptions{Output: out, Continue: "prog --go-on " + out})
	if !errors.Is(err, train.ErrInterrupted) || !strings.HasSuffix(err.Error(), "checkpoint written to "+out+"; continue with:\n  prog --go-on "+out) {
		t.Errorf("interrupted, with the program's command: %v", err)
	}
	if c, err := checkpoint.Load(out); err != nil || c.Progress.Epoch != 0 || c.Progress.Batch != 0 || c.Adam == nil {
		t.Errorf("the interrupted run's checkpoint: %v", err)
	}
	if lines := strings.Split(strings.TrimSpace(stdout.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "proxy learning: ") {
		t.Errorf("the interrupted run printed %q, want its setting alone", stdout.String())
	}
}
