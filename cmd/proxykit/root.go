package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
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
	root.AddCommand(newVersionCmd(), newImportCmd(), newInferCmd(), newInitCmd(), newTrainCmd(), newEvalCmd(), newExportCmd(), newConvertCmd(), newConvertSNNCmd(), newPlotCmd(), newBenchCmd(), newPlanCmd())
	for _, c := range root.Commands() {
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error { return spellFlags(cmd, run(cmd, args)) }
		}
	}
	return root
}

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
