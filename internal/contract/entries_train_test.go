package contract_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// Entries of train and data.Dataset.Check: nil and zero engines,
// trainers and optimizers, networks and SNNs that do not belong
// together, data sets whose fields do not agree, batches of the wrong
// shape, hostile schedules.

// small are settings for a quick run of the tiny network: batch 2, T 3,
// one epoch.
func small() recipe.Settings {
	s := recipe.Default()
	s.BatchSize, s.Epochs, s.Timesteps = 2, 1, 3
	return s
}

// tinyEngine is an engine of the tiny network (T 3) on a CPU, capacity 2.
func tinyEngine(c *C) *train.Engine {
	net, snn := tinyNet(c.t)
	snn.Config.Timesteps = 3
	e, err := train.NewEngine(compute.NewCPU(), net, snn, 2)
	if err != nil {
		c.t.Fatal(err)
	}
	return e
}

// badSets are data sets whose fields do not agree.
func badSets(c *C) map[string]*data.Dataset {
	d := tinySet(c.t, 4)
	short := *d
	short.Images = short.Images[:10]
	noLabels := *d
	noLabels.Labels = nil
	bigLabel := *d
	bigLabel.Labels = []uint8{0, 1, 2, 200}
	bigN := *d
	bigN.N = huge
	return map[string]*data.Dataset{"nil": nil, "zero": {}, "with short images": &short, "without labels": &noLabels,
		"with a label beyond its classes": &bigLabel, "of 2^62 images": &bigN}
}

