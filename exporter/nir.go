package exporter

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/proxykit/proxykit/internal/hdf5"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// NIRVersion is the NIR format version written in the file.
const NIRVersion = "1.0.0"

// nirNode is one node of a NIR graph: its type and its fields, each a
// float32 array, an int64 array, a string, or a nested group.
type nirNode struct {
	name   string
	typ    string
	floats map[string]nirArray
	ints   map[string][]int64
	scalar map[string]int64
	groups map[string]map[string][]int64
	meta   map[string]string
}

type nirArray struct {
	shape []int
	data  []float32
}

func newNIRNode(name, typ string) *nirNode {
	return &nirNode{name: name, typ: typ, floats: map[string]nirArray{}, ints: map[string][]int64{}, scalar: map[string]int64{},
		groups: map[string]map[string][]int64{}, meta: map[string]string{}}
}

func full(shape []int, v float32) nirArray {
	d := make([]float32, nn.Numel(shape))
	for i := range d {
		d[i] = v
	}
	return nirArray{shape: shape, data: d}
}

func toInt64(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

// nirName makes a layer name usable as an HDF5 group name.
func nirName(s string) string { return strings.ReplaceAll(s, "/", "_") }

// NIRGraph builds the SNN's NIR graph (docs/design.md §3): Input, Conv2d (BN
// folded), IF (parameters shaped like their layer), SumPool2d + Threshold
// for max-pooling on spikes, AvgPool2d, Flatten, Affine or Linear, Output,
// chained by edges. It refuses what NIR cannot express, naming the layer.
func nirGraph(s *spiking.Network) ([]*nirNode, error) {
	static, dynamic, err := snnLayers(s)
	if err != nil {
		return nil, err
	}
	layers := make([]any, 0, len(static)+len(dynamic))
	for _, l := range static {
		layers = append(layers, l)
	}
	layers = append(layers, dynamic...)
	cfg := s.Config
	in := newNIRNode("input", "Input")
	in.ints["shape"] = toInt64(s.ANN.InputShape)
	nodes := []*nirNode{in}
	shape := s.ANN.InputShape
	used := map[string]int{}
	unique := func(base string) string {
		base = nirName(base)
		used[base]++
		if used[base] > 1 {
			return fmt.Sprintf("%s_%d", base, used[base])
		}
		return base
	}
	for _, l := range layers {
		switch l := l.(type) {
		case *spiking.IF:
			n := newNIRNode(unique("if_"+l.LayerName), "IF")
			n.floats["r"] = full(shape, 1)
			n.floats["v_threshold"] = full(shape, cfg.Threshold)
			n.floats["v_reset"] = full(shape, cfg.Reset)
			n.meta["firing_rule"] = ">="
			n.meta["reset"] = "hard"
			n.meta["dt"] = "1"
			nodes = append(nodes, n)
			continue
		case nn.Layer:
			out, err := l.OutputShape(shape)
			if err != nil {
				return nil, err
			}
			what := fmt.Sprintf("layer %s (%s)", l.Name(), l.Kind())
			switch l := l.(type) {
			case *nn.Conv2d:
				if l.PT != l.PB || l.PL != l.PR {
					return nil, fmt.Errorf("%s pads %d,%d,%d,%d: NIR's Conv2d pads symmetrically", what, l.PT, l.PL, l.PB, l.PR)
				}
				n := newNIRNode(unique(l.Name()), "Conv2d")
				n.floats["weight"] = nirArray{l.Weight.Shape, l.Weight.Data}
				if l.Bias != nil {
					n.floats["bias"] = nirArray{l.Bias.Shape, l.Bias.Data}
				} else {
					n.floats["bias"] = full([]int{l.Weight.Shape[0]}, 0)
				}
				n.ints["stride"] = toInt64([]int{l.SH, l.SW})
				n.ints["padding"] = toInt64([]int{l.PT, l.PL})
				n.ints["dilation"] = toInt64([]int{l.DH, l.DW})
				n.scalar["groups"] = 1
				n.ints["input_shape"] = toInt64(shape[1:])
				nodes = append(nodes, n)
			case *nn.Linear:
				typ := "Linear"
				if l.Bias != nil {
					typ = "Affine"
				}
				n := newNIRNode(unique(l.Name()), typ)
				n.floats["weight"] = nirArray{l.Weight.Shape, l.Weight.Data}
				if l.Bias != nil {
					n.floats["bias"] = nirArray{l.Bias.Shape, l.Bias.Data}
				}
				nodes = append(nodes, n)
			case *nn.Pool2d:
				if l.PT != l.PB || l.PL != l.PR || l.Ceil {
					return nil, fmt.Errorf("%s: NIR's pooling pads symmetrically and has no ceil mode", what)
				}
				pool := func(typ string) *nirNode {
					n := newNIRNode(unique(l.Name()), typ)
					n.ints["kernel_size"] = toInt64([]int{l.KH, l.KW})
					n.ints["stride"] = toInt64([]int{l.SH, l.SW})
					n.ints["padding"] = toInt64([]int{l.PT, l.PL})
					return n
				}
				if l.Max {
					// max over binary spikes = their OR = (sum > 0)
					sum := pool("SumPool2d")
					sum.meta["replaces"] = "MaxPool2d on binary spikes: SumPool2d followed by Threshold at 0"
					th := newNIRNode(unique(l.Name()+"_threshold"), "Threshold")
					th.floats["threshold"] = full(out, 0)
					nodes = append(nodes, sum, th)
				} else {
					if l.PT+l.PL > 0 && !l.CountPad {
						return nil, fmt.Errorf("%s: NIR's AvgPool2d counts padding in its divisor; this layer does not", what)
					}
					nodes = append(nodes, pool("AvgPool2d"))
				}
			case *nn.GlobalAvgPool:
				n := newNIRNode(unique(l.Name()), "AvgPool2d")
				n.ints["kernel_size"] = toInt64(shape[1:])
				n.ints["stride"] = toInt64(shape[1:])
				n.ints["padding"] = []int64{0, 0}
				nodes = append(nodes, n)
			case *nn.Flatten:
				n := newNIRNode(unique(l.Name()), "Flatten")
				n.scalar["start_dim"] = 0
				n.scalar["end_dim"] = -1
				n.groups["input_type"] = map[string][]int64{"input": toInt64(shape)}
				nodes = append(nodes, n)
			default:
				return nil, fmt.Errorf("%s has no NIR form (NIR has no padding or softmax node)", what)
			}
			shape = out
		}
	}
	outNode := newNIRNode("output", "Output")
	outNode.ints["shape"] = toInt64(shape)
	return append(nodes, outNode), nil
}

// WriteNIR writes the SNN as a NIR graph in HDF5 to path, atomically (the
// file is written beside path and renamed when complete).
func WriteNIR(path string, s *spiking.Network) error {
	nodes, err := nirGraph(s)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	if err := writeNIRFile(tmpName, nodes, s.Config); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

func writeNIRFile(path string, nodes []*nirNode, cfg spiking.Config) (err error) {
	f, err := hdf5.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	root := f.Root()
	if err := root.String("version", NIRVersion); err != nil {
		return err
	}
	graph, err := root.Group("node")
	if err != nil {
		return err
	}
	defer graph.Close()
	if err := graph.String("type", "NIRGraph"); err != nil {
		return err
	}
	var edges []string
	for i := 1; i < len(nodes); i++ {
		edges = append(edges, nodes[i-1].name, nodes[i].name)
	}
	if err := graph.Strings("edges", []int{len(nodes) - 1, 2}, edges); err != nil {
		return err
	}
	meta, err := graph.Group("metadata")
	if err != nil {
		return err
	}
	for k, v := range map[string]string{"producer": "proxykit", "timesteps": fmt.Sprint(cfg.Timesteps), "dt": "1",
		"firing_rule": ">= (NIR's IF fires on >)", "input": "the analog image, presented unchanged at every time step",
		"output": "spike counts of the last IF layer summed over the time steps"} {
		if err := meta.String(k, v); err != nil {
			return err
		}
	}
	meta.Close()
	group, err := graph.Group("nodes")
	if err != nil {
		return err
	}
	defer group.Close()
	for _, n := range nodes {
		g, err := group.Group(n.name)
		if err != nil {
			return err
		}
		if err := writeNIRNode(g, n); err != nil {
			g.Close()
			return err
		}
		g.Close()
	}
	return nil
}

func writeNIRNode(g *hdf5.Group, n *nirNode) error {
	if err := g.String("type", n.typ); err != nil {
		return err
	}
	for k, a := range n.floats {
		if err := g.Float32(k, a.shape, a.data); err != nil {
			return err
		}
	}
	for k, v := range n.ints {
		if err := g.Int64(k, []int{len(v)}, v); err != nil {
			return err
		}
	}
	for k, v := range n.scalar {
		if err := g.Int64(k, nil, []int64{v}); err != nil {
			return err
		}
	}
	for k, fields := range n.groups {
		sub, err := g.Group(k)
		if err != nil {
			return err
		}
		for fk, v := range fields {
			if err := sub.Int64(fk, []int{len(v)}, v); err != nil {
				sub.Close()
				return err
			}
		}
		sub.Close()
	}
	if len(n.meta) > 0 {
		meta, err := g.Group("metadata")
		if err != nil {
			return err
		}
		defer meta.Close()
		for k, v := range n.meta {
			if err := meta.String(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckNIR reports whether the SNN can be written as NIR, without writing.
func CheckNIR(s *spiking.Network) error {
	_, err := nirGraph(s)
	return err
}
