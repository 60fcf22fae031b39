package importer

import (
	"fmt"
	"math"
	"strings"
	"unsafe"

	onnx "github.com/owulveryck/onnx-go"
	"gonum.org/v1/gonum/graph"
	"gonum.org/v1/gonum/graph/simple"
	"gorgonia.org/tensor"

	"github.com/proxykit/proxykit/internal/floats"
	"github.com/proxykit/proxykit/nn"
)

// Opset range proxykit reads.
const (
	MinOpset = 7
	MaxOpset = 21
)

// gnode is a value of the ONNX graph as onnx-go hands it to the backend:
// a name and, for initializers and constants, a decoded tensor.
type gnode struct {
	id   int64
	name string
	t    tensor.Tensor
}

func (n *gnode) ID() int64                       { return n.id }
func (n *gnode) SetName(s string)                { n.name = s }
func (n *gnode) GetName() string                 { return n.name }
func (n *gnode) SetTensor(t tensor.Tensor) error { n.t = t; return nil }
func (n *gnode) GetTensor() tensor.Tensor        { return n.t }

// recorder implements onnx-go's Backend: it keeps the graph onnx-go
// builds and the operations in the order the model lists them.
type recorder struct {
	*simple.WeightedDirectedGraph
	ops []onnx.Operation
}

func newRecorder() *recorder {
	return &recorder{WeightedDirectedGraph: simple.NewWeightedDirectedGraph(math.Inf(1), math.Inf(1))}
}

// NewNode implements graph.NodeAdder with nodes that carry names and tensors.
func (r *recorder) NewNode() graph.Node {
	return &gnode{id: r.WeightedDirectedGraph.NewNode().ID()}
}

// ApplyOperation implements onnx.OperationCarrier.
func (r *recorder) ApplyOperation(op onnx.Operation, _ ...graph.Node) error {
	r.ops = append(r.ops, op)
	return nil
}

// value is an ONNX value during conversion: a constant, or the network's
// activation (per-sample shape), which only layers consume.
type value struct {
	c     *constant
	shape []int // per-sample shape when dynamic
	gen   int   // which activation in the chain this is
	// shuffle, when set, says that the value is not an activation of its
	// own but a view of one that a channel shuffle is under way on.
	shuffle *shuffleView
}

// shuffleView is a channel shuffle under way (ShuffleNet's, as torch.onnx
// writes it: Reshape to [N, groups, C/groups, H, W], Transpose of axes 1
// and 2, Reshape back to [N, C, H, W]): the activation src viewed as
// groups × C/groups channels, transposed or not yet.
type shuffleView struct {
	src        *value
	groups     int
	transposed bool
}

// converter turns the recorded ONNX graph into an nn.Network.
type converter struct {
	path    string
	outline *onnxOutline
	data    []byte // the file, whose large initializers' bytes aligned moves
	opset   int64
	values  map[string]*value
	net     *nn.Network
	gen     int // generation of the newest activation
	names   map[string]int
	notes   []string
	// lastLayer is the layer that produced the newest activation.
	lastLayer nn.Layer
	// inputs lists, per layer, the nodes it reads (−1: the graph input).
	inputs [][]int
	// batch is the input's fixed batch size, or 0 when symbolic.
	batch int
	// constLimit bounds the elements of a computed constant (constLimit()).
	constLimit int
	// fixedBatch names the Reshape nodes whose target shape holds the
	// traced batch size.
	fixedBatch []string
}

// ONNXInfo describes an imported ONNX file.
type ONNXInfo struct {
	Opset           int64
	IRVersion       int64
	Producer        string
	ProducerVersion string
	InputName       string
	OutputName      string
	Notes           []string
}

