package main

import (
	"fmt"
	"maps"
	"slices"

	"github.com/spf13/cobra"
)

func newImportCmd() *cobra.Command {
	var mf modelFlags
	cmd := &cobra.Command{
		Use:   "import MODEL",
		Short: "Check a model and print its layers and the SNN they become",
		Long: `import reads MODEL (an ONNX file, a PyTorch checkpoint saved with torch.save —
a whole module or, with --arch/--like, a state dict — or a proxykit
checkpoint), checks that proxykit can run it, and prints a table: each
layer, its operation, output shape, parameter count and the SNN layer it
becomes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			m, err := mf.load(cmd, path)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var notes []string
			if o := m.ONNX; o != nil {
				fmt.Fprintf(out, "%s: ONNX opset %d, IR version %d, producer %s %s\n", path, o.Opset, o.IRVersion,
					printable(fmt.Sprintf("%q", o.Producer)), printable(o.ProducerVersion))
				notes = o.Notes
			}
			if p := m.PT; p != nil {
				fmt.Fprintf(out, "%s: PyTorch checkpoint, %s %s", path, p.Kind, printable(p.Root))
				if p.Kind == "snn-module" {
					fmt.Fprintf(out, " (T=%d, v_th=%g, v_reset=%g; its BN statistics are the SNN's)", p.SNN.Timesteps, p.SNN.Threshold, p.SNN.Reset)
				}
				fmt.Fprintln(out)
				notes = p.Notes
			}
			if c := m.Checkpoint; c != nil {
				s := c.Settings
				fmt.Fprintf(out, "%s: proxykit checkpoint after %d epochs (%s, T=%d, v_th=%g, v_reset=%g)\n", path,
					c.Progress.Epoch, printable(s.Dataset), s.Timesteps, s.Threshold, s.Reset)
				for _, k := range slices.Sorted(maps.Keys(c.Notes)) {
					fmt.Fprintf(out, "  %s: %s\n", printable(k), printable(c.Notes[k]))
				}
			}
			if err := printLayers(out, m.ANN); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			for _, n := range notes {
				fmt.Fprintln(out, "note:", printable(n))
			}
			return nil
		},
	}
	mf.add(cmd)
	return cmd
}
