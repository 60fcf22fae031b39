package nn

import (
	"fmt"
	"math"
)

// MaxValuesPerSample bounds the values one sample may hold at any layer
// (input, output or parameters of one layer): 2^28 float32s, 1 GiB. A
// larger network is not one proxykit can train, and a model file that
// declares one is more likely broken or hostile.
const MaxValuesPerSample = 1 << 28

// Validate checks a network before anything is allocated or run: at least
// one layer; every layer's attributes by PyTorch's rules (positive strides,
// kernels and dilations, non-negative padding no larger than half a
// pooling window, positive BatchNorm ε, momentum in [0, 1], parameter
// shapes that agree); every parameter and running statistic finite; every
// shape computable and no layer's values per sample above
// MaxValuesPerSample. Errors name the layer and the field or tensor.
func Validate(net *Network) error {
	if net == nil || len(net.Layers) == 0 {
		return fmt.Errorf("the network has no layers")
	}
	if len(net.InputShape) == 0 {
		return fmt.Errorf("the network has no input shape")
	}
	n := 1
	for _, d := range net.InputShape {
		if d < 1 || d > MaxValuesPerSample || n > MaxValuesPerSample/d {
			return fmt.Errorf("input shape %s: every dimension must be positive and a sample at most %d values", ShapeString(net.InputShape), MaxValuesPerSample)
		}
		n *= d
	}
	if err := ValidateLayers(net.Layers); err != nil {
		return err
	}
	shapes, err := net.Shapes()
	if err != nil {
		return err
	}
	for i, s := range shapes {
		if v, ok := numelChecked(s); !ok || v > MaxValuesPerSample {
			return fmt.Errorf("layer %d (%s %q): its output %s holds more than %d values per sample", i, net.Layers[i].Kind(), net.Layers[i].Name(), ShapeString(s), MaxValuesPerSample)
		}
	}
	return nil
}

// ValidateLayers checks each layer's attributes and parameters as Validate
// does, without shapes: for readers that infer the input shape from the
// layers.
func ValidateLayers(layers []Layer) error {
	if len(layers) == 0 {
		return fmt.Errorf("the network has no layers")
	}
	for i, l := range layers {
		if l == nil {
			return fmt.Errorf("layer %d is empty", i)
		}
		if err := validateLayer(l); err != nil {
			return fmt.Errorf("layer %d (%s %q): %w", i, l.Kind(), l.Name(), err)
		}
	}
	return nil
}

func numelChecked(shape []int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return 0, false
		}
		n *= d
	}
	return n, true
}

