package importer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/proxykit/proxykit/internal/hdf5"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// NIRInfo describes an imported NIR file.
type NIRInfo struct {
	// Version is the file's NIR version; Producer its graph metadata's
	// producer ("proxykit" for proxykit's own files), if any.
	Version, Producer string
	// SNN is the IF neurons' setting the graph holds: v_th (the ≥ form of
	// NIR's v > v_threshold), v_reset, and T where the graph's metadata
	// records it (proxykit's files; 0 otherwise, as NIR has no time steps).
	SNN   spiking.Config
	Notes []string
}

// nirNeurons names the NIR neuron models proxykit does not simulate.
var nirNeurons = map[string]string{
	"LIF":     "leaky integrate-and-fire neurons",
	"CubaLIF": "current-based leaky integrate-and-fire neurons",
	"LI":      "leaky integrators",
	"CubaLI":  "current-based leaky integrators",
	"I":       "integrators without a threshold",
}

// nirNode is one node of the file's graph.
type nirNode struct {
	name, typ string
	g         *hdf5.Group
	in, out   []string // the nodes at the other end of its edges, in the file's order
	meta      map[string]string
}

// nirVal is what a node's output is in the network being built: the
// layer that computes it (−1: the network's input), its per-sample shape,
// and whether it holds binary spikes.
type nirVal struct {
	at     int
	shape  []int
	spikes bool
}

// nirIF is an IF node's parameters, as float64 arrays of one value per
// neuron (size 1 when the file gives one for all).
type nirIF struct {
	r, threshold, reset []float64
}

type nirReader struct {
	path   string
	nodes  map[string]*nirNode
	net    *nn.Network
	inputs [][]int
	vals   map[string]nirVal
	done   map[string]bool // nodes converted with another (max pooling's IF)
	notes  []string
	// the neurons' common setting, once the first IF node sets it
	ref          float64 // the threshold the others are scaled to (NIR's > form)
	reset        float64
	haveSetting  bool
	outputLayer  int
	outputShape  []int
	sawOutputIF  bool
	foldedLayers map[int]bool
}

// LoadNIR reads a NIR file (HDF5) and rebuilds the ANN whose SNN its
// graph is: each IF node becomes the ReLU it replaces, the IF node before
// the Output is the SNN's output layer (which proxykit adds itself), a
// SumPool2d of spikes followed by an IF node that fires on any spike (r =
// 1, v_reset = 0, threshold in [0, 1)) or by a Threshold in [0, 1) is the
// max pooling proxykit writes that way, another SumPool2d is a depthwise
// convolution of ones, a node with several incoming edges sums them (an
// Add). Affine, Linear, Conv2d, AvgPool2d and Flatten become their layers.
// IF parameters proxykit cannot hold as they are — per-neuron thresholds,
// r ≠ 1 — are folded into the weights of the layer before the node where
// that is exact (each neuron's factor r·θ/θ_i a power of two, v_reset 0),
// else refused naming the node; v_reset is the SNN's reset. Neuron models
// proxykit does not simulate (LIF, CubaLIF, ...) are refused by name.
func LoadNIR(path string) (*nn.Network, *NIRInfo, error) {
	f, err := hdf5.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	root := f.Root()
	info := &NIRInfo{}
	if k, err := root.Kind("version"); err == nil && k == hdf5.IsDataset {
		if v, err := readStrings(root, "version"); err == nil && len(v) == 1 {
			info.Version = v[0]
		}
	}
	if k, err := root.Kind("node"); err != nil || k != hdf5.IsGroup {
		return nil, nil, errors.New("not a NIR file: the HDF5 file has no group \"node\" (NIR keeps its graph there)")
	}
	graph, err := root.Open("node")
	if err != nil {
		return nil, nil, err
	}
	defer graph.Close()
	if t, err := readString(graph, "type"); err != nil || t != "NIRGraph" {
		return nil, nil, fmt.Errorf("not a NIR file: the top node's type is %q, not NIRGraph", t)
	}
	meta := readMeta(graph)
	info.Producer = meta["producer"]
	r := &nirReader{path: path, nodes: map[string]*nirNode{}, vals: map[string]nirVal{}, done: map[string]bool{},
		foldedLayers: map[int]bool{}}
	defer func() {
		for _, n := range r.nodes {
			n.g.Close()
		}
	}()
	order, err := r.readGraph(graph)
	if err != nil {
		return nil, nil, err
	}
	if err := r.convert(order); err != nil {
		return nil, nil, err
	}
	th, err := nirToThreshold(r.ref)
	if err != nil {
		return nil, nil, err
	}
	info.SNN = spiking.Config{Threshold: th, Reset: float32(r.reset)}
	if t, err := strconv.Atoi(meta["timesteps"]); err == nil && t > 0 && t <= spiking.MaxTimesteps {
		info.SNN.Timesteps = t
	}
	if r.reset != 0 && info.Producer != "proxykit" {
		r.notes = append(r.notes, fmt.Sprintf("v_reset = %g: proxykit's IF neurons also start there; the file does not say where its neurons start", r.reset))
	}
	info.Notes = r.notes
	return r.net, info, nil
}

