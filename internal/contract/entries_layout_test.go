package contract_test

import (
	"math"
	"slices"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/compute/refmath"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/program"
)

// Entries of the channels-last API (program's layouts and Transpose op,
// lower's channels-last settings). The layout queries of a Program answer
// for a ref that names no slot, a nil op or a nil program as for values
// without a [C H W] form (NCHW, false, zeros); Insert and Substitute
// refuse what they cannot do with an error and change nothing; a
// Transpose op whose sizes no kernel takes, or whose operands are shorter
// than its matrices, is an error of the run (Machine.Run), before any
// kernel runs: the CUDA backend's kernels trust their sizes.

// valueOp is an op that is not a pointer to a struct (Substitute refuses
// it).
type valueOp struct{ X program.Ref }

func (valueOp) Kernel() string                       { return "Copy" }
func (o valueOp) Operands() (reads, w []program.Ref) { return []program.Ref{o.X}, nil }
func (valueOp) Detail() string                       { return "" }
func (valueOp) Run(*program.Machine)                 {}

// refOp is an op that is a pointer to a Ref, not to a struct.
type refOp program.Ref

func (*refOp) Kernel() string                     { return "Copy" }
func (*refOp) Operands() (reads, w []program.Ref) { return nil, nil }
func (*refOp) Detail() string                     { return "" }
func (*refOp) Run(*program.Machine)               {}

// selfWrap is a backend that says it wraps itself.
type selfWrap struct{ compute.Backend }

func (s *selfWrap) Inner() compute.Backend { return s }

// planes is a program of one pass with slots of rows [2 3 4] (NHWC), [1 3
// 4], [2 1 1], a flat view of the first, a [6] value and a slot of hostile
// sizes [2^62 2^62 2^62], and ops: a ReLU on the first.
func planes() *program.Program {
	b := program.NewBuilder(program.Dims{N: 2, Steps: 1})
	x := b.Slot(program.Slot{Name: "x", Kind: program.Value, Shape: []int{2, 3, 4}, Rate: program.Batch, Layout: program.NHWC, Alias: program.None})
	b.Value("one channel", []int{1, 3, 4}, program.Batch)
	b.Value("one pixel", []int{2, 1, 1}, program.Batch)
	b.View("flat", x, []int{24})
	b.Value("flat value", []int{6}, program.Batch)
	b.Value("hostile", []int{huge, huge, huge}, program.Batch)
	b.Begin(program.ANNForward, false)
	b.Emit(&program.ReLU{X: x, Y: x})
	b.End()
	return b.Program()
}

// transposeProgram is a program of one pass that writes a [2 3] value
// (rate Once: 1, 2, …, 6) and transposes it into a [3 2] value, kept, with
// op (its X and Y set unless they are set).
func transposeProgram(op *program.Transpose) (p *program.Program, y program.Ref) {
	b := program.NewBuilder(program.Dims{N: 2, Steps: 3})
	x := b.Value("x", []int{2, 3}, program.Once)
	y = b.Value("y", []int{3, 2}, program.Once)
	b.Keep(y)
	if op.X == 0 && op.Y == 0 {
		op.X, op.Y = x, y
	}
	b.Begin(program.SNNChunk, false)
	b.Emit(&program.Const{Dst: x, Data: []float32{1, 2, 3, 4, 5, 6}})
	b.Emit(op)
	b.End()
	return b.Program(), y
}

// runOn loads p on be and runs its pass for 2 samples and 3 steps:
// Machine.Run's error alone (the run's, not the backend's Err).
func runOn(be compute.Backend, p *program.Program) error {
	m := program.NewMachine(be)
	defer m.Free()
	if err := m.Load(p); err != nil {
		return err
	}
	return m.Run(p, 0, program.Dims{N: 2, Steps: 3})
}

