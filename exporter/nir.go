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
	from   []string // the nodes with an edge into this one
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
// Linear, Output, joined by edges: a chain, or for a branching SNN a graph
// in which NIR's rule — a node's input is the sum of its incoming edges —
// stands for Add. It refuses what NIR cannot express, naming the layer.
func nirGraph(s *spiking.Network, o NIROptions) ([]*nirNode, error) {
	if s.DynInputs != nil {
		return nirBranching(s, o)
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
	in := newNIRNode("input", "Input")
	in.ints["shape"] = toInt64(s.ANN.InputShape)
	nodes := []*nirNode{in}
	shape := s.ANN.InputShape
	spikes := false // the current signal is binary spikes
	names := nirNamer()
	for _, l := range layers {
		made, out, sp, err := nirLayer(l, shape, spikes, names, s.Config, o)
		if err != nil {
			return nil, err
		}
		for _, n := range made {
			n.from = []string{nodes[len(nodes)-1].name}
			nodes = append(nodes, n)
		}
		shape, spikes = out, sp
	}
	outNode := newNIRNode("output", "Output")
	outNode.ints["shape"] = toInt64(shape)
	outNode.from = []string{nodes[len(nodes)-1].name}
	return append(nodes, outNode), nil
}

// nirNamer makes node names unique.
func nirNamer() func(string) string {
	used := map[string]int{}
	return func(base string) string {
		base = nirName(base)
		used[base]++
		if used[base] > 1 {
			return fmt.Sprintf("%s_%d", base, used[base])
		}
		return base
	}
}

// nirLayer makes the NIR nodes of one SNN layer (an IF layer or an nn
// layer) reading a signal of shape (spikes when binary), chained among
// themselves, and returns the output's shape and whether it holds spikes.
func nirLayer(l any, shape []int, spikes bool, unique func(string) string, cfg spiking.Config, o NIROptions) (nodes []*nirNode, outShape []int, outSpikes bool, err error) {
	defer func() {
		for i := 1; i < len(nodes); i++ {
			nodes[i].from = []string{nodes[i-1].name}
		}
	}()
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
		return nodes, shape, true, nil
	case nn.Layer:
		out, err := l.OutputShape(shape)
		if err != nil {
			return nil, nil, false, err
		}
		what := fmt.Sprintf("layer %s (%s)", l.Name(), l.Kind())
		switch l := l.(type) {
		case *nn.Conv2d:
			if l.PT != l.PB || l.PL != l.PR {
				return nil, nil, false, fmt.Errorf("%s pads %d,%d,%d,%d: NIR's Conv2d pads symmetrically", what, l.PT, l.PL, l.PB, l.PR)
			}
			n := newNIRNode(unique(l.Name()), "Conv2d")
			n.floats["weight"] = nirArray{l.Weight.Shape, l.Weight.Data}
			if g := max(l.Groups, 1); g > 1 {
				// NIR's reader (commit 7232ada) takes a Conv2d's input
				// channels from its weight, ignoring groups, and refuses
				// the graph; the same convolution without groups has zero
				// weights between groups and gives the same sums exactly
				n.floats["weight"] = denseGroupedWeight(l.Weight.Shape, l.Weight.Data, g)
				n.meta["groups"] = fmt.Sprintf("%d, written as one group with zero weights between groups", g)
			}
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
				return nil, nil, false, fmt.Errorf("%s: NIR's pooling pads symmetrically and has no ceil mode", what)
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
					return nil, nil, false, fmt.Errorf("%s max-pools analog values: NIR has no max pooling (proxykit writes max-pooling over spikes as their OR)", what)
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
					return nil, nil, false, fmt.Errorf("%s: NIR's AvgPool2d counts padding in its divisor; this layer does not", what)
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
			return nil, nil, false, fmt.Errorf("%s has no NIR form (NIR has no padding or softmax node)", what)
		}
		return nodes, out, spikes, nil
	}
	return nil, nil, false, fmt.Errorf("%T has no NIR form", l)
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
	for _, n := range nodes {
		for _, f := range n.from {
			edges = append(edges, f, n.name)
		}
	}
	if err := graph.Strings("edges", []int{len(edges) / 2, 2}, edges); err != nil {
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

// nirBranching builds the NIR graph of a branching SNN. Each static layer
// and dynamic entry becomes its NIR nodes, with edges from the nodes its
// sources ended in; an Add becomes no node at all — NIR sums a node's
// incoming edges — so its consumers get edges from all of its sources. A
// BatchNorm is folded into the convolution it follows when that
// convolution feeds nothing else, else written as a 1×1 convolution.
// Concat has no NIR form and is refused.
func nirBranching(s *spiking.Network, o NIROptions) ([]*nirNode, error) {
	type item struct {
		layer any      // *spiking.IF or nn.Layer
		srcs  []int    // indices into items; −1 the graph's input
		outs  []string // the NIR nodes whose sum is this item's output
		shape []int
		spike bool
	}
	var items []item
	for i, l := range s.Static {
		var srcs []int
		for _, j := range nn.NodeInputs(s.StaticInputs, i) {
			srcs = append(srcs, j)
		}
		items = append(items, item{layer: l, srcs: srcs})
	}
	base := len(items)
	for i, d := range s.Dynamic {
		var srcs []int
		for _, src := range s.DynInputs[i] {
			if src.Static {
				srcs = append(srcs, src.Index)
			} else {
				srcs = append(srcs, base+src.Index)
			}
		}
		items = append(items, item{layer: d, srcs: srcs})
	}
	readers := make([]int, len(items))
	for _, it := range items {
		for _, j := range it.srcs {
			if j >= 0 {
				readers[j]++
			}
		}
	}
	// fold BatchNorm into a convolution that only it reads
	skip := make([]bool, len(items))
	for i := range items {
		bn, ok := items[i].layer.(*nn.BatchNorm2d)
		if !ok {
			continue
		}
		j := items[i].srcs[0]
		var prev any
		if j >= 0 {
			prev = items[j].layer
		}
		if conv, isConv := prev.(*nn.Conv2d); isConv && readers[j] == 1 {
			folded, err := FoldBatchNorm([]nn.Layer{conv, bn})
			if err != nil {
				return nil, err
			}
			items[i].layer, items[i].srcs = folded[0], items[j].srcs
			skip[j] = true
			continue
		}
		folded, err := FoldBatchNorm([]nn.Layer{bn})
		if err != nil {
			return nil, err
		}
		items[i].layer = folded[0]
	}
	in := newNIRNode("input", "Input")
	in.ints["shape"] = toInt64(s.ANN.InputShape)
	nodes := []*nirNode{in}
	names := nirNamer()
	for i := range items {
		if skip[i] {
			continue
		}
		it := &items[i]
		var from []string
		var shapes [][]int
		spikes := true
		for _, j := range it.srcs {
			if j < 0 {
				from, shapes, spikes = append(from, "input"), append(shapes, s.ANN.InputShape), false
				continue
			}
			from = append(from, items[j].outs...)
			shapes = append(shapes, items[j].shape)
			spikes = spikes && items[j].spike
		}
		switch l := it.layer.(type) {
		case *nn.Add:
			it.outs, it.shape, it.spike = from, shapes[0], false
			continue
		case nn.Join:
			return nil, fmt.Errorf("layer %s (%s): NIR has no node that concatenates", l.Name(), l.Kind())
		}
		made, out, sp, err := nirLayer(it.layer, shapes[0], spikes && len(from) == 1, names, s.Config, o)
		if err != nil {
			return nil, err
		}
		made[0].from = from
		nodes = append(nodes, made...)
		it.outs, it.shape, it.spike = []string{made[len(made)-1].name}, out, sp
	}
	last := items[len(items)-1]
	outNode := newNIRNode("output", "Output")
	outNode.ints["shape"] = toInt64(last.shape)
	outNode.from = last.outs
	return append(nodes, outNode), nil
}

// denseGroupedWeight expands a grouped convolution's weight [O, C/g, kH,
// kW] to the equivalent ungrouped one [O, C, kH, kW]: output channel o
// keeps its weights on its group's input channels, zero elsewhere.
func denseGroupedWeight(shape []int, w []float32, g int) nirArray {
	o, cg, k := shape[0], shape[1], shape[2]*shape[3]
	c, og := cg*g, o/g
	dense := make([]float32, o*c*k)
	for oc := 0; oc < o; oc++ {
		first := oc / og * cg
		copy(dense[(oc*c+first)*k:(oc*c+first+cg)*k], w[oc*cg*k:(oc+1)*cg*k])
	}
	return nirArray{[]int{o, c, shape[2], shape[3]}, dense}
}