// readGraph reads the nodes and edges and orders the nodes: each after
// the nodes it reads, ties broken by the order in which the edges first
// reach them (the order of proxykit's own layers in its files).
func (r *nirReader) readGraph(graph *hdf5.Group) ([]*nirNode, error) {
	if k, err := graph.Kind("nodes"); err != nil || k != hdf5.IsGroup {
		return nil, errors.New("not a NIR file: the graph has no group \"nodes\"")
	}
	nodes, err := graph.Open("nodes")
	if err != nil {
		return nil, err
	}
	defer nodes.Close()
	names, err := nodes.Members()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if k, err := nodes.Kind(name); err != nil || k != hdf5.IsGroup {
			return nil, fmt.Errorf("NIR node %q is not a group", name)
		}
		g, err := nodes.Open(name)
		if err != nil {
			return nil, err
		}
		n := &nirNode{name: name, g: g}
		r.nodes[name] = n
		if n.typ, err = readString(g, "type"); err != nil {
			return nil, fmt.Errorf("NIR node %q: %w", name, err)
		}
		n.meta = readMeta(g)
	}
	var edges []string
	if k, err := graph.Kind("edges"); err == nil && k == hdf5.IsDataset {
		if edges, err = readStrings(graph, "edges"); err != nil {
			return nil, err
		}
	}
	if len(edges)%2 != 0 {
		return nil, fmt.Errorf("NIR graph: %d edge ends, not pairs", len(edges))
	}
	first := map[string]int{} // when an edge first reaches the node
	for i := 0; i < len(edges); i += 2 {
		a, b := r.nodes[edges[i]], r.nodes[edges[i+1]]
		if a == nil || b == nil {
			return nil, fmt.Errorf("NIR graph: the edge %s → %s names a node the graph does not have", edges[i], edges[i+1])
		}
		a.out = append(a.out, b.name)
		b.in = append(b.in, a.name)
		if _, ok := first[b.name]; !ok {
			first[b.name] = i
		}
	}
	var input, output []*nirNode
	for _, name := range names {
		n := r.nodes[name]
		switch n.typ {
		case "Input":
			input = append(input, n)
		case "Output":
			output = append(output, n)
		}
	}
	if len(input) != 1 || len(output) != 1 {
		return nil, fmt.Errorf("NIR graph: %d Input and %d Output nodes; proxykit reads graphs with one of each", len(input), len(output))
	}
	// Kahn's algorithm from the input
	indeg := map[string]int{}
	for name, n := range r.nodes {
		indeg[name] = len(n.in)
	}
	if indeg[input[0].name] != 0 {
		return nil, fmt.Errorf("NIR node %s (Input) has incoming edges", input[0].name)
	}
	ready := []*nirNode{input[0]}
	var order []*nirNode
	for len(ready) > 0 {
		slices.SortStableFunc(ready, func(a, b *nirNode) int { return first[a.name] - first[b.name] })
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		for _, m := range n.out {
			if indeg[m]--; indeg[m] == 0 {
				ready = append(ready, r.nodes[m])
			}
		}
	}
	if len(order) != len(r.nodes) {
		for _, name := range names {
			if !slices.ContainsFunc(order, func(n *nirNode) bool { return n.name == name }) {
				n := r.nodes[name]
				if len(n.in) == 0 {
					return nil, fmt.Errorf("NIR node %s (%s) is reached by no edge from the input", name, n.typ)
				}
				return nil, fmt.Errorf("NIR node %s (%s) is on a cycle (a recurrent connection): proxykit reads feed-forward graphs", name, n.typ)
			}
		}
	}
	for _, n := range order {
		if len(n.out) == 0 && n.typ != "Output" {
			return nil, fmt.Errorf("NIR node %s (%s) leads to no output", n.name, n.typ)
		}
	}
	return order, nil
}

