package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
)

// deviceMemory is implemented by backends that own device memory.
type deviceMemory interface {
	DeviceMemory() (inUse, peak, total int64)
	ResetPeak()
}

// Bench times proxy-learning steps (BN in training mode, as in epoch 0, with
// the Adam update) and SNN inference, on be, for at least minTime each (one
// step at least), after one untimed warm-up step each. The images are d's
// first ones (repeated where d has fewer), or random when d is nil.
func Bench(be compute.Backend, net *nn.Network, cfg spiking.Config, batch, inferBatch int, minTime time.Duration, d *data.Dataset) (results.BenchResult, error) {
	var r results.BenchResult
	snn, err := spiking.New(net, cfg)
	if err != nil {
		return r, err
	}
	out, err := net.OutputShape()
	if err != nil {
		return r, err
	}
	if len(out) != 1 || out[0] < 10 {
		return r, fmt.Errorf("the network's output is %s; the benchmark draws labels from 10 classes", nn.ShapeString(out))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	images := func(n int) (*nn.Tensor, []uint8) {
		x := nn.NewTensor(append([]int{n}, net.InputShape...)...)
		labels := make([]uint8, n)
		if d != nil {
			sz := d.C * d.H * d.W
			for i := 0; i < n; i++ {
				copy(x.Data[i*sz:(i+1)*sz], d.Image(i%d.N))
				labels[i] = d.Labels[i%d.N]
			}
			return x, labels
		}
		for i := range x.Data {
			x.Data[i] = rng.Float32()
		}
		for i := range labels {
			labels[i] = uint8(rng.IntN(10))
		}
		return x, labels
	}
	if d != nil {
		if err := net.CheckInput([]int{1, d.C, d.H, d.W}); err != nil {
			return r, fmt.Errorf("data set %s does not fit the network: %w", d.Name, err)
		}
	}
	e, err := NewEngine(be, net, snn, batch)
	if err != nil {
		return r, err
	}
	defer e.Free()
	opt := NewAdam(1e-4, 0.8, 0.99, 1e-8, 1e-6)
	defer opt.Free()
	x, labels := images(batch)
	step := func() error {
		if _, err := e.Step(x, labels, true); err != nil {
			return err
		}
		return opt.Update(be, net.Params())
	}
	if err := step(); err != nil {
		return r, err
	}
	if err := be.Err(); err != nil {
		return r, err
	}
	counting, counts := be.(compute.Counting)
	start := time.Now()
	for r.TrainSteps == 0 || time.Since(start) < minTime {
		if counts && r.TrainSteps == 0 { // one steady-state step's traffic
			counting.ResetTraffic()
		}
		if err := step(); err != nil {
			return r, err
		}
		if counts && r.TrainSteps == 0 {
			t := counting.Traffic()
			r.StepTraffic = &t
		}
		r.TrainSteps++
	}
	if err := be.Err(); err != nil {
		return r, err
	}
	el := time.Since(start).Seconds()
	r.TrainStepSeconds = el / float64(r.TrainSteps)
	r.TrainImagesPerSec = float64(r.TrainSteps*batch) / el
	dm, hasMem := be.(deviceMemory)
	if hasMem {
		_, peak, _ := dm.DeviceMemory()
		r.TrainDeviceMB = float64(peak) / (1 << 20)
	}
	e.Free()
	if err := opt.Free(); err != nil {
		return r, err
	}
	if hasMem {
		dm.ResetPeak()
	}

	sim, err := spiking.NewSimulator(be, snn, inferBatch)
	if err != nil {
		return r, err
	}
	defer sim.Free()
	xi, _ := images(inferBatch)
	in, err := be.Alloc(len(xi.Data))
	if err != nil {
		return r, err
	}
	defer be.Free(in)
	be.Upload(in, xi.Data)
	xv := nn.Value{Shape: xi.Shape, Buf: in}
	if _, err := sim.Run(context.Background(), xv, false, false); err != nil {
		return r, err
	}
	if err := be.Err(); err != nil {
		return r, err
	}
	n := 0
	start = time.Now()
	for n == 0 || time.Since(start) < minTime {
		if counts && n == 0 {
			counting.ResetTraffic()
		}
		if _, err := sim.Run(context.Background(), xv, false, false); err != nil {
			return r, err
		}
		if counts && n == 0 {
			t := counting.Traffic()
			r.InferTraffic = &t
		}
		n++
		if n%8 == 0 {
			if err := be.Err(); err != nil {
				return r, err
			}
		}
	}
	if err := be.Err(); err != nil {
		return r, err
	}
	r.InferBatch = inferBatch
	r.InferImagesPerSec = float64(n*inferBatch) / time.Since(start).Seconds()
	if hasMem {
		_, peak, _ := dm.DeviceMemory()
		r.InferDeviceMB = float64(peak) / (1 << 20)
	}
	annF, staticF, dynF, err := FLOPs(net, snn)
	if err != nil {
		return r, err
	}
	t := float64(cfg.Timesteps)
	r.InferGFLOPPerImage = (staticF + t*dynF) / 1e9
	r.TrainGFLOPPerImage = 3*annF/1e9 + r.InferGFLOPPerImage
	r.TrainTFLOPS = r.TrainGFLOPPerImage * r.TrainImagesPerSec / 1e3
	r.InferTFLOPS = r.InferGFLOPPerImage * r.InferImagesPerSec / 1e3
	return r, nil
}

// FLOPs counts, per image, the dense floating-point operations (2 per
// multiply-add) of the convolutions and linear layers: of the ANN's
// forward pass, of the SNN's static input layer and of one SNN time step.
func FLOPs(ann *nn.Network, snn *spiking.Network) (annF, staticF, stepF float64, err error) {
	if _, err = ann.Shapes(); err != nil {
		return
	}
	annF = 2 * float64(macs(ann, len(ann.Layers)))
	staticF = 2 * float64(macs(ann, snn.Static))
	// every other layer of the body runs at each step (IF layers do no MACs)
	return annF, staticF, annF - staticF, nil
}
