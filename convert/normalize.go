package convert

import (
	"fmt"
	"math"
	"slices"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// Normalize rescales ann's parameters in place so that its SNN, with the
// IF neurons of snn (effective threshold θ = v_th − v_reset), fires at
// rates that approximate the ANN's activations divided by the scales (see
// the package comment). scales are Calibrate's, one per neuron layer.
//
// A clipped ReLU's ceiling c (nn.Saturating: ReLU6) is scaled with its
// input, to c·θ/λ, so that the normalised ANN clips where the original
// did. Where its IF twin saturates at the ceiling (spiking.ClipSaturate:
// v_th = v_reset + the ceiling; docs/design.md §1, "ReLU6") it takes λ =
// c instead of its percentile: its ceiling becomes θ, its IF layer's v_th
// the network's, and the IF neuron's saturation of one spike per step
// stands for the ANN's ceiling.
//
// Every value in the network carries a scale: the factor between what
// the SNN computes there and the original ANN's activation. The input
// carries 1; an IF layer's spikes carry 1/λ (their rate); an IF layer's
// input must carry θ/λ. A layer with weights (Conv2d, Linear, BatchNorm)
// takes its input's scale into its weights (nn.Scalable.ScaleInput: ×λ
// after an IF layer) and gives its output the scale of the IF layer it
// feeds (ScaleOutput, weights and biases: ×θ/λ), or 1 where another layer
// with weights reads it; so in a chain each stretch between IF layers
// takes λ_prev into its first layer with weights and θ/λ into its last,
// as Rueckauer et al. do. Layers that commute with positive scaling
// (pooling, zero padding, flattening, joins) pass their input's scale on;
// any other layer is refused, naming it.
//
// Branching networks: the inputs of a join (Add, Concat) must carry one
// scale — the one its IF layer needs, or 1. A branch whose last layer has
// weights is given it; one that cannot be — an identity shortcut carrying
// an IF layer's spikes — gets a 1×1 depthwise convolution that multiplies
// it by the ratio, inserted before the join (the shortcut normalisation of
// Hu, Tang, Wang and Pan, "Spiking deep residual networks", IEEE TNNLS
// 2021). An IF layer whose input no layer with weights can scale (a
// stretch without weights) gets the scale its input carries: its λ in
// scales becomes θ times the one before.
//
// With θ = 1 the normalised ANN's activations are the original's
// divided by λ (clipped ReLUs' too: their ceilings are scaled), so its
// predictions are the original's; with another θ only the SNN is
// guaranteed to be the converted one. It returns the names of the
// scaling layers it inserted before joins. On an error ann and scales are
// left as they were.
func Normalize(ann *nn.Network, scales []Scale, snn spiking.Config) (inserted []string, err error) {
	theta := float64(snn.Threshold - snn.Reset)
	if !(theta > 0) || math.IsInf(theta, 0) {
		return nil, fmt.Errorf("effective threshold v_th − v_reset must be positive and finite, got %g", theta)
	}
	if ann == nil {
		return nil, fmt.Errorf("normalising: no network (nil)")
	}
	body, _ := ann.Body()
	layers, inputs := body.Layers, body.Inputs
	if len(layers) == 0 {
		return nil, fmt.Errorf("the network has no layers")
	}
	idx, names := neuronLayers(layers)
	if len(scales) != len(idx) {
		return nil, fmt.Errorf("%d scales for %d neuron layers", len(scales), len(idx))
	}
	neuron := map[int]int{} // layer → its neuron layer; the last layer's output feeds the output IF layer
	lambda := make([]float64, len(scales))
	for j, s := range scales {
		if s.Layer != names[j] {
			return nil, fmt.Errorf("scale %d is for layer %q, the network's neuron layer %d is %q", j, s.Layer, j, names[j])
		}
		lambda[j] = s.Lambda
		if c, ok := layers[idx[j]].(nn.Saturating); ok && snn.ClipTwin() == spiking.ClipSaturate {
			lambda[j] = float64(c.Saturation())
		}
		if !(lambda[j] > 0) {
			return nil, fmt.Errorf("layer %q never had a positive activation on the calibration images (λ = %g): it cannot be normalised; use more images or check the data", s.Layer, s.Lambda)
		}
		neuron[idx[j]] = j
	}
	p, err := plan(layers, inputs, ann.InputShape, neuron, lambda, theta)
	if err != nil {
		return nil, err
	}
	// Apply the plan; on an error put every parameter, and every layer's
	// state (an Affine layer's constants, which it scales), back.
	saved := make([][]float32, len(ann.Params()))
	for i, q := range ann.Params() {
		saved[i] = slices.Clone(q.Data)
	}
	var states [][]float32
	for _, l := range nn.StatefulLayers(layers) {
		for _, a := range l.State() {
			states = append(states, a.Data, slices.Clone(a.Data))
		}
	}
	ceilings := map[nn.Saturating]float32{}
	for _, l := range layers {
		if c, ok := l.(nn.Saturating); ok {
			ceilings[c] = c.Saturation()
		}
	}
	restore := func() {
		for k, q := range ann.Params() {
			copy(q.Data, saved[k])
		}
		for k := 0; k < len(states); k += 2 {
			copy(states[k], states[k+1])
		}
		for c, v := range ceilings {
			c.ScaleSaturation(float64(v) / float64(c.Saturation()))
		}
	}
	for i, l := range layers {
		if c, ok := l.(nn.Saturating); ok && p.ceiling[i] != 1 {
			c.ScaleSaturation(p.ceiling[i])
			if f := float64(c.Saturation()); !(f > 0) || math.IsInf(f, 0) {
				restore()
				return nil, fmt.Errorf("layer %d (%s %q): its ceiling scaled by %g is no positive float32", i, nn.KindOf(l), nn.NameOf(l), p.ceiling[i])
			}
		}
		s, ok := l.(nn.Scalable)
		if !ok {
			continue
		}
		if f := p.in[i]; f != 1 {
			if err := s.ScaleInput(f); err != nil {
				restore()
				return nil, fmt.Errorf("layer %d (%s %q): %w", i, nn.KindOf(l), nn.NameOf(l), err)
			}
		}
		if f := p.out[i]; f != 1 {
			s.ScaleOutput(f)
		}
		// a scale beyond float32's range would leave weights (or an Affine
		// layer's constants) no command reads
		arrays := []nn.NamedArray{}
		for _, q := range l.Params() {
			arrays = append(arrays, nn.NamedArray{Name: q.Name, Data: q.Data})
		}
		if st, ok := l.(nn.Stateful); ok {
			for _, a := range st.State() {
				arrays = append(arrays, nn.NamedArray{Name: nn.NameOf(l) + "." + a.Name, Data: a.Data})
			}
		}
		for _, a := range arrays {
			if err := nn.CheckFinite("the scaled "+a.Name, a.Data); err != nil {
				restore()
				return nil, fmt.Errorf("layer %d (%s %q): scales %g and %g overflow: %w", i, nn.KindOf(l), nn.NameOf(l), p.in[i], p.out[i], err)
			}
		}
	}
	for j := range scales {
		scales[j].Lambda = p.lambda[j]
	}
	return insertScalers(ann, p.fixes), nil
}

// normPlan is what Normalize does: per layer the factor its input and its
// output are scaled by (1 for none) and a neuron layer's ceiling by (the
// scale its input carries), the scalers to insert before joins, and the
// neuron layers' scales after ties.
type normPlan struct {
	in, out, ceiling []float64
	fixes            []scaler
	lambda           []float64
}

// scaler multiplies input slot of layer by factor; channels is the
// input's channel count.
type scaler struct {
	layer, slot, channels int
	factor                float64
}

// plan finds every value's scale in topological order. req[i] is the scale
// layer i's output must carry for its readers (0: any), from the first
// reader that needs one: an IF layer (θ/λ), a join (its own requirement,
// or 1), or a layer that passes the scale on (its requirement).
func plan(layers []nn.Layer, inputs [][]int, inShape []int, neuron map[int]int, lambda []float64, theta float64) (*normPlan, error) {
	n := len(layers)
	p := &normPlan{in: make([]float64, n), out: make([]float64, n), ceiling: make([]float64, n), lambda: slices.Clone(lambda)}
	last := n - 1
	outNeuron, lastIsOutput := neuron[last], !nn.RoleOf(layers[last]).Neuron
	req := make([]float64, n)
	if lastIsOutput {
		req[last] = theta / p.lambda[outNeuron]
	}
	for i := n - 1; i >= 0; i-- {
		l := layers[i]
		_, scalable := l.(nn.Scalable)
		r := nn.RoleOf(l)
		join := r.Join
		var want float64
		switch {
		case r.Neuron:
			want = theta / p.lambda[neuron[i]]
		case scalable:
			want = 0
		case join:
			want = req[i]
			if want == 0 {
				want = 1
			}
		case r.Homogeneous:
			want = req[i]
		default:
			return nil, fmt.Errorf("layer %d (%s %q %s): it does not commute with scaling, so conversion cannot normalise through it", i, nn.KindOf(l), nn.NameOf(l), l.Info().Summary)
		}
		for _, src := range nn.NodeInputs(inputs, i) {
			if src >= 0 && req[src] == 0 {
				req[src] = want
			}
		}
	}
	var shapes [][]int // computed when a join needs a scaling layer
	scale := make([]float64, n)
	of := func(src int) float64 {
		if src < 0 {
			return 1
		}
		return scale[src]
	}
	for i, l := range layers {
		srcs := nn.NodeInputs(inputs, i)
		sin := of(srcs[0])
		p.in[i], p.out[i], p.ceiling[i] = 1, 1, 1
		_, scalable := l.(nn.Scalable)
		switch isJoin := nn.RoleOf(l).Join; {
		case nn.RoleOf(l).Neuron:
			k := neuron[i]
			if !same(sin, theta/p.lambda[k]) { // no layer with weights before it: it takes its input's scale
				p.lambda[k] = theta / sin
			}
			p.ceiling[i], scale[i] = sin, 1/p.lambda[k]
		case scalable:
			p.in[i] = 1 / sin
			scale[i] = 1
			if req[i] != 0 {
				p.out[i], scale[i] = req[i], req[i]
			}
		case isJoin:
			target := req[i]
			if target == 0 {
				target = 1
			}
			for slot, src := range srcs {
				if s := of(src); !same(s, target) {
					shape := inShape
					if src >= 0 {
						if shapes == nil {
							var err error
							if shapes, err = nn.GraphShapes(layers, inputs, inShape); err != nil {
								return nil, err
							}
						}
						shape = shapes[src]
					}
					if len(shape) != 3 {
						return nil, fmt.Errorf("layer %d (%s %q): input %d carries scale %.6g, not the %.6g of the others, and proxykit rescales only [C H W] signals",
							i, nn.KindOf(l), nn.NameOf(l), slot, s, target)
					}
					p.fixes = append(p.fixes, scaler{layer: i, slot: slot, channels: shape[0], factor: target / s})
				}
			}
			scale[i] = target
		default:
			scale[i] = sin
		}
	}
	if lastIsOutput && !same(scale[last], theta/p.lambda[outNeuron]) {
		p.lambda[outNeuron] = theta / scale[last]
	}
	return p, nil
}

// same compares scales up to rounding.
func same(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b)) }

