package main

import (
	"fmt"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/plots"
)

// outputs are the files a command will write, each with the flag that
// named it; check refuses, before any work, a file that cannot be
// written, one that is an input and two that are one file.
type outputs []atomicfile.Output

func (o *outputs) add(flag, path string) {
	if path != "" {
		*o = append(*o, atomicfile.Output{Name: flag, Path: path})
	}
}

func (o outputs) check(inputs ...string) error { return atomicfile.CheckOutputs(o, inputs...) }

// required refuses a command whose required flag is missing; what, if
// given, says what the flag names.
func required(flag, value, what string) error {
	switch {
	case value != "":
		return nil
	case what != "":
		return fmt.Errorf("%s is required: %s", flag, what)
	}
	return fmt.Errorf("%s is required", flag)
}

// addPlot adds a figure (named by flag) and its CSV.
func (o *outputs) addPlot(flag, figure string) error {
	if figure == "" {
		return nil
	}
	if err := plots.CheckPath(figure); err != nil {
		return err
	}
	o.add(flag, figure)
	o.add(flag+"'s CSV", plots.CSVPath(figure))
	return nil
}
