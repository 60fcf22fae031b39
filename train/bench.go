package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// deviceMemory is implemented by backends that own device memory.
type deviceMemory interface {
	DeviceMemory() (inUse, peak, total int64)
	ResetPeak()
}

// kernelWork is implemented by backends that count what their product
// kernels skipped (the CPU backend).
type kernelWork interface {
	Work() []compute.KernelWork
	ResetWork()
}

// Bench measures snn and its network as given: SNN inference first, for
// at least minTime (one batch at least) after one untimed warm-up batch
// that records the firing rates, then proxy-learning steps (BN in training
// mode, as in epoch 0, with the Adam update, which changes the weights:
// hence inference first) for at least minTime after one untimed warm-up
// step; and, where m is surrogate-gradient training, its steps too, the
// same way (BenchResult.Surrogate), beside the proxy step. The images are
// d's first ones (repeated where d has fewer), or random when d is nil.
func Bench(be compute.Backend, snn *spiking.Network, batch, inferBatch int, minTime time.Duration, d *data.Dataset, m Method) (results.BenchResult, error) {
	return BenchRanks(nil, be, snn, batch, inferBatch, minTime, d, m)
}

// BenchRanks is Bench as one rank of a data-parallel run (g; nil: alone):
// each training step is a global batch of batch images split across the
// ranks, its gradients all-reduced, every rank taking as many steps as
// rank 0 decides; SNN inference runs on each rank alone. The result, the
// same on every rank, has the global rate, each rank's, and the
// all-reduces' bytes and time per step. An error on any rank stops every
// rank (g.Abort).
func BenchRanks(g *distributed.Group, be compute.Backend, snn *spiking.Network, batch, inferBatch int, minTime time.Duration, d *data.Dataset, m Method) (results.BenchResult, error) {
	r, err := benchRanks(g, be, snn, batch, inferBatch, minTime, d, m)
	if err != nil && g != nil {
		g.Abort(err)
	}
	return r, err
}