// convert builds the network, node by node in order.
func (r *nirReader) convert(order []*nirNode) error {
	in := order[0]
	shape, err := r.ints(in, "shape")
	if err != nil {
		return err
	}
	ishape := make([]int, len(shape))
	for i, d := range shape {
		if d < 1 || d > 1<<24 {
			return fmt.Errorf("NIR node %s (Input): shape %v", in.name, shape)
		}
		ishape[i] = int(d)
	}
	if len(ishape) != 1 && len(ishape) != 3 {
		return fmt.Errorf("NIR node %s (Input): shape %v; proxykit takes [C H W] images or [N] vectors", in.name, shape)
	}
	r.net = &nn.Network{Name: r.path, InputShape: ishape}
	r.vals[in.name] = nirVal{at: -1, shape: ishape}
	for _, n := range order[1:] {
		if r.done[n.name] {
			continue
		}
		if err := r.node(n); err != nil {
			if strings.HasPrefix(err.Error(), "NIR node ") {
				return err
			}
			return fmt.Errorf("NIR node %s (%s): %w", n.name, n.typ, err)
		}
	}
	if !r.sawOutputIF {
		return errors.New("NIR graph: no IF node feeds the Output; proxykit's SNN ends in IF neurons and counts their spikes")
	}
	if r.outputLayer != len(r.net.Layers)-1 {
		return fmt.Errorf("NIR graph: the layer before the output IF node is not the last to run")
	}
	if nn.IsChain(r.inputs) {
		r.inputs = nil
	}
	r.net.Inputs = r.inputs
	return nil
}

// input is the value a node reads: its one source's, or the sum of its
// sources' (an Add layer).
func (r *nirReader) input(n *nirNode) (nirVal, error) {
	if len(n.in) == 0 {
		return nirVal{}, errors.New("no incoming edge")
	}
	if len(n.in) == 1 {
		return r.vals[n.in[0]], nil
	}
	var at []int
	first := r.vals[n.in[0]]
	for _, s := range n.in {
		v := r.vals[s]
		if !slices.Equal(v.shape, first.shape) {
			return nirVal{}, fmt.Errorf("its incoming edges carry shapes %v and %v, which NIR sums and which must be equal", first.shape, v.shape)
		}
		at = append(at, v.at)
	}
	i := r.add(&nn.Add{LayerName: n.name + "_sum"}, at)
	return nirVal{at: i, shape: first.shape}, nil
}

func (r *nirReader) add(l nn.Layer, in []int) int {
	r.net.Layers = append(r.net.Layers, l)
	r.inputs = append(r.inputs, in)
	return len(r.net.Layers) - 1
}

// layer adds a one-input layer reading v and records its value for n.
func (r *nirReader) layer(n *nirNode, l nn.Layer, v nirVal, spikes bool) error {
	out, err := l.OutputShape([][]int{v.shape})
	if err != nil {
		return err
	}
	i := r.add(l, []int{v.at})
	r.vals[n.name] = nirVal{at: i, shape: out, spikes: spikes}
	return nil
}

