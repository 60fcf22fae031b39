package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// resumeFlags continue the run a checkpoint holds (--resume): its model,
// weights, optimizer, statistics, position and settings; -o defaults to
// it.
type resumeFlags struct{ path string }

func addResumeFlags(cmd *cobra.Command) *resumeFlags {
	r := &resumeFlags{}
	cmd.Flags().StringVar(&r.path, "resume", "", "continue the run this checkpoint holds (its model, weights, optimizer, statistics, position and settings); alone it is MODEL and -o too")
	return r
}

// files are the model file a run trains — MODEL, or when it is left out
// the checkpoint it resumes, which holds the model — and the checkpoint it
// writes — -o, else (*output set to it) the one it resumes, the run
// continuing there — with the files it reads, which outputs.check refuses
// to write: MODEL and the checkpoint resumed, less that one where -o is it
// (and MODEL too when it is that file).
func (r *resumeFlags) files(args []string, output *string) (model string, outs outputs, inputs []string, err error) {
	switch {
	case len(args) == 1:
		model = args[0]
	case r.path != "":
		model = r.path
	default:
		return "", nil, nil, fmt.Errorf("give the model to train (MODEL), or --resume CKPT to continue a run")
	}
	outs = outputs{{Name: "-o", Path: *output}}
	switch {
	case *output == "" && r.path == "":
		return "", nil, nil, fmt.Errorf("-o is required: the checkpoint to write")
	case *output == "":
		*output, outs = r.path, outputs{{Name: "--resume", Path: r.path}}
	}
	for _, in := range []string{model, r.path} {
		if in != "" && !(r.path != "" && atomicfile.SameFile(in, r.path) && atomicfile.SameFile(*output, r.path)) {
			inputs = append(inputs, in)
		}
	}
	return model, outs, inputs, nil
}

// trainer is the trainer of m (read from path) under the run's settings
// s, settled — the flags' or, when resuming, the checkpoint's, refusing a
// flag that would change them (train.Resumed) — and checked; on the data
// set's splits (their first s.MaxTrain and s.MaxTest images); with the
// checkpoint's state when resuming (not read twice where path is it).
func (r *resumeFlags) trainer(cmd *cobra.Command, s *recipe.Settings, m *model.Model, path string, d *dataFlags) (*train.Trainer, error) {
	var ck *checkpoint.Checkpoint
	if r.path != "" {
		var err error
		if ck = m.Checkpoint; ck == nil || !atomicfile.SameFile(path, r.path) {
			if ck, err = checkpoint.Load(r.path); err != nil {
				return nil, fmt.Errorf("--resume: %w", err)
			}
		}
		for _, n := range ck.Notices {
			fmt.Fprintln(cmd.ErrOrStderr(), "note: --resume:", n)
		}
		if *s, err = train.Resumed(ck.Settings, *s, cmd.Flags().Changed); err != nil {
			return nil, err
		}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	trainSet, testSet, err := d.splits(m, s.MaxTrain, s.MaxTest)
	if err != nil {
		return nil, err
	}
	snn, err := m.SNN(s.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t, err := train.NewTrainer(*s, m.ANN, snn, trainSet, testSet)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if ck != nil {
		if err := t.Resume(ck); err != nil {
			return nil, fmt.Errorf("--resume %s: %w (model %s)", r.path, err, path)
		}
	}
	return t, nil
}
