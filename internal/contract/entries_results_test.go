package contract_test

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
)

// Entries of the results' text forms and warnings, convert.Result's,
// plots.Files and distributed.Join: a nil writer is refused, zero and
// hostile values (slices shorter than others they go with, NaN) print.

func init() {
	var out bytes.Buffer
	nan := math.NaN()
	entries["results.Accuracy.Warning"] = func(c *C) {
		c.NoPanic("zero, NaN and hostile shares", func() {
			results.Accuracy{}.Warning()
			results.Accuracy{N: -1, TieShare: nan, SilentShare: math.Inf(1)}.Warning()
			c.Check(results.Accuracy{N: 10, SilentShare: 1}.Warning() != "", "a silent SNN gets no warning")
		})
	}
	entries["results.SweepPoint.Warning"] = func(c *C) {
		c.NoPanic("zero point, n -1 and 2^62", func() {
			results.SweepPoint{}.Warning(-1)
			results.SweepPoint{TieShare: 1}.Warning(huge)
		})
	}
	entries["results.Tally.SilentShare"] = func(c *C) {
		c.NoPanic("zero tally, 0, -1", func() {
			var t results.Tally
			c.Check(t.SilentShare(0) == 0 && t.SilentShare(-1) == 0, "a share of no samples is not 0")
		})
	}
	entries["results.PaperComparison.Lines"] = func(c *C) {
		c.NoPanic("zero comparison, NaN", func() {
			results.PaperComparison{}.Lines()
			results.PaperComparison{NotebookFinal: nan, Warning: "w"}.Lines()
		})
	}
	entries["results.PaperComparison.WriteText"] = func(c *C) {
		c.Ok("nil receiver, nil writer", func() error { return (*results.PaperComparison)(nil).WriteText(nil) })
		c.Err("nil writer", func() error { return (&results.PaperComparison{}).WriteText(nil) })
		c.Ok("zero comparison", func() error { return (&results.PaperComparison{}).WriteText(&out) })
	}
	entries["results.EpochStats.WriteText"] = func(c *C) {
		c.Err("nil writer", func() error { return results.EpochStats{}.WriteText(nil) })
		c.Ok("zero statistics", func() error { return results.EpochStats{}.WriteText(&out) })
		c.Ok("NaN loss, silent SNN", func() error {
			return results.EpochStats{Epoch: -1, TrainLoss: nan, Test: results.Accuracy{SilentShare: 1}}.WriteText(&out)
		})
	}
	entries["results.Report.WriteText"] = func(c *C) {
		c.Err("nil writer", func() error { return results.Report{}.WriteText(nil, "", "", 0, 0) })
		c.Ok("zero report, T -1", func() error { return results.Report{}.WriteText(&out, "", "", -1, float32(nan)) })
		c.Ok("confusion rows without classes, ragged", func() error {
			r := results.Report{ConfusionSNN: [][]int{{1, 2}, {3}, {}}, Classes: []results.ClassAccuracy{{N: 1}}}
			return r.WriteText(&out, "m", "d", 1, 1)
		})
	}
	entries["results.Sweep.WriteText"] = func(c *C) {
		c.Err("nil writer", func() error { return results.Sweep{}.WriteText(nil, "", "") })
		c.Ok("zero sweep", func() error { return results.Sweep{}.WriteText(&out, "", "") })
		c.Ok("more rates than IF layers, NaN", func() error {
			s := results.Sweep{ANN: nan, Points: []results.SweepPoint{{T: -1, Rates: []float64{1, 2, 3}}}}
			return s.WriteText(&out, "", "")
		})
	}
	entries["results.Bench.WriteText"] = func(c *C) {
		c.Err("nil writer", func() error { return results.Bench{}.WriteText(nil) })
		c.Ok("zero bench", func() error { return results.Bench{}.WriteText(&out) })
		c.Ok("IF layers without rates, data-parallel without ranks, zero traffic", func() error {
			b := results.Bench{DataParallel: "2 ranks", Result: results.BenchResult{IFLayers: []string{"a", "b"}, FiringRates: []float64{0.5},
				StepTraffic: &compute.Traffic{}, InferWork: []compute.KernelWork{{}}}}
			return b.WriteText(&out)
		})
	}

	// convert
	entries["convert.Result.WriteText"] = func(c *C) {
		c.Err("nil writer", func() error { return convert.Result{}.WriteText(nil, "", "", nan) })
		c.Ok("zero result", func() error { return convert.Result{}.WriteText(&out, "", "", -1) })
	}
	entries["convert.Result.Checkpoint"] = func(c *C) {
		net, _ := tinyNet(c.t)
		c.Err("nil network", func() error { _, err := convert.Result{}.Checkpoint(nil, recipe.Default(), "", "", 99); return err })
		c.Err("zero settings", func() error { _, err := convert.Result{}.Checkpoint(net, recipe.Settings{}, "", "", 99); return err })
		c.Ok("the tiny network", func() error {
			_, err := convert.Result{}.Checkpoint(net, recipe.Default(), "x", "mnist", nan)
			return err
		})
	}

	// plots
	entries["plots.Files"] = func(c *C) {
		dir := c.t.TempDir()
		c.Err("no files", func() error { return plots.Files(filepath.Join(dir, "a.png"), nil, nil) })
		c.Err("labels for no files", func() error { return plots.Files(filepath.Join(dir, "b.png"), nil, []string{"x"}) })
		c.Err(`"", a file that is not there`, func() error { return plots.Files("", []string{filepath.Join(dir, "none.json")}, nil) })
	}

	// distributed
	entries["distributed.Join"] = func(c *C) {
		torchrun := distributed.Launch{Launcher: distributed.LaunchTorchrun, Size: 2, Master: "127.0.0.1:1", LocalRank: -1}
		cpu := func(int) (compute.Backend, error) { return compute.NewCPU(), nil }
		c.Err("zero launch, nil functions", func() error {
			_, _, err := distributed.Join(distributed.Launch{}, distributed.Options{}, nil, nil)
			return err
		})
		c.Err("zero launch, an open that fails", func() error {
			_, _, err := distributed.Join(distributed.Launch{}, distributed.Options{}, func(int) (compute.Backend, error) { return nil, errors.New("no") }, nil)
			return err
		})
		c.Err("two ranks, local rank -1", func() error {
			_, _, err := distributed.Join(torchrun, distributed.Options{}, cpu, func() (int, error) { return 4, nil })
			return err
		})
		c.Err("two ranks, -1 GPUs", func() error {
			torchrun.LocalRank = 0
			_, _, err := distributed.Join(torchrun, distributed.Options{Timeout: time.Millisecond}, cpu, func() (int, error) { return -1, nil })
			return err
		})
		c.Ok("alone on the CPU", func() error {
			be, g, err := distributed.Join(distributed.Launch{}, distributed.Options{}, cpu, nil)
			c.Check(g == nil && be != nil, "a process alone got a group or no backend")
			return err
		})
	}
}
