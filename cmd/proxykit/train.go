package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/train"
)

// errInterrupted makes main exit with status 130 after a clean stop.
type errInterrupted struct{ msg string }

func (e errInterrupted) Error() string { return e.msg }

func newTrainCmd() *cobra.Command {
	s := recipe.Default()
	var (
		dataDir, output, resume, betas string
		plotPath                       string
		df                             deviceFlags
		noShuffle, noAugment, jsonOut  bool
		mf                             modelFlags
	)
	cmd := &cobra.Command{
		Use:   "train MODEL --data DIR --dataset NAME -o CKPT",
		Short: "Fine-tune a network with proxy learning (SNN forward, ANN backward)",
		Long: `train runs proxy learning (docs/design.md §1) on MODEL (ONNX or a checkpoint):
for each batch the ANN's forward pass, the SNN's spike counts, the loss
mean((counts − onehot)²) on the counts and backpropagation through the ANN,
then PyTorch's Adam. BatchNorm runs in training mode for the first
--freeze-bn-after epochs and in eval mode after. After each epoch it prints
train loss, ANN and SNN train accuracy, test accuracy (ANN, SNN strict and
ties, tie share), time and images/s, and writes a checkpoint to -o.

Data: IDX files (train-images-idx3-ubyte[.gz] ...) for mnist and
fashion-mnist, the binary version (data_batch_1.bin ... test_batch.bin) for
cifar10. Augmentation: a random 26x26 crop padded back to 28x28 for 28x28
images; for CIFAR-10 a random crop with 4 pixels of padding and a horizontal
flip.

Ctrl-C writes a checkpoint and stops; --resume CKPT continues exactly.
With --resume the run keeps the checkpoint's settings: --epochs (the total
to reach), --data, --device, --fp32, --no-cudnn, --json and --plot are
honoured; any other flag is refused unless it repeats the checkpoint's
value.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return fmt.Errorf("-o is required: the checkpoint to write")
			}
			if err := checkOutput(output, args[0]); err != nil {
				return err
			}
			if plotPath != "" {
				if err := plots.CheckPath(plotPath); err != nil {
					return err
				}
				for _, p := range []string{plotPath, plots.CSVPath(plotPath)} {
					if err := atomicfile.Check(p); err != nil {
						return err
					}
				}
			}
			b1, b2, err := parseBetas(betas)
			if err != nil {
				return err
			}
			s.Beta1, s.Beta2, s.Shuffle, s.Augment = b1, b2, !noShuffle, !noAugment
			m, err := mf.load(args[0])
			if err != nil {
				return err
			}
			applySNNDefaults(cmd.Flags(), m, &s.Timesteps, &s.Threshold, &s.Reset)
			var ck *checkpoint.Checkpoint
			if resume != "" {
				if ck, err = checkpoint.Load(resume); err != nil {
					return fmt.Errorf("--resume: %w", err)
				}
				for _, name := range fixedOnResume {
					if !cmd.Flags().Changed(name) {
						continue
					}
					if got, want := settingOf(s, name), settingOf(ck.Settings, name); got != want {
						return fmt.Errorf("--%s %s differs from the checkpoint's %s: --resume continues the run exactly, with its own settings; to change them, start a new run from the checkpoint (train %s -o NEW ... without --resume)", name, got, want, resume)
					}
				}
				epochs := s.Epochs
				s = ck.Settings
				if cmd.Flags().Changed("epochs") {
					s.Epochs = epochs
				}
			}
			if err := s.Validate(); err != nil {
				return err
			}
			if dataDir == "" {
				if dataDir, err = data.DefaultDir(s.Dataset); err != nil {
					return err
				}
			}
			trainSet, err := data.Load(dataDir, s.Dataset, true)
			if err != nil {
				return err
			}
			testSet, err := data.Load(dataDir, s.Dataset, false)
			if err != nil {
				return err
			}
			trainSet, testSet = trainSet.Subset(s.MaxTrain), testSet.Subset(s.MaxTest)
			snn, err := m.SNN(s.Config)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			t, err := train.NewTrainer(s, m.ANN, snn, trainSet, testSet)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if ck != nil {
				if err := t.Resume(ck); err != nil {
					return fmt.Errorf("--resume %s: %w (model %s)", resume, err, args[0])
				}
			}
			be, err := df.open()
			if err != nil {
				return err
			}
			defer be.Close()
			t.Backend = be
			defer t.Close()
			if t.Progress.Epoch >= s.Epochs {
				return fmt.Errorf("nothing to train: --epochs %d, and the run has finished %d; give more epochs", s.Epochs, t.Progress.Epoch)
			}
			if _, err := t.Engine(); err != nil {
				return err
			}
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			tty := isTerminal(stderr)
			if !jsonOut {
				fmt.Fprintf(stdout, "proxy learning: %s on %s (%d train, %d test images), %d epochs from epoch %d, batch %d, T=%d, v_th=%g\n",
					args[0], s.Dataset, trainSet.N, testSet.N, s.Epochs, t.Progress.Epoch, s.BatchSize, s.Timesteps, s.Threshold)
			}
			lastLine := time.Now()
			t.OnBatch = func(p train.BatchProgress) {
				switch {
				case jsonOut:
				case tty:
					fmt.Fprintf(stderr, "\r%s", progressBar(p, s.Epochs))
				case time.Since(lastLine) > 30*time.Second || p.Batch == p.Batches:
					lastLine = time.Now()
					fmt.Fprintf(stderr, "epoch %d: batch %d/%d, loss %.4f, %.0f images/s\n", p.Epoch, p.Batch, p.Batches, p.Loss, p.ImagesPerSec)
				}
			}
			t.OnEpoch = func(st results.EpochStats) error {
				if tty && !jsonOut {
					fmt.Fprint(stderr, "\r\033[K")
				}
				if err := saveCheckpoint(t, output); err != nil {
					return err
				}
				if plotPath != "" {
					if err := plots.Training(plotPath, filepath.Base(args[0]), t.Progress.History); err != nil {
						return err
					}
				}
				return printEpoch(stdout, st, jsonOut)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = t.Run(ctx)
			if errors.Is(err, train.ErrInterrupted) {
				if tty {
					fmt.Fprint(stderr, "\r\033[K")
				}
				if serr := saveCheckpoint(t, output); serr != nil {
					return serr
				}
				return errInterrupted{fmt.Sprintf("interrupted at epoch %d, batch %d; checkpoint written to %s (continue with --resume %s)",
					t.Progress.Epoch, t.Progress.Batch, output, output)}
			}
			if err != nil {
				if n := len(t.Progress.History); n > 0 {
					return fmt.Errorf("%w; %s still holds the run after epoch %d", err, output, t.Progress.History[n-1].Epoch)
				}
				return err
			}
			if !jsonOut {
				fmt.Fprintf(stdout, "done: checkpoint %s\n", output)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "", "folder holding the data set's files (default for fashion-mnist: "+data.FashionMNISTDir+")")
	f.StringVar(&s.Dataset, "dataset", s.Dataset, "mnist, fashion-mnist or cifar10")
	f.StringVarP(&output, "output", "o", "", "checkpoint to write after each epoch (safetensors)")
	f.IntVar(&s.Epochs, "epochs", s.Epochs, "epochs to train (in all, when resuming)")
	f.IntVar(&s.BatchSize, "batch-size", s.BatchSize, "images per proxy step")
	f.Float64Var(&s.LR, "lr", s.LR, "Adam learning rate")
	f.StringVar(&betas, "betas", "0.8,0.99", "Adam betas")
	f.Float64Var(&s.Eps, "eps", s.Eps, "Adam epsilon")
	f.Float64Var(&s.WeightDecay, "weight-decay", s.WeightDecay, "L2 weight decay added to the gradient")
	f.IntVar(&s.Timesteps, "timesteps", s.Timesteps, "SNN simulation length T")
	f.Float32Var(&s.Threshold, "threshold", s.Threshold, "IF threshold v_th (spike when v >= v_th)")
	f.Float32Var(&s.Reset, "reset", s.Reset, "IF reset potential v_reset")
	f.IntVar(&s.FreezeBNAfter, "freeze-bn-after", s.FreezeBNAfter, "epochs with BatchNorm in training mode before eval mode (0: eval from the start)")
	f.Uint64Var(&s.Seed, "seed", s.Seed, "seed of shuffling and augmentation")
	f.BoolVar(&noShuffle, "no-shuffle", false, "keep the data set's order")
	f.BoolVar(&noAugment, "no-augment", false, "no data augmentation")
	f.StringVar(&resume, "resume", "", "continue from this checkpoint (weights, optimizer, statistics, position)")
	f.IntVar(&s.MaxTrain, "max-train", 0, "use only the first N training images (0: all)")
	f.IntVar(&s.MaxTest, "max-test", 0, "use only the first N test images (0: all)")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object per epoch")
	f.StringVar(&plotPath, "plot", "", "redraw the training curve after each epoch to this .png, .svg or .pdf (numbers to the same name .csv)")
	mf.add(cmd)
	df.add(cmd)
	return cmd
}

// fixedOnResume are the flags a resumed run cannot change: it continues
// with the checkpoint's settings, so that it ends exactly where an
// uninterrupted run would.
var fixedOnResume = []string{"dataset", "batch-size", "lr", "betas", "eps", "weight-decay", "timesteps", "threshold", "reset",
	"freeze-bn-after", "seed", "no-shuffle", "no-augment", "max-train", "max-test"}

// settingOf prints the setting a flag of fixedOnResume sets.
func settingOf(s recipe.Settings, flag string) string {
	switch flag {
	case "dataset":
		return s.Dataset
	case "batch-size":
		return fmt.Sprint(s.BatchSize)
	case "lr":
		return fmt.Sprint(s.LR)
	case "betas":
		return fmt.Sprintf("%g,%g", s.Beta1, s.Beta2)
	case "eps":
		return fmt.Sprint(s.Eps)
	case "weight-decay":
		return fmt.Sprint(s.WeightDecay)
	case "timesteps":
		return fmt.Sprint(s.Timesteps)
	case "threshold":
		return fmt.Sprint(s.Threshold)
	case "reset":
		return fmt.Sprint(s.Reset)
	case "freeze-bn-after":
		return fmt.Sprint(s.FreezeBNAfter)
	case "seed":
		return fmt.Sprint(s.Seed)
	case "no-shuffle":
		return fmt.Sprint(!s.Shuffle)
	case "no-augment":
		return fmt.Sprint(!s.Augment)
	case "max-train":
		return fmt.Sprint(s.MaxTrain)
	case "max-test":
		return fmt.Sprint(s.MaxTest)
	}
	return ""
}

func parseBetas(s string) (float64, float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return 0, 0, fmt.Errorf("--betas %q: want two numbers, e.g. 0.8,0.99", s)
	}
	b1, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
	b2, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("--betas %q: want two numbers, e.g. 0.8,0.99", s)
	}
	return b1, b2, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func progressBar(p train.BatchProgress, epochs int) string {
	const width = 30
	done := width * p.Batch / max(p.Batches, 1)
	bar := strings.Repeat("=", done) + strings.Repeat(" ", width-done)
	return fmt.Sprintf("epoch %d/%d [%s] %d/%d  %.0f img/s  ETA %s  loss %.4f", p.Epoch+1, epochs, bar, p.Batch, p.Batches,
		p.ImagesPerSec, p.ETA.Round(time.Second), p.Loss)
}

func printEpoch(w io.Writer, st results.EpochStats, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	_, err := fmt.Fprintf(w, "epoch %d (BN %s): loss %.4f, train ANN %.2f%% SNN %.2f%% | test ANN %.2f%%, SNN strict %.2f%% ties %.2f%% (tied %.2f%%) | %.1f s, %.0f images/s\n",
		st.Epoch, st.BNMode, st.TrainLoss, 100*st.TrainANN, 100*st.TrainSNN, 100*st.Test.ANN, 100*st.Test.SNNStrict,
		100*st.Test.SNNTies, 100*st.Test.TieShare, st.Seconds, st.ImagesPerSec)
	return err
}

// saveCheckpoint writes the trainer's state to path.
func saveCheckpoint(t *train.Trainer, path string) error {
	c, err := t.Checkpoint()
	if err != nil {
		return err
	}
	return c.Save(path)
}
