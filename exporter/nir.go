package exporter

import (
	"fmt"
	"math"
	"strings"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/internal/hdf5"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// NIRVersion is the NIR format version written in the file.
const NIRVersion = "1.0.0"

// NIROptions choose how NIR expresses what it has no node for.
type NIROptions struct {
	// MaxPoolThreshold writes max-pooling over spikes as SumPool2d followed
	// by Threshold at 0, NIR's literal form of their OR. By default it is
	// SumPool2d followed by an IF layer (r = 1, v_reset = 0, threshold 0.5),
	// the same OR on binary spikes (the sums are integers, and the
	// potential is back at 0 after every step), which norse, sinabs and
	// snntorch load; none of them maps Threshold.
	MaxPoolThreshold bool

	// rawThreshold writes v_th itself instead of the float32 just below it
	// (tests only: it shows that NIR's `>` then disagrees with proxykit's `>=`).
	rawThreshold bool
}

// nirNode is one node of a NIR graph: its type and its fields, each a
// float32 array, an int64 array or scalar, or a string.
type nirNode struct {
	name   string
	typ    string
	floats map[string]nirArray
	ints   map[string][]int64
	scalar map[string]int64
	meta   map[string]string
}

type nirArray struct {
	shape []int
	data  []float32
}

func newNIRNode(name, typ string) *nirNode {
	return &nirNode{name: name, typ: typ, floats: map[string]nirArray{}, ints: map[string][]int64{}, scalar: map[string]int64{},
		meta: map[string]string{}}
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

// nirThreshold is the v_threshold written for proxykit's v_th: NIR's IF
// fires on v > v_threshold, proxykit's on v >= v_th, and for float32
// potentials v > nextafter(v_th, −∞) exactly when v >= v_th.
func nirThreshold(vth float32, o NIROptions) float32 {
	if o.rawThreshold {
		return vth
	}
	return math.Nextafter32(vth, float32(math.Inf(-1)))
}

// nirGraph builds the SNN's NIR graph (docs/design.md §3): Input, Conv2d (BN
// folded), IF (parameters shaped like their layer), SumPool2d + IF (or +
// Threshold) for max-pooling on spikes, AvgPool2d, Flatten, Affine or
// Linear, Output, chained by edges. It refuses what NIR cannot express,
// naming the layer.
func nirGraph(s *spiking.Network, o NIROptions) ([]*nirNode, error) {
	if s.DynInputs != nil {
		return nil, fmt.Errorf("NIR export of a branching network is not implemented yet (ONNX export is: --snn)")
	}
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
	spikes := false // the current signal is binary spikes
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
			n.floats["v_threshold"] = full(shape, nirThreshold(cfg.Threshold, o))
			n.floats["v_reset"] = full(shape, cfg.Reset)
			n.meta["proxykit_v_threshold"] = fmt.Sprint(cfg.Threshold)
			n.meta["firing_rule"] = "proxykit fires on v >= v_th; v_threshold is the float32 below v_th, so NIR's v > v_threshold is the same"
			n.meta["reset"] = "hard"
			n.meta["dt"] = "1"
			nodes = append(nodes, n)
			spikes = true
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
				n.scalar["groups"] = int64(max(l.Groups, 1))
				n.ints["input_shape"] = toInt64(shape[1:])
				nodes = append(nodes, n)
				spikes = false
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
				spikes = false
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
					if !spikes {
						return nil, fmt.Errorf("%s max-pools analog values: NIR has no max pooling (proxykit writes max-pooling over spikes as their OR)", what)
					}
					// max over binary spikes = their OR = (sum > 0)
					sum := pool("SumPool2d")
					if o.MaxPoolThreshold {
						sum.meta["replaces"] = "MaxPool2d on binary spikes: SumPool2d followed by Threshold at 0"
						th := newNIRNode(unique(l.Name()+"_threshold"), "Threshold")
						th.floats["threshold"] = full(out, 0)
						nodes = append(nodes, sum, th)
					} else {
						sum.meta["replaces"] = "MaxPool2d on binary spikes: SumPool2d followed by an IF layer that fires when the sum is at least 1"
						or := newNIRNode(unique(l.Name()+"_or"), "IF")
						or.floats["r"] = full(out, 1)
						or.floats["v_threshold"] = full(out, 0.5)
						or.floats["v_reset"] = full(out, 0)
						or.meta["replaces"] = "the OR of a max-pooling window of spikes: the integer sum fires when at least 1, and the potential is 0 after every step"
						nodes = append(nodes, sum, or)
					}
				} else {
					if l.PT+l.PL > 0 && !l.CountPad {
						return nil, fmt.Errorf("%s: NIR's AvgPool2d counts padding in its divisor; this layer does not", what)
					}
					nodes = append(nodes, pool("AvgPool2d"))
					spikes = false
				}
			case *nn.GlobalAvgPool:
				n := newNIRNode(unique(l.Name()), "AvgPool2d")
				n.ints["kernel_size"] = toInt64(shape[1:])
				n.ints["stride"] = toInt64(shape[1:])
				n.ints["padding"] = []int64{0, 0}
				nodes = append(nodes, n)
				spikes = false
			case *nn.Flatten:
				n := newNIRNode(unique(l.Name()), "Flatten")
				n.scalar["start_dim"] = 0
				n.scalar["end_dim"] = -1
				// a plain integer dataset, as NIR's writer stores it: a
				// group here makes NIR's reader fail
				n.ints["input_type"] = toInt64(shape)
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
func WriteNIR(path string, s *spiking.Network, o NIROptions) error {
	p, err := PrepareNIR(path, s, o)
	if err != nil {
		return err
	}
	return p.Commit()
}

// PrepareNIR writes the NIR file under a temporary name beside path, for
// the caller to commit once every other output is written too.
func PrepareNIR(path string, s *spiking.Network, o NIROptions) (*atomicfile.Pending, error) {
	nodes, err := nirGraph(s, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.PrepareFunc(path, func(tmp string) error { return writeNIRFile(tmp, nodes, s.Config) })
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
		"firing_rule": "v >= v_th, written as v > (the float32 below v_th)", "input": "the analog image, presented unchanged at every time step",
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
func CheckNIR(s *spiking.Network, o NIROptions) error {
	_, err := nirGraph(s, o)
	return err
}
