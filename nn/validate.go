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
			return fmt.Errorf("layer %d (%s %q): its output %s holds more than %d values per sample", i, KindOf(net.Layers[i]), NameOf(net.Layers[i]), ShapeString(s), MaxValuesPerSample)
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
			return fmt.Errorf("layer %d (%s %q): %w", i, KindOf(l), NameOf(l), err)
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
	if v, ok := l.(Validator); ok {
		return v.Validate()
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
