package main

import (
	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// recipeFlags set a training run's settings (recipe.Settings; the method
// is methodFlags's, the SNN's are snnFlags's; a run that resumes takes
// them from its checkpoint: resumeFlags).
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

// methodFlags choose how a training step computes its gradients (train's
// run, bench's comparison): --method, and the surrogate gradient's
// --surrogate-alpha and --detach-reset.
type methodFlags struct {
	cmd    *cobra.Command
	method string
	g      recipe.Surrogate
	chosen train.Method // check's
}

func addMethodFlags(cmd *cobra.Command) *methodFlags {
	f := &methodFlags{cmd: cmd, method: recipe.MethodProxy, g: recipe.DefaultSurrogate()}
	fl := cmd.Flags()
	fl.StringVar(&f.method, "method", f.method, "training method: proxy (proxy learning) or surrogate (surrogate gradients through the SNN's T steps, docs/design.md §1)")
	fl.Float64Var(&f.g.Alpha, "surrogate-alpha", f.g.Alpha, "surrogate: sharpness α of the sigmoid whose derivative α·σ(αx)·(1−σ(αx)) stands in for the spike's (SpikingJelly's default)")
	fl.BoolVar(&f.g.DetachReset, "detach-reset", false, "surrogate: leave the reset's dependence on the spike out of the gradient")
	return f
}

// apply sets s's method and, for --method surrogate or where a surrogate
// flag is given, its surrogate gradient (recipe.Settings.Validate refuses
// one for proxy learning).
func (f *methodFlags) apply(s *recipe.Settings) {
	s.Method, s.Surrogate = f.method, nil
	fl := f.cmd.Flags()
	if f.method == recipe.MethodSurrogate || fl.Changed("surrogate-alpha") || fl.Changed("detach-reset") {
		g := f.g
		s.Surrogate = &g
	}
}

// check refuses a method other than proxy and surrogate, a surrogate
// setting recipe.Settings.Validate refuses, and a surrogate flag for
// proxy learning (unless the run resumes: the checkpoint's method rules
// then, train.Resumed); it keeps the method chosen.
func (f *methodFlags) check() error {
	s := recipe.Default()
	f.apply(&s)
	if r := f.cmd.Flags().Lookup("resume"); r != nil && r.Changed && s.Surrogate != nil {
		s.Method = recipe.MethodSurrogate // the surrogate's own setting is checked here
	}
	if err := s.Validate(); err != nil {
		return err
	}
	f.chosen = train.MethodOf(s)
	return nil
}