func (r *nirReader) node(n *nirNode) error {
	if what, ok := nirNeurons[n.typ]; ok {
		return fmt.Errorf("NIR node %s is a %s layer (%s): proxykit simulates only IF neurons (integrate-and-fire without leak)", n.name, n.typ, what)
	}
	v, err := r.input(n)
	if err != nil {
		return err
	}
	switch n.typ {
	case "Output":
		return nil // its IF node was the output layer
	case "Affine", "Linear":
		return r.affine(n, v)
	case "Conv2d":
		return r.conv(n, v)
	case "IF":
		return r.neuron(n, v)
	case "SumPool2d":
		return r.sumPool(n, v)
	case "AvgPool2d":
		k, s, p, err := r.window(n)
		if err != nil {
			return err
		}
		return r.layer(n, &nn.Pool2d{LayerName: n.name, KH: k[0], KW: k[1], SH: s[0], SW: s[1], PT: p[0], PB: p[0], PL: p[1], PR: p[1],
			CountPad: true}, v, false)
	case "Flatten":
		return r.flatten(n, v)
	case "Threshold":
		return errors.New("a Threshold node that does not follow a SumPool2d of spikes: proxykit reads Threshold only as the OR of max pooling")
	case "Input":
		return errors.New("a second Input node")
	case "NIRGraph":
		return errors.New("a nested graph: proxykit reads flat graphs")
	}
	return fmt.Errorf("NIR node %s has type %s, which proxykit does not read (it reads Affine, Linear, Conv2d, IF, SumPool2d, AvgPool2d, Flatten and Threshold as max pooling)", n.name, n.typ)
}

func (r *nirReader) affine(n *nirNode, v nirVal) error {
	w, ws, err := r.f32(n, "weight")
	if err != nil {
		return err
	}
	if len(ws) != 2 {
		return fmt.Errorf("weight of shape %v; want [out in]", ws)
	}
	if len(v.shape) != 1 || v.shape[0] != ws[1] {
		return fmt.Errorf("weight %v reads a value of shape %v (flatten it first: a Flatten node)", ws, v.shape)
	}
	l := &nn.Linear{LayerName: n.name, Weight: nn.NewParam(n.name+".weight", w, ws...)}
	if n.typ == "Affine" {
		b, bs, err := r.f32(n, "bias")
		if err != nil {
			return err
		}
		if len(b) != ws[0] {
			return fmt.Errorf("bias of shape %v for %d outputs", bs, ws[0])
		}
		// proxykit writes a layer without bias as Affine with zeros (and
		// says so): read it back without
		if _, none := n.meta["bias_note"]; !none || slices.ContainsFunc(b, func(x float32) bool { return x != 0 }) {
			l.Bias = nn.NewParam(n.name+".bias", b, ws[0])
		}
	}
	return r.layer(n, l, v, false)
}

// pair reads a field that is one integer or two (height, width).
func (r *nirReader) pair(n *nirNode, field string, def int) ([2]int, error) {
	if !has(n.g, field) {
		return [2]int{def, def}, nil
	}
	v, err := r.ints(n, field)
	if err != nil {
		return [2]int{}, err
	}
	switch len(v) {
	case 1:
		v = []int64{v[0], v[0]}
	case 2:
	default:
		return [2]int{}, fmt.Errorf("field %s is %v; want one value or two (height, width)", field, v)
	}
	if v[0] < 0 || v[1] < 0 || v[0] > 1<<16 || v[1] > 1<<16 {
		return [2]int{}, fmt.Errorf("field %s is %v", field, v)
	}
	return [2]int{int(v[0]), int(v[1])}, nil
}

func (r *nirReader) conv(n *nirNode, v nirVal) error {
	w, ws, err := r.f32(n, "weight")
	if err != nil {
		return err
	}
	if len(ws) != 4 {
		return fmt.Errorf("weight of shape %v; want [out in/groups kh kw]", ws)
	}
	stride, err := r.pair(n, "stride", 1)
	if err != nil {
		return err
	}
	dil, err := r.pair(n, "dilation", 1)
	if err != nil {
		return err
	}
	groups := int64(1)
	if has(n.g, "groups") {
		g, err := r.ints(n, "groups")
		if err != nil {
			return err
		}
		if len(g) != 1 || g[0] < 1 {
			return fmt.Errorf("groups %v", g)
		}
		groups = g[0]
	}
	l := &nn.Conv2d{LayerName: n.name, Weight: nn.NewParam(n.name+".weight", w, ws...), SH: stride[0], SW: stride[1],
		DH: dil[0], DW: dil[1], Groups: int(groups)}
	if s, err := readString(n.g, "padding"); err == nil { // 'same' or 'valid'
		switch s {
		case "valid":
		case "same":
			if stride != [2]int{1, 1} {
				return errors.New("padding 'same' with a stride: PyTorch allows it with stride 1 only")
			}
			th, tw := dil[0]*(ws[2]-1), dil[1]*(ws[3]-1)
			l.PT, l.PB, l.PL, l.PR = th/2, th-th/2, tw/2, tw-tw/2
		default:
			return fmt.Errorf("padding %q", s)
		}
	} else {
		p, err := r.pair(n, "padding", 0)
		if err != nil {
			return err
		}
		l.PT, l.PB, l.PL, l.PR = p[0], p[0], p[1], p[1]
	}
	if has(n.g, "bias") {
		b, _, err := r.f32(n, "bias")
		if err != nil {
			return err
		}
		if len(b) != ws[0] {
			return fmt.Errorf("bias of %d values for %d output channels", len(b), ws[0])
		}
		l.Bias = nn.NewParam(n.name+".bias", b, ws[0])
	}
	return r.layer(n, l, v, false)
}

