package main

import "github.com/spf13/cobra"

func newImportCmd() *cobra.Command {
	var mf *modelFlags
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
			m, err := mf.load(cmd, args[0])
			if err != nil {
				return err
			}
			return m.WriteSummary(cmd.OutOrStdout(), args[0])
		},
	}
	mf = addModelFlags(cmd)
	return cmd
}
