package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/train"
)

// resumeFlags continue a run from its checkpoint (--resume).
type resumeFlags struct {
	path string
	ck   *checkpoint.Checkpoint
}

func (f *resumeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.path, "resume", "", "continue from this checkpoint (weights, optimizer, statistics, position)")
}

// settle makes the run's settings from the flags (rf) or, when resuming,
// the checkpoint's, refusing a flag that would change them (train.Resumed),
// and checks them.
func (f *resumeFlags) settle(cmd *cobra.Command, rf *recipeFlags) error {
	s := rf.s
	if err := rf.complete(); err != nil {
		return err
	}
	if f.path != "" {
		var err error
		if f.ck, err = checkpoint.Load(f.path); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		if *s, err = train.Resumed(f.ck.Settings, *s, cmd.Flags().Changed); err != nil {
			return err
		}
	}
	return s.Validate()
}

// apply restores the checkpoint's state into t, the model's trainer.
func (f *resumeFlags) apply(t *train.Trainer, model string) error {
	if f.ck == nil {
		return nil
	}
	if err := t.Resume(f.ck); err != nil {
		return fmt.Errorf("--resume %s: %w (model %s)", f.path, err, model)
	}
	return nil
}