// transposeRun holds Transpose ops of hostile sizes to an error of the
// run, on the CPU and on the emulated device (where a kernel given them
// would run past its buffers), and a valid one to refmath's transpose.
func transposeRun(c *C) {
	be, _ := emu(c)
	hostile := map[string]program.Transpose{
		"Rows -1":                      {Rate: program.Once, Rows: -1, Cols: 3},
		"Cols 2^62":                    {Rate: program.Once, Rows: 2, Cols: huge},
		"Rows·Cols overflowing":        {Rate: program.Once, Rows: huge, Cols: huge},
		"Count -1":                     {Rate: program.Once, Count: -1, Rows: 2, Cols: 3},
		"Count 2^62":                   {Rate: program.Once, Count: huge, Rows: 2, Cols: 3},
		"rows·Count overflowing":       {Rate: program.Steps, Count: 1 << 60, Rows: 1, Cols: 1},
		"matrices beyond its operands": {Rate: program.Once, Rows: 3, Cols: 3},
		"two matrices of six values":   {Rate: program.Once, Count: 2, Rows: 2, Cols: 3},
		"rows at rate Steps":           {Rate: program.Steps, Rows: 2, Cols: 3},
		"no X":                         {Rate: program.Once, Rows: 2, Cols: 3, X: program.None, Y: 1},
	}
	for name, op := range hostile {
		for _, b := range []compute.Backend{compute.NewCPU(), be} {
			c.Err(name+" on "+b.Name()+": Machine.Run refuses it", func() error {
				o := op
				p, _ := transposeProgram(&o)
				return runOn(b, p)
			})
		}
	}
	for _, b := range []compute.Backend{compute.NewCPU(), be} {
		c.Ok("a [2 3] matrix on "+b.Name()+", as refmath transposes it", func() error {
			p, y := transposeProgram(&program.Transpose{Rate: program.Once, Rows: 2, Cols: 3})
			m := program.NewMachine(b)
			defer m.Free()
			if err := m.Load(p); err != nil {
				return err
			}
			d := program.Dims{N: 2, Steps: 3}
			if err := m.Run(p, 0, d); err != nil {
				return err
			}
			got := make([]float32, 6)
			if err := b.Download(got, m.Value(p, y, d)); err != nil {
				return err
			}
			want := refmath.Transpose(1, 2, 3, []float32{1, 2, 3, 4, 5, 6})
			c.Check(slices.Equal(got, want), "[2 3] 1…6 transposed is %v, refmath says %v", got, want)
			return b.Err()
		})
	}
}

