package exporter

import (
	"fmt"
	"maps"
	"math"
	"slices"
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
		made, out, sp, err := nirLayer(l, [][]int{shape}, spikes, names, s.Config, o)
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
// layer) reading signals of shapes ins (spikes when binary), chained among
// themselves, in the layer kind's NIR form (nn.Layer.ExportNIR; an IF
// layer is written as the ReLU it replaces), and returns the output's
// shape and whether it holds spikes. No nodes means the layer passes the
// sum of its inputs on.
func nirLayer(l any, ins [][]int, spikes bool, unique func(string) string, cfg spiking.Config, o NIROptions) (nodes []*nirNode, outShape []int, outSpikes bool, err error) {
	var layer nn.Layer
	switch l := l.(type) {
	case *spiking.IF:
		layer = &nn.ReLU{LayerName: l.LayerName}
	case nn.Layer:
		layer = l
	default:
		return nil, nil, false, fmt.Errorf("%T has no NIR form", l)
	}
	if j, ok := layer.(nn.Join); ok {
		outShape, err = j.JoinShape(ins)
	} else {
		outShape, err = layer.OutputShape(ins[0])
	}
	b := &nirBuilder{unique: unique, cfg: cfg, o: o}
	if err == nil {
		err = layer.ExportNIR(b, ins[0], spikes)
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("layer %s (%s): %w", layer.Name(), layer.Kind(), err)
	}
	for i := 1; i < len(b.nodes); i++ {
		b.nodes[i].from = []string{b.nodes[i-1].name}
	}
	r := layer.Role()
	return b.nodes, outShape, r.Neuron || spikes && r.KeepsSpikes, nil
}

// nirBuilder collects the nodes one layer writes (nn.NIRGraph).
type nirBuilder struct {
	nodes  []*nirNode
	unique func(string) string
	cfg    spiking.Config
	o      NIROptions
}

// Node implements nn.NIRGraph.
func (b *nirBuilder) Node(base, typ string) nn.NIRNode {
	n := newNIRNode(b.unique(base), typ)
	b.nodes = append(b.nodes, n)
	return n
}

// MaxPoolThreshold implements nn.NIRGraph.
func (b *nirBuilder) MaxPoolThreshold() bool { return b.o.MaxPoolThreshold }

// Neurons implements nn.NIRGraph: proxykit fires on v >= v_th, NIR on
// v > v_threshold, so v_threshold is the float32 just below v_th.
func (b *nirBuilder) Neurons() (vThreshold, vReset float32, notes map[string]string) {
	return nirThreshold(b.cfg.Threshold, b.o), b.cfg.Reset, map[string]string{
		"proxykit_v_threshold": fmt.Sprint(b.cfg.Threshold),
		"firing_rule":          "proxykit fires on v >= v_th; v_threshold is the float32 below v_th, so NIR's v > v_threshold is the same",
		"reset":                "hard",
		"dt":                   "1",
	}
}

// Floats implements nn.NIRNode.
func (n *nirNode) Floats(field string, shape []int, data []float32) {
	n.floats[field] = nirArray{shape: shape, data: data}
}

// Ints implements nn.NIRNode.
func (n *nirNode) Ints(field string, v ...int) { n.ints[field] = toInt64(v) }

// Scalar implements nn.NIRNode.
func (n *nirNode) Scalar(field string, v int64) { n.scalar[field] = v }

// Meta implements nn.NIRNode.
func (n *nirNode) Meta(key, value string) { n.meta[key] = value }

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
	graphMeta := map[string]string{"producer": "proxykit", "timesteps": fmt.Sprint(cfg.Timesteps), "dt": "1",
		"firing_rule": "v >= v_th, written as v > (the float32 below v_th)", "input": "the analog image, presented unchanged at every time step",
		"output": "spike counts of the last IF layer summed over the time steps"}
	for _, k := range slices.Sorted(maps.Keys(graphMeta)) {
		if err := meta.String(k, graphMeta[k]); err != nil {
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
	// fields in name order: the same graph always gives the same file
	for _, k := range slices.Sorted(maps.Keys(n.floats)) {
		a := n.floats[k]
		if err := g.Float32(k, a.shape, a.data); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(n.ints)) {
		v := n.ints[k]
		if err := g.Int64(k, []int{len(v)}, v); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(n.scalar)) {
		v := n.scalar[k]
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
		for _, k := range slices.Sorted(maps.Keys(n.meta)) {
			v := n.meta[k]
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
	// fold BatchNorm into a convolution that only it reads (any other
	// BatchNorm is written as a 1×1 convolution: its ExportNIR)
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
		}
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
		made, out, sp, err := nirLayer(it.layer, shapes, spikes && len(from) == 1, names, s.Config, o)
		if err != nil {
			return nil, err
		}
		if len(made) == 0 { // an Add: its readers sum its inputs' edges
			it.outs, it.shape, it.spike = from, out, false
			continue
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
