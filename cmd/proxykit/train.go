package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute/device"
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
		Use:   "train MODEL --data DIR --dataset NAME -o CKPT",
		Short: "Fine-tune a network with proxy learning (SNN forward, ANN backward) or surrogate gradients",
		Long: `train runs proxy learning (docs/design.md §1) on MODEL (any model file): for each
batch the ANN's forward pass, the SNN's spike counts, the loss
mean((counts − onehot)²) on the counts and backpropagation through the ANN,
then PyTorch's Adam. --method surrogate trains the SNN alone instead, by
backpropagation through its T steps (the spike's derivative replaced by a
sigmoid's, α = --surrogate-alpha), with the same loss, optimizer and
schedule. BatchNorm runs in training mode for the first
--freeze-bn-after epochs and in eval mode after. After each epoch it prints
the train loss and accuracies and the test accuracy (ANN; SNN strict, ties
and tie share) and writes the checkpoint -o.

Augmentation: a random 26x26 crop padded back to 28x28 for 28x28 images;
for CIFAR-10 a random crop with 4 pixels of padding and a horizontal flip.
Ctrl-C writes the checkpoint and stops; --resume CKPT continues exactly:
it keeps the checkpoint's settings and refuses a flag that would change
them (--epochs, the total to reach, --data, --device, --fp32, --no-cudnn,
--json and --plot are free).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.run(cmd, args[0]) },
	}
	c.rf, c.sf, c.data, c.mth = addRecipeFlags(cmd, &c.s), addSNNFlags(cmd, &c.s.Config), addDataFlags(cmd, &c.s.Dataset), addMethodFlags(cmd)
	f := cmd.Flags()
	f.StringVarP(&c.output, "output", "o", "", "checkpoint to write after each epoch (safetensors)")
	f.BoolVar(&c.jsonOut, "json", false, "print one JSON object per epoch")
	f.StringVar(&c.plotPath, "plot", "", "redraw the training curve after each epoch to this .png, .svg or .pdf (numbers to the same name .csv)")
	c.mf.add(cmd)
	c.df.add(cmd)
	c.dfl.add(cmd)
	return cmd
}

func (c *trainCmd) run(cmd *cobra.Command, path string) error {
	if c.output == "" {
		return fmt.Errorf("-o is required: the checkpoint to write")
	}
	outs := outputs{{Name: "-o", Path: c.output}}
	if err := outs.addPlot("--plot", c.plotPath); err != nil {
		return err
	}
	if err := c.dfl.check(outs, path); err != nil { // -o may be --resume's file: the run continues there
		return err
	}
	m, err := c.mf.load(cmd, path, c.sf, c.data)
	if err != nil {
		return err
	}
	c.mth.apply(&c.s)
	if err := c.rf.settle(cmd); err != nil {
		return err
	}
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
			Device: device.Describe(r.be), Stdout: cmd.OutOrStdout(), JSON: c.jsonOut, Progress: cmd.ErrOrStderr()})
	})
}