func init() {
	// the ops' layouts, on their zero values
	for name, op := range opCases() {
		pre := "program." + name + "."
		switch op().(type) {
		case program.Laid:
			entries[pre+"Activations"] = func(c *C) { activations(c, op()) }
			entries[pre+"LayoutOf"] = func(c *C) {
				c.NoPanic("zero op", func() {
					l := op().(program.Laid).LayoutOf()
					c.Check(!l.Last(), "a zero op computes %s", l)
				})
			}
			entries[pre+"SetLayout"] = func(c *C) {
				c.NoPanic("NHWC, a layout of no kind, then NCHW", func() {
					o := op().(program.Laid)
					o.SetLayout(program.NHWC)
					c.Check(o.LayoutOf() == program.NHWC, "set NHWC, it computes %s", o.LayoutOf())
					o.SetLayout(compute.Layout("diagonal"))
					c.Check(!o.LayoutOf().Valid(), "a layout of no kind set is %q", o.LayoutOf())
					runOne(oneOp(o, 1)) // the kernel's to refuse, through the backend's Err
					o.SetLayout(program.NCHW)
				})
			}
		case program.LayoutFree:
			entries[pre+"Activations"] = func(c *C) { activations(c, op()) }
		}
	}

	// program's layout queries
	nilP := (*program.Program)(nil)
	refs := []program.Ref{program.None, -7, 99, math.MaxInt32}
	entries["program.Program.Planes"] = func(c *C) {
		c.NoPanic("refs of no slot, a nil program, hostile sizes", func() {
			p := planes()
			for _, r := range refs {
				ch, hw, ok := p.Planes(r)
				c.Check(ch == 0 && hw == 0 && !ok, "slot %d has planes %d×%d", r, ch, hw)
			}
			_, _, ok := nilP.Planes(0)
			c.Check(!ok, "a nil program has planes")
			_, _, ok = p.Planes(5)
			c.Check(!ok, "[2^62 2^62 2^62] rows are planes")
			ch, hw, ok := p.Planes(0)
			c.Check(ch == 2 && hw == 12 && ok, "[2 3 4] rows are %d×%d planes (%v)", ch, hw, ok)
			for r := program.Ref(1); r <= 4; r++ {
				_, _, ok := p.Planes(r)
				c.Check(!ok, "slot %s has planes", p.Slot(r).Name)
			}
		})
	}
	entries["program.Program.Neutral"] = func(c *C) {
		c.NoPanic("refs of no slot, a nil program, hostile sizes", func() {
			p := planes()
			for _, r := range refs {
				c.Check(!p.Neutral(r), "slot %d is neutral", r)
			}
			c.Check(!nilP.Neutral(0), "a slot of a nil program is neutral")
			c.Check(p.Neutral(1) && p.Neutral(2) && !p.Neutral(0) && !p.Neutral(3) && !p.Neutral(5), "neutral slots wrong")
			q := planes()
			q.Slots[0].Shape = []int{2, -1, -1}
			c.Check(!q.Neutral(0), "[2 -1 -1] rows are the same in either layout")
		})
	}
	entries["program.Program.Reshaped"] = func(c *C) {
		c.NoPanic("refs of no slot, a nil program, a view of no slot, a cycle of views", func() {
			p := planes()
			for _, r := range refs {
				c.Check(!p.Reshaped(r), "slot %d is reshaped", r)
			}
			c.Check(!nilP.Reshaped(0), "a slot of a nil program is reshaped")
			c.Check(p.Reshaped(3) && !p.Reshaped(0), "the flat view is not reshaped, or its root is")
			bad := &program.Program{Slots: []program.Slot{{Alias: 9, Shape: []int{1}}, {Alias: 2}, {Alias: 1}}}
			bad.Reshaped(0)
			bad.Reshaped(1)
		})
	}
	entries["program.Program.LaidOut"] = func(c *C) {
		c.NoPanic("refs of no slot, a nil program, a layout of no kind", func() {
			p := planes()
			for _, r := range refs {
				c.Check(p.LaidOut(r) == program.NCHW, "slot %d lies %s", r, p.LaidOut(r))
			}
			c.Check(nilP.LaidOut(0) == program.NCHW, "a slot of a nil program lies NHWC")
			c.Check(p.LaidOut(0) == program.NHWC && p.LaidOut(3) == program.NCHW, "x lies %s, its flat view %s", p.LaidOut(0), p.LaidOut(3))
			p.Slots[0].Layout = compute.Layout("diagonal")
			c.Check(p.LaidOut(0) == program.NCHW, "a layout of no kind lies %s", p.LaidOut(0))
		})
	}
	entries["program.Program.Computes"] = func(c *C) {
		c.NoPanic("a nil op, a nil program, ops naming slots it has not", func() {
			p := planes()
			l, acts := p.Computes(nil)
			c.Check(l == program.NCHW && acts == nil, "a nil op computes %s on %v", l, acts)
			l, _ = nilP.Computes(&program.ReLU{X: 5, Y: 9})
			c.Check(l == program.NCHW, "a ReLU of a nil program computes %s", l)
			l, _ = p.Computes(&program.ReLU{X: 99, Y: -7})
			c.Check(l == program.NCHW, "a ReLU of slots the program has not computes %s", l)
			l, _ = p.Computes(&program.ReLU{X: 0, Y: 0})
			c.Check(l == program.NHWC, "a ReLU on NHWC x computes %s", l)
			l, _ = nilP.Computes(&program.Conv2d{G: compute.ConvGeom{Layout: program.NHWC}})
			c.Check(l == program.NHWC, "a channels-last convolution computes %s", l)
			p.Computes(&program.Linear{In: -1, Out: huge})
			p.Computes(&program.Transpose{X: 99, Y: -4})
		})
	}
	entries["program.Program.LayoutWanted"] = func(c *C) {
		c.NoPanic("a nil op, a nil program, refs of no slot", func() {
			p := planes()
			c.Check(p.LayoutWanted(nil, 0) == program.NCHW, "a nil op wants NHWC")
			c.Check(nilP.LayoutWanted(&program.ReLU{X: 0, Y: 0}, 0) == program.NCHW, "a ReLU of a nil program wants NHWC")
			for _, r := range refs {
				p.LayoutWanted(&program.ReLU{X: r, Y: r}, r)
				p.LayoutWanted(&program.IF{Layout: program.NHWC}, r)
			}
			c.Check(p.LayoutWanted(&program.ReLU{X: 0, Y: 0}, 0) == program.NHWC, "a ReLU on NHWC x wants it NCHW")
		})
	}

	// rewriting a program
	entries["program.Program.Insert"] = func(c *C) {
		fill := func() program.Op { return &program.Fill{Dst: 0} }
		c.Err("nil program", func() error { return nilP.Insert(0, 0, fill()) })
		c.Err("zero program", func() error { return (&program.Program{}).Insert(0, 0, fill()) })
		for _, at := range [][2]int{{-1, 0}, {1, 0}, {huge, 0}, {0, -1}, {0, 2}, {0, huge}} {
			c.Err("a pass or position the program has not", func() error {
				p := oneOp(&program.Fill{Dst: 0}, 1)
				err := p.Insert(at[0], at[1], fill())
				c.Check(len(p.Ops) == 1 && p.Passes[0].Hi == 1, "a refused Insert changed the program")
				return err
			})
		}
		c.Err("a pass beyond the ops (Lo 5, Hi 9 of none)", func() error {
			p := &program.Program{Passes: []program.Pass{{Lo: 5, Hi: 9}}}
			return p.Insert(0, 5, fill())
		})
		c.Err("a pass of negative positions", func() error {
			p := &program.Program{Passes: []program.Pass{{Lo: -5, Hi: 0}}}
			return p.Insert(0, -3, fill())
		})
		c.Err("a nil op among them", func() error {
			p := oneOp(&program.Fill{Dst: 0}, 1)
			err := p.Insert(0, 1, fill(), nil)
			c.Check(len(p.Ops) == 1, "a refused Insert changed the program")
			return err
		})
		c.Ok("no ops, at the pass's end", func() error { return oneOp(&program.Fill{Dst: 0}, 1).Insert(0, 1) })
		c.Ok("a Fill before the first op, then planned", func() error {
			p := oneOp(&program.Fill{Dst: 0}, 1)
			if err := p.Insert(0, 0, fill()); err != nil {
				return err
			}
			c.Check(len(p.Ops) == 2 && p.Passes[0].Hi == 2, "inserted, the pass holds ops %d to %d", p.Passes[0].Lo, p.Passes[0].Hi)
			_, err := p.Plan()
			return err
		})
	}
	entries["program.Substitute"] = func(c *C) {
		c.Err("a nil op", func() error { _, err := program.Substitute(nil, 0, 1); return err })
		c.Err("a nil *ReLU", func() error { _, err := program.Substitute((*program.ReLU)(nil), 0, 1); return err })
		c.Err("an op that is no pointer", func() error { _, err := program.Substitute(valueOp{}, 0, 1); return err })
		c.Err("a pointer to no struct", func() error { r := refOp(0); _, err := program.Substitute(&r, 0, 1); return err })
		c.Ok("a ReLU in place, hostile refs", func() error {
			op := &program.ReLU{X: 0, Y: 0}
			n, err := program.Substitute(op, 0, math.MaxInt32)
			c.Check(n == 2 && op.X == math.MaxInt32 && op.Y == math.MaxInt32, "%d operands changed: %+v", n, op)
			n, _ = program.Substitute(op, -7, 3)
			c.Check(n == 0, "%d operands of slot -7 changed", n)
			return err
		})
		c.Err("slots substituted that the program has not: Plan refuses them", func() error {
			p := oneOp(&program.Fill{Dst: 0}, 1)
			if _, err := program.Substitute(p.Ops[0], 0, 99); err != nil {
				return nil // no error: the entry fails
			}
			_, err := p.Plan()
			return err
		})
	}
	entries["program.Program.AddSlot"] = func(c *C) {
		c.NoPanic("nil program", func() { c.Check(nilP.AddSlot(program.Slot{}) == program.None, "a slot added to no program") })
		c.Err("a view of no slot, of 2^62 values: Plan refuses it", func() error {
			p := oneOp(&program.Fill{Dst: 0}, 1)
			r := p.AddSlot(program.Slot{Name: "v", Kind: program.Value, Shape: []int{huge}, Alias: 99})
			c.Check(r == 1, "the new slot is %d", r)
			_, err := p.Plan()
			return err
		})
		c.Err("a value of 2^62·2^62 values: Plan refuses it", func() error {
			p := oneOp(&program.Fill{Dst: 0}, 1)
			r := p.AddSlot(program.Slot{Name: "v", Kind: program.Value, Shape: []int{huge, huge}, Alias: program.None})
			p.Insert(0, 1, &program.Fill{Dst: r})
			_, err := p.Plan()
			return err
		})
		c.Ok("a value, planned", func() error {
			p := oneOp(&program.Fill{Dst: 0}, 1)
			p.AddSlot(program.Slot{Name: "v", Kind: program.Value, Shape: []int{2, 3, 4}, Layout: program.NHWC, Alias: program.None})
			_, err := p.Plan()
			return err
		})
	}

	// lower's channels-last settings
	entries["lower.PrefersChannelsLast"] = func(c *C) {
		c.NoPanic("nil backends, a CPU, wrappers of none, a backend that wraps itself", func() {
			c.Check(!lower.PrefersChannelsLast(nil), "nil prefers channels-last")
			c.Check(!lower.PrefersChannelsLast(compute.NewCPU()), "the CPU prefers channels-last")
			c.Check(!lower.PrefersChannelsLast((*cuda.Backend)(nil)), "a nil CUDA backend prefers channels-last")
			c.Check(!lower.PrefersChannelsLast((*distributed.Backend)(nil)), "a nil share of a batch prefers channels-last")
			c.Check(!lower.PrefersChannelsLast(&distributed.Backend{}), "a share of no backend prefers channels-last")
			c.Check(!lower.PrefersChannelsLast(&selfWrap{}), "a backend that wraps itself prefers channels-last")
		})
		c.Ok("the emulated device asked for channels-last, and a share of a batch on it", func() error {
			be, err := cuda.Open(cuda.Options{Emulate: true, ChannelsLast: true})
			if err != nil {
				return err
			}
			defer be.Close()
			c.Check(lower.PrefersChannelsLast(be), "the emulated device asked for channels-last does not prefer it")
			g, _ := group1(c)
			share, err := g.Shard(be)
			if err != nil {
				return err
			}
			c.Check(lower.PrefersChannelsLast(share), "a share of a batch on it does not prefer channels-last")
			return nil
		})
	}
	entries["lower.PrefersHalfSpikes"] = func(c *C) {
		c.NoPanic("nil backends, a CPU, wrappers of none, a backend that wraps itself", func() {
			c.Check(!lower.PrefersHalfSpikes(nil), "nil prefers 16-bit spikes")
			c.Check(!lower.PrefersHalfSpikes(compute.NewCPU()), "the CPU prefers 16-bit spikes")
			c.Check(!lower.PrefersHalfSpikes((*cuda.Backend)(nil)), "a nil CUDA backend prefers 16-bit spikes")
			c.Check(!lower.PrefersHalfSpikes(&distributed.Backend{}), "a share of no backend prefers 16-bit spikes")
			c.Check(!lower.PrefersHalfSpikes(&selfWrap{}), "a backend that wraps itself prefers 16-bit spikes")
		})
		c.Ok("the emulated device asked for 16-bit spikes, and a share of a batch on it", func() error {
			be, err := cuda.Open(cuda.Options{Emulate: true, HalfSpikes: true})
			if err != nil {
				return err
			}
			defer be.Close()
			c.Check(lower.PrefersHalfSpikes(be), "the emulated device asked for 16-bit spikes does not prefer them")
			g, _ := group1(c)
			share, err := g.Shard(be)
			if err != nil {
				return err
			}
			c.Check(lower.PrefersHalfSpikes(share), "a share of a batch on it does not prefer 16-bit spikes")
			return nil
		})
	}
	entries["lower.WithHalfSpikes"] = func(c *C) {
		c.NoPanic("on and off, a nil Options", func() {
			var o lower.Options
			o.Apply([]lower.Setting{lower.WithHalfSpikes(true)})
			c.Check(o.HalfSpikes, "not set")
			o.Apply([]lower.Setting{lower.WithHalfSpikes(false)})
			c.Check(!o.HalfSpikes, "not cleared")
			(*lower.Options)(nil).Apply([]lower.Setting{lower.WithHalfSpikes(true)})
		})
		net, snn := tinyNet(c.t)
		for _, train := range []bool{false, true} {
			c.Ok("the tiny network planned with 16-bit spikes, for inference and training, channels-last too", func() error {
				_, _, err := lower.Plan(net, snn.Lowering(), train, 2, 3, nil, lower.WithHalfSpikes(true), lower.WithChannelsLast(train))
				return err
			})
		}
		c.Ok("the tiny network planned with 16-bit spikes, training by surrogate (no time-step pass to rewrite)", func() error {
			_, _, err := lower.Plan(net, snn.Lowering(), true, 2, 3, &lower.Surrogate{Alpha: 4}, lower.WithHalfSpikes(true))
			return err
		})
	}
	entries["compute/cuda.Backend.HalfSpikes"] = func(c *C) {
		c.NoPanic("nil receiver, zero backend, the emulated device asked for 16-bit spikes", func() {
			c.Check(!(*cuda.Backend)(nil).HalfSpikes() && !(&cuda.Backend{}).HalfSpikes(), "a nil or zero backend asks for 16-bit spikes")
			be, err := cuda.Open(cuda.Options{Emulate: true, HalfSpikes: true})
			if err != nil {
				c.t.Fatal(err)
			}
			defer be.Close()
			c.Check(be.HalfSpikes(), "asked for 16-bit spikes, it does not ask for them")
		})
		c.Err("16-bit spikes with strict FP32", func() error {
			_, err := cuda.Open(cuda.Options{Emulate: true, HalfSpikes: true, StrictFP32: true})
			return err
		})
	}
	entries["compute/refmath.Half"] = func(c *C) {
		c.NoPanic("zero, ±Inf, NaN, the largest float32, a tie", func() {
			inf := float32(math.Inf(1))
			c.Check(refmath.Half(0) == 0 && refmath.Half(inf) == inf && refmath.Half(math.MaxFloat32) == inf, "0, Inf, MaxFloat32")
			c.Check(refmath.Half(float32(math.NaN())) != refmath.Half(float32(math.NaN())), "NaN is not NaN")
			c.Check(refmath.Half(1+0x1p-11) == 1 && refmath.Half(65519) == 65504, "ties to even, the largest finite value")
		})
	}
	entries["lower.WithChannelsLast"] = func(c *C) {
		c.NoPanic("on and off, a nil Options", func() {
			var o lower.Options
			o.Apply([]lower.Setting{lower.WithChannelsLast(true)})
			c.Check(o.ChannelsLast, "not set")
			o.Apply([]lower.Setting{lower.WithChannelsLast(false)})
			c.Check(!o.ChannelsLast, "not cleared")
			(*lower.Options)(nil).Apply([]lower.Setting{lower.WithChannelsLast(true)})
		})
		net, snn := tinyNet(c.t)
		for _, train := range []bool{false, true} {
			c.Ok("the tiny network planned channels-last, for inference and training", func() error {
				_, _, err := lower.Plan(net, snn.Lowering(), train, 2, 3, nil, lower.WithChannelsLast(true))
				return err
			})
		}
		c.Ok("the tiny network planned channels-last, training by surrogate", func() error {
			_, _, err := lower.Plan(net, snn.Lowering(), true, 2, 3, &lower.Surrogate{Alpha: 4}, lower.WithChannelsLast(true))
			return err
		})
		c.Err("batch -1, channels-last", func() error {
			_, _, err := lower.Plan(net, snn.Lowering(), false, -1, 1, nil, lower.WithChannelsLast(true))
			return err
		})
	}

	// the CUDA backend's and the reference's
	entries["compute/cuda.Backend.ChannelsLast"] = func(c *C) {
		c.NoPanic("nil receiver, zero backend, the emulated device asked for channels-last", func() {
			c.Check(!(*cuda.Backend)(nil).ChannelsLast() && !(&cuda.Backend{}).ChannelsLast(), "a nil or zero backend asks for channels-last")
			be, err := cuda.Open(cuda.Options{Emulate: true, ChannelsLast: true})
			if err != nil {
				c.t.Fatal(err)
			}
			defer be.Close()
			c.Check(be.ChannelsLast(), "asked for channels-last, it does not ask for it")
		})
	}
	entries["compute/refmath.Transpose"] = func(c *C) {
		c.NoPanic("no sizes; a [2 3] matrix", func() {
			c.Check(len(refmath.Transpose[float32](0, 0, 0, nil)) == 0, "values for no sizes")
			y := refmath.Transpose(1, 2, 3, []float64{1, 2, 3, 4, 5, 6})
			c.Check(slices.Equal(y, []float64{1, 4, 2, 5, 3, 6}), "[[1 2 3] [4 5 6]] transposed is %v", y)
		})
	}
}

// activations holds op's Activations, on its zero value, to its operands.
func activations(c *C, op program.Op) {
	c.NoPanic("zero op", func() {
		var acts []program.Ref
		switch o := op.(type) {
		case program.Laid:
			acts = o.Activations()
		case program.LayoutFree:
			acts = o.Activations()
		}
		reads, writes := op.Operands()
		for _, r := range acts {
			c.Check(slices.Contains(reads, r) || slices.Contains(writes, r), "activation %d is not an operand", r)
		}
	})
}
