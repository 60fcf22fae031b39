package contract_test

import (
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
)

// Entries of compute: the CPU backend refuses a kernel's hostile
// arguments — nil buffers, negative sizes, sizes whose product overflows,
// buffers too short, another backend's buffers, geometries without an
// output — through Err, and skips the kernel; its zero value works.

// foreign is a Buffer of no backend.
type foreign struct{}

func (foreign) Len() int                        { return 1 << 20 }
func (foreign) Slice(lo, hi int) compute.Buffer { return foreign{} }

// kernelCase calls a kernel on cpu with the buffers it is given.
type kernelCase func(cpu *compute.CPU, b1, b2 compute.Buffer)

// kernelCalls are the ways each CPU kernel is called with hostile
// arguments: every call must fail through Err.
func kernelCalls() map[string][]kernelCase {
	var nan = float32(math.NaN())
	conv := compute.ConvGeom{C: 1, H: 4, W: 4, O: 1, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1}
	noOut := conv
	noOut.KH, noOut.KW = 9, 9
	zeroStride := conv
	zeroStride.SH = 0
	badGroups := conv
	badGroups.G = 3
	hugeConv := conv
	hugeConv.C, hugeConv.H, hugeConv.W = huge, huge, huge
	pool := compute.PoolGeom{C: 1, H: 4, W: 4, KH: 2, KW: 2, SH: 2, SW: 2}
	padded := pool
	padded.PT = 2
	zeroPool := compute.PoolGeom{}
	pad := compute.PadGeom{H: 2, W: 2, PT: 1}
	negPad := compute.PadGeom{H: 2, W: 2, PT: -5}
	sideways := conv
	sideways.Layout = "sideways"
	sidewaysPool := pool
	sidewaysPool.Layout = "sideways"
	return map[string][]kernelCase{
		"Transpose": {
			func(c *compute.CPU, b, x compute.Buffer) { c.Transpose(2, 2, 2, b, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Transpose(-1, 2, 2, b, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Transpose(huge, huge, huge, b, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Transpose(1, 2, 2, nil, b) },
		},
		"Upload":       {func(c *compute.CPU, b, _ compute.Buffer) { c.Upload(nil, make([]float32, 4)) }, func(c *compute.CPU, b, _ compute.Buffer) { c.Upload(b, make([]float32, 1<<12)) }},
		"Copy":         {func(c *compute.CPU, b, _ compute.Buffer) { c.Copy(nil, b) }, func(c *compute.CPU, b, x compute.Buffer) { c.Copy(b, foreign{}) }},
		"AddTo":        {func(c *compute.CPU, b, _ compute.Buffer) { c.AddTo(b, nil) }, func(c *compute.CPU, b, x compute.Buffer) { c.AddTo(x, b) }},
		"Fill":         {func(c *compute.CPU, _, _ compute.Buffer) { c.Fill(nil, nan) }, func(c *compute.CPU, _, _ compute.Buffer) { c.Fill(foreign{}, 1) }},
		"CopyChannels": {func(c *compute.CPU, b, x compute.Buffer) { c.CopyChannels(1, 3, 1, b, 2, 0, x, 4, 0) }, func(c *compute.CPU, b, x compute.Buffer) { c.CopyChannels(-1, 1, 1, b, 1, -1, x, 1, 0) }, func(c *compute.CPU, b, x compute.Buffer) { c.CopyChannels(huge, 1, huge, b, 1, 0, x, 1, 0) }, func(c *compute.CPU, b, x compute.Buffer) { c.CopyChannels(2, -1, huge, b, 0, 0, x, 0, 0) }},
		"Conv2dForward": {
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dForward(conv, 1, nil, nil, nil, nil) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dForward(noOut, 1, b, b, nil, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dForward(zeroStride, 1, b, b, nil, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dForward(badGroups, 1, b, b, nil, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dForward(hugeConv, huge, b, b, nil, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dForward(conv, -1, b, b, nil, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dForward(conv, 1000, b, b, nil, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dForward(compute.ConvGeom{}, 1, b, b, nil, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dForward(sideways, 1, b, b, nil, b) },
		},
		"Conv2dBackward": {
			func(c *compute.CPU, b, x compute.Buffer) {
				c.Conv2dBackward(conv, 1, nil, nil, nil, nil, nil, nil, false)
			},
			func(c *compute.CPU, b, x compute.Buffer) {
				c.Conv2dBackward(conv, 1, b, b, x, foreign{}, nil, nil, false)
			},
			func(c *compute.CPU, b, x compute.Buffer) { c.Conv2dBackward(zeroStride, 2, b, b, x, b, b, b, false) },
		},
		"LinearForward": {
			func(c *compute.CPU, b, x compute.Buffer) { c.LinearForward(1, 4, 4, nil, nil, nil, nil, true) },
			func(c *compute.CPU, b, x compute.Buffer) { c.LinearForward(-1, -4, 4, b, b, nil, x, false) },
			func(c *compute.CPU, b, x compute.Buffer) { c.LinearForward(huge, huge, huge, b, b, nil, x, false) },
			func(c *compute.CPU, b, x compute.Buffer) { c.LinearForward(100, 100, 100, b, b, b, x, true) },
		},
		"LinearBackward": {
			func(c *compute.CPU, b, x compute.Buffer) {
				c.LinearBackward(1, 4, 4, nil, nil, nil, nil, nil, nil, false)
			},
			func(c *compute.CPU, b, x compute.Buffer) { c.LinearBackward(1, 4, 4, b, b, b, x, b, foreign{}, false) },
			func(c *compute.CPU, b, x compute.Buffer) {
				c.LinearBackward(huge, 2, huge, b, b, b, nil, nil, nil, false)
			},
		},
		"ReLUForward":  {func(c *compute.CPU, b, x compute.Buffer) { c.ReLUForward(nil, x) }, func(c *compute.CPU, b, x compute.Buffer) { c.ReLUForward(b, x) }},
		"ReLUBackward": {func(c *compute.CPU, b, x compute.Buffer) { c.ReLUBackward(b, nil, b) }, func(c *compute.CPU, b, x compute.Buffer) { c.ReLUBackward(b, b, x) }},
		"ClipForward":  {func(c *compute.CPU, b, x compute.Buffer) { c.ClipForward(6, nil, x) }, func(c *compute.CPU, b, x compute.Buffer) { c.ClipForward(nan, b, x) }},
		"ClipBackward": {func(c *compute.CPU, b, x compute.Buffer) { c.ClipBackward(6, b, nil, b) }, func(c *compute.CPU, b, x compute.Buffer) { c.ClipBackward(-1, b, b, x) }},
		"ChannelShuffle": {
			func(c *compute.CPU, b, x compute.Buffer) { c.ChannelShuffle(1, 0, 4, 1, b, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.ChannelShuffle(1, 3, 4, 1, b, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.ChannelShuffle(-1, 2, 4, 1, b, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.ChannelShuffle(huge, 2, huge, huge, b, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.ChannelShuffle(1000, 2, 4, 4, b, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.ChannelShuffle(1, 2, 4, 1, nil, x) },
		},
		"MaxPool2dForward": {
			func(c *compute.CPU, b, x compute.Buffer) { c.MaxPool2dForward(pool, 1, nil, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.MaxPool2dForward(padded, 1, b, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.MaxPool2dForward(zeroPool, 1, b, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.MaxPool2dForward(pool, huge, b, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.MaxPool2dForward(sidewaysPool, 1, b, b) },
		},
		"MaxPool2dBackward": {
			func(c *compute.CPU, b, x compute.Buffer) { c.MaxPool2dBackward(pool, 1, b, x, nil, true) },
			func(c *compute.CPU, b, x compute.Buffer) { c.MaxPool2dBackward(padded, 1, b, b, b, false) },
		},
		"AvgPool2dForward": {
			func(c *compute.CPU, b, x compute.Buffer) { c.AvgPool2dForward(pool, -1, true, b, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.AvgPool2dForward(zeroPool, 1, false, b, b) },
		},
		"AvgPool2dBackward": {
			func(c *compute.CPU, b, x compute.Buffer) { c.AvgPool2dBackward(pool, 1, true, nil, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.AvgPool2dBackward(pool, 100, true, b, b) },
		},
		"GlobalAvgPoolForward":  {func(c *compute.CPU, b, x compute.Buffer) { c.GlobalAvgPoolForward(4, 0, b, x) }, func(c *compute.CPU, b, x compute.Buffer) { c.GlobalAvgPoolForward(huge, huge, b, x) }},
		"GlobalAvgPoolBackward": {func(c *compute.CPU, b, x compute.Buffer) { c.GlobalAvgPoolBackward(-4, 4, b, x) }, func(c *compute.CPU, b, x compute.Buffer) { c.GlobalAvgPoolBackward(4, 4, nil, x) }},
		"Pad2dForward":          {func(c *compute.CPU, b, x compute.Buffer) { c.Pad2dForward(negPad, 1, b, x) }, func(c *compute.CPU, b, x compute.Buffer) { c.Pad2dForward(pad, 1000, b, x) }},
		"Pad2dBackward":         {func(c *compute.CPU, b, x compute.Buffer) { c.Pad2dBackward(negPad, 1, b, x) }, func(c *compute.CPU, b, x compute.Buffer) { c.Pad2dBackward(pad, 1, nil, x) }},
		"SoftmaxForward":        {func(c *compute.CPU, b, x compute.Buffer) { c.SoftmaxForward(2, 0, true, b, x) }, func(c *compute.CPU, b, x compute.Buffer) { c.SoftmaxForward(100, 100, false, b, x) }},
		"SoftmaxBackward":       {func(c *compute.CPU, b, x compute.Buffer) { c.SoftmaxBackward(2, -3, true, b, b, x) }, func(c *compute.CPU, b, x compute.Buffer) { c.SoftmaxBackward(1, 4, true, b, nil, x) }},
		"BatchNormStats": {
			func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormStats(-1, 1, 1, 1, compute.NCHW, b, b, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormStats(1, 100, 4, 16, compute.NHWC, b, x, x) },
			func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormStats(1, 1, 1, 1, "sideways", b, b, b) },
		},
		"BatchNormUpdateRunning": {
			func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormUpdateRunning(1, 4, -1, nan, b, b, b, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormUpdateRunning(huge, huge, 2, 0.1, b, b, b, b) },
		},
		"BatchNormScaleShift": {func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormScaleShift(2, 4, nan, b, b, b, b, b, nil) }},
		"ChannelAffine": {
			func(c *compute.CPU, b, x compute.Buffer) {
				c.ChannelAffine(2, 2, 4, 64, compute.NCHW, b, b, b, x, true)
			},
			func(c *compute.CPU, b, x compute.Buffer) { c.ChannelAffine(1, 1, 4, 1, "sideways", b, b, b, b, false) },
		},
		"BatchNormBackward": {
			func(c *compute.CPU, b, x compute.Buffer) {
				c.BatchNormBackward(1, 4, 1, compute.NCHW, true, 0, b, b, b, b, b, nil, nil, b, false)
			},
			func(c *compute.CPU, b, x compute.Buffer) {
				c.BatchNormBackward(-1, 4, 1, compute.NCHW, false, 0, b, b, b, b, b, b, b, b, false)
			},
		},
		"IF": {
			func(c *compute.CPU, b, x compute.Buffer) { c.IF(compute.IFArgs{Steps: 1, N: 4}) },
			func(c *compute.CPU, b, x compute.Buffer) {
				c.IF(compute.IFArgs{Steps: -1, N: 4, In: b, V: b, Spikes: b})
			},
			func(c *compute.CPU, b, x compute.Buffer) {
				c.IF(compute.IFArgs{Steps: 1, N: 4, In: b, V: b, Spikes: b, Scale: b, Shift: b})
			},
			func(c *compute.CPU, b, x compute.Buffer) {
				c.IF(compute.IFArgs{Steps: 1, N: 4, In: b, V: b, Spikes: b, Scale: b, C: 1, HW: 4})
			},
			func(c *compute.CPU, b, x compute.Buffer) {
				c.IF(compute.IFArgs{Steps: huge, N: huge, In: b, V: b, Spikes: b})
			},
			func(c *compute.CPU, b, x compute.Buffer) {
				c.IF(compute.IFArgs{Steps: 1, N: 4, In: b, V: b, Spikes: b, Layout: "sideways"})
			},
		},
		"ProxyLossGrad":   {func(c *compute.CPU, b, x compute.Buffer) { c.ProxyLossGrad(2, 0, b, b, b) }, func(c *compute.CPU, b, x compute.Buffer) { c.ProxyLossGrad(100, 10, b, b, x) }},
		"ProxyLossGradOf": {func(c *compute.CPU, b, x compute.Buffer) { c.ProxyLossGradOf(4, 2, 2, b, b, b) }, func(c *compute.CPU, b, x compute.Buffer) { c.ProxyLossGradOf(-1, 0, 2, b, b, b) }},
		"Adam": {
			func(c *compute.CPU, b, x compute.Buffer) { c.Adam(compute.AdamArgs{Step: 0}, b, b, b, b) },
			func(c *compute.CPU, b, x compute.Buffer) { c.Adam(compute.AdamArgs{Step: 1}, b, b, x, nil) },
		},
		"BatchNormSums":   {func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormSums(1, 1, 4, 1, compute.NCHW, b, nil, x) }, func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormSums(-2, 1, 4, 1, compute.NCHW, b, nil, b) }},
		"BatchNormDivide": {func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormDivide(4, 0, x, nil, b) }, func(c *compute.CPU, b, x compute.Buffer) { c.BatchNormDivide(huge, 1, b, b, b) }},
		"BatchNormBackwardSums": {func(c *compute.CPU, b, x compute.Buffer) {
			c.BatchNormBackwardSums(1, 4, 1, compute.NCHW, 0, b, b, b, b, x, b, b)
		}},
		"BatchNormBackwardData": {func(c *compute.CPU, b, x compute.Buffer) {
			c.BatchNormBackwardData(1, 4, 1, 0, compute.NCHW, 0, b, b, b, b, b, b, nil)
		}},
	}
}

// kernelEntry is the entry of a CPU kernel called the ways calls say:
// each call, on a CPU and on a zero CPU, fails through Err, which is then
// cleared.
func kernelEntry(calls []kernelCase) func(c *C) {
	return func(c *C) {
		for i, call := range calls {
			for _, zero := range []bool{false, true} {
				cpu := compute.NewCPU()
				if zero {
					cpu = &compute.CPU{}
				}
				what := "hostile arguments " + string(rune('a'+i))
				if zero {
					what += ", zero CPU"
				}
				c.Err(what+", then Err", func() error {
					b, err := cpu.Alloc(8) // 8 values
					if err != nil {
						return nil
					}
					x, _ := cpu.Alloc(1)
					call(cpu, b, x)
					return cpu.Err()
				})
				c.Ok(what+": Err is cleared", func() error { return cpu.Err() })
			}
		}
	}
}

func init() {
	for kernel, calls := range kernelCalls() {
		entries["compute.CPU."+kernel] = kernelEntry(calls)
	}
	hostileLinearBackward := entries["compute.CPU.LinearBackward"]
	entries["compute.CPU.LinearBackward"] = func(c *C) {
		hostileLinearBackward(c)
		c.Ok("no features, a bias gradient longer than none", func() error {
			cpu := compute.NewCPU()
			b, _ := cpu.Alloc(24)
			cpu.LinearBackward(2, 0, 0, b, b, b, nil, b, b, false)
			return cpu.Err()
		})
	}
	entries["compute.Layout.Last"] = func(c *C) {
		c.NoPanic("every layout and others", func() {
			c.Check(compute.NHWC.Last() && !compute.NCHW.Last() && !compute.Layout("").Last() && !compute.Layout("NHWC").Last(),
				"only %q is channels-last", compute.NHWC)
		})
	}
	entries["compute.Elem.Bytes"] = func(c *C) {
		c.NoPanic("every type and others", func() {
			c.Check(compute.F32.Bytes() == 4 && compute.F16.Bytes() == 2 && compute.BF16.Bytes() == 2, "sizes of f32, f16, bf16")
			compute.Elem(200).Bytes()
		})
	}
	entries["compute.Elem.String"] = func(c *C) {
		c.NoPanic("every type and others", func() {
			c.Check(compute.F16.String() == "f16" && compute.Elem(200).String() == "f32", "names")
		})
	}
	entries["compute.ElemOf"] = func(c *C) {
		c.NoPanic("nil, a CPU buffer, the emulated device's in 16 bits", func() {
			c.Check(compute.ElemOf(nil) == compute.F32, "nil is not float32")
			b, _ := compute.NewCPU().Alloc(4)
			c.Check(compute.ElemOf(b) == compute.F32, "a CPU buffer is not float32")
			be, err := cuda.Open(cuda.Options{Emulate: true})
			if err != nil {
				c.t.Fatal(err)
			}
			defer be.Close()
			h, _ := be.Alloc(4)
			c.Check(compute.ElemOf(be.AsElem(h, compute.F16)) == compute.F16, "a binary16 view is not f16")
		})
	}
	entries["compute.Layout.String"] = func(c *C) {
		c.NoPanic("every layout and others", func() {
			c.Check(compute.Layout("").String() == "NCHW" && compute.NHWC.String() == "NHWC" && compute.Layout("\x00").String() == "NCHW",
				"layouts name themselves NCHW or NHWC")
		})
	}
	entries["compute.Layout.Valid"] = func(c *C) {
		c.NoPanic("every layout and others", func() {
			c.Check(compute.Layout("").Valid() && compute.NCHW.Valid() && compute.NHWC.Valid() && !compute.Layout("nhwc ").Valid() &&
				!compute.Layout("\xff").Valid(), "only \"\", %q and %q are layouts", compute.NCHW, compute.NHWC)
		})
	}
	entries["compute.CPU.Alloc"] = func(c *C) {
		for _, n := range []int{-1, 1 << 62, math.MaxInt, 1 << 57} {
			c.Err("hostile sizes", func() error { _, err := compute.NewCPU().Alloc(n); return err })
			c.Err("hostile sizes, zero CPU", func() error { _, err := (&compute.CPU{}).Alloc(n); return err })
		}
		c.Err("1 TB, zero CPU", func() error { _, err := (&compute.CPU{}).Alloc(1 << 38); return err })
		c.Err("nil CPU", func() error { _, err := (*compute.CPU)(nil).Alloc(1); return err })
		c.Ok("4 values, zero CPU", func() error { _, err := (&compute.CPU{}).Alloc(4); return err })
	}
	entries["compute.CPU.Adopt"] = func(c *C) {
		c.Ok("nil, zero CPU", func() error { _, err := (&compute.CPU{}).Adopt(nil); return err })
		c.Err("nil CPU", func() error { _, err := (*compute.CPU)(nil).Adopt(nil); return err })
	}
	entries["compute.CPU.Free"] = func(c *C) {
		c.NoPanic("nil, a foreign buffer, twice the same, zero CPU", func() {
			cpu := &compute.CPU{}
			cpu.Free(nil)
			cpu.Free(foreign{})
			b, _ := cpu.Alloc(2)
			cpu.Free(b)
			cpu.Free(b)
		})
	}
	entries["compute.CPU.Download"] = func(c *C) {
		cpu := compute.NewCPU()
		b, _ := cpu.Alloc(2)
		c.Err("nil source", func() error { return cpu.Download(make([]float32, 2), nil) })
		c.Err("a foreign buffer", func() error { return cpu.Download(make([]float32, 2), foreign{}) })
		c.Err("a destination longer than the buffer", func() error { return cpu.Download(make([]float32, 3), b) })
	}
	entries["compute.CPU.Sum"] = func(c *C) {
		c.Err("nil", func() error { _, err := compute.NewCPU().Sum(nil); return err })
		c.Err("a foreign buffer", func() error { _, err := (&compute.CPU{}).Sum(foreign{}); return err })
	}
	entries["compute.CPU.Err"] = func(c *C) {
		c.Ok("zero CPU", func() error { return (&compute.CPU{}).Err() })
		c.Err("nil CPU", func() error { return (*compute.CPU)(nil).Err() })
	}
	entries["compute.CPU.Close"] = func(c *C) {
		c.Ok("zero CPU", func() error { return (&compute.CPU{}).Close() })
		c.Err("nil CPU", func() error { return (*compute.CPU)(nil).Close() })
	}
	for _, m := range []string{"Kernels", "Name", "ResetWork", "StepsAtOnce", "Work"} {
		entries["compute.CPU."+m] = func(c *C) {
			c.NoPanic("zero CPU", func() {
				cpu := &compute.CPU{}
				switch m {
				case "Kernels":
					cpu.Kernels()
				case "Name":
					cpu.Name()
				case "ResetWork":
					cpu.ResetWork()
				case "StepsAtOnce":
					c.Check(cpu.StepsAtOnce(-1) >= 0 && cpu.StepsAtOnce(huge) >= 0, "a negative number of steps")
				case "Work":
					cpu.Work()
				}
			})
		}
	}
	entries["compute.NewCPU"] = func(c *C) {
		c.Ok("", func() error { return compute.NewCPU().Err() })
	}
	entries["compute.Elements"] = func(c *C) {
		c.Err("-1", func() error { _, err := compute.Elements(2, -1); return err })
		c.Err("2^62·2^62", func() error { _, err := compute.Elements(huge, huge); return err })
		c.Err("2^57", func() error { _, err := compute.Elements(1 << 57); return err })
		c.Ok("none", func() error {
			n, err := compute.Elements()
			c.Check(n == 1, "Elements() = %d", n)
			return err
		})
	}
	entries["compute.Float64s"] = func(c *C) {
		c.Err("3 places", func() error { _, err := compute.Float64s(make([]float32, 3)); return err })
		c.Ok("nil", func() error { _, err := compute.Float64s(nil); return err })
	}
	entries["compute.HostData"] = func(c *C) {
		c.NoPanic("nil, a foreign buffer", func() {
			_, ok1 := compute.HostData(nil)
			_, ok2 := compute.HostData(foreign{})
			c.Check(!ok1 && !ok2, "HostData of nil or a foreign buffer")
		})
	}
	entries["compute.KernelSets"] = func(c *C) {
		c.NoPanic("", func() { c.Check(len(compute.KernelSets()) > 0, "no kernel sets") })
	}
	entries["compute.Sgemm"] = func(c *C) {
		c.Err("negative sizes", func() error { return compute.Sgemm(false, false, -1, 2, 2, 1, nil, 2, nil, 2, 0, nil, 2) })
		c.Err("huge sizes, nil matrices", func() error { return compute.Sgemm(true, true, huge, huge, huge, 1, nil, 1, nil, 1, 0, nil, 1) })
		c.Err("short matrices", func() error {
			return compute.Sgemm(false, true, 4, 4, 4, 1, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
		})
		c.Err("a leading dimension below the columns", func() error {
			return compute.Sgemm(false, false, 2, 2, 2, 1, make([]float32, 4), 1, make([]float32, 4), 2, 0, make([]float32, 4), 2)
		})
		c.Ok("4×4 by 4×4", func() error {
			return compute.Sgemm(false, true, 4, 4, 4, 1, make([]float32, 16), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
		})
		c.Ok("no rows", func() error {
			return compute.Sgemm(false, false, 0, 4, 4, 1, nil, 4, make([]float32, 16), 4, 0, nil, 4)
		})
	}
	entries["compute.NewTraffic"] = func(c *C) {
		c.NoPanic("", func() { compute.NewTraffic() })
	}
	entries["compute.TrafficOf"] = func(c *C) {
		c.NoPanic("nil", func() { compute.TrafficOf(nil) })
		c.NoPanic("zero and hostile launches", func() {
			compute.TrafficOf([]compute.Launch{{}, {Kernel: compute.CallGEMM, Library: true, FLOPs: -1}, {Read: math.MaxInt64, Written: math.MaxInt64}})
		})
	}
	entries["compute.Traffic.Add"] = func(c *C) {
		c.NoPanic("zero traffic, a zero launch and a library call", func() {
			var t compute.Traffic
			t.Add(compute.Launch{})
			t.Add(compute.Launch{Kernel: compute.CallGEMM, Library: true})
			c.Check(t.Launches[""] == 1 && t.Calls[compute.CallGEMM] == 1, "zero traffic did not count: %+v", t)
		})
	}
	entries["compute.Traffic.Clone"] = func(c *C) {
		c.NoPanic("zero traffic", func() { compute.Traffic{}.Clone() })
	}
	entries["compute.Traffic.Glue"] = func(c *C) {
		c.NoPanic("zero traffic, nil", func() { compute.Traffic{}.Glue(nil) })
		c.NoPanic("one launch without bytes, nil", func() { compute.Traffic{Launches: map[string]int64{"k": 1}}.Glue(nil) })
	}
	entries["compute.AdamArgs.Factors"] = func(c *C) {
		c.NoPanic("zero and hostile steps", func() {
			compute.AdamArgs{}.Factors()
			compute.AdamArgs{Step: -1, Beta1: math.NaN(), Beta2: 2}.Factors()
			compute.AdamArgs{Step: math.MaxInt, Beta1: 0.9, Beta2: 0.99}.Factors()
		})
	}
	geoms := map[string]func(){
		"ConvGeom.GroupPatch":    func() { compute.ConvGeom{G: -3}.GroupPatch() },
		"ConvGeom.Groups":        func() { compute.ConvGeom{G: -3}.Groups() },
		"ConvGeom.PatchLen":      func() { compute.ConvGeom{C: -1}.PatchLen() },
		"ConvGeom.OutH":          func() { compute.ConvGeom{}.OutH() },
		"ConvGeom.OutW":          func() { compute.ConvGeom{SW: -1, W: 5}.OutW() },
		"PoolGeom.OutH":          func() { compute.PoolGeom{}.OutH() },
		"PoolGeom.OutW":          func() { compute.PoolGeom{Ceil: true, W: 4, KW: 2}.OutW() },
		"PadGeom.OutH":           func() { compute.PadGeom{H: -1}.OutH() },
		"PadGeom.OutW":           func() { compute.PadGeom{}.OutW() },
		"KernelWork.ActiveShare": func() { compute.KernelWork{}.ActiveShare() },
		"KernelWork.Skipped":     func() { compute.KernelWork{MACs: -1}.Skipped() },
	}
	for name, f := range geoms {
		entries["compute."+name] = func(c *C) { c.NoPanic("zero and hostile values", f) }
	}
	entries["compute.ConvGeom.OutH"] = func(c *C) {
		c.NoPanic("zero geometry", func() { c.Check(compute.ConvGeom{}.OutH() == 0, "zero geometry's output height is not 0") })
		c.NoPanic("a kernel larger than the input", func() {
			g := compute.ConvGeom{H: 1, KH: 3, SH: 2, DH: 1}
			c.Check(g.OutH() == 0, "a 3-row kernel over 1 row (stride 2) has %d rows of output", g.OutH())
		})
	}
}