// window reads a pooling node's kernel_size, stride and padding.
func (r *nirReader) window(n *nirNode) (k, s, p [2]int, err error) {
	if k, err = r.pair(n, "kernel_size", 0); err != nil {
		return
	}
	if k[0] < 1 || k[1] < 1 {
		err = fmt.Errorf("kernel_size %v", k)
		return
	}
	if s, err = r.pair(n, "stride", 0); err != nil {
		return
	}
	if s == [2]int{0, 0} {
		s = k
	}
	p, err = r.pair(n, "padding", 0)
	return
}

// sumPool reads a SumPool2d: with the IF or Threshold node after it, the
// max pooling of spikes proxykit writes that way; else a depthwise
// convolution of ones.
func (r *nirReader) sumPool(n *nirNode, v nirVal) error {
	k, s, p, err := r.window(n)
	if err != nil {
		return err
	}
	if len(v.shape) != 3 {
		return fmt.Errorf("reads a value of shape %v; pooling needs [C H W]", v.shape)
	}
	if v.spikes && len(n.out) == 1 {
		next := r.nodes[n.out[0]]
		if len(next.in) == 1 && (next.typ == "IF" || next.typ == "Threshold") {
			or, err := r.isOR(next)
			if err != nil {
				return err
			}
			if or {
				pool := &nn.Pool2d{LayerName: n.name, Max: true, KH: k[0], KW: k[1], SH: s[0], SW: s[1], PT: p[0], PB: p[0], PL: p[1], PR: p[1]}
				if err := r.layer(n, pool, v, true); err != nil {
					return err
				}
				r.vals[next.name] = r.vals[n.name]
				r.done[next.name] = true
				return nil
			}
		}
	}
	c := v.shape[0]
	ones := make([]float32, c*k[0]*k[1])
	for i := range ones {
		ones[i] = 1
	}
	conv := &nn.Conv2d{LayerName: n.name, Weight: nn.NewParam(n.name+".weight", ones, c, 1, k[0], k[1]), SH: s[0], SW: s[1],
		PT: p[0], PB: p[0], PL: p[1], PR: p[1], DH: 1, DW: 1, Groups: c}
	r.notes = append(r.notes, fmt.Sprintf("NIR node %s (SumPool2d) is read as a depthwise convolution of ones (the same sums)", n.name))
	return r.layer(n, conv, v, false)
}

// isOR says whether an IF or Threshold node after a SumPool2d of spikes
// fires exactly when the window holds a spike: integer sums, so any
// threshold in [0, 1) with r = 1 and a reset to 0 (the potential is 0
// again after every step).
func (r *nirReader) isOR(n *nirNode) (bool, error) {
	in01 := func(v []float64) bool {
		return !slices.ContainsFunc(v, func(x float64) bool { return !(x >= 0 && x < 1) })
	}
	if n.typ == "Threshold" {
		th, _, err := r.f64(n, "threshold")
		if err != nil {
			return false, err
		}
		return in01(th), nil
	}
	p, err := r.ifParams(n)
	if err != nil {
		return false, err
	}
	allEq := func(v []float64, x float64) bool {
		return !slices.ContainsFunc(v, func(y float64) bool { return y != x })
	}
	return allEq(p.r, 1) && allEq(p.reset, 0) && in01(p.threshold), nil
}

