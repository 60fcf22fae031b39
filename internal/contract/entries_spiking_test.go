package contract_test

import (
	"context"
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// Entries of spiking: nil and zero networks and simulators, hostile
// settings, batches of the wrong shape, steps that do not ascend, programs
// that simulate nothing.

// tinySim is a simulator of the tiny network's SNN on a CPU, bound there,
// and the CPU.
func tinySim(c *C) (*spiking.Simulator, compute.Backend) {
	_, snn := tinyNet(c.t)
	be := compute.NewCPU()
	if err := snn.Bind(be); err != nil {
		c.t.Fatal(err)
	}
	sim, err := spiking.NewSimulator(be, snn, 2)
	if err != nil {
		c.t.Fatal(err)
	}
	return sim, be
}

// images is a value of n tiny-network inputs on be.
func images(be compute.Backend, n int) nn.Value {
	b, _ := be.Alloc(n * 784)
	be.Upload(b, ones(n*784))
	return nn.Value{Shape: []int{n, 1, 28, 28}, Buf: b}
}

func init() {
	ctx := context.Background()
	entries["spiking.DefaultConfig"] = func(c *C) { c.Ok("", func() error { return spiking.DefaultConfig().Validate() }) }
	entries["spiking.Config.Validate"] = func(c *C) {
		for _, cfg := range []spiking.Config{{}, {Timesteps: -1, Threshold: 1}, {Timesteps: huge, Threshold: 1}, {Timesteps: 1, Threshold: float32(math.NaN())},
			{Timesteps: 1, Threshold: 0, Reset: 1}, {Timesteps: 1, Threshold: math.MaxFloat32, Reset: -math.MaxFloat32}} {
			c.Err("zero and hostile settings", func() error { return cfg.Validate() })
		}
	}
	entries["spiking.Config.CheckGiven"] = func(c *C) {
		all := func(setting.Name) bool { return true }
		c.Err("zero setting, all given", func() error { return spiking.Config{}.CheckGiven(all) })
		c.Err("NaN v_th given", func() error {
			return spiking.Config{Threshold: float32(math.NaN())}.CheckGiven(func(n setting.Name) bool { return n == "threshold" })
		})
		c.Ok("nothing given", func() error {
			return spiking.Config{Timesteps: -1}.CheckGiven(func(setting.Name) bool { return false })
		})
	}
	entries["spiking.Config.Fill"] = func(c *C) {
		none := func(setting.Name) bool { return false }
		c.NoPanic("zero settings, nothing given", func() { spiking.Config{}.Fill(spiking.Config{}, none) })
		c.Check(spiking.DefaultConfig().Fill(spiking.Config{Timesteps: -1}, none).Timesteps == -1, "a part not given is not the file's")
	}
	entries["spiking.Settings"] = func(c *C) { c.NoPanic("", func() { c.Check(len(spiking.Settings()) > 0, "no settings") }) }
	entries["spiking.Setting.Field"] = func(c *C) {
		c.NoPanic("each setting of a zero Config", func() {
			for _, s := range spiking.Settings() {
				c.Check(s.Field(&spiking.Config{}) != nil, "setting %s: no field", s.Name)
			}
		})
	}
	entries["spiking.Setting.Text"] = func(c *C) {
		c.NoPanic("each setting of zero and NaN-filled Configs", func() {
			nan := float32(math.NaN())
			for _, s := range spiking.Settings() {
				s.Text(spiking.Config{})
				s.Text(spiking.Config{Timesteps: -1, Threshold: nan, Reset: nan, InitialCharge: nan, Clip: "\x00"})
			}
		})
	}
	entries["spiking.Setting.Set"] = func(c *C) {
		c.NoPanic("each setting of a zero Config, from empty, huge and odd text", func() {
			for _, s := range spiking.Settings() {
				for _, t := range []string{"", "1e999", "-0x8000000000000000", "NaN", "\x00"} {
					_ = s.Set(&spiking.Config{}, t)
				}
			}
		})
	}
	entries["spiking.New"] = func(c *C) {
		net, _ := tinyNet(c.t)
		c.Err("nil network", func() error { _, err := spiking.New(nil, spiking.DefaultConfig()); return err })
		c.Err("zero settings", func() error { _, err := spiking.New(net, spiking.Config{}); return err })
		c.Err("zero network", func() error { _, err := spiking.New(&nn.Network{}, spiking.DefaultConfig()); return err })
		c.Err("a nil layer", func() error {
			_, err := spiking.New(&nn.Network{InputShape: []int{4}, Layers: []nn.Layer{nil}}, spiking.DefaultConfig())
			return err
		})
		c.Err("a softmax inside", func() error {
			_, err := spiking.New(&nn.Network{InputShape: []int{4}, Layers: []nn.Layer{&nn.Softmax{}, &nn.ReLU{}}}, spiking.DefaultConfig())
			return err
		})
	}
	entries["spiking.ClipTwins"] = func(c *C) {
		c.NoPanic("", func() { c.Check(len(spiking.ClipTwins()) == 2, "not two twins") })
	}
	entries["spiking.Config.ClipTwin"] = func(c *C) {
		c.NoPanic("zero and hostile settings", func() {
			c.Check(spiking.Config{}.ClipTwin() == spiking.DefaultClip, "the zero setting's twin is not the default")
			spiking.Config{Clip: "nope"}.ClipTwin()
		})
		c.Err("an unknown twin: Validate refuses it", func() error {
			cfg := spiking.DefaultConfig()
			cfg.Clip = "nope"
			return cfg.Validate()
		})
	}
	entries["spiking.Config.NeuronThreshold"] = func(c *C) {
		c.NoPanic("nil layer, a zero Clip", func() {
			spiking.Config{}.NeuronThreshold(nil)
			spiking.Config{Clip: spiking.ClipSaturate}.NeuronThreshold(&nn.Clip{})
		})
	}
	entries["spiking.Role"] = func(c *C) {
		c.NoPanic("nil, a nil layer", func() { spiking.Role(nil); spiking.Role(&nn.Network{Layers: []nn.Layer{nil}}) })
	}
	entries["spiking.CheckSteps"] = func(c *C) {
		for _, ts := range [][]int{nil, {0}, {3, 2}, {1, 1}, {huge}} {
			c.Err("hostile steps", func() error { return spiking.CheckSteps(ts, 5) })
		}
		c.Err("T -1", func() error { return spiking.CheckSteps([]int{1}, -1) })
	}

	// Network
	nilS := (*spiking.Network)(nil)
	zeroS := func() *spiking.Network { return &spiking.Network{} }
	x, _ := nn.NewTensor(2, 1, 28, 28)
	for _, m := range []string{"Run", "Simulate", "RunOn"} {
		call := func(s *spiking.Network, x *nn.Tensor) error {
			var err error
			switch m {
			case "Run":
				_, err = s.Run(x)
			case "Simulate":
				_, err = s.Simulate(x, true)
			case "RunOn":
				_, err = s.RunOn(ctx, compute.NewCPU(), x, false, -3)
			}
			return err
		}
		entries["spiking.Network."+m] = func(c *C) {
			_, snn := tinyNet(c.t)
			c.Err("nil receiver", func() error { return call(nilS, x) })
			c.Err("zero network", func() error { return call(zeroS(), x) })
			c.Err("nil batch", func() error { return call(snn, nil) })
			c.Err("a batch of another shape", func() error { y, _ := nn.NewTensor(2, 784); return call(snn, y) })
			c.Err("a batch whose data is not its shape's", func() error { return call(snn, &nn.Tensor{Shape: []int{2, 1, 28, 28}}) })
			c.Ok("two images", func() error { return call(snn, x) })
		}
	}
	entries["spiking.Network.RunOn"] = func(c *C) {
		_, snn := tinyNet(c.t)
		c.Err("nil receiver", func() error { _, err := nilS.RunOn(ctx, compute.NewCPU(), x, false, 0); return err })
		c.Err("nil context", func() error { _, err := snn.RunOn(nil, compute.NewCPU(), x, false, 0); return err })
		c.Err("nil backend", func() error { _, err := snn.RunOn(ctx, nil, x, false, 0); return err })
		c.Err("a cancelled context", func() error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := snn.RunOn(cctx, compute.NewCPU(), x, false, 0)
			return err
		})
		c.Ok("two images, batch 2^62", func() error { _, err := snn.RunOn(ctx, compute.NewCPU(), x, false, huge); return err })
	}
	for _, m := range []string{"Bind", "Sync", "Release"} {
		call := func(s *spiking.Network) error {
			switch m {
			case "Bind":
				return s.Bind(compute.NewCPU())
			case "Sync":
				return s.Sync()
			}
			return s.Release()
		}
		entries["spiking.Network."+m] = func(c *C) {
			c.Err("nil receiver", func() error { return call(nilS) })
			_, snn := tinyNet(c.t)
			c.Ok("the tiny network's SNN", func() error { return call(snn) })
		}
	}
	entries["spiking.Network.Bind"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilS.Bind(compute.NewCPU()) })
		c.Err("zero network", func() error { return zeroS().Bind(compute.NewCPU()) })
		_, snn := tinyNet(c.t)
		c.Err("nil backend", func() error { return snn.Bind(nil) })
	}
	for _, m := range []string{"Graph", "Stateful", "Lowering", "Upload"} {
		entries["spiking.Network."+m] = func(c *C) {
			c.NoPanic("zero network", func() {
				s := zeroS()
				switch m {
				case "Graph":
					s.Graph()
				case "Stateful":
					s.Stateful()
				case "Lowering":
					s.Lowering()
				case "Upload":
					s.Upload()
				}
			})
		}
	}
	entries["spiking.Network.Lowering"] = func(c *C) {
		c.Err("zero network: lower refuses what it gives", func() error {
			_, err := lower.Simulation(zeroS().Lowering(), lower.SNNOptions{Options: lower.Options{Capacity: 1}, Steps: 1})
			return err
		})
	}

	// Simulator
	nilSim := (*spiking.Simulator)(nil)
	zeroSim := func() *spiking.Simulator { return &spiking.Simulator{} }
	entries["spiking.NewSimulator"] = func(c *C) {
		_, snn := tinyNet(c.t)
		c.Err("nil backend", func() error { _, err := spiking.NewSimulator(nil, snn, 1); return err })
		c.Err("nil SNN", func() error { _, err := spiking.NewSimulator(compute.NewCPU(), nil, 1); return err })
		c.Err("zero SNN", func() error { _, err := spiking.NewSimulator(compute.NewCPU(), zeroS(), 1); return err })
		c.Err("capacity 0", func() error { _, err := spiking.NewSimulator(compute.NewCPU(), snn, 0); return err })
		c.Err("capacity 2^40", func() error { _, err := spiking.NewSimulator(compute.NewCPU(), snn, 1<<40); return err })
	}
	entries["spiking.Simulator.Run"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilSim.Run(ctx, nn.Value{}, false, false); return err })
		c.Err("zero simulator", func() error { _, err := zeroSim().Run(ctx, nn.Value{}, false, false); return err })
		sim, be := tinySim(c)
		c.Err("zero value", func() error { _, err := sim.Run(ctx, nn.Value{}, false, false); return err })
		c.Err("nil context", func() error { _, err := sim.Run(nil, images(be, 1), false, false); return err })
		c.Err("a batch of another shape", func() error {
			b, _ := be.Alloc(2 * 784)
			_, err := sim.Run(ctx, nn.Value{Shape: []int{2, 784}, Buf: b}, false, false)
			return err
		})
		c.Err("a batch beyond capacity", func() error { _, err := sim.Run(ctx, images(be, 3), false, false); return err })
		c.Ok("two images, BatchNorm training", func() error { _, err := sim.Run(ctx, images(be, 2), true, true); return err })
	}
	entries["spiking.Simulator.RunAt"] = func(c *C) {
		read := func(int, nn.Value) error { return nil }
		c.Err("nil receiver", func() error { return nilSim.RunAt(ctx, nn.Value{}, false, false, []int{1}, read) })
		sim, be := tinySim(c)
		c.Err("nil read", func() error { return sim.RunAt(ctx, images(be, 1), false, false, []int{1}, nil) })
		c.Err("steps that descend", func() error { return sim.RunAt(ctx, images(be, 1), false, false, []int{3, 1}, read) })
		c.Err("steps beyond T", func() error { return sim.RunAt(ctx, images(be, 1), false, false, []int{huge}, read) })
		c.Ok("steps 1, 2 and 15", func() error { return sim.RunAt(ctx, images(be, 1), false, true, []int{1, 2, 15}, read) })
	}
	entries["spiking.Simulator.CountSynOps"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilSim.CountSynOps() })
		c.Err("zero simulator", func() error { return zeroSim().CountSynOps() })
		sim, _ := tinySim(c)
		c.Ok("twice", func() error { sim.CountSynOps(); return sim.CountSynOps() })
	}
	entries["spiking.Simulator.Rates"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilSim.Rates(1); return err })
		c.Err("zero simulator", func() error { _, err := zeroSim().Rates(1); return err })
		sim, be := tinySim(c)
		c.Err("before a run", func() error { _, err := sim.Rates(1); return err })
		sim.Run(ctx, images(be, 1), false, false)
		c.Err("a run that did not count them", func() error { _, err := sim.Rates(1); return err })
		sim.Run(ctx, images(be, 1), false, true)
		c.Err("n 0", func() error { _, err := sim.Rates(0); return err })
		c.Ok("after a run that counted them", func() error { _, err := sim.Rates(1); return err })
	}
	entries["spiking.Simulator.RatesAt"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilSim.RatesAt(1, 1); return err })
		sim, be := tinySim(c)
		sim.Run(ctx, images(be, 1), false, true)
		c.Err("t -1", func() error { _, err := sim.RatesAt(1, -1); return err })
	}
	for _, m := range []string{"Free", "OutputPotentials", "OutputShape", "IFNames", "SynOps"} {
		entries["spiking.Simulator."+m] = func(c *C) {
			sim, _ := tinySim(c)
			for _, s := range []*spiking.Simulator{zeroSim(), sim} {
				c.NoPanic("zero simulator and one before any run", func() {
					switch m {
					case "Free":
						s.Free()
						s.Free()
					case "OutputPotentials":
						c.Check(s.OutputPotentials(1).Buf == nil, "potentials before a run")
					case "OutputShape":
						s.OutputShape()
					case "IFNames":
						s.IFNames()
					case "SynOps":
						s.SynOps()
					}
				})
			}
		}
	}

	// the functions over a machine and a program
	sim := func(c *C) (*program.Machine, *lower.Lowered) {
		_, snn := tinyNet(c.t)
		be := compute.NewCPU()
		snn.Bind(be)
		l, err := lower.Simulation(snn.Lowering(), lower.SNNOptions{Options: lower.Options{Capacity: 1}, Steps: 5, Rates: true, SynOps: true})
		if err != nil {
			c.t.Fatal(err)
		}
		m := program.NewMachine(be)
		if err := m.Load(l.Program); err != nil {
			c.t.Fatal(err)
		}
		m.Bind(l.Input, images(be, 1).Buf)
		return m, l
	}
	entries["spiking.RunSteps"] = func(c *C) {
		read := func(int) error { return nil }
		m, l := sim(c)
		c.Err("nil everything", func() error { return spiking.RunSteps(nil, nil, nil, 0, nil, nil) })
		c.Err("nil machine", func() error { return spiking.RunSteps(ctx, nil, l, 1, []int{1}, read) })
		c.Err("a program without an SNN", func() error { return spiking.RunSteps(ctx, m, &lower.Lowered{Program: l.Program}, 1, []int{1}, read) })
		c.Err("an SNN of 0 steps at once", func() error {
			t := *l
			sl := *l.SNN
			sl.Steps = 0
			t.SNN = &sl
			return spiking.RunSteps(ctx, m, &t, 1, []int{1}, read)
		})
		c.Err("no steps", func() error { return spiking.RunSteps(ctx, m, l, 1, nil, read) })
		c.Err("batch 2", func() error { return spiking.RunSteps(ctx, m, l, 2, []int{1}, read) })
		c.Ok("steps 1 and 15", func() error { return spiking.RunSteps(ctx, m, l, 1, []int{1, 15}, read) })
	}
	for _, f := range []string{"Counts", "Potentials"} {
		entries["spiking."+f] = func(c *C) {
			m, l := sim(c)
			c.NoPanic("nil machine and program, a program without an SNN, hostile batches", func() {
				get := spiking.Counts
				if f == "Potentials" {
					get = spiking.Potentials
				}
				get(nil, nil, 1)
				get(m, &lower.Lowered{}, 1)
				get(nil, l, 1)
				c.Check(get(m, l, huge).Buf == nil && get(m, l, -1).Buf == nil, "a value of a batch the program has not")
			})
		}
	}
	entries["spiking.Rates"] = func(c *C) {
		m, l := sim(c)
		c.Err("nil machine, nil program", func() error { _, err := spiking.Rates(nil, nil, 1, 1); return err })
		c.Err("a program without an SNN", func() error { _, err := spiking.Rates(m, &lower.Lowered{}, 1, 1); return err })
		c.Err("n 0, t 0", func() error { _, err := spiking.Rates(m, l, 0, 0); return err })
		c.Err("counts of a slot the program has not", func() error {
			t := *l
			sl := *l.SNN
			sl.IFCounts, sl.IFNames = []program.Ref{99}, nil
			t.SNN = &sl
			_, err := spiking.Rates(m, &t, 1, 1)
			return err
		})
	}
	entries["spiking.SynOps"] = func(c *C) {
		m, l := sim(c)
		c.NoPanic("nil machine and program; fewer names than nodes", func() {
			spiking.SynOps(nil, nil)
			spiking.SynOps(m, &lower.Lowered{})
			t := *l
			sl := *l.SNN
			sl.SynNames = nil
			t.SNN = &sl
			spiking.SynOps(m, &t)
		})
	}
}
