package results

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/proxykit/proxykit/compute"
)

// The results as text, as proxykit's commands print them. Each WriteText
// refuses a nil writer with errNoWriter.

// errNoWriter is WriteText's error for a nil writer.
var errNoWriter = errors.New("no writer to write the text to (nil)")

// WriteText writes the epoch's statistics as one line (a surrogate run's
// without the ANN's training accuracy, which it does not measure); it
// counts epochs from 1, as people do (Epoch+1).
func (st EpochStats) WriteText(w io.Writer) error {
	if w == nil {
		return errNoWriter
	}
	train := fmt.Sprintf("train ANN %.2f%% SNN %.2f%%", 100*st.TrainANN, 100*st.TrainSNN)
	if st.Method == "surrogate" {
		train = fmt.Sprintf("surrogate gradients, train SNN %.2f%%", 100*st.TrainSNN)
	}
	_, err := fmt.Fprintf(w, "epoch %d (BN %s): loss %.4f, %s | test ANN %.2f%%, SNN strict %.2f%% ties %.2f%% membrane %.2f%% (tied %.2f%%) | %.1f s, %.0f images/s\n",
		st.Epoch+1, st.BNMode, st.TrainLoss, train, 100*st.Test.ANN, 100*st.Test.SNNStrict,
		100*st.Test.SNNTies, 100*st.Test.SNNMembrane, 100*st.Test.TieShare, st.Seconds, st.ImagesPerSec)
	if err == nil && st.Test.Warning() != "" {
		_, err = fmt.Fprintf(w, "  warning: %s\n", st.Test.Warning())
	}
	return err
}

// WriteText writes the comparison as one indented line; nothing for nil.
func (p *PaperComparison) WriteText(w io.Writer) error {
	if p == nil {
		return nil
	}
	if w == nil {
		return errNoWriter
	}
	for _, l := range p.Lines() {
		if _, err := fmt.Fprintf(w, "  %s\n", l); err != nil {
			return err
		}
	}
	return nil
}

