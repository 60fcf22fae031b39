package convert

import (
	"fmt"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/train"
)

// Normalize rescales ann's parameters in place so that its SNN, with IF
// neurons of effective threshold theta (v_th − v_reset), fires at rates
// that approximate the ANN's activations divided by the scales (see the
// package comment). scales are Calibrate's, one per neuron layer.
//
// Every stretch of layers between two IF layers must carry the scales: its
// first layer with parameters must be a Conv2d or Linear (to take λ_{l−1}
// into its weights) unless λ_{l−1} is 1, and its other layers may only be
// ones that commute with positive scaling (max and average pooling, zero
// padding, flattening, global average pooling, further convolutions,
// linear layers and BatchNorm). A stretch without parameters passes the
// scale through unchanged: its λ is set to its input's.
//
// With theta = 1 the normalised ANN's activations are the original's
// divided by λ_l, so its predictions are the original's; with other theta
// only the SNN is guaranteed to be the converted one.
func Normalize(ann *nn.Network, scales []Scale, theta float64) error {
	if !(theta > 0) {
		return fmt.Errorf("effective threshold v_th − v_reset must be positive, got %g", theta)
	}
	layers := train.TrainedLayers(ann)
	idx, names := neuronLayers(layers)
	if len(scales) != len(idx) {
		return fmt.Errorf("%d scales for %d neuron layers", len(scales), len(idx))
	}
	for j, s := range scales {
		if s.Layer != names[j] {
			return fmt.Errorf("scale %d is for layer %q, the network's neuron layer %d is %q", j, s.Layer, j, names[j])
		}
		if !(s.Lambda > 0) {
			return fmt.Errorf("layer %q never had a positive activation on the calibration images (λ = %g): it cannot be normalised; use more images or check the data", s.Layer, s.Lambda)
		}
	}
	// Check every stretch before changing anything.
	type stretch struct{ first, last nn.Layer }
	plan := make([]stretch, len(idx))
	start := 0
	for j, end := range idx {
		var affine []nn.Layer
		for i := start; i <= end; i++ {
			l := layers[i]
			_, scalable := l.(nn.Scalable)
			switch r := l.Role(); {
			case scalable:
				affine = append(affine, l)
			case r.Neuron:
				if i != end {
					return fmt.Errorf("layer %d (%s %q): two ReLUs in a row", i, l.Kind(), l.Name())
				}
			case r.Homogeneous:
			default:
				return fmt.Errorf("layer %d (%s %q %s): it does not commute with scaling, so conversion cannot normalise through it", i, l.Kind(), l.Name(), l.Describe())
			}
		}
		if len(affine) > 0 {
			plan[j] = stretch{affine[0], affine[len(affine)-1]}
		}
		start = end + 1
	}
	prev := 1.0
	for j := range idx {
		st := plan[j]
		if st.first == nil {
			scales[j].Lambda = prev
			continue
		}
		if prev != 1 {
			if err := st.first.(nn.Scalable).ScaleInput(prev); err != nil {
				return fmt.Errorf("layer %q: %w", st.first.Name(), err)
			}
		}
		st.last.(nn.Scalable).ScaleOutput(theta / scales[j].Lambda)
		prev = scales[j].Lambda
	}
	return nil
}