func (r *nirReader) ifParams(n *nirNode) (nirIF, error) {
	var p nirIF
	var err error
	if p.r, _, err = r.f64(n, "r"); err != nil {
		return p, err
	}
	if p.threshold, _, err = r.f64(n, "v_threshold"); err != nil {
		return p, err
	}
	p.reset = []float64{0} // NIR's reader's default
	if has(n.g, "v_reset") {
		if p.reset, _, err = r.f64(n, "v_reset"); err != nil {
			return p, err
		}
	}
	return p, nil
}

// neuron reads an IF node: the ReLU it replaces, or — before the Output —
// the SNN's output layer, which proxykit adds itself. Its parameters set
// the SNN's (the first IF node's threshold and reset), or are folded into
// the weights before it.
func (r *nirReader) neuron(n *nirNode, v nirVal) error {
	p, err := r.ifParams(n)
	if err != nil {
		return err
	}
	size := nn.Numel(v.shape)
	for field, a := range map[string][]float64{"r": p.r, "v_threshold": p.threshold, "v_reset": p.reset} {
		if len(a) != size && len(a) != 1 {
			return fmt.Errorf("%s holds %d values for a layer of %d neurons (shape %v)", field, len(a), size, v.shape)
		}
		for _, x := range a {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("%s holds %g", field, x)
			}
		}
	}
	at := func(a []float64, i int) float64 {
		if len(a) == 1 {
			return a[0]
		}
		return a[i]
	}
	if !r.haveSetting {
		r.ref, r.reset, r.haveSetting = mostCommon(p.threshold), p.reset[0], true
	}
	factors := make([]float64, size)
	fold := false
	for i := range factors {
		reset, th, ri := at(p.reset, i), at(p.threshold, i), at(p.r, i)
		if reset != r.reset {
			return fmt.Errorf("v_reset %g where the graph's other IF neurons have %g: proxykit's IF neurons share one v_reset", reset, r.reset)
		}
		if !(th > reset) {
			return fmt.Errorf("v_threshold %g is not above v_reset %g: the neuron would fire without input", th, reset)
		}
		if !(ri > 0) {
			return fmt.Errorf("r = %g: proxykit's neurons integrate their input with a positive weight", ri)
		}
		// the neuron's potential above v_reset, scaled so that its
		// threshold is the reference one
		factors[i] = ri * (r.ref - reset) / (th - reset)
		if factors[i] != 1 {
			fold = true
		}
	}
	if fold {
		if err := r.fold(n, v, factors); err != nil {
			return err
		}
	}
	if len(n.out) == 1 && r.nodes[n.out[0]].typ == "Output" {
		if v.at < 0 {
			return errors.New("the output IF node reads the input directly; proxykit's SNN needs a layer before it")
		}
		r.sawOutputIF, r.outputLayer, r.outputShape = true, v.at, v.shape
		r.vals[n.name] = v
		return nil
	}
	return r.layer(n, &nn.ReLU{LayerName: n.name}, v, true)
}

