package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

func newImportCmd() *cobra.Command {
	var mf modelFlags
	cmd := &cobra.Command{
		Use:   "import MODEL",
		Short: "Check a model and print its layers and the SNN they become",
		Long: `import reads MODEL (an ONNX file, a PyTorch checkpoint saved with torch.save —
a whole module or, with --arch/--like, a state dict — or a proxykit
checkpoint), checks that proxykit can run it, and
prints a table: each layer, its operation, output shape, parameter count and
the SNN layer it becomes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := mf.load(args[0])
			if err != nil {
				return err
			}
			net := m.ANN
			shapes, err := net.Shapes()
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			if m.ONNX != nil {
				fmt.Fprintf(out, "%s: ONNX opset %d, IR version %d, producer %q %s\n", args[0], m.ONNX.Opset,
					m.ONNX.IRVersion, m.ONNX.Producer, m.ONNX.ProducerVersion)
			}
			if p := m.PT; p != nil {
				fmt.Fprintf(out, "%s: PyTorch checkpoint, %s", args[0], p.Kind)
				if p.Root != "" {
					fmt.Fprintf(out, " %s", p.Root)
				}
				if p.Kind == "snn-module" {
					fmt.Fprintf(out, " (T=%d, v_th=%g, v_reset=%g; its BN statistics are the SNN's)", p.Timesteps, p.Threshold, p.Reset)
				}
				fmt.Fprintln(out)
			}
			if c := m.Checkpoint; c != nil {
				fmt.Fprintf(out, "%s: proxykit checkpoint after %d epochs (%s, T=%d, v_th=%g, v_reset=%g)\n", args[0],
					c.Progress.Epoch, c.Settings.Dataset, c.Settings.Timesteps, c.Settings.Threshold, c.Settings.Reset)
				for _, k := range slices.Sorted(maps.Keys(c.Notes)) {
					fmt.Fprintf(out, "  %s: %s\n", k, c.Notes[k])
				}
			}
			fmt.Fprintf(out, "input [B %s\n\n", nn.ShapeString(net.InputShape)[1:])
			roles := spiking.Role(net)
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			graph := !net.IsChain()
			reads := func(i int) string { // a branching network's inputs of layer i
				if !graph {
					return ""
				}
				var s []string
				for _, j := range net.InputsOf(i) {
					if j < 0 {
						s = append(s, "input")
					} else {
						s = append(s, fmt.Sprint(j))
					}
				}
				return strings.Join(s, ",") + "\t"
			}
			head := "#\tlayer\top\toutput\tparams\tSNN\tdetails"
			if graph {
				head = "#\tlayer\top\treads\toutput\tparams\tSNN\tdetails"
			}
			fmt.Fprintln(tw, head)
			for i, l := range net.Layers {
				np := 0
				for _, p := range l.Params() {
					np += len(p.Data)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s%s\t%d\t%s\t%s\n", i, l.Name(), l.Kind(), reads(i), nn.ShapeString(shapes[i]), np, roles[i], l.Describe())
			}
			last := ""
			if graph {
				last = fmt.Sprint(len(net.Layers)-1) + "\t"
			}
			fmt.Fprintf(tw, "%d\toutput\t\t%s%s\t0\tIF (counts over T)\t\n", len(net.Layers), last, nn.ShapeString(shapes[len(shapes)-1]))
			tw.Flush()
			fmt.Fprintf(out, "\n%d layers, %d parameters\n", len(net.Layers), net.ParamCount())
			if m.ONNX != nil {
				for _, n := range m.ONNX.Notes {
					fmt.Fprintln(out, "note:", n)
				}
			}
			if m.PT != nil {
				for _, n := range m.PT.Notes {
					fmt.Fprintln(out, "note:", n)
				}
			}
			return nil
		},
	}
	mf.add(cmd)
	return cmd
}
