package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// trainCmd is train's flags.
type trainCmd struct {
	s                        recipe.Settings
	output, resume, plotPath string
	jsonOut                  bool
	mf                       modelFlags
	df                       deviceFlags
	dfl                      distFlags
	rf                       *recipeFlags
	sf                       *snnFlags
	data                     *dataFlags
}

func newTrainCmd() *cobra.Command {
	c := &trainCmd{s: recipe.Default()}
	cmd := &cobra.Command{
		Use:   "train MODEL --data DIR --dataset NAME -o CKPT",
		Short: "Fine-tune a network with proxy learning (SNN forward, ANN backward)",
		Long: `train runs proxy learning (docs/design.md §1) on MODEL (any model file): for each
batch the ANN's forward pass, the SNN's spike counts, the loss
mean((counts − onehot)²) on the counts and backpropagation through the ANN,
then PyTorch's Adam. BatchNorm runs in training mode for the first
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
	c.rf, c.sf, c.data = addRecipeFlags(cmd, &c.s), addSNNFlags(cmd, &c.s.Config), addDataFlags(cmd, &c.s.Dataset)
	f := cmd.Flags()
	f.StringVarP(&c.output, "output", "o", "", "checkpoint to write after each epoch (safetensors)")
	f.StringVar(&c.resume, "resume", "", "continue from this checkpoint (weights, optimizer, statistics, position)")
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
	if err := addPlotOutputs(&outs, "--plot", c.plotPath); err != nil {
		return err
	}
	// -o may be --resume's file: the run continues there. Only the lead
	// rank writes, so only it checks (another node may lack -o's folder).
	if c.dfl.leads() {
		if err := outs.check(path); err != nil {
			return err
		}
	}
	if err := c.rf.complete(); err != nil {
		return err
	}
	m, err := c.mf.load(cmd, path)
	if err != nil {
		return err
	}
	c.sf.fromModel(m)
	c.data.fromModel(m)
	var ck *checkpoint.Checkpoint
	c.s.BNStats = c.dfl.opt.BatchNorm // --bn-stats is a setting of the run, recorded and resumed as the others
	if c.resume != "" {
		if ck, err = checkpoint.Load(c.resume); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		for _, n := range ck.Notices {
			fmt.Fprintln(cmd.ErrOrStderr(), "note: --resume:", n)
		}
		if c.s, err = train.Resumed(ck.Settings, c.s, cmd.Flags().Changed); err != nil {
			return err
		}
	}
	c.dfl.opt.BatchNorm = c.s.BNStats
	s := &c.s
	if err := s.Validate(); err != nil {
		return err
	}
	trainSet, err := c.data.load(m, true)
	if err != nil {
		return err
	}
	testSet, err := c.data.load(m, false)
	if err != nil {
		return err
	}
	snn, err := m.SNN(s.Config)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	t, err := train.NewTrainer(*s, m.ANN, snn, trainSet.Subset(s.MaxTrain), testSet.Subset(s.MaxTest))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if ck != nil {
		if err := t.Resume(ck); err != nil {
			return fmt.Errorf("--resume %s: %w (model %s)", c.resume, err, path)
		}
	}
	return runTraining(cmd, t, c.df, &c.dfl, path, c.output, c.plotPath, c.jsonOut)
}

// addPlotOutputs adds a figure (named by flag) and its CSV to a command's
// outputs.
func addPlotOutputs(outs *outputs, flag, figure string) error {
	if figure == "" {
		return nil
	}
	if err := plots.CheckPath(figure); err != nil {
		return err
	}
	outs.add(flag, figure)
	outs.add(flag+"'s CSV", plots.CSVPath(figure))
	return nil
}