// LoadONNX reads an ONNX model and converts it to an nn.Network. The
// network's weights may share data's memory, whose bytes it may move: data
// must not be reused.
func LoadONNX(path string, data []byte) (net *nn.Network, info *ONNXInfo, err error) {
	outline, err := scanONNX(data)
	if err != nil {
		return nil, nil, err
	}
	if outline.Producer == "proxykit" && outline.Metadata["proxykit.network"] == "snn" {
		return nil, nil, fmt.Errorf("this is proxykit's unrolled SNN export (%s time steps of IF layers written out in Add, "+
			"GreaterOrEqual and Where), which proxykit does not read back: read the checkpoint it was exported from, or the "+
			"same network exported as its ANN (ONNX) or as NIR, whose SNN it is", outline.Metadata["proxykit.timesteps"])
	}
	if outline.Opset < 0 {
		return nil, nil, fmt.Errorf("model imports no default-domain opset")
	}
	if outline.Opset < MinOpset || outline.Opset > MaxOpset {
		return nil, nil, fmt.Errorf("opset %d is not supported (proxykit reads opsets %d to %d)", outline.Opset, MinOpset, MaxOpset)
	}
	if len(outline.Nodes) == 0 {
		return nil, nil, fmt.Errorf("the graph has no nodes")
	}
	if err := outline.checkWiring(); err != nil {
		return nil, nil, err
	}
	if err := outline.checkEmpty(); err != nil {
		return nil, nil, err
	}
	// the large float initializers are read from data directly; onnx-go
	// decodes the rest
	slim, err := slimONNX(data, outline.Raw)
	if err != nil {
		return nil, nil, err
	}
	rec := newRecorder()
	model := onnx.NewModel(rec)
	if err := decodeSafely(model, slim); err != nil {
		return nil, nil, decodeError(err, data, outline)
	}
	if err := outline.notReLU(); err != nil {
		return nil, nil, err
	}
	if len(rec.ops) != len(outline.Nodes) {
		return nil, nil, fmt.Errorf("onnx-go decoded %d operations for %d nodes", len(rec.ops), len(outline.Nodes))
	}
	c := &converter{path: path, data: data, outline: outline, opset: outline.Opset, values: map[string]*value{},
		names: map[string]int{}, constLimit: constLimit(len(data))}
	info = &ONNXInfo{Opset: outline.Opset, IRVersion: outline.IRVersion, Producer: outline.Producer,
		ProducerVersion: outline.ProducerVersion}
	if err := c.loadInitializers(model); err != nil {
		return nil, nil, err
	}
	if info.InputName, err = c.setInput(); err != nil {
		return nil, nil, err
	}
	computed := 0 // elements of all constants computed so far
	for i, n := range outline.Nodes {
		err := c.apply(n, rec.ops[i].Attributes)
		if err == nil && n.OpType != "Constant" {
			for _, o := range n.Outputs {
				if v := c.values[o]; v != nil && v.c != nil {
					computed += v.c.numel()
				}
			}
			if computed > 2*c.constLimit {
				err = fmt.Errorf("the constants computed at import reach %d elements, more than a model file of %d bytes can need (%d)", computed, len(data), 2*c.constLimit)
			}
		}
		if err != nil {
			name := n.Name
			if name == "" {
				name = fmt.Sprintf("#%d", i)
			}
			return nil, nil, fmt.Errorf("node %s (%s): %w", name, n.OpType, err)
		}
	}
	if info.OutputName, err = c.finish(); err != nil {
		return nil, nil, err
	}
	if f := c.fixedBatch; len(f) == 1 {
		c.notes = append(c.notes, fmt.Sprintf("Reshape %q fixes the batch size at %d; proxykit treats that dimension as the batch", f[0], c.batch))
	} else if len(f) > 1 {
		c.notes = append(c.notes, fmt.Sprintf("%d Reshape nodes (%q, …) fix the batch size at %d; proxykit treats that dimension as the batch", len(f), f[0], c.batch))
	}
	info.Notes = c.notes
	return c.net, info, nil
}

// decodeError says what onnx-go could not decode in a file that passed
// proxykit's own scan, and, where the graph is no ReLU network, that too.
func decodeError(err error, data []byte, outline *onnxOutline) error {
	var e error
	if what := undecodable(data); what != "" {
		e = fmt.Errorf("onnx-go, the ONNX decoder proxykit uses, cannot decode %s", what)
	} else {
		e = fmt.Errorf("onnx-go, the ONNX decoder proxykit uses, cannot decode the model: %s", strings.TrimPrefix(err.Error(), "<nil>: "))
	}
	if nr := outline.notReLU(); nr != nil {
		return fmt.Errorf("%w; besides, %w", e, nr)
	}
	return e
}

// decodeSafely runs onnx-go's decoder, turning a panic on malformed data
// into an error.
func decodeSafely(m *onnx.Model, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder failed: %v", r)
		}
	}()
	return m.UnmarshalBinary(data)
}

// aligned is raw, a part of data of at least minRawBytes, moved down to
// the 4-byte boundary at or below its start where it is not on one, so
// that floats.FromLE reads it in place instead of copying it into new
// memory (whose first touch costs more than the copy: on the full-width
// network's 78 MB file, most of the load). The move overwrites at most
// three bytes before raw: the start of its own field's header, a tag and
// a length of at least two bytes, which nothing reads again (onnx-go
// decodes a slimmed copy of the file; the outline keeps copies).
func aligned(data, raw []byte) []byte {
	if len(raw) < minRawBytes || len(data) == 0 {
		return raw
	}
	base, start := uintptr(unsafe.Pointer(&data[0])), uintptr(unsafe.Pointer(&raw[0]))
	off := int(start - base)
	if start < base || off+len(raw) > len(data) {
		return raw // not a part of data: read as it is
	}
	shift := int(start % 4)
	if shift == 0 || off < shift {
		return raw
	}
	moved := data[off-shift : off-shift+len(raw)]
	copy(moved, raw) // overlapping: copy moves as memmove does
	return moved
}

