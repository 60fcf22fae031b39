package spiking_test

import (
	"context"
	"fmt"
	"log"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// Run the SNN of a network on a batch, on a backend of your choice (the
// CPU here; compute/device opens "cuda" or "cuda-emu"), and read the
// output layer's spike counts and every IF layer's firing rate.
func ExampleNetwork_RunOn() {
	ann, err := nn.Tiny(1)
	if err != nil {
		log.Fatal(err)
	}
	snn, err := spiking.New(ann, spiking.Config{Timesteps: 8, Threshold: 0.5})
	if err != nil {
		log.Fatal(err)
	}
	x, err := nn.NewTensor(2, 1, 28, 28) // two images, pixels in [0, 1]
	if err != nil {
		log.Fatal(err)
	}
	for i := range x.Data {
		x.Data[i] = float32(i%97) / 97
	}
	res, err := snn.RunOn(context.Background(), compute.NewCPU(), x, false, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("counts of image 0:", res.Counts.Data[:10])
	fmt.Printf("%d IF layers, the first firing at %.3f spikes per neuron per step\n", len(res.Rates), res.Rates[0])
	// Output:
	// counts of image 0: [0 0 0 0 0 0 2 0 1 2]
	// 4 IF layers, the first firing at 0.233 spikes per neuron per step
}