// WriteText writes the evaluation of path on dataset with the SNN's T and
// v_th: the accuracies under the three readings of the spike counts
// (docs/design.md §1), beside the paper's figure where there is one, then
// per class, then the confusion matrices.
func (r Report) WriteText(w io.Writer, path, dataset string, t int, threshold float32) error {
	if w == nil {
		return errNoWriter
	}
	a := r.Accuracy
	fmt.Fprintf(w, "%s on %s test (%d images), T=%d, v_th=%g:\n", path, dataset, a.N, t, threshold)
	fmt.Fprintf(w, "  ANN %.2f%%\n  SNN strict %.2f%%  ties %.2f%%  membrane %.2f%%  (tied predictions %.2f%%)\n",
		100*a.ANN, 100*a.SNNStrict, 100*a.SNNTies, 100*a.SNNMembrane, 100*a.TieShare)
	if s := a.Warning(); s != "" && r.Paper == nil {
		fmt.Fprintf(w, "  warning: %s\n", s)
	}
	r.Paper.WriteText(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "class\timages\tANN\tSNN strict\tSNN ties\tSNN membrane\t")
	for _, c := range r.Classes {
		if c.N > 0 {
			fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%.1f%%\t%.1f%%\t%.1f%%\t\n", c.Name, c.N, 100*c.ANN, 100*c.SNNStrict, 100*c.SNNTies, 100*c.SNNMembrane)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
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
			name := ""
			if i < len(r.Classes) {
				if r.Classes[i].N == 0 {
					continue
				}
				name = r.Classes[i].Name
			}
			fmt.Fprintf(tw, "%d %s\t", i, name)
			for _, v := range row {
				fmt.Fprintf(tw, "%d\t", v)
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// WriteText writes the sweep: accuracy, firing rates and synaptic
// operations against T, and the first T at which the SNN reaches 95 % of
// the ANN's accuracy; path and dataset name what was evaluated.
func (s Sweep) WriteText(w io.Writer, path, dataset string) error {
	if w == nil {
		return errNoWriter
	}
	charge := ""
	if s.InitialCharge != 0 {
		charge = fmt.Sprintf(", initial charge %g", s.InitialCharge)
	}
	fmt.Fprintf(w, "%s on %s test (%d images), v_th=%g, v_reset=%g%s: ANN %.2f%%, %.3g MACs per image (SNN: %.3g in the static input layer, once)\n\n",
		path, dataset, s.N, s.Threshold, s.Reset, charge, 100*s.ANN, float64(s.ANNMACs), float64(s.StaticMACs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "T\tSNN strict\tSNN ties\tSNN membrane\ttied\tsynops/image\t")
	for _, l := range s.IFLayers {
		fmt.Fprintf(tw, "rate %s\t", l)
	}
	fmt.Fprintln(tw)
	for _, p := range s.Points {
		fmt.Fprintf(tw, "%d\t%.2f%%\t%.2f%%\t%.2f%%\t%.1f%%\t%.4g\t", p.T, 100*p.SNNStrict, 100*p.SNNTies, 100*p.SNNMembrane, 100*p.TieShare, p.SynOps)
		for _, r := range p.Rates {
			fmt.Fprintf(tw, "%.4f\t", r)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, r := range []struct {
		reading string
		reach   func(float64) (int, bool)
	}{{"strict", s.Reach}, {"ties broken by the membrane", s.ReachMembrane}} {
		if t, ok := r.reach(0.95); ok {
			fmt.Fprintf(w, "the SNN (%s) first reaches 95%% of the ANN's accuracy at T=%d\n", r.reading, t)
		} else if len(s.Points) == 0 {
			if _, err := fmt.Fprintf(w, "the sweep has no points: the SNN (%s) was not run\n", r.reading); err != nil {
				return err
			}
		} else if _, err := fmt.Fprintf(w, "the SNN (%s) stays below 95%% of the ANN's accuracy up to T=%d\n", r.reading, s.Points[len(s.Points)-1].T); err != nil {
			return err
		}
	}
	return nil
}

// Bench is a benchmark as proxykit bench reports it: what ran where, and
// the result.
type Bench struct {
	// Model is the model file measured ("": a network of the registry,
	// Arch).
	Model             string      `json:"model,omitempty"`
	Arch              string      `json:"arch"`
	BatchSize         int         `json:"batch_size"`
	Cores             int         `json:"cores"`
	Device            string      `json:"device"`
	DeviceDescription string      `json:"device_description"`
	Network           string      `json:"network"`
	PeakMemoryMB      float64     `json:"peak_memory_mb"` // the process's
	Result            BenchResult `json:"result"`
	Timesteps         int         `json:"timesteps"`
	// Images says what the network read: "random images", or a data
	// set's test images.
	Images string `json:"images"`
	// DataParallel describes the ranks of a data-parallel run ("": alone).
	DataParallel string `json:"data_parallel,omitempty"`
}

// WriteText writes the benchmark: speeds, firing rates and the work the
// kernels skipped, memory, and the traffic of backends that count it.
func (b Bench) WriteText(w io.Writer) error {
	if w == nil {
		return errNoWriter
	}
	r := b.Result
	name := b.Network
	if b.Model != "" && b.Network != "" && b.Network != b.Model {
		name = b.Model + " (" + b.Network + ")"
	} else if b.Model != "" {
		name = b.Model
	}
	fmt.Fprintf(w, "%s, %s, %d cores, T=%d", name, b.DeviceDescription, b.Cores, b.Timesteps)
	if b.Images != "" {
		fmt.Fprintf(w, ", on %s", b.Images)
	}
	fmt.Fprintln(w)
	if b.DataParallel != "" {
		fmt.Fprintf(w, "  data-parallel: %s\n", b.DataParallel)
	}
	fmt.Fprintf(w, "  training step, batch %d: %.2f images/s (%.4f s per step, %d steps; %.2f GFLOP per image, %.2f TFLOP/s)\n",
		b.BatchSize, r.TrainImagesPerSec, r.TrainStepSeconds, r.TrainSteps, r.TrainGFLOPPerImage, r.TrainTFLOPS)
	if b.DataParallel != "" {
		fmt.Fprintf(w, "    per rank (its share of the batch): %s images/s\n", joinRates(r.RankTrainImagesPerSec))
		fmt.Fprintf(w, "    gradients' all-reduce: %.1f MB per step, %.4f s per step (%.1f %% of the step)\n",
			float64(r.AllReduceBytes)/1e6, r.AllReduceSeconds, 100*r.AllReduceSeconds/r.TrainStepSeconds)
	}
	if r.TrainActivationMB > 0 {
		fmt.Fprintf(w, "    activations %.1f MB (the step's planned buffers)\n", r.TrainActivationMB)
	}
	if sb := r.Surrogate; sb != nil {
		fmt.Fprintf(w, "  surrogate-gradient step (BPTT), batch %d: %.2f images/s (%.4f s per step, %d steps; %.2f GFLOP per image, %.2f TFLOP/s)\n",
			b.BatchSize, sb.ImagesPerSec, sb.StepSeconds, sb.Steps, sb.GFLOPPerImage, sb.TFLOPS)
		fmt.Fprintf(w, "    activations %.1f MB", sb.ActivationMB)
		if sb.DeviceMB > 0 {
			fmt.Fprintf(w, "; on the device %.0f MB", sb.DeviceMB)
		}
		fmt.Fprintf(w, "; %.2f× the proxy step's time per step\n", sb.StepSeconds/r.TrainStepSeconds)
	}
	fmt.Fprintf(w, "  SNN inference, batch %d: %.2f images/s (%.2f GFLOP per image, %.2f TFLOP/s)\n", r.InferBatch,
		r.InferImagesPerSec, r.InferGFLOPPerImage, r.InferTFLOPS)
	if b.DataParallel != "" {
		fmt.Fprintf(w, "    per rank (each alone): %s images/s\n", joinRates(r.RankInferImagesPerSec))
	}
	if len(r.FiringRates) > 0 {
		var rs []string
		for i, name := range r.IFLayers[:min(len(r.IFLayers), len(r.FiringRates))] {
			rs = append(rs, fmt.Sprintf("%s %.1f%%", name, 100*r.FiringRates[i]))
		}
		fmt.Fprintf(w, "    firing rates: %s\n", strings.Join(rs, ", "))
	}
	for _, k := range r.InferWork {
		fmt.Fprintf(w, "    %s: %.1f%% of inputs active, %.1f%% of %.2f GFLOP skipped (%d of %d samples event-driven)\n",
			k.Kernel, 100*k.ActiveShare(), 100*k.Skipped(), 2*float64(k.DenseMACs)/1e9, k.EventSamples, k.Samples)
	}
	fmt.Fprintf(w, "  peak memory: %.0f MB (process)", b.PeakMemoryMB)
	if r.TrainDeviceMB > 0 {
		fmt.Fprintf(w, "; on the device %.0f MB training, %.0f MB inference", r.TrainDeviceMB, r.InferDeviceMB)
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	for _, tr := range []struct {
		what string
		t    *compute.Traffic
	}{{fmt.Sprintf("one training step, batch %d", b.BatchSize), r.StepTraffic}, {fmt.Sprintf("one surrogate-gradient step, batch %d", b.BatchSize), r.surrogateTraffic()},
		{fmt.Sprintf("one SNN inference batch of %d", r.InferBatch), r.InferTraffic}} {
		if tr.t != nil {
			if err := writeTraffic(w, tr.what, *tr.t); err != nil {
				return err
			}
		}
	}
	return nil
}

// surrogateTraffic is the surrogate step's traffic, if measured.
func (r BenchResult) surrogateTraffic() *compute.Traffic {
	if r.Surrogate == nil {
		return nil
	}
	return r.Surrogate.StepTraffic
}

// joinRates prints rates by rank: "12.3, 12.1".
func joinRates(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, ", ")
}

// writeTraffic writes what a counting backend queued: launches and bytes
// per kernel, library calls, the GEMMs' arithmetic.
func writeTraffic(w io.Writer, what string, t compute.Traffic) error {
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
	return tw.Flush()
}
