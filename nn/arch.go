package nn

import (
	"encoding/json"
	"fmt"
)

// LayerSpec is one layer's description in a serialised architecture:
// kind, name, hyper-parameters, and the names of its parameters.
type LayerSpec struct {
	Kind   string         `json:"kind"`
	Name   string         `json:"name"`
	Attrs  map[string]any `json:"attrs,omitempty"`
	Params []string       `json:"params,omitempty"`
	// Inputs are the nodes the layer reads (Network.Inputs); absent in a
	// chain.
	Inputs []int `json:"inputs,omitempty"`
}

// Arch is a network's architecture without its weights.
type Arch struct {
	InputShape []int       `json:"input_shape"`
	Layers     []LayerSpec `json:"layers"`
}

// ArchOf describes a network's architecture.
func ArchOf(n *Network) Arch {
	a := Arch{InputShape: n.InputShape}
	for i, l := range n.Layers {
		s := LayerSpec{Kind: l.Kind(), Name: l.Name()}
		if n.Inputs != nil && !n.IsChain() {
			s.Inputs = n.Inputs[i]
		}
		for _, p := range l.Params() {
			s.Params = append(s.Params, p.Name)
		}
		switch l := l.(type) {
		case *Conv2d:
			s.Attrs = map[string]any{"stride": []int{l.SH, l.SW}, "pads": []int{l.PT, l.PL, l.PB, l.PR},
				"dilation": []int{l.DH, l.DW}}
			if l.groups() > 1 {
				s.Attrs["groups"] = l.groups()
			}
		case *BatchNorm2d:
			s.Attrs = map[string]any{"eps": l.Eps, "momentum": l.Momentum}
		case *Pool2d:
			s.Attrs = map[string]any{"kernel": []int{l.KH, l.KW}, "stride": []int{l.SH, l.SW},
				"pads": []int{l.PT, l.PL, l.PB, l.PR}, "ceil": l.Ceil, "count_pad": l.CountPad}
		case *Pad2d:
			s.Attrs = map[string]any{"pads": []int{l.PT, l.PL, l.PB, l.PR}, "value": l.Value}
		}
		a.Layers = append(a.Layers, s)
	}
	return a
}

// BatchNormStats lists the network's BatchNorm layers by name.
func BatchNormStats(n *Network) map[string]*BatchNorm2d {
	out := map[string]*BatchNorm2d{}
	for _, l := range n.Layers {
		if bn, ok := l.(*BatchNorm2d); ok {
			out[bn.LayerName] = bn
		}
	}
	return out
}

// attrs reads a layer's attributes through JSON into typed fields.
type attrs struct {
	Stride   []int   `json:"stride"`
	Pads     []int   `json:"pads"`
	Dilation []int   `json:"dilation"`
	Kernel   []int   `json:"kernel"`
	Eps      float32 `json:"eps"`
	Momentum float32 `json:"momentum"`
	Ceil     bool    `json:"ceil"`
	CountPad bool    `json:"count_pad"`
	Value    float32 `json:"value"`
	Groups   int     `json:"groups"`
}