// BenchTime is the least time a measurement takes, given in seconds (0:
// one measurement each), refused outside 0 to a day; the error names the
// setting ("seconds").
func BenchTime(seconds float64) (time.Duration, error) {
	if !(seconds >= 0 && seconds <= 86400) {
		return 0, setting.Errorf("%s must lie between 0 (one measurement) and a day, got %g", setting.Name("seconds"), seconds)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

// BenchReport is BenchRanks's result (g: the rank's group; nil: alone) as
// proxykit bench reports it: with the batch, the network and its T, the
// cores Go runs on, the ranks, and the process's peak resident memory once
// measured (getrusage's maxrss, read as Linux gives it, in KiB). What was
// measured and on what — the model file or architecture, the images, the
// device — is the caller's to fill in.
func BenchReport(g *distributed.Group, be compute.Backend, snn *spiking.Network, batch, inferBatch int, minTime time.Duration, d *data.Dataset, m Method) (results.Bench, error) {
	res, err := BenchRanks(g, be, snn, batch, inferBatch, minTime, d, m)
	if err != nil {
		return results.Bench{}, err
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b := results.Bench{BatchSize: batch, Cores: runtime.GOMAXPROCS(0), Network: snn.ANN.Name, Timesteps: snn.Config.Timesteps,
		PeakMemoryMB: float64(ru.Maxrss) / 1024, Result: res}
	if g != nil {
		b.DataParallel = g.Describe()
	}
	return b, nil
}

func benchRanks(g *distributed.Group, be compute.Backend, snn *spiking.Network, batch, inferBatch int, minTime time.Duration, d *data.Dataset, m Method) (results.BenchResult, error) {
	var r results.BenchResult
	if be == nil {
		return r, fmt.Errorf("no backend to measure on (nil)")
	}
	if snn == nil || snn.ANN == nil {
		return r, fmt.Errorf("no SNN to measure (nil, or without its network: spiking.New makes one)")
	}
	if err := snn.Config.Validate(); err != nil {
		return r, err
	}
	if batch < 1 || inferBatch < 1 {
		return r, fmt.Errorf("batches of %d images to train and %d to infer: each must be at least 1", batch, inferBatch)
	}
	net := snn.ANN
	out, err := net.OutputShape()
	if err != nil {
		return r, err
	}
	if len(out) != 1 || out[0] < 10 {
		return r, fmt.Errorf("the network's output is %s; the benchmark draws labels from 10 classes", nn.ShapeString(out))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	images := func(n int) (*nn.Tensor, []uint8) {
		x, _ := nn.NewTensor(append([]int{n}, net.InputShape...)...) // n: a batch NewEngine allocated already
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
		if err := d.Check(); err != nil {
			return r, err
		}
		if d.N == 0 {
			return r, fmt.Errorf("data set %s holds no images", d.Name)
		}
		if err := net.CheckInput([]int{1, d.C, d.H, d.W}); err != nil {
			return r, fmt.Errorf("data set %s does not fit the network: %w", d.Name, err)
		}
	}
	ebe, share := be, batch
	var shard *distributed.Backend
	if g != nil {
		if shard, err = g.Shard(be); err != nil {
			return r, err
		}
		defer shard.FreeScratch()
		lo, hi := distributed.Split(batch, g.Size(), g.Rank())
		ebe, share = shard, hi-lo
		if share == 0 {
			return r, fmt.Errorf("a global batch of %d images leaves rank %d of %d without one", batch, g.Rank(), g.Size())
		}
	}
	if err := snn.Bind(ebe); err != nil {
		return r, fmt.Errorf("%s: %w", be.Name(), err)
	}
	x, labels := images(share) // drawn first: the random images do not depend on the inference batch
	if err := benchInference(&r, be, ebe, snn, inferBatch, minTime, images); err != nil {
		return r, err
	}
	tb := &trainBench{g: g, be: be, ebe: ebe, shard: shard, net: net, snn: snn, batch: batch, share: share, minTime: minTime, x: x, labels: labels}
	proxy, err := tb.time(Method{})
	if err != nil {
		return r, err
	}
	r.TrainSteps, r.TrainStepSeconds, r.TrainImagesPerSec, r.StepTraffic = proxy.Steps, proxy.StepSeconds, proxy.ImagesPerSec, proxy.StepTraffic
	r.TrainDeviceMB, r.TrainActivationMB = proxy.DeviceMB, proxy.ActivationMB
	if shard != nil {
		r.Ranks, r.AllReduceBytes, r.AllReduceSeconds = g.Size(), tb.reduced.Bytes/int64(tb.reduced.Steps), tb.reduced.Wait.Seconds()/float64(tb.reduced.Steps)
	}
	if m.Surrogate != nil {
		sb, err := tb.time(m)
		if err != nil {
			return r, err
		}
		r.Surrogate = &sb
	}
	if g != nil {
		// every rank's rates, rank 0's all-reduce time, on every rank
		p := g.Size()
		v := make([]float64, 2*p+1)
		v[g.Rank()], v[p+g.Rank()] = float64(share)/r.TrainStepSeconds, r.InferImagesPerSec
		if g.Rank() == 0 {
			v[2*p] = r.AllReduceSeconds
		}
		if err := g.Host().AllReduceF64(v); err != nil {
			return r, err
		}
		r.RankTrainImagesPerSec, r.RankInferImagesPerSec, r.AllReduceSeconds = v[:p], v[p:2*p], v[2*p]
		r.InferImagesPerSec = 0
		for _, ips := range r.RankInferImagesPerSec {
			r.InferImagesPerSec += ips
		}
	}
	annF, staticF, dynF, err := FLOPs(net, snn)
	if err != nil {
		return r, err
	}
	t := float64(snn.Config.Timesteps)
	r.InferGFLOPPerImage = (staticF + t*dynF) / 1e9
	r.TrainGFLOPPerImage = 3*annF/1e9 + r.InferGFLOPPerImage
	r.TrainTFLOPS = r.TrainGFLOPPerImage * r.TrainImagesPerSec / 1e3
	if sb := r.Surrogate; sb != nil {
		sb.TFLOPS = sb.GFLOPPerImage * sb.ImagesPerSec / 1e3
	}
	r.InferTFLOPS = r.InferGFLOPPerImage * r.InferImagesPerSec / 1e3
	return r, nil
}

// benchInference times snn's inference on ebe (the rank's engine backend;
// be its own, whose memory and traffic are read) into r: one untimed run
// recording the firing rates and the kernels' work, then runs of a batch
// of inferBatch images for at least minTime.
func benchInference(r *results.BenchResult, be, ebe compute.Backend, snn *spiking.Network, inferBatch int, minTime time.Duration,
	images func(n int) (*nn.Tensor, []uint8)) error {
	dm, hasMem := be.(deviceMemory)
	counting, counts := be.(compute.Counting)
	if hasMem {
		dm.ResetPeak()
	}
	sim, err := spiking.NewSimulator(ebe, snn, inferBatch)
	if err != nil {
		return err
	}
	defer sim.Free()
	xi, _ := images(inferBatch)
	in, err := ebe.Alloc(len(xi.Data))
	if err != nil {
		return err
	}
	defer ebe.Free(in)
	ebe.Upload(in, xi.Data)
	xv := nn.Value{Shape: xi.Shape, Buf: in}
	// the warm-up run records the firing rates and the kernels' work
	work, hasWork := be.(kernelWork)
	if hasWork {
		work.ResetWork()
	}
	if _, err := sim.Run(context.Background(), xv, false, true); err != nil {
		return err
	}
	if err := ebe.Err(); err != nil {
		return err
	}
	if hasWork {
		r.InferWork = work.Work()
	}
	if r.FiringRates, err = sim.Rates(inferBatch); err != nil {
		return err
	}
	r.IFLayers = sim.IFNames()
	n := 0
	start := time.Now()
	for n == 0 || time.Since(start) < minTime {
		if counts && n == 0 {
			counting.ResetTraffic()
		}
		if _, err := sim.Run(context.Background(), xv, false, false); err != nil {
			return err
		}
		if counts && n == 0 {
			t := counting.Traffic()
			r.InferTraffic = &t
		}
		n++
		if n%8 == 0 {
			if err := ebe.Err(); err != nil {
				return err
			}
		}
	}
	if err := ebe.Err(); err != nil {
		return err
	}
	r.InferBatch = inferBatch
	r.InferImagesPerSec = float64(n*inferBatch) / time.Since(start).Seconds()
	if hasMem {
		_, peak, _ := dm.DeviceMemory()
		r.InferDeviceMB = float64(peak) / (1 << 20)
	}
	return nil
}

// trainBench times training steps of one network on one rank.
type trainBench struct {
	g            *distributed.Group
	be, ebe      compute.Backend // the rank's backend, and the engine's (its shard under g)
	shard        *distributed.Backend
	net          *nn.Network
	snn          *spiking.Network
	batch, share int
	minTime      time.Duration
	x            *nn.Tensor
	labels       []uint8
	reduced      distributed.ReduceStats // the timed steps' all-reduces
}

// time times method m's training step (BatchNorm in training mode, Adam)
// on a fresh engine, after one untimed warm-up step, for at least
// minTime: every rank takes as many steps as rank 0 decides.
func (tb *trainBench) time(m Method) (results.StepBench, error) {
	var r results.StepBench
	e, err := NewMethodEngine(tb.ebe, tb.net, tb.snn, tb.share, m)
	if err != nil {
		return r, err
	}
	defer e.Free()
	if l, err := e.Program(true); err == nil {
		pl, err := l.Plan()
		if err != nil {
			return r, err
		}
		list, err := l.List(tb.share)
		if err != nil {
			return r, err
		}
		r.ActivationMB = float64(pl.Bytes()) / (1 << 20)
		r.GFLOPPerImage = float64(list.Totals.FLOPs) / float64(tb.share) / 1e9
	}
	shard := tb.shard
	if shard != nil {
		shard.WatchGradients(tb.net.Params())
	}
	opt := NewAdam(1e-4, 0.8, 0.99, 1e-8, 1e-6)
	defer opt.Free()
	step := func() error {
		if shard != nil {
			shard.SetShare(tb.share, tb.share, tb.batch)
		}
		_, err := e.Step(tb.x, tb.labels, true)
		if shard != nil {
			shard.EndShare()
			if err == nil {
				err = shard.ReduceGradients()
			}
		}
		if err != nil {
			return err
		}
		return opt.Update(tb.ebe, tb.net.Params())
	}
	// more steps? rank 0 decides for all, so that they take the same
	more := func(want bool) (bool, error) {
		if tb.g == nil {
			return want, nil
		}
		v := []float64{0}
		if want && tb.g.Rank() == 0 {
			v[0] = 1
		}
		err := tb.g.Host().AllReduceF64(v)
		return v[0] > 0, err
	}
	dm, hasMem := tb.be.(deviceMemory)
	if hasMem {
		dm.ResetPeak()
	}
	if err := step(); err != nil {
		return r, err
	}
	if err := tb.ebe.Err(); err != nil {
		return r, err
	}
	counting, counts := tb.be.(compute.Counting)
	if shard != nil {
		shard.ResetStats()
	}
	start := time.Now()
	for {
		goOn, err := more(r.Steps == 0 || time.Since(start) < tb.minTime)
		if err != nil {
			return r, err
		}
		if !goOn {
			break
		}
		if counts && r.Steps == 0 { // one steady-state step's traffic
			counting.ResetTraffic()
		}
		if err := step(); err != nil {
			return r, err
		}
		if counts && r.Steps == 0 {
			t := counting.Traffic()
			r.StepTraffic = &t
		}
		r.Steps++
	}
	if err := tb.ebe.Err(); err != nil {
		return r, err
	}
	el := time.Since(start).Seconds()
	r.StepSeconds = el / float64(r.Steps)
	r.ImagesPerSec = float64(r.Steps*tb.batch) / el
	if shard != nil {
		tb.reduced = shard.Stats()
	}
	if hasMem {
		_, peak, _ := dm.DeviceMemory()
		r.DeviceMB = float64(peak) / (1 << 20)
	}
	e.Free()
	if err := opt.Free(); err != nil {
		return r, err
	}
	if hasMem {
		dm.ResetPeak()
	}
	return r, nil
}

// FLOPs counts, per image, the dense floating-point operations (2 per
// multiply-add) of the convolutions and linear layers: of the ANN's
// forward pass, of the SNN's static input layer and of one SNN time step.
func FLOPs(ann *nn.Network, snn *spiking.Network) (annF, staticF, stepF float64, err error) {
	if _, err = ann.Shapes(); err != nil {
		return
	}
	if snn == nil || snn.ANN != ann {
		return 0, 0, 0, fmt.Errorf("no SNN of the network (spiking.New of it makes it)")
	}
	annF = 2 * float64(macs(ann, len(ann.Layers)))
	staticF = 2 * float64(macs(ann, snn.Static))
	// every other layer of the body runs at each step (IF layers do no MACs)
	return annF, staticF, annF - staticF, nil
}
