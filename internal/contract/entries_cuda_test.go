package contract_test

import (
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/program"
)

// Entries of compute/cuda, on the emulated device (its GPU code is behind
// -tags cuda). A nil or zero Backend refuses through its methods that
// return an error and describes itself; its kernels trust their sizes and
// buffers (compute.Backend says the caller checks them, and the CUDA
// backend, unlike the CPU's, does not: a hostile size would run past a
// device buffer), so they are held here to valid small calls, which must
// leave no error; compute/cuda/emu_test.go holds their values to PyTorch's
// (package conformance).

// emu is a backend on the emulated device and buffers of 1024 values.
func emu(c *C) (*cuda.Backend, func() compute.Buffer) {
	be, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { be.Close() })
	return be, func() compute.Buffer {
		b, err := be.Alloc(1024)
		if err != nil {
			c.t.Fatal(err)
		}
		return b
	}
}

func init() {
	conv := compute.ConvGeom{C: 1, H: 4, W: 4, O: 2, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1, DH: 1, DW: 1}
	pool := compute.PoolGeom{C: 1, H: 4, W: 4, KH: 2, KW: 2, SH: 2, SW: 2}
	pad := compute.PadGeom{H: 2, W: 2, PT: 1, PL: 1, PB: 1, PR: 1}
	kernels := map[string]func(be *cuda.Backend, b func() compute.Buffer){
		"Fill":          func(be *cuda.Backend, b func() compute.Buffer) { be.Fill(b(), 1) },
		"Copy":          func(be *cuda.Backend, b func() compute.Buffer) { be.Copy(b(), b()) },
		"AddTo":         func(be *cuda.Backend, b func() compute.Buffer) { be.AddTo(b(), b()) },
		"Upload":        func(be *cuda.Backend, b func() compute.Buffer) { be.Upload(b(), make([]float32, 1024)) },
		"Free":          func(be *cuda.Backend, b func() compute.Buffer) { x := b(); be.Free(x); be.Free(x); be.Free(nil) },
		"CopyChannels":  func(be *cuda.Backend, b func() compute.Buffer) { be.CopyChannels(2, 1, 4, b(), 2, 1, b(), 3, 0) },
		"Conv2dForward": func(be *cuda.Backend, b func() compute.Buffer) { be.Conv2dForward(conv, 2, b(), b(), b(), b()) },
		"Conv2dBackward": func(be *cuda.Backend, b func() compute.Buffer) {
			be.Conv2dBackward(conv, 2, b(), b(), b(), b(), b(), b(), false)
		},
		"LinearForward": func(be *cuda.Backend, b func() compute.Buffer) { be.LinearForward(2, 4, 3, b(), b(), b(), b(), true) },
		"LinearBackward": func(be *cuda.Backend, b func() compute.Buffer) {
			be.LinearBackward(2, 4, 3, b(), b(), b(), b(), b(), b(), false)
		},
		"ReLUForward":           func(be *cuda.Backend, b func() compute.Buffer) { be.ReLUForward(b(), b()) },
		"ClipForward":           func(be *cuda.Backend, b func() compute.Buffer) { be.ClipForward(6, b(), b()) },
		"ClipBackward":          func(be *cuda.Backend, b func() compute.Buffer) { be.ClipBackward(6, b(), b(), b()) },
		"ChannelShuffle":        func(be *cuda.Backend, b func() compute.Buffer) { be.ChannelShuffle(2, 2, 4, 8, b(), b()) },
		"ReLUBackward":          func(be *cuda.Backend, b func() compute.Buffer) { be.ReLUBackward(b(), b(), b()) },
		"MaxPool2dForward":      func(be *cuda.Backend, b func() compute.Buffer) { be.MaxPool2dForward(pool, 2, b(), b()) },
		"MaxPool2dBackward":     func(be *cuda.Backend, b func() compute.Buffer) { be.MaxPool2dBackward(pool, 2, b(), b(), b(), true) },
		"AvgPool2dForward":      func(be *cuda.Backend, b func() compute.Buffer) { be.AvgPool2dForward(pool, 2, true, b(), b()) },
		"AvgPool2dBackward":     func(be *cuda.Backend, b func() compute.Buffer) { be.AvgPool2dBackward(pool, 2, false, b(), b()) },
		"GlobalAvgPoolForward":  func(be *cuda.Backend, b func() compute.Buffer) { be.GlobalAvgPoolForward(3, 16, b(), b()) },
		"GlobalAvgPoolBackward": func(be *cuda.Backend, b func() compute.Buffer) { be.GlobalAvgPoolBackward(3, 16, b(), b()) },
		"Pad2dForward":          func(be *cuda.Backend, b func() compute.Buffer) { be.Pad2dForward(pad, 3, b(), b()) },
		"Pad2dBackward":         func(be *cuda.Backend, b func() compute.Buffer) { be.Pad2dBackward(pad, 3, b(), b()) },
		"SoftmaxForward":        func(be *cuda.Backend, b func() compute.Buffer) { be.SoftmaxForward(2, 10, true, b(), b()) },
		"SoftmaxBackward":       func(be *cuda.Backend, b func() compute.Buffer) { be.SoftmaxBackward(2, 10, false, b(), b(), b()) },
		"BatchNormStats": func(be *cuda.Backend, b func() compute.Buffer) {
			be.BatchNormStats(2, 2, 3, 4, compute.NCHW, b(), b(), b())
		},
		"BatchNormUpdateRunning": func(be *cuda.Backend, b func() compute.Buffer) {
			be.BatchNormUpdateRunning(2, 3, 8, 0.1, b(), b(), b(), b())
		},
		"BatchNormScaleShift": func(be *cuda.Backend, b func() compute.Buffer) {
			be.BatchNormScaleShift(2, 3, 1e-5, b(), b(), b(), b(), b(), b())
		},
		"ChannelAffine": func(be *cuda.Backend, b func() compute.Buffer) {
			be.ChannelAffine(2, 2, 3, 4, compute.NHWC, b(), b(), b(), b(), true)
		},
		"BatchNormBackward": func(be *cuda.Backend, b func() compute.Buffer) {
			be.BatchNormBackward(2, 3, 4, compute.NHWC, true, 1e-5, b(), b(), b(), b(), b(), b(), b(), b(), false)
		},
		"IF": func(be *cuda.Backend, b func() compute.Buffer) {
			be.IF(compute.IFArgs{Steps: 3, N: 8, In: b(), V: b(), Spikes: b(), Counts: b(), Threshold: 1})
		},
		"IFRecord": func(be *cuda.Backend, b func() compute.Buffer) {
			be.IFRecord(compute.IFArgs{Steps: 3, N: 4, In: b(), V: b(), Spikes: b(), Counts: b(), Threshold: 1}, b())
		},
		"IFSurrogateGrad": func(be *cuda.Backend, b func() compute.Buffer) {
			be.IFSurrogateGrad(compute.IFGradArgs{Steps: 3, N: 4, H: b(), DS: b(), ConstantGrad: true, DU: b(), Threshold: 1, Alpha: 4})
		},
		"ProxyLossGrad":   func(be *cuda.Backend, b func() compute.Buffer) { be.ProxyLossGrad(2, 10, b(), b(), b()) },
		"ProxyLossGradOf": func(be *cuda.Backend, b func() compute.Buffer) { be.ProxyLossGradOf(2, 4, 10, b(), b(), b()) },
		"Adam": func(be *cuda.Backend, b func() compute.Buffer) {
			be.Adam(compute.AdamArgs{Step: 1, LR: 1e-3, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8}, b(), b(), b(), b())
		},
		"BatchNormSums": func(be *cuda.Backend, b func() compute.Buffer) {
			be.BatchNormSums(2, 2, 3, 4, compute.NHWC, b(), b(), b())
		},
		"BatchNormDivide": func(be *cuda.Backend, b func() compute.Buffer) { be.BatchNormDivide(6, 8, b(), b(), b()) },
		"Transpose":       func(be *cuda.Backend, b func() compute.Buffer) { be.Transpose(3, 5, 7, b(), b()) },
		"AsElem": func(be *cuda.Backend, b func() compute.Buffer) {
			be.AsElem(b(), compute.F16)
			be.AsElem(b(), compute.F32)
		},
		"Convert": func(be *cuda.Backend, b func() compute.Buffer) {
			h := be.AsElem(b(), compute.F16).Slice(0, 1024)
			be.Convert(b(), h)
			be.Convert(h, b())
		},
		"BatchNormBackwardSums": func(be *cuda.Backend, b func() compute.Buffer) {
			be.BatchNormBackwardSums(2, 3, 4, compute.NHWC, 1e-5, b(), b(), b(), b(), b(), b(), b())
		},
		"BatchNormBackwardData": func(be *cuda.Backend, b func() compute.Buffer) {
			be.BatchNormBackwardData(2, 3, 4, 8, compute.NCHW, 1e-5, b(), b(), b(), b(), b(), b(), b())
		},
	}
	for name, k := range kernels {
		entries["compute/cuda.Backend."+name] = func(c *C) {
			c.Ok("valid small arguments on the emulated device (hostile ones are the caller's to refuse: compute.Backend)", func() error {
				be, b := emu(c)
				k(be, b)
				return be.Err()
			})
		}
	}

	nilB := (*cuda.Backend)(nil)
	zeroB := func() *cuda.Backend { return &cuda.Backend{} }
	entries["compute/cuda.Open"] = func(c *C) {
		c.Err("a dry run on a GPU", func() error { _, err := cuda.Open(cuda.Options{DryRun: true}); return err })
		c.Err("cuDNN's dry run without a dry run", func() error { _, err := cuda.Open(cuda.Options{Emulate: true, DryRunCuDNN: true}); return err })
		c.NoPanic("a GPU in this build, device -1", func() { cuda.Open(cuda.Options{Device: -1}) })
		c.Ok("the emulated device, hostile workspaces", func() error {
			be, err := cuda.Open(cuda.Options{Emulate: true, WorkspaceBytes: -1, DNNWorkspaceBytes: huge})
			if err == nil {
				be.Close()
			}
			return err
		})
	}
	entries["compute/cuda.VisibleGPUs"] = func(c *C) { c.NoPanic("", func() { cuda.VisibleGPUs() }) }
	entries["compute/cuda.ConvKernels"] = func(c *C) { c.NoPanic(`""`, func() { c.Check(!cuda.ConvKernels(""), "no kernel is a convolution's") }) }
	entries["compute/cuda.Backend.Alloc"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilB.Alloc(1); return err })
		c.Err("zero backend", func() error { _, err := zeroB().Alloc(1); return err })
		be, _ := emu(c)
		for _, n := range []int{-1, huge} {
			c.Err("hostile sizes", func() error { _, err := be.Alloc(n); return err })
		}
		c.Ok("no values", func() error { _, err := be.Alloc(0); return err })
	}
	entries["compute/cuda.Backend.Adopt"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilB.Adopt(nil); return err })
		c.Err("zero backend", func() error { _, err := zeroB().Adopt(nil); return err })
		be, _ := emu(c)
		c.Ok("nil", func() error { _, err := be.Adopt(nil); return err })
	}
	entries["compute/cuda.Backend.Download"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilB.Download(nil, nil) })
		c.Err("zero backend", func() error { return zeroB().Download(nil, nil) })
		be, b := emu(c)
		c.Err("nil source", func() error { return be.Download(nil, nil) })
		c.Ok("1024 values", func() error { return be.Download(make([]float32, 1024), b()) })
	}
	entries["compute/cuda.Backend.Sum"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilB.Sum(nil); return err })
		c.Err("zero backend", func() error { _, err := zeroB().Sum(nil); return err })
		be, b := emu(c)
		c.Err("nil buffer", func() error { _, err := be.Sum(nil); return err })
		c.Ok("zeros", func() error { s, err := be.Sum(b()); c.Check(s == 0, "the sum of zeros is %g", s); return err })
	}
	for _, m := range []string{"Err", "Close", "CollectiveID"} {
		entries["compute/cuda.Backend."+m] = func(c *C) {
			call := func(be *cuda.Backend) error {
				switch m {
				case "Err":
					return be.Err()
				case "Close":
					return be.Close()
				}
				_, err := be.CollectiveID()
				return err
			}
			c.Err("nil receiver", func() error { return call(nilB) })
			c.Err("zero backend", func() error { return call(zeroB()) })
			if m == "CollectiveID" {
				be, _ := emu(c)
				c.NoPanic("the emulated device (NCCL's stand-in, or no library)", func() { call(be) })
			}
		}
	}
	entries["compute/cuda.Backend.JoinCollectives"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilB.JoinCollectives(0, 1, nil, nil, time.Second); return err })
		c.Err("zero backend", func() error { _, err := zeroB().JoinCollectives(0, 1, nil, nil, time.Second); return err })
	}
	for _, m := range []string{"Describe", "DeviceMemory", "LaunchLog", "LogLaunches", "Name", "Precision", "ResetPeak", "ResetTraffic", "StepsAtOnce", "Traffic"} {
		entries["compute/cuda.Backend."+m] = func(c *C) {
			be, _ := emu(c)
			for _, x := range []*cuda.Backend{zeroB(), be} {
				c.NoPanic("zero backend and the emulated device", func() {
					switch m {
					case "Describe":
						c.Check(x.Describe() != "", "no description")
					case "DeviceMemory":
						x.DeviceMemory()
					case "LaunchLog":
						x.LaunchLog()
					case "LogLaunches":
						x.LogLaunches(true)
					case "Name":
						x.Name()
					case "Precision":
						x.Precision()
					case "ResetPeak":
						x.ResetPeak()
					case "ResetTraffic":
						x.ResetTraffic()
					case "StepsAtOnce":
						x.StepsAtOnce(-1)
					case "Traffic":
						x.Traffic()
					}
				})
			}
		}
	}

	// launches computed from a program
	entries["compute/cuda.Launches"] = func(c *C) {
		p := oneOp(&program.ReLU{X: 0, Y: 1}, 2)
		d := program.Dims{N: 1, Steps: 1}
		c.Err("nil program", func() error { _, err := cuda.Launches(nil, &program.ReLU{}, d, cuda.Options{}); return err })
		c.Err("nil op", func() error { _, err := cuda.Launches(p, nil, d, cuda.Options{}); return err })
		c.Err("an op naming slots the program lacks", func() error {
			_, err := cuda.Launches(p, &program.ReLU{X: 7, Y: -3}, d, cuda.Options{})
			return err
		})
		c.Err("dims 0", func() error {
			_, err := cuda.Launches(p, &program.ReLU{X: 0, Y: 1}, program.Dims{}, cuda.Options{})
			return err
		})
		c.Err("dims 2^62", func() error {
			_, err := cuda.Launches(p, &program.ReLU{X: 0, Y: 1}, program.Dims{N: huge, Steps: huge}, cuda.Options{})
			return err
		})
		c.Err("a program its Plan refuses", func() error {
			_, err := cuda.Launches(&program.Program{Ops: []program.Op{nil}}, &program.ReLU{}, d, cuda.Options{})
			return err
		})
		c.Ok("a ReLU", func() error { _, err := cuda.Launches(p, &program.ReLU{X: 0, Y: 1}, d, cuda.Options{}); return err })
	}
	entries["compute/cuda.RunLaunches"] = func(c *C) {
		p := oneOp(&program.ReLU{X: 0, Y: 1}, 2)
		c.Err("nil program", func() error { _, err := cuda.RunLaunches(nil, nil, cuda.Options{}); return err })
		c.Err("pass 5", func() error {
			_, err := cuda.RunLaunches(p, []program.PassRun{{Pass: 5, Dims: program.Dims{N: 1, Steps: 1}}}, cuda.Options{})
			return err
		})
		c.Err("dims -1", func() error {
			_, err := cuda.RunLaunches(p, []program.PassRun{{Dims: program.Dims{N: -1, Steps: 1}}}, cuda.Options{})
			return err
		})
		c.Ok("the tiny network's SNN", func() error {
			_, s := tinySNN(c)
			l, err := lower.Simulation(s, lower.SNNOptions{Options: lower.Options{Capacity: 2}, Steps: 15})
			if err != nil {
				return err
			}
			_, err = cuda.RunLaunches(l.Program, l.Runs(2), cuda.Options{})
			return err
		})
	}
}
