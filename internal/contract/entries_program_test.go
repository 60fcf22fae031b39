package contract_test

import (
	"bytes"
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/program"
)

// Entries of program. Every op is held on its zero value: its
// description never panics, and it runs (through Machine.Run, the one
// caller Op.Run documents) on a program that has its slots, or is refused
// by Load on one that has not; an op run outside a run, on a machine that
// NewMachine made, reports through the run instead of panicking. The
// Builder keeps misuse for Plan; the Machine refuses a nil backend, a
// program not loaded and slots it cannot have.

// opCases are the ops' zero values (Adam's with its settings too) and, for
// those with matrix products, their FLOPs.
func opCases() map[string]func() program.Op {
	return map[string]func() program.Op{
		"Adam":                func() program.Op { return &program.Adam{} },
		"AddTo":               func() program.Op { return &program.AddTo{} },
		"BatchNormGrad":       func() program.Op { return &program.BatchNormGrad{} },
		"BatchNormRunning":    func() program.Op { return &program.BatchNormRunning{HW: huge} },
		"BatchNormScaleShift": func() program.Op { return &program.BatchNormScaleShift{} },
		"BatchNormStats":      func() program.Op { return &program.BatchNormStats{} },
		"ChannelAffine":       func() program.Op { return &program.ChannelAffine{PerGroup: true} },
		"Const":               func() program.Op { return &program.Const{Data: make([]float32, 1000)} },
		"Conv2d":              func() program.Op { return &program.Conv2d{} },
		"Conv2dGrad":          func() program.Op { return &program.Conv2dGrad{} },
		"Convert":             func() program.Op { return &program.Convert{} },
		"Copy":                func() program.Op { return &program.Copy{} },
		"CopyChannels":        func() program.Op { return &program.CopyChannels{C: -1, HW: huge} },
		"Clip":                func() program.Op { return &program.Clip{Ceiling: float32(math.NaN())} },
		"ClipGrad":            func() program.Op { return &program.ClipGrad{Ceiling: -1} },
		"ChannelShuffle":      func() program.Op { return &program.ChannelShuffle{Groups: 0, C: 3, HW: huge} },
		"Fill":                func() program.Op { return &program.Fill{Value: float32(math.NaN())} },
		"GlobalAvgPool":       func() program.Op { return &program.GlobalAvgPool{C: huge} },
		"GlobalAvgPoolGrad":   func() program.Op { return &program.GlobalAvgPoolGrad{C: -1} },
		"IF":                  func() program.Op { return &program.IF{N: huge} },
		"IFRecord":            func() program.Op { return &program.IFRecord{N: huge, Constant: true} },
		"IFSurrogateGrad":     func() program.Op { return &program.IFSurrogateGrad{N: -1, Alpha: float32(math.NaN())} },
		"Linear":              func() program.Op { return &program.Linear{In: -1, Out: huge} },
		"LinearGrad":          func() program.Op { return &program.LinearGrad{} },
		"Pad":                 func() program.Op { return &program.Pad{C: huge} },
		"PadGrad":             func() program.Op { return &program.PadGrad{} },
		"Pool":                func() program.Op { return &program.Pool{Max: true} },
		"PoolGrad":            func() program.Op { return &program.PoolGrad{} },
		"ProxyLoss":           func() program.Op { return &program.ProxyLoss{K: -3} },
		"ReLU":                func() program.Op { return &program.ReLU{} },
		"ReLUGrad":            func() program.Op { return &program.ReLUGrad{} },
		"Softmax":             func() program.Op { return &program.Softmax{} },
		"SoftmaxGrad":         func() program.Op { return &program.SoftmaxGrad{K: huge} },
		"SynOps":              func() program.Op { return &program.SynOps{Node: -1} },
		"Transpose":           func() program.Op { return &program.Transpose{} },
	}
}

// oneOp is a program of one pass holding op alone over slots value
// slots of 4 values each, for a batch of 2 and 3 steps.
func oneOp(op program.Op, slots int) *program.Program {
	b := program.NewBuilder(program.Dims{N: 2, Steps: 3})
	for i := 0; i < slots; i++ {
		b.Value("v", []int{4}, program.Steps)
	}
	b.Begin(program.SNNChunk, false)
	b.Emit(op)
	b.End()
	return b.Program()
}

// runOne loads p on a CPU and runs its pass for 2 samples and 3 steps: the
// machine's error, else the backend's.
func runOne(p *program.Program) error {
	cpu := compute.NewCPU()
	m := program.NewMachine(cpu)
	defer m.Free()
	if err := m.Load(p); err != nil {
		return err
	}
	if err := m.Run(p, 0, program.Dims{N: 2, Steps: 3}); err != nil {
		return err
	}
	return cpu.Err()
}

