package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/recipe"
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
// are snnFlags; a run that resumes takes them from its checkpoint:
// resumeFlags).
type recipeFlags struct {
	s                    *recipe.Settings
	betas                string
	noShuffle, noAugment bool
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