// insertScalers puts a 1×1 depthwise convolution (weight: the factor, no
// bias) before each join input the plan fixes, renumbering the graph, and
// returns the names of the layers it inserted.
func insertScalers(ann *nn.Network, fixes []scaler) (inserted []string) {
	if len(fixes) == 0 {
		return nil
	}
	var layers []nn.Layer
	var inputs [][]int
	at := make([]int, len(ann.Layers)) // old index → new
	names := map[string]bool{}
	for _, l := range ann.Layers {
		names[nn.NameOf(l)] = true
	}
	for i, l := range ann.Layers {
		srcs := slices.Clone(ann.InputsOf(i))
		for k, src := range srcs {
			if src >= 0 {
				srcs[k] = at[src]
			}
		}
		for _, f := range fixes {
			if f.layer != i {
				continue
			}
			name := fmt.Sprintf("%s.scale%d", nn.NameOf(l), f.slot)
			for names[name] {
				name += "_"
			}
			names[name] = true
			inserted = append(inserted, name)
			c := f.channels
			w := nn.NewParam(name+".weight", nn.Full([]int{c, 1, 1, 1}, float32(f.factor)), c, 1, 1, 1)
			layers = append(layers, &nn.Conv2d{LayerName: name, Weight: w, SH: 1, SW: 1, DH: 1, DW: 1, Groups: c})
			inputs = append(inputs, []int{srcs[f.slot]})
			srcs[f.slot] = len(layers) - 1
		}
		at[i] = len(layers)
		layers = append(layers, l)
		inputs = append(inputs, srcs)
	}
	ann.Layers, ann.Inputs = layers, inputs
	return inserted
}
