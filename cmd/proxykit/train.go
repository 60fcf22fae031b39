package main

import (
	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// trainCmd is train's flags.
type trainCmd struct {
	s                recipe.Settings
	output, plotPath string
	jsonOut          bool
	mf               *modelFlags
	df               *deviceFlags
	dfl              *distFlags
	rf               *recipeFlags
	res              *resumeFlags
	mth              *methodFlags
	sf               *snnFlags
	data             *dataFlags
}

func newTrainCmd() *cobra.Command {
	c := &trainCmd{s: recipe.Default()}
	cmd := &cobra.Command{
		Use:   "train (MODEL -o CKPT | --resume CKPT) [--data DIR] [--dataset NAME] [--epochs N]",
		Short: "Fine-tune a network with proxy learning (SNN forward, ANN backward) or surrogate gradients",
		Long: `train runs proxy learning (docs/design.md §1) on MODEL (any model file): for each
batch the ANN's forward pass, the SNN's spike counts, the loss
mean((counts − onehot)²) on the counts and backpropagation through the ANN,
then PyTorch's Adam. --method surrogate trains the SNN alone instead, by
backpropagation through its T steps (the spike's derivative replaced by a
sigmoid's, α = --surrogate-alpha), with the same loss, optimizer and
schedule. BatchNorm runs in training mode for the first
--freeze-bn-after epochs and in eval mode after. After each epoch (counted
from 1) it prints the train loss and accuracies and the test accuracy: the
ANN's, and the SNN's under three readings of its spike counts — strict,
ties and membrane, and the share of tied predictions (eval --help explains
them) — with a warning in words when the SNN is silent or ties on half
the images or more; it writes the checkpoint -o. At the end, for
Fashion-MNIST, the last epoch beside the paper (see eval --help).

Augmentation: a random 26x26 crop padded back to 28x28 for 28x28 images;
for CIFAR-10 a random crop with 4 pixels of padding and a horizontal flip.
Ctrl-C writes the checkpoint and stops, printing the command that
continues. train --resume CKPT continues the run exactly: the model comes
from the checkpoint (MODEL may be left out) and -o defaults to it (the
checkpoint is replaced after each epoch); it keeps the checkpoint's
settings and refuses a flag that would change them (--epochs, the total
to reach, --data, --device, --fp32, --no-cudnn, --json and --plot are
free).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.run(cmd, args) },
	}
	c.rf, c.sf, c.data, c.mth = addRecipeFlags(cmd, &c.s), addSNNFlags(cmd, &c.s.Config), addDataFlags(cmd, &c.s.Dataset), addMethodFlags(cmd)
	f := cmd.Flags()
	f.StringVarP(&c.output, "output", "o", "", "checkpoint to write after each epoch (safetensors; default with --resume: the checkpoint resumed)")
	f.BoolVar(&c.jsonOut, "json", false, "print one JSON object per epoch")
	f.StringVar(&c.plotPath, "plot", "", "redraw the training curve after each epoch to this .png, .svg or .pdf (numbers to the same name .csv)")
	c.mf, c.df, c.dfl, c.res = addModelFlags(cmd), addDeviceFlags(cmd), addDistFlags(cmd), addResumeFlags(cmd)
	return cmd
}

func (c *trainCmd) run(cmd *cobra.Command, args []string) error {
	path, outs, inputs, err := c.res.files(args, &c.output)
	if err != nil {
		return err
	}
	plot, files := func() error { return outs.addPlot("--plot", c.plotPath) }, func() error { return c.dfl.check(outs, inputs...) }
	c.s.BNStats = c.dfl.opt.BatchNorm // --bn-stats is a setting of the run, recorded and resumed as the others
	if err := checkAll(plot, files, c.rf.check, c.sf.check, c.data.check, c.df.check, c.mth.check); err != nil {
		return err
	}
	m, err := c.mf.load(cmd, path, c.sf, c.data)
	if err != nil {
		return err
	}
	c.mth.apply(&c.s)
	t, err := c.res.trainer(cmd, &c.s, m, path, c.data)
	if err != nil {
		return err
	}
	c.dfl.opt.BatchNorm = c.s.BNStats
	return c.dfl.with(cmd, c.df, func(r rank) error {
		t.Backend, t.Dist = r.be, r.g
		return train.Run(cmd.Context(), t, train.RunOptions{Output: c.output, Curve: curve(c.plotPath, path), Model: path,
			Device: r.device(), Stdout: cmd.OutOrStdout(), JSON: c.jsonOut, Progress: cmd.ErrOrStderr(),
			Continue: continueCommand(cmd, c.output)})
	})
}
