package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// trainCmd is train's flags.
type trainCmd struct {
	s                recipe.Settings
	output, plotPath string
	jsonOut          bool
	mf               modelFlags
	df               deviceFlags
	dfl              distFlags
	rf               *recipeFlags
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
	c.mf.add(cmd)
	c.df.add(cmd)
	c.dfl.add(cmd)
	return cmd
}

func (c *trainCmd) run(cmd *cobra.Command, args []string) error {
	path, err := c.rf.model(args)
	if err != nil {
		return err
	}
	resume := c.rf.resume
	outs := outputs{{Name: "-o", Path: c.output}}
	switch {
	case c.output == "" && resume == "":
		return fmt.Errorf("-o is required: the checkpoint to write")
	case c.output == "":
		c.output, outs = resume, outputs{{Name: "--resume", Path: resume}} // the run continues in its checkpoint
	}
	if err := outs.addPlot("--plot", c.plotPath); err != nil {
		return err
	}
	// -o may be --resume's file, the run continuing there; MODEL too when it is that file
	var inputs []string
	for _, in := range []string{path, resume} {
		if in != "" && !(resume != "" && atomicfile.SameFile(in, resume) && atomicfile.SameFile(c.output, resume)) {
			inputs = append(inputs, in)
		}
	}
	if err := c.dfl.check(outs, inputs...); err != nil {
		return err
	}
	c.s.BNStats = c.dfl.opt.BatchNorm // --bn-stats is a setting of the run, recorded and resumed as the others
	if err := checkAll(c.rf.check, c.sf.check, c.data.check, c.df.check, c.mth.check); err != nil {
		return err
	}
	m, err := c.mf.load(cmd, path, c.sf, c.data)
	if err != nil {
		return err
	}
	c.mth.apply(&c.s)
	if err := c.rf.settle(cmd, m, path); err != nil {
		return err
	}
	c.dfl.opt.BatchNorm = c.s.BNStats
	trainSet, testSet, err := c.data.splits(m, c.s.MaxTrain, c.s.MaxTest)
	if err != nil {
		return err
	}
	snn, err := m.SNN(c.s.Config)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	t, err := train.NewTrainer(c.s, m.ANN, snn, trainSet, testSet)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := c.rf.resumeInto(t, path); err != nil {
		return err
	}
	return c.dfl.with(cmd, &c.df, func(r rank) error {
		t.Backend, t.Dist = r.be, r.g
		return train.Run(cmd.Context(), t, train.RunOptions{Output: c.output, Curve: curve(c.plotPath, path), Model: path,
			Device: device.Describe(r.be), Stdout: cmd.OutOrStdout(), JSON: c.jsonOut, Progress: cmd.ErrOrStderr(),
			Continue: continueCommand(cmd, c.output)})
	})
}

// continueCommand is the command line that continues this run from its
// checkpoint out, as it works when printed: train --resume out, with the
// flags given that the checkpoint does not hold (the data folder, the
// device, --plot, --json …). The model, its structure and the run's
// settings are the checkpoint's.
func continueCommand(cmd *cobra.Command, out string) string {
	held := map[string]bool{"resume": true, "output": true, "arch": true, "like": true}
	for _, f := range recipe.Default().Fields() {
		held[f.Flag] = true
	}
	line := []string{cmd.CommandPath(), "--resume", shellQuote(out)}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch {
		case held[f.Name]:
		case f.Value.Type() == "bool" && f.Value.String() == "true":
			line = append(line, "--"+f.Name)
		case f.Value.Type() == "bool":
			line = append(line, "--"+f.Name+"=false")
		default:
			line = append(line, "--"+f.Name, shellQuote(f.Value.String()))
		}
	})
	return strings.Join(line, " ")
}

// shellQuote is s as a POSIX shell reads it back: as it is when it holds
// only characters no shell treats specially, else in single quotes.
func shellQuote(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r)) {
			plain = false
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