// fold multiplies, per neuron, the weights and bias of the layer before an
// IF node by factors (its r and its threshold relative to the reference
// one), where that gives the same spikes exactly.
func (r *nirReader) fold(n *nirNode, v nirVal, factors []float64) error {
	for i, f := range factors {
		if frac, _ := math.Frexp(f); frac != 0.5 {
			return fmt.Errorf("neuron %d's r and v_threshold give it the factor r·θ/θ_i = %.6g against the graph's threshold θ = %.8g, "+
				"which cannot be folded into the weights exactly (only powers of two can); proxykit's IF neurons share one threshold and have r = 1",
				i, f, r.ref)
		}
	}
	if r.reset != 0 {
		return fmt.Errorf("its thresholds or r differ from the graph's first IF node's, which proxykit folds into the weights only with v_reset 0 (here %g)", r.reset)
	}
	src := ""
	if len(n.in) == 1 {
		src = n.in[0]
	}
	prev := r.nodes[src]
	if prev == nil || len(prev.out) != 1 || v.at < 0 || r.foldedLayers[v.at] {
		return errors.New("its thresholds or r differ from the graph's first IF node's, and the layer before it (which must feed it alone) cannot take the difference")
	}
	scale := func(data []float32, rows int, factor func(row int) float64) {
		per := len(data) / rows
		for o := 0; o < rows; o++ {
			f := float32(factor(o))
			for j := o * per; j < (o+1)*per; j++ {
				data[j] *= f
			}
		}
	}
	switch l := r.net.Layers[v.at].(type) {
	case *nn.Linear:
		scale(l.Weight.Data, l.Weight.Shape[0], func(o int) float64 { return factors[o] })
		if l.Bias != nil {
			scale(l.Bias.Data, len(l.Bias.Data), func(o int) float64 { return factors[o] })
		}
	case *nn.Conv2d:
		c := l.Weight.Shape[0]
		plane := len(factors) / c
		if len(factors) == c*plane {
			for o := 0; o < c; o++ {
				for j := 1; j < plane; j++ {
					if factors[o*plane+j] != factors[o*plane] {
						return fmt.Errorf("its thresholds or r vary within channel %d of the convolution %s before it, which can take one factor per channel", o, l.LayerName)
					}
				}
			}
		}
		scale(l.Weight.Data, c, func(o int) float64 { return factors[o*plane] })
		if l.Bias != nil {
			scale(l.Bias.Data, c, func(o int) float64 { return factors[o*plane] })
		}
	default:
		return fmt.Errorf("its thresholds or r differ from the graph's first IF node's, and the layer before it (%s) has no weights to take the difference", nn.KindOf(r.net.Layers[v.at]))
	}
	r.foldedLayers[v.at] = true
	r.notes = append(r.notes, fmt.Sprintf("NIR node %s (IF): r and v_threshold folded into the weights of %s (factors %g to %g, powers of two: exact)",
		n.name, nn.NameOf(r.net.Layers[v.at]), slices.Min(factors), slices.Max(factors)))
	return nil
}

// flatten reads a Flatten node: proxykit flattens all per-sample
// dimensions. NIR counts dims without the batch (start_dim 0 or
// −rank); PyTorch-based writers count the batch (start_dim 1), which is
// read so where the layer after it takes all the values.
func (r *nirReader) flatten(n *nirNode, v nirVal) error {
	rank := int64(len(v.shape))
	start, end := int64(1), int64(-1) // NIR's defaults
	if has(n.g, "start_dim") {
		s, err := r.ints(n, "start_dim")
		if err != nil || len(s) != 1 {
			return fmt.Errorf("start_dim %v", s)
		}
		start = s[0]
	}
	if has(n.g, "end_dim") {
		e, err := r.ints(n, "end_dim")
		if err != nil || len(e) != 1 {
			return fmt.Errorf("end_dim %v", e)
		}
		end = e[0]
	}
	all := (start == 0 || start == -rank) && (end == -1 || end == rank-1)
	if !all && start == 1 && end == -1 && rank > 1 {
		// PyTorch's convention, batch first: all per-sample dims if what
		// reads the result takes them all
		numel := nn.Numel(v.shape)
		for _, o := range n.out {
			next := r.nodes[o]
			if next.typ == "Affine" || next.typ == "Linear" {
				if _, ws, err := r.f32Shape(next, "weight"); err == nil && len(ws) == 2 && ws[1] == numel {
					all = true
				}
			}
		}
		if all {
			r.notes = append(r.notes, fmt.Sprintf("NIR node %s (Flatten): start_dim 1 read as PyTorch's, counting the batch (all per-sample dimensions), as the layer after it takes them all", n.name))
		}
	}
	if !all {
		return fmt.Errorf("start_dim %d, end_dim %d of a %v value: proxykit flattens all per-sample dimensions", start, end, v.shape)
	}
	return r.layer(n, &nn.Flatten{LayerName: n.name}, v, v.spikes)
}

// Field readers, naming the node and field in their errors.

func has(g *hdf5.Group, field string) bool {
	k, err := g.Kind(field)
	return err == nil && k == hdf5.IsDataset
}

func (r *nirReader) dataset(n *nirNode, field string) (*hdf5.Dataset, error) {
	if !has(n.g, field) {
		return nil, fmt.Errorf("NIR node %s (%s) has no field %s", n.name, n.typ, field)
	}
	d, err := n.g.Dataset(field)
	if err != nil {
		return nil, fmt.Errorf("NIR node %s (%s): %w", n.name, n.typ, err)
	}
	return d, nil
}

