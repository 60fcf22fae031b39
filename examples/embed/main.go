// Command embed uses proxykit as a Go library, as a program embedding SNN
// training would: it generates its own data (two classes of 28×28
// images: a bright left or right half), proxy-trains a small network on
// them for one epoch, writes a checkpoint and exports the ANN as ONNX,
// reads both back and runs the ONNX ANN and the checkpoint's SNN (which
// keeps BatchNorm statistics of its own, which the ANN's ONNX file does not
// hold) on the test images. No command line of proxykit's is involved.
//
// It is a module of its own (see go.mod's replace directive), built and run
// by scripts/test.sh: go run . [-out DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

func main() {
	out := flag.String("out", "", "folder for the exported ONNX file (default: a temporary one)")
	flag.Parse()
	if err := run(*out); err != nil {
		log.Fatal(err)
	}
}

// halves makes n images of two classes: class 0 bright on the left half,
// class 1 on the right, with noise.
func halves(n int, seed uint64) (*data.Dataset, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	images, labels := make([]float32, n*28*28), make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(rng.IntN(2))
		for p := 0; p < 28*28; p++ {
			v := 0.3 * rng.Float32()
			if (p%28 < 14) == (labels[i] == 0) {
				v += 0.7
			}
			images[i*784+p] = v
		}
	}
	return data.New("halves", images, labels, 1, 28, 28, 2)
}

func run(out string) error {
	trainSet, err := halves(300, 1)
	if err != nil {
		return err
	}
	testSet, err := halves(100, 2)
	if err != nil {
		return err
	}
	ann, err := nn.Tiny(7)
	if err != nil {
		return err
	}
	s := recipe.Default()
	s.Dataset, s.Epochs, s.BatchSize, s.LR, s.Augment = "halves", 1, 25, 5e-3, false
	snn, err := spiking.New(ann, s.Config)
	if err != nil {
		return err
	}
	t, err := train.NewTrainer(s, ann, snn, trainSet, testSet)
	if err != nil {
		return err
	}
	t.Backend = compute.NewCPU()
	t.OnEpoch = func(st results.EpochStats) error {
		fmt.Printf("epoch %d: loss %.4f, test ANN %.0f%%, SNN %.0f%% (strict)\n", st.Epoch+1, st.TrainLoss, 100*st.Test.ANN, 100*st.Test.SNNStrict)
		return nil
	}
	if err := t.Run(context.Background()); err != nil {
		return err
	}
	if err := t.Close(); err != nil { // the weights back in host memory
		return err
	}

	if out == "" {
		if out, err = os.MkdirTemp("", "embed"); err != nil {
			return err
		}
		defer os.RemoveAll(out)
	}
	path := filepath.Join(out, "trained.onnx")
	if err := exporter.WriteANN(path, ann, exporter.Options{}); err != nil {
		return err
	}
	ck, err := t.Checkpoint()
	if err != nil {
		return err
	}
	ckPath := filepath.Join(out, "trained.ckpt")
	if err := ck.Save(ckPath); err != nil {
		return err
	}
	m, err := model.Load(path)
	if err != nil {
		return err
	}
	x := &nn.Tensor{Shape: []int{testSet.N, 1, 28, 28}, Data: testSet.Images}
	y, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
	if err != nil {
		return err
	}
	fromCk, err := model.Load(ckPath)
	if err != nil {
		return err
	}
	twin, err := fromCk.SNN(s.Config)
	if err != nil {
		return err
	}
	r, err := twin.RunOn(context.Background(), compute.NewCPU(), x, false, 0)
	if err != nil {
		return err
	}
	annOK, snnOK := 0, 0
	for i := 0; i < testSet.N; i++ {
		if argmax(y.Data[i*10:i*10+10]) == int(testSet.Labels[i]) {
			annOK++
		}
		if argmax(r.Counts.Data[i*10:i*10+10]) == int(testSet.Labels[i]) {
			snnOK++
		}
	}
	fmt.Printf("read back: the ANN from %s %d/%d, the SNN from %s %d/%d correct\n", filepath.Base(path), annOK, testSet.N,
		filepath.Base(ckPath), snnOK, testSet.N)
	if annOK < testSet.N*9/10 || snnOK < testSet.N*9/10 {
		return fmt.Errorf("the networks read back get %d and %d of %d right: training or export went wrong", annOK, snnOK, testSet.N)
	}
	return nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
