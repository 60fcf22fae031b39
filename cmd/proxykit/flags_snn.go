package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// snnFlags set the SNN: a flag for each of spiking.Settings (T, v_th,
// v_reset ...). Where the user gives none of them, a model file that
// carries a setting (a checkpoint, an SNN module) supplies it. With a
// sweep, --timesteps takes a list of T.
type snnFlags struct {
	cfg   *spiking.Config
	cmd   *cobra.Command
	sweep bool
	list  string // --timesteps of a sweep
	ts    []int  // the T a sweep reads (check, fromModel)
}

func addSNNFlags(cmd *cobra.Command, cfg *spiking.Config) *snnFlags {
	f := &snnFlags{cfg: cfg, cmd: cmd}
	cmd.Flags().IntVar(&cfg.Timesteps, "timesteps", cfg.Timesteps, "SNN: number of time steps T")
	defaultInWords(cmd, "timesteps", fmt.Sprintf("the model file's own, else %d", cfg.Timesteps))
	f.addNeuron()
	return f
}

// addSweepSNNFlags is addSNNFlags with --timesteps a list (sweep).
func addSweepSNNFlags(cmd *cobra.Command, cfg *spiking.Config) *snnFlags {
	f := &snnFlags{cfg: cfg, cmd: cmd, sweep: true, list: fmt.Sprint(cfg.Timesteps)}
	cmd.Flags().StringVar(&f.list, "timesteps", f.list, fmt.Sprintf("SNN: number of time steps T, or a list of them read off one simulation: 1,2,4,8 or 1-32 or 8-128:8 (at most %d values, each up to %d)", results.MaxSweepPoints, train.MaxTimesteps))
	defaultInWords(cmd, "timesteps", fmt.Sprintf("the model file's own T, else %d", cfg.Timesteps))
	f.addNeuron()
	return f
}

// addNeuron adds a flag for each of spiking.Settings but T (the
// command's own: a number or, for a sweep, a list), under the setting's
// name.
func (f *snnFlags) addNeuron() {
	for _, s := range spiking.Settings() {
		if s.Name == "timesteps" {
			continue
		}
		f.cmd.Flags().Var(settingFlag{s, f.cfg}, string(s.Name), "SNN: "+s.Usage)
		defaultInWords(f.cmd, string(s.Name), "the model file's own, else "+s.Text(*f.cfg))
	}
}

// settingFlag is a setting of cfg as a flag's value (pflag.Value).
type settingFlag struct {
	s   spiking.Setting
	cfg *spiking.Config
}

func (v settingFlag) String() string     { return v.s.Text(*v.cfg) }
func (v settingFlag) Set(t string) error { return v.s.Set(v.cfg, t) }
func (v settingFlag) Type() string       { return v.s.Type }

// check refuses, before a model is read, what the flags alone get wrong
// (spiking.Config.CheckGiven), a list of T that does not parse among it;
// a sweep's list becomes its T (the longest). A flag left out may take
// the model file's own setting (fromModel): the SNN is checked whole once
// it is made.
func (f *snnFlags) check() error {
	if f.sweep && f.given("timesteps") {
		var err error
		if f.ts, err = train.ParseTimesteps(f.list); err != nil {
			return err
		}
		f.cfg.Timesteps = f.ts[len(f.ts)-1]
	}
	return f.cfg.CheckGiven(f.given)
}

// given says whether the user gave a setting's flag.
func (f *snnFlags) given(n setting.Name) bool { return f.cmd.Flags().Changed(string(n)) }

// fromModel takes the settings the user did not give from m's file; the
// T a sweep reads are its list, or the setting's T alone.
func (f *snnFlags) fromModel(m *model.Model) error {
	if own, ok := m.SNNDefaults(); ok {
		*f.cfg = f.cfg.Fill(own, f.given)
	}
	if f.ts == nil {
		f.ts = []int{f.cfg.Timesteps}
	}
	return nil
}