func (r *nirReader) f32(n *nirNode, field string) ([]float32, []int, error) {
	d, err := r.dataset(n, field)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	v, err := d.Float32()
	if err != nil {
		return nil, nil, fmt.Errorf("NIR node %s (%s): %w", n.name, n.typ, err)
	}
	if i := slices.IndexFunc(v, func(x float32) bool { return math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) }); i >= 0 {
		return nil, nil, fmt.Errorf("NIR node %s (%s): %s[%d] is %g", n.name, n.typ, field, i, v[i])
	}
	return v, d.Shape, nil
}

// f32Shape is a float field's shape, without reading it.
func (r *nirReader) f32Shape(n *nirNode, field string) (string, []int, error) {
	d, err := r.dataset(n, field)
	if err != nil {
		return "", nil, err
	}
	defer d.Close()
	return d.Class, d.Shape, nil
}

func (r *nirReader) f64(n *nirNode, field string) ([]float64, []int, error) {
	d, err := r.dataset(n, field)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	v, err := d.Float64()
	if err != nil {
		return nil, nil, fmt.Errorf("NIR node %s (%s): %w", n.name, n.typ, err)
	}
	return v, d.Shape, nil
}

func (r *nirReader) ints(n *nirNode, field string) ([]int64, error) {
	d, err := r.dataset(n, field)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if d.Len() > 64 {
		return nil, fmt.Errorf("NIR node %s (%s): %s holds %d values", n.name, n.typ, field, d.Len())
	}
	if d.Class == hdf5.Float { // some writers store integers as floats
		f, err := d.Float64()
		if err != nil {
			return nil, err
		}
		out := make([]int64, len(f))
		for i, x := range f {
			if x != math.Trunc(x) || math.Abs(x) > 1<<40 {
				return nil, fmt.Errorf("NIR node %s (%s): %s holds %g, not an integer", n.name, n.typ, field, x)
			}
			out[i] = int64(x)
		}
		return out, nil
	}
	v, err := d.Int64()
	if err != nil {
		return nil, fmt.Errorf("NIR node %s (%s): %w", n.name, n.typ, err)
	}
	return v, nil
}

func readStrings(g *hdf5.Group, field string) ([]string, error) {
	d, err := g.Dataset(field)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if d.Len() > 1<<20 {
		return nil, fmt.Errorf("%s holds %d strings", field, d.Len())
	}
	return d.Strings()
}

func readString(g *hdf5.Group, field string) (string, error) {
	if !has(g, field) {
		return "", fmt.Errorf("no field %s", field)
	}
	v, err := readStrings(g, field)
	if err != nil {
		return "", err
	}
	if len(v) != 1 {
		return "", fmt.Errorf("%s holds %d strings, not one", field, len(v))
	}
	return v[0], nil
}

// readMeta reads a node's metadata group's string fields.
func readMeta(g *hdf5.Group) map[string]string {
	out := map[string]string{}
	if k, err := g.Kind("metadata"); err != nil || k != hdf5.IsGroup {
		return out
	}
	m, err := g.Open("metadata")
	if err != nil {
		return out
	}
	defer m.Close()
	names, _ := m.Members()
	for _, k := range names {
		if s, err := readString(m, k); err == nil {
			out[k] = s
		}
	}
	return out
}

// mostCommon is the value v holds most often (the first of those).
func mostCommon(v []float64) float64 {
	count := map[float64]int{}
	best := v[0]
	for _, x := range v {
		count[x]++
		if count[x] > count[best] {
			best = x
		}
	}
	return best
}

// nirToThreshold is proxykit's v_th for NIR's threshold θ: NIR's neurons
// fire on v > θ, proxykit's on v ≥ v_th, and for float32 potentials v > θ
// exactly when v ≥ the least float32 above θ. (proxykit writes nextafter
// (v_th, −∞) into its files; this gives v_th back.)
func nirToThreshold(theta float64) (float32, error) {
	t := float32(theta)
	if math.IsInf(float64(t), 0) {
		return 0, fmt.Errorf("v_threshold %g is beyond float32", theta)
	}
	if float64(t) <= theta {
		t = math.Nextafter32(t, float32(math.Inf(1)))
	}
	return t, nil
}