func (c *converter) loadInitializers(m *onnx.Model) error {
	for name := range c.outline.Initializers {
		if r, ok := c.outline.Raw[name]; ok {
			// the file's bytes are the values (no copy on little-endian
			// machines: the network shares data's memory)
			c.values[name] = &value{c: &constant{Shape: r.dims, F: floats.FromLE(aligned(c.data, r.raw))}}
			continue
		}
		n, ok := m.GetNodeByName(name)
		if !ok {
			return fmt.Errorf("initializer %q was not decoded", name)
		}
		gn, ok := n.(*gnode)
		if !ok {
			return fmt.Errorf("initializer %q was not decoded", name)
		}
		k, err := fromGorgonia(gn.t)
		if err != nil {
			return fmt.Errorf("initializer %q: %w", name, err)
		}
		c.values[name] = &value{c: k}
	}
	return nil
}

func (c *converter) setInput() (string, error) {
	var inputs []outlineValue
	for _, in := range c.outline.Inputs {
		if !c.outline.Initializers[in.Name] {
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 {
		return "", fmt.Errorf("the graph has %d inputs besides its initializers; proxykit needs exactly one (the image batch)", len(inputs))
	}
	in := inputs[0]
	if len(in.Dims) < 2 {
		return "", fmt.Errorf("graph input %q has %d dimensions; proxykit needs [batch, ...] with at least one feature dimension", in.Name, len(in.Dims))
	}
	shape := make([]int, len(in.Dims)-1)
	for i, d := range in.Dims[1:] {
		if !d.Known || d.Value <= 0 {
			return "", fmt.Errorf("graph input %q: dimension %d (%q) is symbolic; only the batch dimension may be", in.Name, i+1, d.Param)
		}
		shape[i] = int(d.Value)
	}
	if in.Dims[0].Known {
		c.batch = int(in.Dims[0].Value)
	}
	c.net = &nn.Network{Name: c.path, InputShape: shape}
	c.values[in.Name] = &value{shape: shape, gen: 0}
	return in.Name, nil
}

func (c *converter) finish() (string, error) {
	if len(c.outline.Outputs) != 1 {
		return "", fmt.Errorf("the graph has %d outputs; proxykit needs exactly one", len(c.outline.Outputs))
	}
	name := c.outline.Outputs[0]
	v, ok := c.values[name]
	if !ok || v.c != nil {
		return "", fmt.Errorf("graph output %q is not computed from the input", name)
	}
	if v.shuffle != nil {
		return "", fmt.Errorf("graph output %q is a Reshape or Transpose of an activation that proxykit reads only inside a channel shuffle", name)
	}
	if v.gen != c.gen {
		if dead := c.outline.deadNodes(); len(dead) > 0 {
			return "", fmt.Errorf("graph output %q is not the last layer's output: node %s computes a value that no node reads and the graph does not return (a dead node)", name, dead[0])
		}
		return "", fmt.Errorf("graph output %q is not the last layer's output", name)
	}
	if !nn.IsChain(c.inputs) {
		c.net.Inputs = c.inputs
	}
	out, err := c.net.OutputShape()
	if err != nil {
		return "", err
	}
	if len(out) == 0 {
		return "", fmt.Errorf("the network's output is a scalar per sample; proxykit needs at least one output per sample")
	}
	for i, l := range c.net.Layers {
		if nn.RoleOf(l).Head && i != len(c.net.Layers)-1 {
			return "", fmt.Errorf("layer %q: %s is only supported as the last node", nn.NameOf(l), nn.KindOf(l))
		}
	}
	return name, nil
}

// layerName derives a readable, unique layer name from an ONNX node name
// such as "/static_conv/static_conv.0/Conv".
func (c *converter) layerName(n outlineNode, kind string) string {
	base := ""
	parts := strings.FieldsFunc(n.Name, func(r rune) bool { return r == '/' })
	if len(parts) > 0 && strings.HasPrefix(parts[len(parts)-1], n.OpType) {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 0 {
		base = parts[len(parts)-1]
	} else if n.Name != "" && !strings.Contains(n.Name, "/") {
		base = n.Name
	}
	if base == "" {
		base = strings.ToLower(kind)
	}
	c.names[base]++
	if k := c.names[base]; k > 1 {
		return fmt.Sprintf("%s_%d", base, k)
	}
	return base
}

// input returns node input i, or nil when absent ("" or out of range).
func (c *converter) input(n outlineNode, i int) (*value, error) {
	if i >= len(n.Inputs) || n.Inputs[i] == "" {
		return nil, nil
	}
	v, ok := c.values[n.Inputs[i]]
	if !ok {
		return nil, fmt.Errorf("input %q is not produced by any earlier node, initializer or graph input", n.Inputs[i])
	}
	return v, nil
}

func (c *converter) constInput(n outlineNode, i int, what string) (*constant, error) {
	v, err := c.input(n, i)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, nil
	}
	if v.c == nil {
		return nil, fmt.Errorf("%s (input %d, %q) must be a constant, not computed from the network's input", what, i, n.Inputs[i])
	}
	return v.c, nil
}

// activations returns the node's dynamic inputs (computed from the
// network's input), in input order.
func (c *converter) activations(n outlineNode) ([]*value, error) {
	var acts []*value
	for i := range n.Inputs {
		v, err := c.input(n, i)
		if err != nil {
			return nil, err
		}
		if v != nil && v.shuffle != nil {
			return nil, fmt.Errorf("reads %q, a %s view of an activation: proxykit has not implemented such a view except inside a channel shuffle "+
				"(Reshape to [N, groups, C/groups, H, W], Transpose of axes 1 and 2, Reshape back)", n.Inputs[i], nn.ShapeString(v.shape))
		}
		if v != nil && v.c == nil {
			acts = append(acts, v)
		}
	}
	return acts, nil
}

// activation returns the node's one dynamic input (nil if none).
func (c *converter) activation(n outlineNode) (*value, error) {
	acts, err := c.activations(n)
	if err != nil || len(acts) == 0 {
		return nil, err
	}
	if len(acts) > 1 {
		return nil, fmt.Errorf("combines %d activations; of the operators that join branches proxykit imports Add and Concat (along channels)", len(acts))
	}
	return acts[0], nil
}

// addJoin appends a layer joining several activations (Add, Concat).
func (c *converter) addJoin(n outlineNode, acts []*value, l nn.Layer) error {
	ins := make([][]int, len(acts))
	nodes := make([]int, len(acts))
	for i, a := range acts {
		ins[i] = a.shape
		nodes[i] = a.gen - 1
	}
	out, err := l.OutputShape(ins)
	if err != nil {
		return err
	}
	c.net.Layers = append(c.net.Layers, l)
	c.inputs = append(c.inputs, nodes)
	c.lastLayer = l
	c.gen++
	c.setOutputs(n, &value{shape: out, gen: c.gen})
	return nil
}

func (c *converter) setOutputs(n outlineNode, v *value) {
	if len(n.Outputs) > 0 {
		c.values[n.Outputs[0]] = v
	}
}

// addLayer appends a layer consuming act and records its output.
func (c *converter) addLayer(n outlineNode, act *value, l nn.Layer) error {
	if len(n.Outputs) == 0 {
		return c.addLayerAs("", act, l)
	}
	return c.addLayerAs(n.Outputs[0], act, l)
}

// addLayerAs appends a layer consuming act whose output is the value out.
func (c *converter) addLayerAs(out string, act *value, l nn.Layer) error {
	shape, err := l.OutputShape([][]int{act.shape})
	if err != nil {
		return err
	}
	c.net.Layers = append(c.net.Layers, l)
	c.inputs = append(c.inputs, []int{act.gen - 1})
	c.lastLayer = l
	c.gen++
	if out != "" {
		c.values[out] = &value{shape: shape, gen: c.gen}
	}
	return nil
}

// passThrough makes the node's output the same value as its input.
func (c *converter) passThrough(n outlineNode, v *value) {
	c.setOutputs(n, v)
}

func attrInt(attrs map[string]any, name string, def int64) (int64, error) {
	v, ok := attrs[name]
	if !ok {
		return def, nil
	}
	i, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("attribute %s should be an integer, got %T", name, v)
	}
	return i, nil
}

func attrFloat(attrs map[string]any, name string, def float32) (float32, error) {
	v, ok := attrs[name]
	if !ok {
		return def, nil
	}
	f, ok := v.(float32)
	if !ok {
		return 0, fmt.Errorf("attribute %s should be a float, got %T", name, v)
	}
	return f, nil
}

func attrInts(attrs map[string]any, name string) ([]int64, bool, error) {
	v, ok := attrs[name]
	if !ok {
		return nil, false, nil
	}
	i, ok := v.([]int64)
	if !ok {
		return nil, false, fmt.Errorf("attribute %s should be a list of integers, got %T", name, v)
	}
	return i, true, nil
}

func attrString(attrs map[string]any, name, def string) (string, error) {
	v, ok := attrs[name]
	if !ok {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("attribute %s should be a string, got %T", name, v)
	}
	return s, nil
}
