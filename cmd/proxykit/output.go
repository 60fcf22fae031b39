package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// What the commands print, in one place.

// stopped is train.ErrInterrupted, saying what was saved, once the
// command's context was cancelled (Ctrl-C, SIGTERM); nil before.
func stopped(cmd *cobra.Command, saved string) error {
	if cmd.Context().Err() == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", train.ErrInterrupted, saved)
}

// printJSON prints v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress reports long work on stderr: a line redrawn in place on a
// terminal, else a line every 30 seconds.
type progress struct {
	w    io.Writer
	tty  bool
	last time.Time
}

func newProgress(cmd *cobra.Command) *progress {
	return &progress{w: cmd.ErrOrStderr(), tty: isTerminal(cmd.ErrOrStderr()), last: time.Now()}
}

// show prints line (final: the last of a phase, printed without a tty too).
func (p *progress) show(line string, final bool) {
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r%s", line)
	case final || time.Since(p.last) > 30*time.Second:
		p.last = time.Now()
		fmt.Fprintln(p.w, line)
	}
}

// clear removes the redrawn line.
func (p *progress) clear() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func batchLine(p train.BatchProgress, epochs int) string {
	const width = 30
	done := width * p.Batch / max(p.Batches, 1)
	bar := strings.Repeat("=", done) + strings.Repeat(" ", width-done)
	return fmt.Sprintf("epoch %d/%d [%s] %d/%d  %.0f img/s  ETA %s  loss %.4f", p.Epoch+1, epochs, bar, p.Batch, p.Batches,
		p.ImagesPerSec, p.ETA.Round(time.Second), p.Loss)
}

func printEpoch(w io.Writer, st results.EpochStats, asJSON bool) error {
	if asJSON {
		return printJSON(w, st)
	}
	_, err := fmt.Fprintf(w, "epoch %d (BN %s): loss %.4f, train ANN %.2f%% SNN %.2f%% | test ANN %.2f%%, SNN strict %.2f%% ties %.2f%% membrane %.2f%% (tied %.2f%%) | %.1f s, %.0f images/s\n",
		st.Epoch, st.BNMode, st.TrainLoss, 100*st.TrainANN, 100*st.TrainSNN, 100*st.Test.ANN, 100*st.Test.SNNStrict,
		100*st.Test.SNNTies, 100*st.Test.SNNMembrane, 100*st.Test.TieShare, st.Seconds, st.ImagesPerSec)
	return err
}

// printAccuracy prints one evaluation's accuracies under the three
// readings of the spike counts (docs/design.md §1) and, for Fashion-MNIST,
// beside the paper's figure under the rule it was measured with.
func printAccuracy(w io.Writer, acc results.Accuracy, paper *results.PaperComparison) {
	fmt.Fprintf(w, "  ANN %.2f%%\n  SNN strict %.2f%%  ties %.2f%%  membrane %.2f%%  (tied predictions %.2f%%)\n",
		100*acc.ANN, 100*acc.SNNStrict, 100*acc.SNNTies, 100*acc.SNNMembrane, 100*acc.TieShare)
	printPaper(w, paper)
}

// printPaper prints the paper comparison, if there is one.
func printPaper(w io.Writer, p *results.PaperComparison) {
	if p == nil {
		return
	}
	fmt.Fprintf(w, "  notebook's final rule (ties count) %.2f%% — paper %.2f%%, released model %.2f%% (same rule); strict %.2f%%, membrane %.2f%%\n",
		100*p.NotebookFinal, 100*p.Paper, 100*p.ReleasedModel, 100*p.Strict, 100*p.Membrane)
}

