package nn

import "fmt"

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

// ArchOf describes a network's architecture (the zero Arch for nil; a nil
// layer has no kind, which Build refuses).
func ArchOf(n *Network) Arch {
	if n == nil {
		return Arch{}
	}
	a := Arch{InputShape: n.InputShape}
	for i, l := range n.Layers {
		info := infoOf(l)
		s := LayerSpec{Kind: info.Kind, Name: info.Name}
		if n.Inputs != nil && !n.IsChain() {
			s.Inputs = n.InputsOf(i)
		}
		if l != nil {
			for _, p := range l.Params() {
				s.Params = append(s.Params, p.Name)
			}
		}
		s.Attrs = info.Attrs
		a.Layers = append(a.Layers, s)
	}
	return a
}

// Build makes a network from an architecture and its parameters, looked up
// by name, each layer by its kind's FromArch, and validates it (Validate).
// BatchNorm running statistics start at mean 0, variance 1; the caller
// fills them in.
func (a Arch) Build(name string, params map[string]*Param) (*Network, error) {
	n := &Network{Name: name, InputShape: a.InputShape}
	if len(a.InputShape) == 0 || checkShape(a.InputShape) != nil {
		return nil, fmt.Errorf("malformed input shape %v", a.InputShape)
	}
	graph := false
	for i, s := range a.Layers {
		ps := make([]*Param, len(s.Params))
		for j, pn := range s.Params {
			p, ok := params[pn]
			if !ok {
				return nil, fmt.Errorf("layer %d (%s): parameter %q is missing", i, s.Name, pn)
			}
			ps[j] = p
		}
		kind, ok := KindNamed(s.Kind)
		if !ok {
			return nil, fmt.Errorf("layer %d (%s): unknown kind %q", i, s.Name, s.Kind)
		}
		l, err := kind.FromArch(s, ps)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, s.Name, err)
		}
		n.Layers = append(n.Layers, l)
		graph = graph || s.Inputs != nil
	}
	if graph {
		for _, s := range a.Layers {
			n.Inputs = append(n.Inputs, s.Inputs)
		}
	}
	if err := Validate(n); err != nil {
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
