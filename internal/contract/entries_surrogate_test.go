package contract_test

import (
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

// Entries of surrogate-gradient training's kernels and settings: the CPU
// refuses their hostile arguments through Err; the surrogate's derivative
// takes any float32.

func init() {
	entries["compute.CPU.IFRecord"] = kernelEntry([]kernelCase{
		func(c *compute.CPU, b, x compute.Buffer) { c.IFRecord(compute.IFArgs{Steps: 1, N: 4}, b) },
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFRecord(compute.IFArgs{Steps: 1, N: 4, In: b, V: b, Spikes: b}, nil)
		},
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFRecord(compute.IFArgs{Steps: 2, N: 4, In: b, V: b, Spikes: b}, x)
		},
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFRecord(compute.IFArgs{Steps: -1, N: 4, In: b, V: b, Spikes: b}, b)
		},
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFRecord(compute.IFArgs{Steps: huge, N: huge, In: b, V: b, Spikes: b}, b)
		},
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFRecord(compute.IFArgs{Steps: 1, N: 4, In: b, V: b, Spikes: b, Scale: b, C: 1, HW: 4}, b)
		},
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFRecord(compute.IFArgs{Steps: 1, N: 4, In: b, V: b, Spikes: b, Start: true}, b)
		},
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFRecord(compute.IFArgs{Steps: 1, N: 4, In: foreign{}, V: b, Spikes: b}, b)
		},
	})
	entries["compute.CPU.IFSurrogateGrad"] = kernelEntry([]kernelCase{
		func(c *compute.CPU, b, x compute.Buffer) { c.IFSurrogateGrad(compute.IFGradArgs{Steps: 1, N: 4}) },
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFSurrogateGrad(compute.IFGradArgs{Steps: 2, N: 4, H: b, DS: x, DU: b})
		},
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFSurrogateGrad(compute.IFGradArgs{Steps: -3, N: 4, H: b, DS: b, DU: b})
		},
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFSurrogateGrad(compute.IFGradArgs{Steps: huge, N: huge, H: b, DS: b, DU: b, ConstantGrad: true, ConstantInput: true})
		},
		func(c *compute.CPU, b, x compute.Buffer) {
			c.IFSurrogateGrad(compute.IFGradArgs{Steps: 1, N: 4, H: b, DS: b, DU: foreign{}})
		},
	})
	entries["compute.SigmoidSurrogate"] = func(c *C) {
		nan, inf := float32(math.NaN()), float32(math.Inf(1))
		c.NoPanic("zero, negative, huge, NaN and infinite values", func() {
			for _, x := range []float32{0, -1, math.MaxFloat32, -math.MaxFloat32, nan, inf, -inf} {
				for _, alpha := range []float32{0, -4, 4, math.MaxFloat32, nan, inf} {
					compute.SigmoidSurrogate(x, alpha)
				}
			}
		})
		c.NoPanic("the derivative's peak", func() {
			c.Check(compute.SigmoidSurrogate(0, 4) == 1, "α·σ(0)·(1 − σ(0)) at α = 4 is %g, not 1", compute.SigmoidSurrogate(0, 4))
		})
	}
	entries["recipe.DefaultSurrogate"] = func(c *C) {
		c.Ok("a surrogate run's settings", func() error {
			s, g := recipe.Default(), recipe.DefaultSurrogate()
			s.Method, s.Surrogate = recipe.MethodSurrogate, &g
			return s.Validate()
		})
		c.Err("its α zero, negative, NaN, infinite", func() error {
			for _, a := range []float64{0, -4, math.NaN(), math.Inf(1)} {
				s, g := recipe.Default(), recipe.DefaultSurrogate()
				g.Alpha = a
				s.Method, s.Surrogate = recipe.MethodSurrogate, &g
				if s.Validate() == nil {
					return nil
				}
			}
			s, g := recipe.Default(), recipe.DefaultSurrogate()
			s.Method, s.Surrogate = recipe.MethodSurrogate, nil
			if s.Validate() == nil {
				return nil
			}
			s.Surrogate, g.Function = &g, "arctan"
			return s.Validate()
		})
	}
	entries["recipe.Settings.TrainingMethod"] = func(c *C) {
		c.NoPanic("zero settings", func() {
			c.Check(recipe.Settings{}.TrainingMethod() == recipe.MethodProxy, "zero settings' method is not %s", recipe.MethodProxy)
		})
	}
}