func init() {
	for name, op := range opCases() {
		pre := "program." + name + "."
		entries[pre+"Kernel"] = func(c *C) { c.NoPanic("zero op", func() { c.Check(op().Kernel() != "", "no kernel") }) }
		entries[pre+"Detail"] = func(c *C) { c.NoPanic("zero op", func() { op().Detail() }) }
		entries[pre+"Operands"] = func(c *C) { c.NoPanic("zero op", func() { op().Operands() }) }
		entries[pre+"Run"] = func(c *C) {
			c.Err("a program without the slots the op names: Load refuses it", func() error {
				if r, w := op().Operands(); len(r)+len(w) == 0 {
					return runOne(oneOp(&program.Copy{}, 0)) // the op names none: a Copy's stands in
				}
				return runOne(oneOp(op(), 0))
			})
			c.NoPanic("a program with its slots, loaded and run", func() { runOne(oneOp(op(), 1)) })
			c.NoPanic("outside a run, on a machine NewMachine made", func() { op().Run(program.NewMachine(compute.NewCPU())) })
			c.Err("a run before Load", func() error {
				p := oneOp(op(), 1)
				return program.NewMachine(compute.NewCPU()).Run(p, 0, program.Dims{N: 1, Steps: 1})
			})
		}
		if f, ok := op().(program.Flopper); ok {
			entries[pre+"FLOPs"] = func(c *C) {
				c.NoPanic("zero and hostile dims", func() {
					f.FLOPs(program.Dims{})
					f.FLOPs(program.Dims{N: -1, Steps: huge})
				})
			}
		}
	}
	entries["program.Adam.Run"] = func(c *C) {
		c.Err("no settings (Args nil), its slots", func() error { return runOne(oneOp(&program.Adam{}, 1)) })
		c.Err("settings of step 0, its slots", func() error { return runOne(oneOp(&program.Adam{Args: &compute.AdamArgs{}}, 1)) })
		c.NoPanic("outside a run", func() { (&program.Adam{}).Run(program.NewMachine(compute.NewCPU())) })
	}
	transposeZero := entries["program.Transpose.Run"]
	entries["program.Transpose.Run"] = func(c *C) { transposeZero(c); transposeRun(c) } // hostile sizes: entries_layout_test.go

	// the builder
	zb := func() *program.Builder { return &program.Builder{} }
	entries["program.NewBuilder"] = func(c *C) {
		c.Err("capacity -1: Plan refuses a value slot of it", func() error {
			b := program.NewBuilder(program.Dims{N: -1, Steps: -1})
			v := b.Value("v", []int{2}, program.Steps)
			b.Begin(program.ANNForward, false)
			b.Emit(&program.Fill{Dst: v})
			b.End()
			_, err := b.Program().Plan()
			return err
		})
		c.Err("capacity 2^62: Plan refuses a value slot of it", func() error {
			b := program.NewBuilder(program.Dims{N: huge, Steps: huge})
			v := b.Value("v", []int{2}, program.Steps)
			b.Begin(program.ANNForward, false)
			b.Emit(&program.Fill{Dst: v})
			b.End()
			_, err := b.Program().Plan()
			return err
		})
	}
	misuse := map[string]func(b *program.Builder){
		"Begin": func(b *program.Builder) { b.Begin(program.ANNForward, false); b.Begin(program.Loss, true) },
		"End":   func(b *program.Builder) { b.End() },
		"Emit":  func(b *program.Builder) { b.Emit(&program.Copy{}); b.Begin(program.Loss, false); b.Emit(nil) },
		"Keep":  func(b *program.Builder) { b.Keep(-5); b.Keep(99) },
		"View":  func(b *program.Builder) { c := b.View("v", 7, []int{1}); b.Keep(c) },
	}
	for m, f := range misuse {
		entries["program.Builder."+m] = func(c *C) {
			for _, b := range []*program.Builder{zb(), program.NewBuilder(program.Dims{N: 1, Steps: 1})} {
				c.Err("misuse: the program's Plan refuses it", func() error {
					f(b)
					_, err := b.Program().Plan()
					return err
				})
			}
		}
	}
	entries["program.Builder.Program"] = func(c *C) {
		c.Ok("zero builder", func() error { _, err := zb().Program().Plan(); return err })
	}
	for _, m := range []string{"Value", "Input", "External", "Shape", "SameMemory"} {
		entries["program.Builder."+m] = func(c *C) {
			c.NoPanic("zero builder, hostile refs and shapes", func() {
				b := zb()
				switch m {
				case "Value":
					b.Value("", []int{-1, huge}, program.Rate(200))
				case "Input":
					b.Input("", nil, program.Once)
				case "External":
					r1, r2 := b.External("a", nil, nil), b.External("b", nil, nil)
					c.Check(r1 != r2, "two nil bindings share a slot")
				case "Shape":
					c.Check(b.Shape(-3) == nil && b.Shape(99) == nil, "a shape of no slot")
				case "SameMemory":
					b.SameMemory(-5, 99)
					b.SameMemory(program.None, program.None)
				}
			})
		}
	}
	entries["program.Builder.Slot"] = func(c *C) {
		c.Err("a view of a slot it has not: Plan refuses it", func() error {
			b := zb()
			b.Slot(program.Slot{Alias: 99})
			_, err := b.Program().Plan()
			return err
		})
		c.Err("a view of itself: Plan refuses it", func() error {
			b := zb()
			b.Slot(program.Slot{Alias: 0})
			_, err := b.Program().Plan()
			return err
		})
		c.Err("two views of each other: Plan refuses the cycle", func() error {
			b := zb()
			b.Slot(program.Slot{Alias: 1})
			b.Slot(program.Slot{Alias: 0})
			p := b.Program()
			p.Root(0)
			_, err := p.Plan()
			return err
		})
	}

	// the machine
	cpu := func() *program.Machine { return program.NewMachine(compute.NewCPU()) }
	good := func() *program.Program { return oneOp(&program.Fill{}, 1) }
	entries["program.NewMachine"] = func(c *C) {
		c.Err("nil backend, then Load", func() error { return program.NewMachine(nil).Load(good()) })
	}
	entries["program.Machine.Load"] = func(c *C) {
		c.Err("nil receiver", func() error { return (*program.Machine)(nil).Load(good()) })
		c.Err("zero machine", func() error { return (&program.Machine{}).Load(good()) })
		c.Err("nil program", func() error { return cpu().Load(nil) })
		c.Err("a program whose ops name slots it lacks", func() error { return cpu().Load(oneOp(&program.ReLU{X: 3, Y: -7}, 1)) })
		c.Err("a nil op", func() error { return cpu().Load(&program.Program{Ops: []program.Op{nil}}) })
		c.Err("a slot of 2^62 values", func() error {
			b := program.NewBuilder(program.Dims{N: 1, Steps: 1})
			v := b.Value("v", []int{huge}, program.Batch)
			b.Begin(program.ANNForward, false)
			b.Emit(&program.Fill{Dst: v})
			b.End()
			return cpu().Load(b.Program())
		})
		c.Ok("a program of one Fill", func() error { return cpu().Load(good()) })
	}
	entries["program.Machine.Run"] = func(c *C) {
		c.Err("nil receiver", func() error { return (*program.Machine)(nil).Run(good(), 0, program.Dims{N: 1, Steps: 1}) })
		c.Err("zero machine", func() error { return (&program.Machine{}).Run(good(), 0, program.Dims{N: 1, Steps: 1}) })
		c.Err("nil program", func() error { return cpu().Run(nil, 0, program.Dims{N: 1, Steps: 1}) })
		c.Err("before Load", func() error { return cpu().Run(good(), 0, program.Dims{N: 1, Steps: 1}) })
		loaded := func() (*program.Machine, *program.Program) {
			m, p := cpu(), good()
			m.Load(p)
			return m, p
		}
		c.Err("pass -1", func() error { m, p := loaded(); return m.Run(p, -1, program.Dims{N: 1, Steps: 1}) })
		c.Err("pass 2^62", func() error { m, p := loaded(); return m.Run(p, huge, program.Dims{N: 1, Steps: 1}) })
		c.Err("dims 0", func() error { m, p := loaded(); return m.Run(p, 0, program.Dims{}) })
		c.Err("dims beyond capacity", func() error { m, p := loaded(); return m.Run(p, 0, program.Dims{N: huge, Steps: 1}) })
		c.Err("an input not bound", func() error {
			b := program.NewBuilder(program.Dims{N: 1, Steps: 1})
			x, y := b.Input("x", []int{2}, program.Batch), b.Value("y", []int{2}, program.Batch)
			b.Begin(program.ANNForward, false)
			b.Emit(&program.ReLU{X: x, Y: y})
			b.End()
			return runOne(b.Program())
		})
		c.Err("an input bound to a short buffer", func() error {
			b := program.NewBuilder(program.Dims{N: 1, Steps: 1})
			x, y := b.Input("x", []int{2}, program.Batch), b.Value("y", []int{2}, program.Batch)
			b.Begin(program.ANNForward, false)
			b.Emit(&program.ReLU{X: x, Y: y})
			b.End()
			be := compute.NewCPU()
			m := program.NewMachine(be)
			if err := m.Load(b.Program()); err != nil {
				return err
			}
			buf, _ := be.Alloc(1)
			m.Bind(x, buf)
			return m.Run(b.Program(), 0, program.Dims{N: 1, Steps: 1})
		})
		c.Err("external memory not on the backend", func() error {
			b := program.NewBuilder(program.Dims{N: 1, Steps: 1})
			w := b.External("w", []int{2}, nil)
			b.Begin(program.ANNForward, false)
			b.Emit(&program.Fill{Dst: w})
			b.End()
			return runOne(b.Program())
		})
		c.Ok("a program of one Fill", func() error { return runOne(good()) })
	}
	entries["program.Machine.Value"] = func(c *C) {
		c.NoPanic("zero machine, nil program, refs out of range, an unused slot", func() {
			c.Check((&program.Machine{}).Value(good(), 0, program.Dims{N: 1}) == nil, "a value from a zero machine")
			c.Check(cpu().Value(nil, 0, program.Dims{}) == nil, "a value of no program")
			m, p := cpu(), oneOp(&program.Fill{}, 2)
			m.Load(p)
			c.Check(m.Value(p, 9, program.Dims{N: 1, Steps: 1}) == nil, "a value of no slot")
			c.Check(m.Value(p, 1, program.Dims{N: 1, Steps: 1}) == nil, "a value of an unused slot")
			c.Check(m.Value(p, 0, program.Dims{N: huge, Steps: huge}) == nil, "a value beyond its buffer")
		})
	}
	entries["program.Machine.Buf"] = func(c *C) {
		c.NoPanic("zero machine and one NewMachine made, outside a run", func() {
			c.Check((&program.Machine{}).Buf(0) == nil && cpu().Buf(5) == nil, "a buffer outside a run")
		})
	}
	for _, m := range []string{"Backend", "Bind", "Dims", "Free", "ResetSynOps", "Rows", "SynOps"} {
		entries["program.Machine."+m] = func(c *C) {
			for _, mc := range []*program.Machine{{}, cpu()} {
				c.NoPanic("zero machine and one NewMachine made", func() {
					switch m {
					case "Backend":
						mc.Backend()
					case "Bind":
						mc.Bind(-4, nil)
					case "Dims":
						mc.Dims()
					case "Free":
						mc.Free()
						mc.Free()
					case "ResetSynOps":
						mc.ResetSynOps()
					case "Rows":
						mc.Rows(program.Rate(77))
					case "SynOps":
						mc.SynOps(-1)
					}
				})
			}
		}
	}

	// programs and plans
	nilP := (*program.Program)(nil)
	entries["program.Program.Plan"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilP.Plan(); return err })
		c.Err("passes out of order", func() error {
			_, err := (&program.Program{Passes: []program.Pass{{Lo: 3, Hi: 1}}}).Plan()
			return err
		})
		c.Ok("zero program", func() error { _, err := (&program.Program{}).Plan(); return err })
	}
	entries["program.Program.Check"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilP.Check() })
		c.Err("an op that reads a value nothing wrote", func() error { return oneOp(&program.ReLU{X: 0, Y: 1}, 2).Check() })
		c.Ok("zero program", func() error { return (&program.Program{}).Check() })
	}
	entries["program.Program.List"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilP.List(program.Dims{}, nil); return err })
		c.Err("dims beyond capacity", func() error { _, err := good().List(program.Dims{N: huge, Steps: huge}, nil); return err })
		c.Err("dims -1", func() error { _, err := good().List(program.Dims{N: -1, Steps: 1}, nil); return err })
		c.Ok("negative repeats", func() error {
			_, err := good().List(program.Dims{N: 1, Steps: 1}, func(int) int { return -9 })
			return err
		})
	}
	entries["program.Program.OpBytes"] = func(c *C) {
		c.NoPanic("nil op, refs out of range, hostile dims", func() {
			p := good()
			c.Check(p.OpBytes(nil, program.Dims{}) == 0, "bytes of no op")
			p.OpBytes(&program.ReLU{X: 99, Y: -4}, program.Dims{N: huge, Steps: huge})
			p.OpBytes(&program.Fill{}, program.Dims{N: huge, Steps: huge})
		})
	}
	entries["program.Program.Slot"] = func(c *C) {
		c.NoPanic("refs out of range, nil receiver", func() {
			c.Check(good().Slot(-1) == nil && good().Slot(99) == nil && nilP.Slot(0) == nil, "a slot of no ref")
		})
	}
	entries["program.Program.Root"] = func(c *C) {
		c.NoPanic("refs out of range, a cycle of views", func() {
			good().Root(99)
			(&program.Program{Slots: []program.Slot{{Alias: 1}, {Alias: 0}}}).Root(0)
		})
	}
	entries["program.Program.Readers"] = func(c *C) {
		c.NoPanic("refs out of range, a nil op", func() {
			good().Readers(-7)
			(&program.Program{Ops: []program.Op{nil}}).Readers(0)
		})
	}
	entries["program.Program.Remove"] = func(c *C) {
		c.NoPanic("ops out of range", func() { p := good(); p.Remove(-1); p.Remove(5); p.Remove(0); p.Remove(0) })
	}
	entries["program.Program.PassOf"] = func(c *C) { c.NoPanic("zero program, -1", func() { (&program.Program{}).PassOf(-1) }) }
	entries["program.Program.Find"] = func(c *C) { c.NoPanic("zero program", func() { (&program.Program{}).Find(program.PassKind(99)) }) }
	entries["program.Plan.Bytes"] = func(c *C) { c.NoPanic("zero plan", func() { (&program.Plan{}).Bytes() }) }
	entries["program.Listing.WriteText"] = func(c *C) {
		c.Err("nil writer", func() error { return program.Listing{}.WriteText(nil) })
		c.Ok("zero listing", func() error { return program.Listing{}.WriteText(&bytes.Buffer{}) })
		c.Ok("a listing of a program", func() error {
			l, err := good().List(program.Dims{N: 1, Steps: 1}, nil)
			if err != nil {
				return err
			}
			return l.WriteText(&bytes.Buffer{})
		})
	}
	entries["program.Listing.Kernels"] = func(c *C) { c.NoPanic("zero listing", func() { program.Listing{}.Kernels() }) }
	entries["program.Listing.Append"] = func(c *C) {
		c.NoPanic("zero listings", func() { l := program.Listing{}; l.Append(program.Listing{}) })
	}

	// small values
	entries["program.Dims.Rows"] = func(c *C) {
		c.NoPanic("hostile dims and rates", func() {
			d := program.Dims{N: huge, Steps: huge}
			c.Check(d.Rows(program.Steps) < 0, "2^62·2^62 rows")
			program.Dims{N: -1}.Rows(program.Rate(200))
		})
	}
	entries["program.Slot.Numel"] = func(c *C) {
		c.NoPanic("zero slot, hostile shapes", func() {
			c.Check((&program.Slot{}).Numel() == 1, "a slot of no shape is not one value")
			c.Check((&program.Slot{Shape: []int{huge, huge}}).Numel() < 0, "2^124 values counted")
		})
	}
	entries["program.Program.SetElem"] = func(c *C) {
		c.NoPanic("nil program, refs it has not", func() {
			(*program.Program)(nil).SetElem(0, program.F16)
			p := oneOp(&program.Fill{}, 1)
			p.SetElem(-1, program.F16)
			p.SetElem(program.Ref(1<<30), program.F16)
			p.SetElem(0, program.Elem(200))
		})
	}
	entries["program.Slot.Words"] = func(c *C) {
		c.NoPanic("zero slot, hostile shapes and rows, 16-bit values", func() {
			c.Check((&program.Slot{}).Words(0) == 0, "no rows take words")
			c.Check((&program.Slot{Shape: []int{3}, Elem: program.F16}).Words(1) == 2, "3 binary16 values do not take 2 words")
			c.Check((&program.Slot{Shape: []int{3}}).Words(-1) < 0, "-1 rows take words")
			c.Check((&program.Slot{Shape: []int{huge, huge}, Elem: program.F16}).Words(huge) < 0, "2^186 values counted")
		})
	}
	small := map[string]func(){
		"Rate.String":     func() { _ = program.Rate(200).String() },
		"SlotKind.String": func() { _ = program.SlotKind(200).String() },
		"PassKind.String": func() { _ = program.PassKind(200).String() },
		"Pass.Repeats":    func() { program.Pass{Lo: -1, Hi: -5}.Repeats() },
	}
	for n, f := range small {
		entries["program."+n] = func(c *C) { c.NoPanic("values out of range", f) }
	}
}
