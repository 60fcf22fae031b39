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
	"github.com/proxykit/proxykit/setting"
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

	// AvgPoolAsConv writes average pooling (and global average pooling) as
	// a Conv2d with weights 1/(kh·kw) from each channel to itself, which
	// sinabs's loader maps, instead of NIR's AvgPool2d, which it does not
	// (norse, snnTorch and nirtorch map both). Over spikes and windows of
	// 2×2 or 4×4 the result is exact either way; for other window sizes
	// the convolution's sum of x·(1/(kh·kw)) may round differently from a
	// mean.
	AvgPoolAsConv bool

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

// nirGraph builds the SNN's NIR graph (docs/design.md §3): Input, Conv2d
// (BatchNorm folded), IF (parameters shaped like their layer), SumPool2d +
// IF (or + Threshold) for max-pooling on spikes, AvgPool2d (or Conv2d),
// Flatten (dims counted from the end), Affine (a zero bias for a Linear
// layer without one), Output (docs/nir.md says why each form). Each node
// of the SNN becomes its NIR nodes, with edges
// from the nodes its inputs ended in; an Add becomes no node at all — NIR
// sums a node's incoming edges — so its readers get edges from all of its
// inputs. It refuses what NIR cannot express (Concat), naming the layer.
func nirGraph(s *spiking.Network, o NIROptions) ([]*nirNode, error) {
	if s != nil && s.Config.InitialCharge != 0 {
		c := s.Config.InitialCharge
		return nil, setting.Errorf("%s %g: NIR's IF node holds no initial potential (norse, sinabs and snnTorch start its neurons at 0), "+
			"so no NIR graph starts where this SNN does; export with an initial charge of 0, or as ONNX, which holds it", spiking.InitialCharge, c)
	}
	nodes, _, _, err := foldedSNN(s)
	if err != nil {
		return nil, err
	}
	type value struct {
		from  []string // the NIR nodes whose sum is the value
		shape []int
		spike bool
	}
	in := newNIRNode("input", "Input")
	in.ints["shape"] = toInt64(s.ANN.InputShape)
	out := []*nirNode{in}
	values := make([]value, len(nodes))
	names := nirNamer()
	for i, nd := range nodes {
		var from []string
		var shapes [][]int
		spikes := true
		for _, j := range nd.Inputs {
			if j < 0 {
				from, shapes, spikes = append(from, "input"), append(shapes, s.ANN.InputShape), false
				continue
			}
			from = append(from, values[j].from...)
			shapes = append(shapes, values[j].shape)
			spikes = spikes && values[j].spike
		}
		made, shape, sp, err := nirLayer(nd, shapes, spikes && len(from) == 1, names, s.Config.Reset, o)
		if err != nil {
			return nil, err
		}
		if len(made) == 0 { // an Add: its readers sum its inputs' edges
			values[i] = value{from: from, shape: shape}
			continue
		}
		made[0].from = from
		out = append(out, made...)
		values[i] = value{from: []string{made[len(made)-1].name}, shape: shape, spike: sp}
	}
	last := values[len(values)-1]
	outNode := newNIRNode("output", "Output")
	outNode.ints["shape"] = toInt64(last.shape)
	outNode.from = last.from
	return append(out, outNode), nil
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

// nirLayer makes the NIR nodes of one SNN node reading signals of shapes
// ins (spikes when binary), chained among themselves, in the layer kind's
// NIR form (nn.NIRWriter; an IF node's layer is the neuron layer it
// replaces, which writes the IF node with the node's threshold), and
// returns the output's shape and whether it holds spikes. No nodes means
// the layer passes the sum of its inputs on.
func nirLayer(nd spiking.Node, ins [][]int, spikes bool, unique func(string) string, reset float32, o NIROptions) (nodes []*nirNode, outShape []int, outSpikes bool, err error) {
	layer := nd.Layer
	outShape, err = layer.OutputShape(ins)
	b := &nirBuilder{unique: unique, vth: nd.Threshold, reset: reset, o: o}
	if err == nil {
		w, ok := layer.(nn.NIRWriter)
		if !ok {
			err = fmt.Errorf("NIR has no form for %s", nn.KindOf(layer))
		} else {
			err = w.ExportNIR(b, ins[0], spikes)
		}
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("layer %s (%s): %w", nn.NameOf(layer), nn.KindOf(layer), err)
	}
	for i := 1; i < len(b.nodes); i++ {
		b.nodes[i].from = []string{b.nodes[i-1].name}
	}
	r := nn.RoleOf(layer)
	return b.nodes, outShape, r.Neuron || spikes && r.KeepsSpikes, nil
}

// nirBuilder collects the nodes one layer writes (nn.NIRGraph).
type nirBuilder struct {
	nodes  []*nirNode
	unique func(string) string
	vth    float32 // the IF node's v_th
	reset  float32
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

// AvgPoolAsConv implements nn.NIRGraph.
func (b *nirBuilder) AvgPoolAsConv() bool { return b.o.AvgPoolAsConv }

// Neurons implements nn.NIRGraph: proxykit fires on v >= v_th, NIR on
// v > v_threshold, so v_threshold is the float32 just below v_th.
func (b *nirBuilder) Neurons() (vThreshold, vReset float32, notes map[string]string) {
	return nirThreshold(b.vth, b.o), b.reset, map[string]string{
		"proxykit_v_threshold": fmt.Sprint(b.vth),
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

// nirWarnings says where the graph, read by NIR's consumers as they load
// it, will not give proxykit's counts or will not load (docs/nir.md; each
// point checked against norse 065a3b4, sinabs 904eb89, snnTorch 634fc22
// and nirtorch 2604ce2).
func nirWarnings(nodes []*nirNode, cfg spiking.Config) []string {
	var w []string
	if cfg.Reset != 0 {
		w = append(w, fmt.Sprintf("v_reset = %g, which is also every IF neuron's initial potential: norse, sinabs and snnTorch "+
			"read no v_reset (their IF neurons start at 0 and reset to 0), so their counts will differ from proxykit's; "+
			"NIR's own semantics (IF.v_reset) and scripts/nir_sim.py follow it", cfg.Reset))
	}
	types := map[string]bool{}
	joins, padded := false, false
	for _, n := range nodes {
		types[n.typ] = true
		joins = joins || len(n.from) > 1
		if n.typ == "SumPool2d" && slices.ContainsFunc(n.ints["padding"], func(p int64) bool { return p != 0 }) {
			padded = true
		}
	}
	if types["Threshold"] {
		w = append(w, "Threshold nodes (--nir-maxpool-threshold): norse, sinabs and snnTorch map no Threshold node, "+
			"so the file loads in NIR's reader but in none of them")
	}
	if padded {
		w = append(w, "a SumPool2d node (a max-pooling over spikes) pads its input: norse, sinabs, snnTorch and nirtorch "+
			"map SumPool2d without padding, so their outputs will have other shapes")
	}
	if types["AvgPool2d"] {
		w = append(w, "AvgPool2d nodes: sinabs.from_nir maps none (write them as convolutions with --nir-avgpool-conv); "+
			"norse, snnTorch and nirtorch map them")
	}
	if joins {
		w = append(w, "nodes with several incoming edges (residual joins): sinabs.from_nir cannot order such a graph; "+
			"load it with nirtorch.nir_to_torch and sinabs's node map (docs/nir.md)")
	}
	return w
}

// NIRWarnings lists, one sentence each, where NIR's consumers (norse,
// sinabs, snnTorch), loading the file that WriteNIR writes for s and o,
// will not reproduce proxykit's counts or will not load it as they come:
// a non-zero v_reset (they start and reset at 0), Threshold nodes, padded
// SumPool2d, AvgPool2d (sinabs), joins (sinabs.from_nir). The same
// sentences are in the file's graph metadata under "warnings". Empty
// when all three load and run the file given the settings docs/nir.md
// lists.
func NIRWarnings(s *spiking.Network, o NIROptions) ([]string, error) {
	nodes, err := nirGraph(s, o)
	if err != nil {
		return nil, err
	}
	return nirWarnings(nodes, s.Config), nil
}

// WriteNIR writes the SNN as a NIR graph in HDF5 to path, atomically (the
// file is written beside path and renamed when complete).
func WriteNIR(path string, s *spiking.Network, o NIROptions) error {
	nodes, err := nirGraph(s, o)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteFunc(path, func(tmp string) error { return writeNIRFile(tmp, nodes, s.Config) })
}

// CheckNIR reports whether the SNN can be written as NIR, without writing:
// NIR can express it and the HDF5 library is there.
func CheckNIR(s *spiking.Network, o NIROptions) error {
	if _, err := nirGraph(s, o); err != nil {
		return err
	}
	return hdf5.Available()
}

// WriteNIRFile writes the SNN as a NIR graph in HDF5 to path, in place
// (WriteNIR writes atomically).
func WriteNIRFile(path string, s *spiking.Network, o NIROptions) error {
	nodes, err := nirGraph(s, o)
	if err != nil {
		return err
	}
	return writeNIRFile(path, nodes, s.Config)
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
		"output":            "spike counts of the last IF layer summed over the time steps",
		"v_threshold":       fmt.Sprint(cfg.Threshold),
		"v_reset":           fmt.Sprint(cfg.Reset),
		"initial_potential": fmt.Sprintf("%g (v_reset): every IF neuron starts at v_reset", cfg.Reset)}
	if w := nirWarnings(nodes, cfg); len(w) > 0 {
		graphMeta["warnings"] = strings.Join(w, "\n")
	}
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