func validateLayer(l Layer) error {
	for _, p := range l.Params() {
		if err := validateParam(p); err != nil {
			return err
		}
	}
	pos := func(field string, vs ...int) error {
		for _, v := range vs {
			if v < 1 {
				return fmt.Errorf("%s must be at least 1, got %d", field, v)
			}
		}
		return nil
	}
	nonneg := func(field string, vs ...int) error {
		for _, v := range vs {
			if v < 0 {
				return fmt.Errorf("%s must not be negative, got %d", field, v)
			}
		}
		return nil
	}
	switch l := l.(type) {
	case *Conv2d:
		if l.Weight == nil || len(l.Weight.Shape) != 4 {
			return fmt.Errorf("weight must be 4-D [out, in, kH, kW], got %s", paramShape(l.Weight))
		}
		if err := pos("weight dimensions", l.Weight.Shape...); err != nil {
			return err
		}
		if l.Bias != nil && (len(l.Bias.Shape) != 1 || l.Bias.Shape[0] != l.Weight.Shape[0]) {
			return fmt.Errorf("bias %s does not match %d output channels", paramShape(l.Bias), l.Weight.Shape[0])
		}
		if err := pos("stride", l.SH, l.SW); err != nil {
			return err
		}
		if err := pos("dilation", l.DH, l.DW); err != nil {
			return err
		}
		if l.Groups < 0 || l.Weight.Shape[0]%l.groups() != 0 {
			return fmt.Errorf("groups %d must be positive and divide the %d output channels", l.Groups, l.Weight.Shape[0])
		}
		return nonneg("padding", l.PT, l.PL, l.PB, l.PR)
	case *Linear:
		if l.Weight == nil || len(l.Weight.Shape) != 2 {
			return fmt.Errorf("weight must be 2-D [out, in], got %s", paramShape(l.Weight))
		}
		if err := pos("weight dimensions", l.Weight.Shape...); err != nil {
			return err
		}
		if l.Bias != nil && (len(l.Bias.Shape) != 1 || l.Bias.Shape[0] != l.Weight.Shape[0]) {
			return fmt.Errorf("bias %s does not match %d outputs", paramShape(l.Bias), l.Weight.Shape[0])
		}
	case *Pool2d:
		if err := pos("kernel size", l.KH, l.KW); err != nil {
			return err
		}
		if err := pos("stride", l.SH, l.SW); err != nil {
			return err
		}
		if err := nonneg("padding", l.PT, l.PL, l.PB, l.PR); err != nil {
			return err
		}
		if 2*max(l.PT, l.PB) > l.KH || 2*max(l.PL, l.PR) > l.KW {
			return fmt.Errorf("padding %d,%d,%d,%d is more than half the %dx%d window (PyTorch refuses it too)", l.PT, l.PL, l.PB, l.PR, l.KH, l.KW)
		}
	case *BatchNorm2d:
		if l.Gamma == nil || l.Beta == nil {
			return fmt.Errorf("γ and β are required")
		}
		c := len(l.Gamma.Data)
		if c < 1 || len(l.Beta.Data) != c || len(l.RunningMean) != c || len(l.RunningVar) != c {
			return fmt.Errorf("γ, β, running mean and variance must have one value per channel: %d, %d, %d, %d",
				len(l.Gamma.Data), len(l.Beta.Data), len(l.RunningMean), len(l.RunningVar))
		}
		if !(l.Eps > 0) || math.IsInf(float64(l.Eps), 0) {
			return fmt.Errorf("eps must be positive and finite, got %g", l.Eps)
		}
		if !(l.Momentum >= 0 && l.Momentum <= 1) {
			return fmt.Errorf("momentum must lie in [0, 1], got %g", l.Momentum)
		}
		if i, bad := firstNonFinite(l.RunningMean); bad {
			return fmt.Errorf("running_mean[%d] is %g", i, l.RunningMean[i])
		}
		for i, v := range l.RunningVar {
			if !(v >= 0) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("running_var[%d] is %g; variances are finite and not negative", i, v)
			}
		}
	case *Pad2d:
		if err := nonneg("padding", l.PT, l.PL, l.PB, l.PR); err != nil {
			return err
		}
		if math.IsNaN(float64(l.Value)) || math.IsInf(float64(l.Value), 0) {
			return fmt.Errorf("padding value is %g", l.Value)
		}
	}
	return nil
}

func paramShape(p *Param) string {
	if p == nil {
		return "none"
	}
	return ShapeString(p.Shape)
}

// validateParam checks that a parameter's shape and data agree and that
// every value is finite.
func validateParam(p *Param) error {
	if p == nil {
		return fmt.Errorf("a parameter is missing")
	}
	if n, ok := numelChecked(p.Shape); !ok || n != len(p.Data) {
		return fmt.Errorf("parameter %q has shape %s but %d values", p.Name, ShapeString(p.Shape), len(p.Data))
	}
	if i, bad := firstNonFinite(p.Data); bad {
		return fmt.Errorf("parameter %q holds %g at index %d: weights must be finite", p.Name, p.Data[i], i)
	}
	return nil
}

// firstNonFinite finds the first NaN or infinity in v.
func firstNonFinite(v []float32) (int, bool) {
	for i, x := range v {
		if x-x != 0 { // NaN or ±Inf
			return i, true
		}
	}
	return 0, false
}

// CheckFinite reports the first NaN or infinity in a tensor's values, naming
// the tensor: inputs are checked where they enter.
func CheckFinite(what string, v []float32) error {
	if i, bad := firstNonFinite(v); bad {
		return fmt.Errorf("%s holds %g at index %d", what, v[i], i)
	}
	return nil
}
