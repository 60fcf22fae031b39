package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/results"
)

// What the commands write and print, and their errors (errors.go).

// outputs are the files a command will write, each with the flag that
// named it; check refuses, before any work, a file that cannot be
// written, one that is an input and two that are one file.
type outputs []atomicfile.Output

// outputsOf are the files flags name: flag, path, flag, path ... (an
// empty path: none).
func outputsOf(flagPaths ...string) (o outputs) {
	for i := 0; i+1 < len(flagPaths); i += 2 {
		if flagPaths[i+1] != "" {
			o = append(o, atomicfile.Output{Name: flagPaths[i], Path: flagPaths[i+1]})
		}
	}
	return o
}

func (o outputs) check(inputs ...string) error { return atomicfile.CheckOutputs(o, inputs...) }

// checkOutput refuses a command without its required output flag (what,
// if given, says what it names) and checks the file (outputs.check).
func checkOutput(flag, path, what string, inputs ...string) error {
	switch {
	case path == "" && what != "":
		return fmt.Errorf("%s is required: %s", flag, what)
	case path == "":
		return fmt.Errorf("%s is required", flag)
	}
	return outputs{{Name: flag, Path: path}}.check(inputs...)
}

// addPlot adds a figure (named by flag) and its CSV.
func (o *outputs) addPlot(flag, figure string) error {
	if figure == "" {
		return nil
	}
	if err := plots.CheckPath(figure); err != nil {
		return err
	}
	*o = append(*o, outputsOf(flag, figure, flag+"'s CSV", plots.CSVPath(figure))...)
	return nil
}

// checkPlot checks a command's figure (named by flag) and its CSV when
// they are all it writes (outputs.check).
func checkPlot(flag, figure string, inputs ...string) error {
	var outs outputs
	if err := outs.addPlot(flag, figure); err != nil {
		return err
	}
	return outs.check(inputs...)
}

// curve redraws the training curve of model's run to figure after every
// epoch (train.RunOptions.Curve); nil without a figure.
func curve(figure, model string) func([]results.EpochStats) error {
	if figure == "" {
		return nil
	}
	return func(h []results.EpochStats) error { return plots.Training(figure, filepath.Base(model), h) }
}

// draw draws a figure, if one is asked for, with plot (plots.Sweeps, say),
// and says that it and its CSV were written (unless quiet).
func draw(w io.Writer, figure string, quiet bool, plot func(figure string) error) error {
	if figure == "" {
		return nil
	}
	if err := plot(figure); err != nil || quiet {
		return err
	}
	_, err := fmt.Fprintf(w, "wrote %s and %s\n", figure, plots.CSVPath(figure))
	return err
}

// printJSON prints v as one line of JSON.
func printJSON(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// emit prints v as one line of JSON, or as text (text).
func emit(w io.Writer, asJSON bool, v any, text func(io.Writer) error) error {
	if asJSON {
		return printJSON(w, v)
	}
	return text(w)
}
