package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// snnFlags set the SNN: T, v_th, v_reset. Where the user gives none of
// them, a model file that carries a setting (a checkpoint, an SNN module)
// supplies it. With a sweep, --timesteps takes a list of T.
type snnFlags struct {
	cfg   *spiking.Config
	cmd   *cobra.Command
	sweep bool
	list  string // --timesteps of a sweep
	ts    []int  // the T a sweep reads (fromModel)
}

func addSNNFlags(cmd *cobra.Command, cfg *spiking.Config) *snnFlags {
	f := &snnFlags{cfg: cfg, cmd: cmd}
	cmd.Flags().IntVar(&cfg.Timesteps, "timesteps", cfg.Timesteps, "SNN: number of time steps T (default: the model file's own, else the one shown)")
	f.addNeuron()
	return f
}

// addSweepSNNFlags is addSNNFlags with --timesteps a list (sweep).
func addSweepSNNFlags(cmd *cobra.Command, cfg *spiking.Config) *snnFlags {
	f := &snnFlags{cfg: cfg, cmd: cmd, sweep: true, list: fmt.Sprint(cfg.Timesteps)}
	cmd.Flags().StringVar(&f.list, "timesteps", f.list, fmt.Sprintf("SNN: number of time steps T, or a list of them read off one simulation: 1,2,4,8 or 1-32 or 8-128:8 (at most %d values, each up to %d; default: the model file's own T)", results.MaxSweepPoints, train.MaxTimesteps))
	f.addNeuron()
	return f
}

func (f *snnFlags) addNeuron() {
	f.cmd.Flags().Float32Var(&f.cfg.Threshold, "threshold", f.cfg.Threshold, "SNN: firing threshold v_th (spike when v >= v_th)")
	f.cmd.Flags().Float32Var(&f.cfg.Reset, "reset", f.cfg.Reset, "SNN: reset potential v_reset (also the initial potential)")
}

// fromModel takes the settings the user did not give from m's file and,
// for a sweep, reads the list of T (one, the setting's, unless --timesteps
// gave several): the setting's T becomes the longest.
func (f *snnFlags) fromModel(m *model.Model) error {
	if own, ok := m.SNNDefaults(); ok {
		for _, s := range []struct {
			flag string
			set  func()
		}{{"timesteps", func() { f.cfg.Timesteps = own.Timesteps }}, {"threshold", func() { f.cfg.Threshold = own.Threshold }},
			{"reset", func() { f.cfg.Reset = own.Reset }}} {
			if !f.cmd.Flags().Changed(s.flag) {
				s.set()
			}
		}
	}
	f.ts = []int{f.cfg.Timesteps}
	if !f.sweep || !f.cmd.Flags().Changed("timesteps") {
		return nil
	}
	ts, err := train.ParseTimesteps(f.list)
	if err != nil {
		return err
	}
	f.ts, f.cfg.Timesteps = ts, ts[len(ts)-1]
	return nil
}