func init() {
	sg := lower.Surrogate{Alpha: 4}
	for _, f := range []string{"SurrogateStep", "SurrogateStepListing", "SurrogatePrograms"} {
		call := func(s lower.SNN, sg lower.Surrogate, o lower.Options) error {
			var err error
			switch f {
			case "SurrogateStep":
				_, err = lower.SurrogateStep(s, sg, o)
			case "SurrogateStepListing":
				_, err = lower.SurrogateStepListing(s, sg, o)
			case "SurrogatePrograms":
				_, _, err = lower.SurrogatePrograms(s, sg, o)
			}
			return err
		}
		entries["lower."+f] = func(c *C) {
			_, s := tinySNN(c)
			o := lower.Options{Capacity: 2}
			c.Err("zero SNN", func() error { return call(lower.SNN{}, sg, o) })
			c.Err("zero options", func() error { return call(s, sg, lower.Options{}) })
			c.Err("capacity -1, 2^40", func() error {
				if call(s, sg, lower.Options{Capacity: -1}) == nil {
					return nil
				}
				return call(s, sg, lower.Options{Capacity: 1 << 40})
			})
			c.Err("sharpness 0, negative, NaN", func() error {
				for _, a := range []float32{0, -4, float32(math.NaN())} {
					if call(s, lower.Surrogate{Alpha: a}, o) == nil {
						return nil
					}
				}
				return call(s, lower.Surrogate{Alpha: float32(math.Inf(-1))}, o)
			})
			c.Ok("the tiny network's SNN", func() error { return call(s, sg, o) })
		}
	}

	entries["train.NewMethodEngine"] = func(c *C) {
		net, snn := tinyNet(c.t)
		other, _ := tinyNet(c.t)
		m := train.Method{Surrogate: &sg}
		c.Err("nil backend", func() error { _, err := train.NewMethodEngine(nil, net, snn, 2, m); return err })
		c.Err("nil networks", func() error { _, err := train.NewMethodEngine(compute.NewCPU(), nil, nil, 2, m); return err })
		c.Err("the SNN of another network", func() error { _, err := train.NewMethodEngine(compute.NewCPU(), other, snn, 2, m); return err })
		c.Err("capacity 0", func() error { _, err := train.NewMethodEngine(compute.NewCPU(), net, snn, 0, m); return err })
		c.Err("a surrogate of sharpness 0, at its first step", func() error {
			snn.Config.Timesteps = 2
			e, err := train.NewMethodEngine(compute.NewCPU(), net, snn, 2, train.Method{Surrogate: &lower.Surrogate{}})
			if err != nil {
				return err
			}
			x, _ := nn.NewTensor(2, 1, 28, 28)
			_, err = e.Step(x, []uint8{0, 1}, true)
			return err
		})
		c.Ok("a surrogate step of two images", func() error {
			snn.Config.Timesteps = 2
			e, err := train.NewMethodEngine(compute.NewCPU(), net, snn, 2, m)
			if err != nil {
				return err
			}
			x, _ := nn.NewTensor(2, 1, 28, 28)
			_, err = e.Step(x, []uint8{0, 1}, true)
			return err
		})
	}
	entries["train.Engine.Method"] = func(c *C) {
		c.NoPanic("nil receiver, zero engine", func() {
			(*train.Engine)(nil).Method()
			(&train.Engine{}).Method()
		})
		c.Check(tinyEngine(c).Method().String() == recipe.MethodProxy, "NewEngine's method is not proxy learning")
	}
	entries["train.Method.String"] = func(c *C) {
		c.NoPanic("zero method, a zero surrogate", func() {
			c.Check(train.Method{}.String() == recipe.MethodProxy, "the zero method is not proxy learning")
			c.Check(train.Method{Surrogate: &lower.Surrogate{}}.String() == recipe.MethodSurrogate, "a surrogate method is not named so")
		})
	}
	entries["train.MethodOf"] = func(c *C) {
		c.NoPanic("zero settings, a surrogate method without its surrogate", func() {
			c.Check(train.MethodOf(recipe.Settings{}).Surrogate == nil, "zero settings give a surrogate")
			c.Check(train.MethodOf(recipe.Settings{Method: recipe.MethodSurrogate}).Surrogate == nil, "no surrogate setting gives one")
		})
	}
}