// Build makes a network from an architecture and its parameters, looked up
// by name. BatchNorm running statistics start at mean 0, variance 1; the
// caller fills them in.
func (a Arch) Build(name string, params map[string]*Param) (*Network, error) {
	n := &Network{Name: name, InputShape: a.InputShape}
	if len(a.InputShape) == 0 || checkShape(a.InputShape) != nil {
		return nil, fmt.Errorf("malformed input shape %v", a.InputShape)
	}
	for i, s := range a.Layers {
		var at attrs
		if s.Attrs != nil {
			b, err := json.Marshal(s.Attrs)
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, &at); err != nil {
				return nil, fmt.Errorf("layer %d (%s): %w", i, s.Name, err)
			}
		}
		ps := make([]*Param, len(s.Params))
		for j, pn := range s.Params {
			p, ok := params[pn]
			if !ok {
				return nil, fmt.Errorf("layer %d (%s): parameter %q is missing", i, s.Name, pn)
			}
			ps[j] = p
		}
		need := func(k int, lists ...[]int) error {
			if len(ps) < k {
				return fmt.Errorf("layer %d (%s): %d parameters, want %d", i, s.Name, len(ps), k)
			}
			for _, l := range lists {
				if len(l) < 2 {
					return fmt.Errorf("layer %d (%s): malformed attributes", i, s.Name)
				}
			}
			return nil
		}
		var l Layer
		switch s.Kind {
		case "Conv2d":
			if err := need(1, at.Stride, at.Dilation); err != nil {
				return nil, err
			}
			if len(at.Pads) != 4 || len(ps[0].Shape) != 4 {
				return nil, fmt.Errorf("layer %d (%s): malformed convolution", i, s.Name)
			}
			c := &Conv2d{LayerName: s.Name, Weight: ps[0], SH: at.Stride[0], SW: at.Stride[1], PT: at.Pads[0],
				PL: at.Pads[1], PB: at.Pads[2], PR: at.Pads[3], DH: at.Dilation[0], DW: at.Dilation[1], Groups: at.Groups}
			if len(ps) > 1 {
				c.Bias = ps[1]
				if len(c.Bias.Data) != ps[0].Shape[0] {
					return nil, fmt.Errorf("layer %d (%s): %d bias values for %d channels", i, s.Name, len(c.Bias.Data), ps[0].Shape[0])
				}
			}
			if c.SH < 1 || c.SW < 1 || c.DH < 1 || c.DW < 1 || c.PT < 0 || c.PL < 0 || c.PB < 0 || c.PR < 0 {
				return nil, fmt.Errorf("layer %d (%s): malformed convolution", i, s.Name)
			}
			l = c
		case "BatchNorm2d":
			if err := need(2); err != nil {
				return nil, err
			}
			c := len(ps[0].Data)
			if len(ps[1].Data) != c {
				return nil, fmt.Errorf("layer %d (%s): γ and β differ in length", i, s.Name)
			}
			bn := &BatchNorm2d{LayerName: s.Name, Gamma: ps[0], Beta: ps[1], Eps: at.Eps, Momentum: at.Momentum,
				RunningMean: make([]float32, c), RunningVar: make([]float32, c)}
			for j := range bn.RunningVar {
				bn.RunningVar[j] = 1
			}
			l = bn
		case "Linear":
			if err := need(1); err != nil {
				return nil, err
			}
			if len(ps[0].Shape) != 2 {
				return nil, fmt.Errorf("layer %d (%s): malformed linear weight", i, s.Name)
			}
			li := &Linear{LayerName: s.Name, Weight: ps[0]}
			if len(ps) > 1 {
				li.Bias = ps[1]
				if len(li.Bias.Data) != ps[0].Shape[0] {
					return nil, fmt.Errorf("layer %d (%s): %d bias values for %d outputs", i, s.Name, len(li.Bias.Data), ps[0].Shape[0])
				}
			}
			l = li
		case "ReLU":
			l = &ReLU{LayerName: s.Name}
		case "MaxPool2d", "AvgPool2d":
			if err := need(0, at.Kernel, at.Stride); err != nil {
				return nil, err
			}
			if len(at.Pads) != 4 {
				return nil, fmt.Errorf("layer %d (%s): malformed pooling", i, s.Name)
			}
			if at.Kernel[0] < 1 || at.Kernel[1] < 1 || at.Stride[0] < 1 || at.Stride[1] < 1 {
				return nil, fmt.Errorf("layer %d (%s): malformed pooling", i, s.Name)
			}
			l = &Pool2d{LayerName: s.Name, Max: s.Kind == "MaxPool2d", KH: at.Kernel[0], KW: at.Kernel[1],
				SH: at.Stride[0], SW: at.Stride[1], PT: at.Pads[0], PL: at.Pads[1], PB: at.Pads[2], PR: at.Pads[3],
				Ceil: at.Ceil, CountPad: at.CountPad}
		case "GlobalAvgPool":
			l = &GlobalAvgPool{LayerName: s.Name}
		case "Flatten":
			l = &Flatten{LayerName: s.Name}
		case "Pad2d":
			if len(at.Pads) != 4 {
				return nil, fmt.Errorf("layer %d (%s): malformed padding", i, s.Name)
			}
			l = &Pad2d{LayerName: s.Name, PT: at.Pads[0], PL: at.Pads[1], PB: at.Pads[2], PR: at.Pads[3], Value: at.Value}
		case "Softmax", "LogSoftmax":
			l = &Softmax{LayerName: s.Name, Log: s.Kind == "LogSoftmax"}
		case "Add":
			l = &Add{LayerName: s.Name}
		case "Concat":
			l = &Concat{LayerName: s.Name}
		default:
			return nil, fmt.Errorf("layer %d (%s): unknown kind %q", i, s.Name, s.Kind)
		}
		n.Layers = append(n.Layers, l)
	}
	graph := false
	for _, s := range a.Layers {
		graph = graph || s.Inputs != nil
	}
	if graph {
		for _, s := range a.Layers {
			n.Inputs = append(n.Inputs, s.Inputs)
		}
	}
	if _, err := n.Shapes(); err != nil {
		return nil, err
	}
	return n, nil
}

// checkShape refuses non-positive dimensions and absurd sizes.
func checkShape(shape []int) error {
	n := 1
	for _, d := range shape {
		if d < 1 || n > (1<<31)/d {
			return fmt.Errorf("bad shape %v", shape)
		}
		n *= d
	}
	return nil
}
