package contract_test

import (
	"errors"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/program"
)

// Entries of what main added while the contract grew: CUDA graphs
// (Machine.Captured, cuda.Backend.Replay and Graphs), the rules
// FuseIFMaxPool, StartIF, FuseBiasIF, FuseStaticBatchNormIF, FuseReLU, FuseReLUGrad and NoGradFill,
// lower's settings, exporter.Options.Check and compute.PoolFits.

func init() {
	ok := func() error { return nil }
	entries["program.Machine.Captured"] = func(c *C) {
		p := oneOp(&program.Fill{}, 1)
		d := program.Dims{N: 1, Steps: 1}
		c.Err("nil receiver", func() error { return (*program.Machine)(nil).Captured(p, d, ok) })
		c.Err("zero machine", func() error { return (&program.Machine{}).Captured(p, d, ok) })
		c.Err("nil program", func() error { return program.NewMachine(compute.NewCPU()).Captured(nil, d, ok) })
		c.Err("nil work", func() error { return program.NewMachine(compute.NewCPU()).Captured(p, d, nil) })
		c.Err("work that fails", func() error {
			return program.NewMachine(compute.NewCPU()).Captured(p, program.Dims{N: -1}, func() error { return errors.New("no") })
		})
		c.Ok("on the emulated device with graphs, an unbound input", func() error {
			be, err := cuda.Open(cuda.Options{Emulate: true, Graphs: true})
			if err != nil {
				return err
			}
			defer be.Close()
			m := program.NewMachine(be)
			m.Bind(5, nil)
			return m.Captured(p, d, ok)
		})
	}
	entries["compute/cuda.Backend.Replay"] = func(c *C) {
		c.Err("nil receiver", func() error { return (*cuda.Backend)(nil).Replay(1, ok) })
		c.Err("zero backend", func() error { return (&cuda.Backend{}).Replay(1, ok) })
		be, _ := emu(c)
		c.Err("nil work", func() error { return be.Replay(1, nil) })
		c.Err("a key that is not comparable", func() error { return be.Replay([]int{1}, ok) })
		c.Ok("a nil key, graphs off", func() error { return be.Replay(nil, ok) })
		c.Ok("twice with graphs", func() error {
			g, err := cuda.Open(cuda.Options{Emulate: true, Graphs: true})
			if err != nil {
				return err
			}
			defer g.Close()
			if err := g.Replay("k", ok); err != nil {
				return err
			}
			return g.Replay("k", ok)
		})
	}
	entries["compute/cuda.Backend.Graphs"] = func(c *C) {
		c.NoPanic("zero backend", func() { (&cuda.Backend{}).Graphs() })
	}
	for name, rule := range map[string]func() lower.Rule{"FuseIFMaxPool": lower.FuseIFMaxPool, "StartIF": lower.StartIF, "FuseBatchNormIF": lower.FuseBatchNormIF,
		"FuseBiasIF": lower.FuseBiasIF, "FuseStaticBatchNormIF": lower.FuseStaticBatchNormIF,
		"FuseReLU": lower.FuseReLU, "FuseReLUGrad": lower.FuseReLUGrad, "NoGradFill": lower.NoGradFill} {
		entries["lower."+name] = func(c *C) {
			c.NoPanic("its Apply on nil, on passes out of range, on a program its Plan refuses", func() {
				r := rule()
				c.Check(r.Apply(nil, 0) == 0, "a rewrite of no program")
				p := oneOp(&program.IF{}, 2)
				c.Check(r.Apply(p, -1) == 0 && r.Apply(p, 9) == 0, "a rewrite of a pass the program has not")
				bad := &program.Program{Ops: []program.Op{nil, &program.Fill{Dst: 7}}, Passes: []program.Pass{{Kind: program.SNNChunk, Lo: 0, Hi: 2}}}
				c.Check(r.Apply(bad, 0) == 0, "a rewrite of a program its Plan refuses")
			})
			c.Ok("the tiny network's SNN lowered with it alone", func() error {
				_, s := tinySNN(c)
				_, err := lower.Simulation(s, lower.SNNOptions{Options: lower.Options{Capacity: 2, Rules: []lower.Rule{rule()}}, Steps: 3})
				return err
			})
		}
	}
	entries["lower.WithRules"] = func(c *C) {
		c.NoPanic("no rules, a zero rule", func() {
			var o lower.Options
			lower.WithRules()(&o)
			c.Check(o.NoRewrites, "no rules is not the plain program")
			lower.WithRules(lower.Rule{})(&o)
		})
		c.Ok("a zero rule, lowered", func() error {
			net, _ := tinyNet(c.t)
			o := lower.Options{Capacity: 1}
			o.Apply([]lower.Setting{lower.WithRules(lower.Rule{})})
			_, err := lower.ANN(net, o)
			return err
		})
	}
	entries["lower.Options.Apply"] = func(c *C) {
		c.NoPanic("nil settings, a nil receiver", func() {
			var o lower.Options
			o.Apply([]lower.Setting{nil, lower.WithRules()})
			(*lower.Options)(nil).Apply([]lower.Setting{lower.WithRules()})
		})
	}
	entries["exporter.Options.Check"] = func(c *C) {
		for _, v := range []int{-1, 12, 22, huge} {
			c.Err("hostile opsets", func() error { return exporter.Options{Opset: v}.Check() })
		}
		c.Ok("zero options", func() error { return exporter.Options{}.Check() })
	}
	entries["compute.PoolFits"] = func(c *C) {
		c.NoPanic("zero and hostile geometries", func() {
			c.Check(!compute.PoolFits(compute.PoolGeom{}), "a zero geometry fits")
			c.Check(!compute.PoolFits(compute.PoolGeom{KH: 1 << 32, KW: 1 << 32, SH: 1 << 32, SW: 1 << 32}), "2^32×2^32 windows fit (their product wraps to 0)")
			c.Check(compute.PoolFits(compute.PoolGeom{C: 1, H: 4, W: 4, KH: 2, KW: 2, SH: 2, SW: 2}), "2×2 windows over 4×4 do not fit")
		})
	}
}
