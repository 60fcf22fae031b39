package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/model"
)

// dataFlags name a data set (into *name, which holds the default) and the
// folder of its files.
type dataFlags struct {
	dir  string
	name *string
	cmd  *cobra.Command
}

func addDataFlags(cmd *cobra.Command, name *string) *dataFlags {
	f := &dataFlags{name: name, cmd: cmd}
	cmd.Flags().StringVar(&f.dir, "data", "", "folder holding the data set's files (default for fashion-mnist: "+data.FashionMNISTDir+")")
	cmd.Flags().StringVar(name, "dataset", *name, "mnist, fashion-mnist or cifar10")
	defaultInWords(cmd, "dataset", "a checkpoint's own, else "+*name)
	return f
}

// check refuses, before a model is read, a --dataset that names no data
// set (the default, and a checkpoint's own, are valid).
func (f *dataFlags) check() error {
	if !f.cmd.Flags().Changed("dataset") {
		return nil
	}
	return data.CheckName(*f.name)
}

// fromModel takes the data set from m's file (a checkpoint's own) unless
// --dataset names one.
func (f *dataFlags) fromModel(m *model.Model) error {
	if m.Checkpoint != nil && !f.cmd.Flags().Changed("dataset") {
		*f.name = m.Checkpoint.Settings.Dataset
	}
	return nil
}

// load reads a split of the data set — its first n images; 0: all — from
// the --data folder, else the data set's default one, and checks that its
// images fit m (nil: no model).
func (f *dataFlags) load(m *model.Model, trainSplit bool, n int) (*data.Dataset, error) {
	d, err := data.Load(f.dir, *f.name, trainSplit)
	if err != nil {
		return nil, err
	}
	if m != nil {
		if err := m.ANN.CheckInput([]int{1, d.C, d.H, d.W}); err != nil {
			return nil, fmt.Errorf("data set %s does not fit %s: %w", d.Name, m.ANN.Name, err)
		}
	}
	return d.Subset(n), nil
}

// benchImages are the images a measurement reads (bench): the test split
// of --dataset, or nil without it: random images, whose spikes differ
// from real data's, as a note says when the network is MODEL's (m, read
// from args[0]).
func (f *dataFlags) benchImages(m *model.Model, args []string) (*data.Dataset, error) {
	if *f.name != "" {
		return f.load(nil, false, 0)
	}
	if m != nil {
		note := "give --dataset NAME to time it on a data set's test images"
		if m.Checkpoint != nil && m.Checkpoint.Settings.Dataset != "" {
			note = fmt.Sprintf("give --dataset %s (the checkpoint's) to time it on its test images", m.Checkpoint.Settings.Dataset)
		}
		fmt.Fprintf(f.cmd.ErrOrStderr(), "note: timing %s on random images, whose spikes differ from real data's: %s\n", args[0], note)
	}
	return nil, nil
}

// splits reads the training split's first nTrain images and the test
// split's first nTest (load).
func (f *dataFlags) splits(m *model.Model, nTrain, nTest int) (trainSet, testSet *data.Dataset, err error) {
	if trainSet, err = f.load(m, true, nTrain); err == nil {
		testSet, err = f.load(m, false, nTest)
	}
	return trainSet, testSet, err
}
