package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// parseBetas reads --betas "b1,b2".
func parseBetas(s string) (float64, float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) == 2 {
		b1, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
		b2, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		if err1 == nil && err2 == nil {
			return b1, b2, nil
		}
	}
	return 0, 0, fmt.Errorf("--betas %q: want two numbers, e.g. 0.8,0.99", s)
}

// recipeFlags set a training run's settings (recipe.Settings; the SNN's
// are snnFlags), or take them from the checkpoint the run resumes
// (--resume).
type recipeFlags struct {
	s                    *recipe.Settings
	betas, resume        string
	noShuffle, noAugment bool
	ck                   *checkpoint.Checkpoint
}

func addRecipeFlags(cmd *cobra.Command, s *recipe.Settings) *recipeFlags {
	r := &recipeFlags{s: s, betas: fmt.Sprintf("%g,%g", s.Beta1, s.Beta2)}
	f := cmd.Flags()
	f.IntVar(&s.Epochs, "epochs", s.Epochs, "epochs to train (in all, when resuming)")
	f.IntVar(&s.BatchSize, "batch-size", s.BatchSize, "images per proxy step")
	f.Float64Var(&s.LR, "lr", s.LR, "Adam learning rate")
	f.StringVar(&r.betas, "betas", r.betas, "Adam betas")
	f.Float64Var(&s.Eps, "eps", s.Eps, "Adam epsilon")
	f.Float64Var(&s.WeightDecay, "weight-decay", s.WeightDecay, "L2 weight decay added to the gradient")
	f.IntVar(&s.FreezeBNAfter, "freeze-bn-after", s.FreezeBNAfter, "epochs with BatchNorm in training mode before eval mode (0: eval from the start)")
	f.Uint64Var(&s.Seed, "seed", s.Seed, "seed of shuffling and augmentation")
	f.BoolVar(&r.noShuffle, "no-shuffle", false, "keep the data set's order")
	f.BoolVar(&r.noAugment, "no-augment", false, "no data augmentation")
	f.IntVar(&s.MaxTrain, "max-train", 0, "use only the first N training images (0: all)")
	f.IntVar(&s.MaxTest, "max-test", 0, "use only the first N test images (0: all)")
	f.StringVar(&r.resume, "resume", "", "continue the run this checkpoint holds (its model, weights, optimizer, statistics, position and settings); alone it is MODEL and -o too")
	return r
}

// check reads the flags into the settings (--betas, --no-shuffle and
// --no-augment given indirectly) and refuses, before a model is read, a
// value no run takes; the SNN's part is snnFlags.check's.
func (r *recipeFlags) check() error {
	var err error
	r.s.Beta1, r.s.Beta2, err = parseBetas(r.betas)
	r.s.Shuffle, r.s.Augment = !r.noShuffle, !r.noAugment
	if err != nil {
		return err
	}
	return r.s.ValidateExceptSNN()
}

// model is the model file a run trains: MODEL, or when it is left out the
// checkpoint it resumes, which holds the model.
func (r *recipeFlags) model(args []string) (string, error) {
	switch {
	case len(args) == 1:
		return args[0], nil
	case r.resume != "":
		return r.resume, nil
	}
	return "", fmt.Errorf("give the model to train (MODEL), or --resume CKPT to continue a run")
}

// settle makes the run's settings: the flags' (check) or, when resuming,
// the checkpoint's, refusing a flag that would change them
// (train.Resumed); and checks them. m is the model read from path: when
// path is the checkpoint resumed, its checkpoint is not read twice.
func (r *recipeFlags) settle(cmd *cobra.Command, m *model.Model, path string) error {
	if r.resume != "" {
		var err error
		if m.Checkpoint != nil && atomicfile.SameFile(path, r.resume) {
			r.ck = m.Checkpoint
		} else if r.ck, err = checkpoint.Load(r.resume); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		for _, n := range r.ck.Notices {
			fmt.Fprintln(cmd.ErrOrStderr(), "note: --resume:", n)
		}
		if *r.s, err = train.Resumed(r.ck.Settings, *r.s, cmd.Flags().Changed); err != nil {
			return err
		}
	}
	return r.s.Validate()
}

// resumeInto restores the checkpoint's state, when resuming, into t, the
// model's trainer.
func (r *recipeFlags) resumeInto(t *train.Trainer, model string) error {
	if r.ck == nil {
		return nil
	}
	if err := t.Resume(r.ck); err != nil {
		return fmt.Errorf("--resume %s: %w (model %s)", r.resume, err, model)
	}
	return nil
}
