package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/train"
)

// stopped is train.ErrInterrupted, saying what was saved, once the
// command's context was cancelled (Ctrl-C, SIGTERM); nil before.
func stopped(cmd *cobra.Command, saved string) error {
	if cmd.Context().Err() == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", train.ErrInterrupted, saved)
}

// spellFlags is err with the settings a library error names (setting.Error)
// spelt as cmd's flags.
func spellFlags(cmd *cobra.Command, err error) error {
	var se *setting.Error
	if !errors.As(err, &se) {
		return err
	}
	spelt := se.Spell(func(n setting.Name) string {
		flag := map[setting.Name]string{setting.Arch: "arch", setting.Like: "like", setting.DataDir: "data", setting.Resume: "resume",
			setting.ScaleUint8: "scale-uint8"}[n]
		if flag == "" {
			flag = string(n) // the device, recipe.Settings.Fields's names
		}
		if cmd.Flags().Lookup(flag) == nil {
			return string(n)
		}
		return "--" + flag
	})
	return spelled{strings.Replace(err.Error(), se.Error(), spelt, 1), err}
}

// spelled is an error with another text.
type spelled struct {
	text string
	err  error
}

func (e spelled) Error() string { return e.text }
func (e spelled) Unwrap() error { return e.err }

// fatal is how a data-parallel run that stops this rank for good (another
// rank lost, an error: distributed.Options) ends the process: report says
// why on stderr and removes the temporary files, exit is main's (nil in
// tests, which run the commands in-process).
func fatal(cmd *cobra.Command) (report func(error), exit func(int)) {
	exit, _ = cmd.Context().Value(exitKey{}).(func(int))
	return func(err error) {
		fmt.Fprintln(cmd.ErrOrStderr(), "proxykit:", err)
		atomicfile.RemoveTemporaries()
	}, exit
}
