package train

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// BenchResult is what Bench measured.
type BenchResult struct {
	TrainImagesPerSec float64 `json:"train_images_per_sec"`
	TrainStepSeconds  float64 `json:"train_step_seconds"`
	InferImagesPerSec float64 `json:"infer_images_per_sec"`
	InferBatch        int     `json:"infer_batch"`
	TrainSteps        int     `json:"train_steps"`
}

// Bench times proxy-learning steps (BN in training mode, as in epoch 0, with
// the Adam update) and SNN inference on random images for at least minTime
// each (one step at least), after one untimed warm-up step.
func Bench(net *nn.Network, cfg spiking.Config, batch, inferBatch int, minTime time.Duration) (BenchResult, error) {
	var r BenchResult
	snn, err := spiking.New(net, cfg)
	if err != nil {
		return r, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	images := func(n int) (*nn.Tensor, []uint8) {
		x := nn.NewTensor(append([]int{n}, net.InputShape...)...)
		for i := range x.Data {
			x.Data[i] = rng.Float32()
		}
		labels := make([]uint8, n)
		for i := range labels {
			labels[i] = uint8(rng.IntN(10))
		}
		return x, labels
	}
	out, err := net.OutputShape()
	if err != nil {
		return r, err
	}
	if out[0] < 10 {
		return r, fmt.Errorf("the network has %d outputs; the benchmark draws labels from 10 classes", out[0])
	}
	opt := NewAdam(1e-4, 0.8, 0.99, 1e-8, 1e-6)
	x, labels := images(batch)
	step := func() error {
		if _, err := ProxyStep(net, snn, x, labels, true); err != nil {
			return err
		}
		opt.Update(net.Params())
		return nil
	}
	if err := step(); err != nil {
		return r, err
	}
	start := time.Now()
	for r.TrainSteps == 0 || time.Since(start) < minTime {
		if err := step(); err != nil {
			return r, err
		}
		r.TrainSteps++
	}
	el := time.Since(start).Seconds()
	r.TrainStepSeconds = el / float64(r.TrainSteps)
	r.TrainImagesPerSec = float64(r.TrainSteps*batch) / el
	xi, _ := images(inferBatch)
	n := 0
	start = time.Now()
	for n == 0 || time.Since(start) < minTime {
		if _, err := snn.Run(xi); err != nil {
			return r, err
		}
		n++
	}
	r.InferBatch = inferBatch
	r.InferImagesPerSec = float64(n*inferBatch) / time.Since(start).Seconds()
	return r, nil
}
