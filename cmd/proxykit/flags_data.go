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

// splits reads the training split's first nTrain images and the test
// split's first nTest (load).
func (f *dataFlags) splits(m *model.Model, nTrain, nTest int) (trainSet, testSet *data.Dataset, err error) {
	if trainSet, err = f.load(m, true, nTrain); err == nil {
		testSet, err = f.load(m, false, nTest)
	}
	return trainSet, testSet, err
}