// printReport prints an evaluation's per-class accuracies and confusion
// matrices.
func printReport(w io.Writer, r results.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "class\timages\tANN\tSNN strict\tSNN ties\tSNN membrane\t")
	for _, c := range r.Classes {
		if c.N > 0 {
			fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%.1f%%\t%.1f%%\t%.1f%%\t\n", c.Name, c.N, 100*c.ANN, 100*c.SNNStrict, 100*c.SNNTies, 100*c.SNNMembrane)
		}
	}
	tw.Flush()
	for _, m := range []struct {
		title string
		rows  [][]int
	}{{"SNN (strict)", r.ConfusionSNN}, {"SNN (ties broken by the membrane)", r.ConfusionSNNMembrane}, {"ANN", r.ConfusionANN}} {
		if len(m.rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nconfusion matrix, %s: rows are labels, columns predictions\n", m.title)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "\t")
		for j := range m.rows[0] {
			fmt.Fprintf(tw, "%d\t", j)
		}
		fmt.Fprintln(tw)
		for i, row := range m.rows {
			if r.Classes[i].N == 0 {
				continue
			}
			fmt.Fprintf(tw, "%d %s\t", i, r.Classes[i].Name)
			for _, v := range row {
				fmt.Fprintf(tw, "%d\t", v)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
}

// printSweep prints accuracy, firing rates and synaptic operations
// against T.
func printSweep(w io.Writer, path, dataset string, sw results.Sweep) {
	fmt.Fprintf(w, "%s on %s test (%d images), v_th=%g, v_reset=%g: ANN %.2f%%, %.3g MACs per image (SNN: %.3g in the static input layer, once)\n\n",
		path, dataset, sw.N, sw.Threshold, sw.Reset, 100*sw.ANN, float64(sw.ANNMACs), float64(sw.StaticMACs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "T\tSNN strict\tSNN ties\tSNN membrane\ttied\tsynops/image\t")
	for _, l := range sw.IFLayers {
		fmt.Fprintf(tw, "rate %s\t", l)
	}
	fmt.Fprintln(tw)
	for _, p := range sw.Points {
		fmt.Fprintf(tw, "%d\t%.2f%%\t%.2f%%\t%.2f%%\t%.1f%%\t%.4g\t", p.T, 100*p.SNNStrict, 100*p.SNNTies, 100*p.SNNMembrane, 100*p.TieShare, p.SynOps)
		for _, r := range p.Rates {
			fmt.Fprintf(tw, "%.4f\t", r)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range []struct {
		reading string
		reach   func(float64) (int, bool)
	}{{"strict", sw.Reach}, {"ties broken by the membrane", sw.ReachMembrane}} {
		if t, ok := r.reach(0.95); ok {
			fmt.Fprintf(w, "the SNN (%s) first reaches 95%% of the ANN's accuracy at T=%d\n", r.reading, t)
		} else {
			fmt.Fprintf(w, "the SNN (%s) stays below 95%% of the ANN's accuracy up to T=%d\n", r.reading, sw.Points[len(sw.Points)-1].T)
		}
	}
}

// printLayers prints a network's layers: operation, inputs (branching
// networks), output shape, parameters, what each becomes in the SNN.
func printLayers(w io.Writer, net *nn.Network) error {
	shapes, err := net.Shapes()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "input [B %s\n\n", nn.ShapeString(net.InputShape)[1:])
	roles := spiking.Role(net)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
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
	if graph {
		fmt.Fprintln(tw, "#\tlayer\top\treads\toutput\tparams\tSNN\tdetails")
	} else {
		fmt.Fprintln(tw, "#\tlayer\top\toutput\tparams\tSNN\tdetails")
	}
	for i, l := range net.Layers {
		np := 0
		for _, p := range l.Params() {
			np += len(p.Data)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s%s\t%d\t%s\t%s\n", i, printable(nn.NameOf(l)), nn.KindOf(l), reads(i), nn.ShapeString(shapes[i]), np, roles[i], l.Info().Summary)
	}
	last := ""
	if graph {
		last = fmt.Sprint(len(net.Layers)-1) + "\t"
	}
	fmt.Fprintf(tw, "%d\toutput\t\t%s%s\t0\tIF (counts over T)\t\n", len(net.Layers), last, nn.ShapeString(shapes[len(shapes)-1]))
	tw.Flush()
	fmt.Fprintf(w, "\n%d layers, %d parameters\n", len(net.Layers), net.ParamCount())
	return nil
}

// printable escapes the control characters of text read from a file
// (\x1b and the like), so that a hostile file cannot drive the terminal.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// printTraffic prints what a counting backend queued: launches and bytes
// per kernel, library calls, the GEMMs' arithmetic.
func printTraffic(w io.Writer, what string, t compute.Traffic) {
	launches, bytes := t.Glue(nil)
	fmt.Fprintf(w, "\n%s: %d kernel launches moving %.1f MB; %.1f GFLOP in GEMMs\n", what, launches, float64(bytes)/1e6, float64(t.GemmFLOPs)/1e9)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kernel\tlaunches\tread MB\twritten MB\t")
	for _, k := range slices.Sorted(maps.Keys(t.Launches)) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t\n", k, t.Launches[k], float64(t.Read[k])/1e6, float64(t.Written[k])/1e6)
	}
	for _, k := range slices.Sorted(maps.Keys(t.Calls)) {
		fmt.Fprintf(tw, "%s\t%d\t\t\t\n", k, t.Calls[k])
	}
	tw.Flush()
}
