package main

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/setting"
)

// version is proxykit's version from the build information Go records:
// the module's version (vX.Y.Z when installed with go install …@vX.Y.Z; a
// pseudo-version from the commit when built in a checkout) and, for a
// build in a checkout, the commit, its time and whether the tree had
// changes.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		v += fmt.Sprintf(", commit %.12s %s", rev, settings["vcs.time"])
		if settings["vcs.modified"] == "true" {
			v += ", with uncommitted changes"
		}
	}
	return v
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "proxykit",
		Short: "Train spiking neural networks by proxy learning",
		Long: `proxykit imports an ANN (ONNX, a PyTorch checkpoint), builds the integrate-and-fire
SNN that shares its weights, fine-tunes both with proxy learning and exports
them (Kheradpisheh, Mirsadeghi, Masquelier, "Spiking neural networks trained
via proxy", arXiv 2109.13208).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd(), newImportCmd(), newInferCmd(), newInitCmd(), newTrainCmd(), newEvalCmd(), newExportCmd(), newConvertCmd(), newConvertSNNCmd(), newPlotCmd(), newBenchCmd())
	for _, c := range root.Commands() {
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error { return spellFlags(cmd, run(cmd, args)) }
		}
	}
	return root
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

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print proxykit's version and commit (from the build information)",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "proxykit %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