func init() {
	ctx := context.Background()
	// data
	entries["data.Dataset.Check"] = func(c *C) {
		for what, d := range badSets(c) {
			c.Err("a data set "+what, func() error { return d.Check() })
		}
		c.Ok("a set data.New made", func() error { return tinySet(c.t, 3).Check() })
	}

	// Engine
	entries["train.NewEngine"] = func(c *C) {
		net, snn := tinyNet(c.t)
		other, _ := tinyNet(c.t)
		c.Err("nil backend", func() error { _, err := train.NewEngine(nil, net, snn, 2); return err })
		c.Err("nil networks", func() error { _, err := train.NewEngine(compute.NewCPU(), nil, nil, 2); return err })
		c.Err("the SNN of another network", func() error { _, err := train.NewEngine(compute.NewCPU(), other, snn, 2); return err })
		c.Err("capacity 0", func() error { _, err := train.NewEngine(compute.NewCPU(), net, snn, 0); return err })
		c.Err("capacity 2^40", func() error { _, err := train.NewEngine(compute.NewCPU(), net, snn, 1<<40); return err })
	}
	nilE := (*train.Engine)(nil)
	x, _ := nn.NewTensor(2, 1, 28, 28)
	entries["train.Engine.Step"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilE.Step(x, []uint8{0, 1}, true); return err })
		c.Err("zero engine", func() error { _, err := (&train.Engine{}).Step(x, []uint8{0, 1}, true); return err })
		e := tinyEngine(c)
		c.Err("nil batch", func() error { _, err := e.Step(nil, nil, true); return err })
		c.Err("a batch whose data is not its shape's", func() error {
			_, err := e.Step(&nn.Tensor{Shape: []int{2, 1, 28, 28}}, []uint8{0, 1}, true)
			return err
		})
		c.Err("a batch of another shape", func() error { y, _ := nn.NewTensor(2, 784); _, err := e.Step(y, []uint8{0, 1}, true); return err })
		c.Err("labels short", func() error { _, err := e.Step(x, []uint8{0}, true); return err })
		c.Err("a label beyond the outputs", func() error { _, err := e.Step(x, []uint8{0, 99}, true); return err })
		c.Err("a batch beyond capacity", func() error {
			y, _ := nn.NewTensor(3, 1, 28, 28)
			_, err := e.Step(y, []uint8{0, 1, 2}, true)
			return err
		})
		c.Ok("two images", func() error { _, err := e.Step(x, []uint8{0, 1}, false); return err })
	}
	entries["train.Engine.Predict"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilE.Predict(ctx, x); return err })
		e := tinyEngine(c)
		c.Err("nil batch", func() error { _, err := e.Predict(ctx, nil); return err })
		c.Err("nil context", func() error { _, err := e.Predict(nil, x); return err })
		c.Ok("two images", func() error { _, err := e.Predict(ctx, x); return err })
	}
	for _, m := range []string{"Evaluate", "Report"} {
		call := func(e *train.Engine, ctx context.Context, d *data.Dataset) error {
			if m == "Evaluate" {
				_, err := e.Evaluate(ctx, d)
				return err
			}
			_, err := e.Report(ctx, d)
			return err
		}
		entries["train.Engine."+m] = func(c *C) {
			c.Err("nil receiver", func() error { return call(nilE, ctx, tinySet(c.t, 2)) })
			e := tinyEngine(c)
			for what, d := range badSets(c) {
				c.Err("a data set "+what, func() error { return call(e, ctx, d) })
			}
			c.Err("nil context", func() error { return call(e, nil, tinySet(c.t, 2)) })
			c.Ok("three images", func() error { return call(e, ctx, tinySet(c.t, 3)) })
		}
	}
	entries["train.Engine.Sweep"] = func(c *C) {
		opt := train.SweepOptions{Timesteps: []int{1, 3}}
		c.Err("nil receiver", func() error { _, err := nilE.Sweep(ctx, tinySet(c.t, 2), opt); return err })
		e := tinyEngine(c)
		for what, d := range badSets(c) {
			c.Err("a data set "+what, func() error { _, err := e.Sweep(ctx, d, opt); return err })
		}
		c.Err("no steps", func() error { _, err := e.Sweep(ctx, tinySet(c.t, 2), train.SweepOptions{}); return err })
		c.Err("steps beyond T", func() error {
			_, err := e.Sweep(ctx, tinySet(c.t, 2), train.SweepOptions{Timesteps: []int{huge}})
			return err
		})
		c.Err("steps that descend", func() error {
			_, err := e.Sweep(ctx, tinySet(c.t, 2), train.SweepOptions{Timesteps: []int{3, 1}})
			return err
		})
		c.Ok("steps 1 and 3 over three images", func() error { _, err := e.Sweep(ctx, tinySet(c.t, 3), opt); return err })
	}
	entries["train.Engine.Program"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilE.Program(true); return err })
		c.Ok("batch statistics", func() error { _, err := tinyEngine(c).Program(true); return err })
	}
	entries["train.Engine.Sync"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilE.Sync() })
		c.Err("zero engine", func() error { return (&train.Engine{}).Sync() })
	}
	entries["train.Engine.Capacity"] = func(c *C) { c.NoPanic("zero engine", func() { (&train.Engine{}).Capacity() }) }
	entries["train.Engine.Free"] = func(c *C) {
		c.NoPanic("zero engine; twice", func() { (&train.Engine{}).Free(); e := tinyEngine(c); e.Free(); e.Free() })
	}

	// functions over a backend and the networks
	entries["train.Evaluate"] = func(c *C) {
		net, snn := tinyNet(c.t)
		for what, d := range badSets(c) {
			c.Err("a data set "+what, func() error { _, err := train.Evaluate(ctx, compute.NewCPU(), net, snn, d, 2); return err })
		}
		c.Err("nil backend", func() error { _, err := train.Evaluate(ctx, nil, net, snn, tinySet(c.t, 2), 2); return err })
		c.Err("batch -1", func() error {
			_, err := train.Evaluate(ctx, compute.NewCPU(), net, snn, tinySet(c.t, 2), -1)
			return err
		})
	}
	entries["train.SweepModel"] = func(c *C) {
		net, snn := tinyNet(c.t)
		opt := train.SweepOptions{Timesteps: []int{1, 2}}
		c.Err("nil SNN", func() error {
			_, err := train.SweepModel(ctx, compute.NewCPU(), net, nil, tinySet(c.t, 2), 2, opt)
			return err
		})
		c.Err("nil data set", func() error { _, err := train.SweepModel(ctx, compute.NewCPU(), net, snn, nil, 2, opt); return err })
		c.Err("nil network", func() error {
			_, err := train.SweepModel(ctx, compute.NewCPU(), nil, snn, tinySet(c.t, 2), 2, opt)
			return err
		})
	}
	entries["train.ShardedReport"] = func(c *C) {
		c.Err("nil everything", func() error { _, err := train.ShardedReport(nil, nil, nil, nil); return err })
		c.Err("nil group", func() error { _, err := train.ShardedReport(ctx, tinyEngine(c), tinySet(c.t, 2), nil); return err })
		g, _ := group1(c)
		c.Err("nil data set", func() error { _, err := train.ShardedReport(ctx, tinyEngine(c), nil, g); return err })
		c.Err("nil engine", func() error { _, err := train.ShardedReport(ctx, nil, tinySet(c.t, 2), g); return err })
	}
	entries["train.FLOPs"] = func(c *C) {
		net, snn := tinyNet(c.t)
		c.Err("nil networks", func() error { _, _, _, err := train.FLOPs(nil, nil); return err })
		c.Err("nil SNN", func() error { _, _, _, err := train.FLOPs(net, nil); return err })
		c.Err("a static part beyond the network", func() error {
			other, _ := tinyNet(c.t)
			_, _, _, err := train.FLOPs(other, snn)
			return err
		})
		c.Ok("the tiny network", func() error { _, _, _, err := train.FLOPs(net, snn); return err })
	}
	entries["train.BenchTime"] = func(c *C) {
		for _, s := range []float64{-1, math.NaN(), math.Inf(1), math.MaxFloat64} {
			c.Err(fmt.Sprint(s), func() error { _, err := train.BenchTime(s); return err })
		}
		c.Ok("0", func() error { _, err := train.BenchTime(0); return err })
	}
	for _, f := range []string{"Bench", "BenchRanks", "BenchReport"} {
		entries["train."+f] = func(c *C) {
			net, _ := tinyNet(c.t)
			cfg := spiking.Config{Timesteps: 2, Threshold: 1}
			snn, err := spiking.New(net, cfg)
			if err != nil {
				c.t.Fatal(err)
			}
			call := func(be compute.Backend, snn *spiking.Network, batch, infer int, d *data.Dataset) error {
				var err error
				switch f {
				case "Bench":
					_, err = train.Bench(be, snn, batch, infer, -time.Second, d, train.Method{})
				case "BenchReport":
					_, err = train.BenchReport(nil, be, snn, batch, infer, -time.Second, d, train.Method{})
				default:
					_, err = train.BenchRanks(nil, be, snn, batch, infer, -time.Second, d, train.Method{})
				}
				return err
			}
			c.Err("nil backend", func() error { return call(nil, snn, 1, 1, nil) })
			c.Err("nil SNN", func() error { return call(compute.NewCPU(), nil, 1, 1, nil) })
			c.Err("zero SNN", func() error { return call(compute.NewCPU(), &spiking.Network{}, 1, 1, nil) })
			c.Err("zero settings", func() error { return call(compute.NewCPU(), &spiking.Network{ANN: net}, 1, 1, nil) })
			c.Err("batch 0", func() error { return call(compute.NewCPU(), snn, 0, 1, nil) })
			c.Err("inference batch -1", func() error { return call(compute.NewCPU(), snn, 1, -1, nil) })
			for what, d := range badSets(c) {
				if d != nil {
					c.Err("a data set "+what, func() error { return call(compute.NewCPU(), snn, 1, 1, d) })
				}
			}
			c.Ok("batch 1, the least time", func() error { return call(compute.NewCPU(), snn, 1, 1, tinySet(c.t, 2)) })
		}
	}

	// the optimizer
	nilA := (*train.Adam)(nil)
	entries["train.NewAdam"] = func(c *C) { c.NoPanic("NaN and negative settings", func() { train.NewAdam(-1, 2, -3, 0, -1) }) }
	entries["train.Adam.Update"] = func(c *C) {
		p := nn.NewParam("w", ones(4), 4)
		c.Err("nil receiver", func() error { return nilA.Update(compute.NewCPU(), []*nn.Param{p}) })
		c.Err("nil backend", func() error { return train.NewAdam(1e-3, 0.9, 0.99, 1e-8, 0).Update(nil, []*nn.Param{p}) })
		c.Err("a nil parameter", func() error {
			return train.NewAdam(1e-3, 0.9, 0.99, 1e-8, 0).Update(compute.NewCPU(), []*nn.Param{nil})
		})
		c.Ok("a parameter not bound to the backend yet (the update binds it)", func() error {
			return train.NewAdam(1e-3, 0.9, 0.99, 1e-8, 0).Update(compute.NewCPU(), []*nn.Param{nn.NewParam("u", ones(2), 2)})
		})
		c.Ok("zero optimizer, a bound parameter", func() error {
			be := compute.NewCPU()
			q := nn.NewParam("v", ones(2), 2)
			if _, err := q.Bind(be); err != nil {
				return err
			}
			return (&train.Adam{}).Update(be, []*nn.Param{q})
		})
	}
	for _, m := range []string{"Sync", "Free"} {
		entries["train.Adam."+m] = func(c *C) {
			call := func(a *train.Adam) error {
				if m == "Sync" {
					return a.Sync()
				}
				return a.Free()
			}
			c.Err("nil receiver", func() error { return call(nilA) })
			c.Ok("zero optimizer", func() error { return call(&train.Adam{}) })
		}
	}
	entries["train.Adam.Program"] = func(c *C) { c.NoPanic("zero optimizer", func() { (&train.Adam{}).Program() }) }
	entries["train.Augment"] = func(c *C) {
		rng := rand.New(rand.NewPCG(1, 2))
		img := make([]float32, 28*28)
		c.Err("nil source of randomness", func() error { return train.Augment(nil, 1, 28, 28, img, img) })
		c.Err("short images", func() error { return train.Augment(rng, 1, 28, 28, img[:5], make([]float32, 10)) })
		c.Err("negative and huge sizes", func() error { return train.Augment(rng, -1, huge, huge, nil, nil) })
		c.Ok("a 1×1×1 image", func() error { return train.Augment(rng, 1, 1, 1, []float32{1}, []float32{0}) })
		c.Ok("a 3×32×32 image", func() error { return train.Augment(rng, 3, 32, 32, make([]float32, 3072), make([]float32, 3072)) })
	}

	// the trainer
	entries["train.NewTrainer"] = func(c *C) {
		net, snn := tinyNet(c.t)
		other, _ := tinyNet(c.t)
		d := tinySet(c.t, 4)
		c.Err("nil test set", func() error { _, err := train.NewTrainer(small(), net, snn, d, nil); return err })
		c.Err("nil training set", func() error { _, err := train.NewTrainer(small(), net, snn, nil, d); return err })
		c.Err("nil networks", func() error { _, err := train.NewTrainer(small(), nil, nil, d, d); return err })
		c.Err("the SNN of another network", func() error { _, err := train.NewTrainer(small(), other, snn, d, d); return err })
		c.Err("zero settings", func() error { _, err := train.NewTrainer(recipe.Settings{}, net, snn, d, d); return err })
		for what, bad := range badSets(c) {
			c.Err("a test set "+what, func() error { _, err := train.NewTrainer(small(), net, snn, d, bad); return err })
		}
		c.Err("a network whose output is not classes", func() error {
			n := &nn.Network{InputShape: []int{1, 28, 28}, Layers: []nn.Layer{&nn.ReLU{}}}
			s, err := spiking.New(n, spiking.DefaultConfig())
			if err != nil {
				return err
			}
			_, err = train.NewTrainer(small(), n, s, d, d)
			return err
		})
	}
	entries["train.Schedule"] = func(c *C) {
		c.Err("n -1", func() error { _, _, err := train.Schedule(small(), -1, 0); return err })
		c.Err("n 2^62", func() error { _, _, err := train.Schedule(small(), huge, 0); return err })
		c.Err("epoch -1", func() error { _, _, err := train.Schedule(small(), 4, -1); return err })
		c.Err("batch size 0 (it looped forever with augmentation)", func() error {
			s := small()
			s.BatchSize, s.Augment = 0, true
			_, _, err := train.Schedule(s, 4, 0)
			return err
		})
		c.Ok("no images", func() error { _, _, err := train.Schedule(small(), 0, 0); return err })
	}
	entries["train.Resumed"] = func(c *C) {
		c.Err("nil changed", func() error { _, err := train.Resumed(small(), small(), nil); return err })
		c.Ok("zero settings, nothing changed", func() error {
			_, err := train.Resumed(recipe.Settings{}, recipe.Settings{}, func(string) bool { return false })
			return err
		})
	}
	entries["train.ParseTimesteps"] = func(c *C) {
		for _, s := range []string{"", "-", "0", "-5", "5-1", "1-99999999999999999999", "1-1048577", "1-1000000:1", "8:2", "a,b", "1-10:0"} {
			c.Err("hostile lists", func() error { _, err := train.ParseTimesteps(s); return err })
		}
	}
	nilT := (*train.Trainer)(nil)
	zeroT := func() *train.Trainer { return &train.Trainer{} }
	tinyTrainer := func(c *C) *train.Trainer {
		net, snn := tinyNet(c.t)
		tr, err := train.NewTrainer(small(), net, snn, tinySet(c.t, 4), tinySet(c.t, 2))
		if err != nil {
			c.t.Fatal(err)
		}
		return tr
	}
	entries["train.Trainer.Engine"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilT.Engine(); return err })
		c.Err("zero trainer", func() error { _, err := zeroT().Engine(); return err })
	}
	entries["train.Trainer.Close"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilT.Close() })
		c.Err("zero trainer", func() error { return zeroT().Close() })
		c.Ok("before any run", func() error { return tinyTrainer(c).Close() })
	}
	entries["train.Trainer.Run"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilT.Run(ctx) })
		c.Err("zero trainer", func() error { return zeroT().Run(ctx) })
		c.Err("nil context", func() error { return tinyTrainer(c).Run(nil) })
		c.Ok("one epoch of the tiny network", func() error { tr := tinyTrainer(c); defer tr.Close(); return tr.Run(ctx) })
	}
	entries["train.Trainer.Checkpoint"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilT.Checkpoint(); return err })
		c.Err("zero trainer", func() error { _, err := zeroT().Checkpoint(); return err })
		c.Ok("before any run", func() error { _, err := tinyTrainer(c).Checkpoint(); return err })
	}
	entries["train.Trainer.Resume"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilT.Resume(&checkpoint.Checkpoint{}) })
		c.Err("zero trainer", func() error { return zeroT().Resume(&checkpoint.Checkpoint{}) })
		c.Err("nil checkpoint", func() error { return tinyTrainer(c).Resume(nil) })
		c.Err("zero checkpoint", func() error { return tinyTrainer(c).Resume(&checkpoint.Checkpoint{}) })
	}
	entries["train.Trainer.Batches"] = func(c *C) {
		c.NoPanic("zero trainer", func() { c.Check(zeroT().Batches() == 0, "batches of no training set") })
	}
	entries["train.Run"] = func(c *C) {
		c.Err("nil trainer", func() error { return train.Run(ctx, nil, train.RunOptions{}) })
		c.Err("zero trainer", func() error { return train.Run(ctx, zeroT(), train.RunOptions{}) })
		c.Err("no output", func() error { return train.Run(ctx, tinyTrainer(c), train.RunOptions{}) })
		c.Ok("one epoch to a file", func() error {
			var out bytes.Buffer
			return train.Run(ctx, tinyTrainer(c), train.RunOptions{Output: filepath.Join(c.t.TempDir(), "a.safetensors"), Stdout: &out})
		})
	}
	entries["train.NewProgressLine"] = func(c *C) {
		c.NoPanic("nil writer", func() { c.Check(train.NewProgressLine(nil) == nil, "a line on no writer") })
	}
	for _, m := range []string{"Show", "Clear", "Terminal"} {
		entries["train.ProgressLine."+m] = func(c *C) {
			for _, p := range []*train.ProgressLine{nil, {}, train.NewProgressLine(&bytes.Buffer{})} {
				c.NoPanic("nil, zero and on a buffer", func() {
					switch m {
					case "Show":
						p.Show("x", true)
					case "Clear":
						p.Clear()
					case "Terminal":
						p.Terminal()
					}
				})
			}
		}
	}
}
