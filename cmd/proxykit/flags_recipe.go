package main

import (
	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/recipe"
)

// recipeFlags set a training run's settings (recipe.Settings; the SNN's
// are snnFlags; a run that resumes takes them from its checkpoint:
// resumeFlags).
type recipeFlags struct {
	s                    *recipe.Settings
	betas                string
	noShuffle, noAugment bool
}

func addRecipeFlags(cmd *cobra.Command, s *recipe.Settings) *recipeFlags {
	r := &recipeFlags{s: s, betas: s.Betas()}
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
	r.s.Shuffle, r.s.Augment = !r.noShuffle, !r.noAugment
	if err := r.s.SetBetas(r.betas); err != nil {
		return err
	}
	return r.s.ValidateExceptSNN()
}
