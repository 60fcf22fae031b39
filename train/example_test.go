package train_test

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// Fine-tune a network with proxy learning on a data set of your own
// arrays: here 200 generated 28×28 images of two classes (a bright left or
// right half), two epochs, T = 15. Trainer.Run checks ctx between batches;
// Trainer.Checkpoint captures the state for checkpoint files.
func Example() {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 200
	images, labels := make([]float32, n*28*28), make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(i % 2)
		for y := 0; y < 28; y++ {
			for x := 0; x < 28; x++ {
				v := 0.2 * rng.Float32()
				if (x < 14) == (labels[i] == 0) {
					v += 0.8
				}
				images[i*784+y*28+x] = v
			}
		}
	}
	trainSet, err := data.New("halves", images[:150*784], labels[:150], 1, 28, 28, 2)
	if err != nil {
		log.Fatal(err)
	}
	testSet, err := data.New("halves", images[150*784:], labels[150:], 1, 28, 28, 2)
	if err != nil {
		log.Fatal(err)
	}

	ann, err := nn.Tiny(1) // 10 outputs: the two classes use the first two
	if err != nil {
		log.Fatal(err)
	}
	s := recipe.Default() // the reference's recipe, then changed where needed
	s.Epochs, s.BatchSize, s.LR, s.Timesteps, s.Augment = 2, 25, 5e-3, 15, false
	snn, err := spiking.New(ann, s.Config)
	if err != nil {
		log.Fatal(err)
	}
	t, err := train.NewTrainer(s, ann, snn, trainSet, testSet)
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	t.Backend = compute.NewCPU()
	if err := t.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	last := t.Progress.History[len(t.Progress.History)-1]
	fmt.Printf("after %d epochs: SNN %.0f%% (strict) on %d test images, loss %.3f\n", last.Epoch+1, 100*last.Test.SNNStrict, last.Test.N, last.TrainLoss)
	// Output:
	// after 2 epochs: SNN 100% (strict) on 50 test images, loss 0.014
}
