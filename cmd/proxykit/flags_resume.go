package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// resumeFlags continue the run a checkpoint holds (--resume): its model,
// weights, optimizer, statistics, position and settings; -o defaults to
// it.
type resumeFlags struct {
	path string
	ck   *checkpoint.Checkpoint // settle's
}

func (r *resumeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.path, "resume", "", "continue the run this checkpoint holds (its model, weights, optimizer, statistics, position and settings); alone it is MODEL and -o too")
}

// model is the model file a run trains: MODEL, or when it is left out the
// checkpoint it resumes, which holds the model.
func (r *resumeFlags) model(args []string) (string, error) {
	switch {
	case len(args) == 1:
		return args[0], nil
	case r.path != "":
		return r.path, nil
	}
	return "", fmt.Errorf("give the model to train (MODEL), or --resume CKPT to continue a run")
}

// outputs are the checkpoint a run writes — -o, else (*output set to it)
// the one it resumes, the run continuing there — and the files it reads,
// which outputs.check refuses to write: MODEL and the checkpoint resumed,
// less that one where -o is it (and MODEL too when it is that file).
func (r *resumeFlags) outputs(output *string, model string) (outputs, []string, error) {
	outs := outputs{{Name: "-o", Path: *output}}
	switch {
	case *output == "" && r.path == "":
		return nil, nil, fmt.Errorf("-o is required: the checkpoint to write")
	case *output == "":
		*output, outs = r.path, outputs{{Name: "--resume", Path: r.path}}
	}
	var inputs []string
	for _, in := range []string{model, r.path} {
		if in != "" && !(r.path != "" && atomicfile.SameFile(in, r.path) && atomicfile.SameFile(*output, r.path)) {
			inputs = append(inputs, in)
		}
	}
	return outs, inputs, nil
}

// settle makes the run's settings s: the flags' or, when resuming, the
// checkpoint's, refusing a flag that would change them (train.Resumed);
// and checks them. m is the model read from path: when path is the
// checkpoint resumed, its checkpoint is not read twice.
func (r *resumeFlags) settle(cmd *cobra.Command, s *recipe.Settings, m *model.Model, path string) error {
	if r.path != "" {
		var err error
		if m.Checkpoint != nil && atomicfile.SameFile(path, r.path) {
			r.ck = m.Checkpoint
		} else if r.ck, err = checkpoint.Load(r.path); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		for _, n := range r.ck.Notices {
			fmt.Fprintln(cmd.ErrOrStderr(), "note: --resume:", n)
		}
		if *s, err = train.Resumed(r.ck.Settings, *s, cmd.Flags().Changed); err != nil {
			return err
		}
	}
	return s.Validate()
}

// trainer is the trainer of m (read from path) under the settled settings
// s, with the checkpoint's state when resuming.
func (r *resumeFlags) trainer(s recipe.Settings, m *model.Model, path string, trainSet, testSet *data.Dataset) (*train.Trainer, error) {
	snn, err := m.SNN(s.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t, err := train.NewTrainer(s, m.ANN, snn, trainSet, testSet)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.ck != nil {
		if err := t.Resume(r.ck); err != nil {
			return nil, fmt.Errorf("--resume %s: %w (model %s)", r.path, err, path)
		}
	}
	return t, nil
}
