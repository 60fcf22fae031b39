package contract_test

import (
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/recipe"
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
