package main

import (
	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

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
