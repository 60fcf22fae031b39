// Command cliptwins converts one trained ANN with clipped ReLUs (ReLU6) to
// an SNN under each IF twin of a clipped ReLU (docs/design.md §1,
// "ReLU6": spiking.ClipSaturate, spiking.ClipAsReLU) by robust
// normalisation (package convert), and reads each SNN's test accuracy
// against T beside the ANN's: the measurement behind spiking.DefaultClip
// (docs/results.md, "ReLU6"). It writes a figure and its CSV
// (plots.Sweeps) and prints a table in Markdown. scripts/compare_clip_twins.sh
// runs it on a network it trains.
//
// Usage: go run ./scripts/cliptwins -model ann.onnx -data DIR -dataset mnist -figure out.png
//
//	[-calib 1000] [-test 10000] [-timesteps 1,2,4,8,16,32,64,128] [-threshold 1]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

func main() {
	modelPath := flag.String("model", "", "the trained ANN (any file proxykit imports)")
	dir := flag.String("data", "", "the data set's folder")
	dataset := flag.String("dataset", "mnist", "mnist or fashion-mnist")
	figure := flag.String("figure", "", "figure to write (PNG; its numbers go beside it as CSV)")
	calib := flag.Int("calib", 1000, "training images to calibrate on")
	test := flag.Int("test", 10000, "test images")
	list := flag.String("timesteps", "1,2,4,8,16,32,64,128", "the T to read")
	threshold := flag.Float64("threshold", 1, "the IF neurons' v_th (ReLU layers and the output layer)")
	flag.Parse()
	if err := run(*modelPath, *dir, *dataset, *figure, *calib, *test, *list, float32(*threshold)); err != nil {
		fmt.Fprintln(os.Stderr, "cliptwins:", err)
		os.Exit(1)
	}
}

func run(modelPath, dir, dataset, figure string, calib, test int, list string, threshold float32) error {
	ts, err := train.ParseTimesteps(list)
	if err != nil {
		return err
	}
	trainSet, err := data.Load(dir, dataset, true)
	if err != nil {
		return err
	}
	testSet, err := data.Load(dir, dataset, false)
	if err != nil {
		return err
	}
	testSet = testSet.Subset(test)
	var sweeps []results.Sweep
	for _, twin := range spiking.ClipTwins() {
		m, err := model.Load(modelPath) // each twin converts the original
		if err != nil {
			return err
		}
		cfg := spiking.Config{Timesteps: ts[len(ts)-1], Threshold: threshold, Clip: twin}
		r, err := convert.Convert(context.Background(), compute.NewCPU(), m.ANN, trainSet,
			convert.Options{Percentile: convert.DefaultPercentile, Images: calib, Batch: 100, SNN: cfg})
		if err != nil {
			return fmt.Errorf("%s: %w", twin, err)
		}
		snn, err := spiking.New(m.ANN, cfg)
		if err != nil {
			return err
		}
		sw, err := train.SweepModel(context.Background(), compute.NewCPU(), m.ANN, snn, testSet, 100, train.SweepOptions{Timesteps: ts})
		if err != nil {
			return fmt.Errorf("%s: %w", twin, err)
		}
		sw.Model = fmt.Sprintf("converted, twin %q", twin)
		sweeps = append(sweeps, sw)
		fmt.Printf("%s: scales", twin)
		for _, s := range r.Scales {
			fmt.Printf(" %s %.4g (percentile max %.4g)", s.Layer, s.Lambda, s.Max)
		}
		fmt.Println()
	}
	if figure != "" {
		if err := plots.Sweeps(figure, sweeps); err != nil {
			return err
		}
	}
	fmt.Printf("\n%d test images; the ANN (BatchNorm in eval mode): %.2f %%\n\n| SNN strict accuracy (%%) |", testSet.N, 100*sweeps[0].ANN)
	for _, p := range sweeps[0].Points {
		fmt.Printf(" T=%d |", p.T)
	}
	fmt.Println()
	fmt.Print("|---|")
	for range sweeps[0].Points {
		fmt.Print("---|")
	}
	fmt.Println()
	for _, sw := range sweeps {
		fmt.Printf("| %s |", sw.Model)
		for _, p := range sw.Points {
			fmt.Printf(" %.2f |", 100*p.SNNStrict)
		}
		fmt.Println()
	}
	return nil
}
