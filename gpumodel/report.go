package gpumodel

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/proxykit/proxykit/compute"
)

// errNoWriter is the error of a Write function given a nil writer.
var errNoWriter = errors.New("no writer to write to (nil)")

// Check is the model against one measured time of its calibration run.
type Check struct {
	Run      Measured
	Modelled float64 // seconds
}

// RelativeError is the modelled time's relative error.
func (c Check) RelativeError() float64 { return c.Modelled/c.Run.Seconds - 1 }

// ShareCheck is the model's share of one kernel in the profiled workload
// beside the profile's.
type ShareCheck struct {
	Kernel             string
	Calls, ModelCalls  int
	Profiled, Modelled float64 // fractions of the time
}

// Checks prices c's workloads with m: every measured time, and the
// profiled workload's shares by kernel.
func Checks(m Model, c Calibration) ([]Check, []ShareCheck, error) {
	var out []Check
	for _, r := range c.Runs {
		e, err := m.Price(c.Launches[r.Workload])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", r.Name, err)
		}
		out = append(out, Check{r, e.Seconds})
	}
	e, err := m.Price(c.Launches[ProfiledWorkload()])
	if err != nil {
		return nil, nil, fmt.Errorf("the profiled workload: %w", err)
	}
	by := map[string]*ShareCheck{}
	get := func(k string) *ShareCheck {
		if by[k] == nil {
			by[k] = &ShareCheck{Kernel: k}
		}
		return by[k]
	}
	for _, r := range c.Profile {
		s := get(r.Model)
		s.Profiled += r.Fraction
		s.Calls += r.Calls
	}
	for _, s := range e.Shares() {
		get(s.Name).Modelled, get(s.Name).ModelCalls = s.Fraction, s.Count
	}
	var shares []ShareCheck
	for _, k := range slices.Sorted(maps.Keys(by)) {
		shares = append(shares, *by[k])
	}
	slices.SortStableFunc(shares, func(a, b ShareCheck) int {
		return compareDesc(max(a.Profiled, a.Modelled), max(b.Profiled, b.Modelled))
	})
	return out, shares, nil
}

func compareDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// WriteCalibration writes, as Markdown, the calibration table (each
// measured time of the H200 run beside the frozen model's, fitted or held
// out) and the profiled workload's kernel shares beside the model's. The
// model prices the launches the calibration holds (the program that ran),
// or for the workloads in given, those: a program's own lowering of the
// calibrated workloads shows here whether it still queues what ran.
func WriteCalibration(w io.Writer, given map[Workload][]compute.Launch) error {
	if w == nil {
		return errNoWriter
	}
	c, err := H200Calibration()
	if err != nil {
		return err
	}
	m, err := ForGPU("h200")
	if err != nil {
		return err
	}
	source := map[Workload]string{}
	for k, l := range given {
		if _, ok := c.Launches[k]; !ok {
			return fmt.Errorf("the calibration has no workload %s", k)
		}
		c.Launches[k], source[k] = l, " (given launches)"
	}
	checks, shares, err := Checks(m, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Calibration: %s, the paper's network at width 128, T = 15.\n\n", c.Name)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| run\t| workload\t| measured ms\t| modelled ms\t| error\t| role\t|")
	fmt.Fprintln(tw, "| ---\t| ---\t| ---:\t| ---:\t| ---:\t| ---\t|")
	for _, k := range checks {
		role := "held out"
		if k.Run.Fitted {
			role = "fitted"
		}
		fmt.Fprintf(tw, "| %s\t| %s%s\t| %.2f\t| %.2f\t| %+.1f %%\t| %s\t|\n", k.Run.Name, k.Run.Workload,
			source[k.Run.Workload], 1e3*k.Run.Seconds, 1e3*k.Modelled, 100*k.RelativeError(), role)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nThe profiled workload (%s%s: the end of a training step and two inference batches of 100), share of kernel time:\n\n",
		ProfiledWorkload(), source[ProfiledWorkload()])
	tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| kernel\t| profiled\t| calls\t| modelled\t| kernels\t| difference\t|")
	fmt.Fprintln(tw, "| ---\t| ---:\t| ---:\t| ---:\t| ---:\t| ---:\t|")
	for _, s := range shares {
		fmt.Fprintf(tw, "| %s\t| %.1f %%\t| %d\t| %.1f %%\t| %d\t| %+.1f\t|\n", s.Kernel, 100*s.Profiled, s.Calls, 100*s.Modelled,
			s.ModelCalls, 100*(s.Modelled-s.Profiled))
	}
	return tw.Flush()
}

// Program is what a prediction prices: the launches of a training step
// and of an inference batch, each with its batch size.
type Program struct {
	Train, Infer           []compute.Launch
	TrainBatch, InferBatch int
}

// WritePrediction writes, as Markdown, the modelled time and images/s of
// p's training step and inference batch on each GPU the model knows
// (uncalibrated ones marked), beside compiled PyTorch's measured rates on
// the H200.
func WritePrediction(w io.Writer, p Program) error {
	if w == nil {
		return errNoWriter
	}
	c, err := H200Calibration()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "| GPU\t| train ms\t| train img/s (batch %d)\t| kernels\t| infer ms\t| infer img/s (batch %d)\t| kernels\t|\n",
		p.TrainBatch, p.InferBatch)
	fmt.Fprintln(tw, "| ---\t| ---:\t| ---:\t| ---:\t| ---:\t| ---:\t| ---:\t|")
	for _, g := range GPUs() {
		m, err := ForGPU(g.Name)
		if err != nil {
			return err
		}
		tr, err := m.Price(p.Train)
		if err != nil {
			return fmt.Errorf("training step: %w", err)
		}
		in, err := m.Price(p.Infer)
		if err != nil {
			return fmt.Errorf("inference: %w", err)
		}
		name := g.Name + ", predicted"
		if m.Calibrated == "" {
			name += " (uncalibrated)"
		}
		fmt.Fprintf(tw, "| %s\t| %.2f\t| %.0f\t| %d\t| %.2f\t| %.0f\t| %d\t|\n", name, 1e3*tr.Seconds, tr.ImagesPerSecond(p.TrainBatch),
			tr.Kernels, 1e3*in.Seconds, in.ImagesPerSecond(p.InferBatch), in.Kernels)
	}
	fmt.Fprintf(tw, "| h200, compiled PyTorch, measured\t| \t| %.0f\t| \t| \t| %.0f\t| \t|\n", c.TorchTrain, c.TorchInfer)
	return tw.Flush()
}

// WriteShares writes, as Markdown, an estimate's time by kernel, the
// largest first, top rows at most (0: all).
func WriteShares(w io.Writer, e Estimate, top int) error {
	if w == nil {
		return errNoWriter
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| kernel\t| kernels\t| ms\t| share\t|")
	fmt.Fprintln(tw, "| ---\t| ---:\t| ---:\t| ---:\t|")
	for i, s := range e.Shares() {
		if top > 0 && i == top {
			break
		}
		fmt.Fprintf(tw, "| %s\t| %d\t| %.3f\t| %.1f %%\t|\n", s.Name, s.Count, 1e3*s.Seconds, 100*s.Fraction)
	}
	return tw.Flush()
}
