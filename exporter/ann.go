package exporter

import (
	"fmt"
	"sort"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
)

// Options control an ONNX export.
type Options struct {
	// Opset is the ONNX opset to declare (13 to 21).
	Opset int
	// Metadata goes into the model's metadata_props.
	Metadata map[string]string
	// ProducerVersion is proxykit's version.
	ProducerVersion string
	// FoldBN folds each BatchNorm into the convolution before it (ANN export).
	FoldBN bool
	// Potential gives the unrolled SNN a second output, "potential" [B, K]:
	// the output IF layer's membrane potentials after the last step, which
	// break ties between equal counts (results.MembraneMax; docs/design.md
	// §1 Metrics). SNN export only.
	Potential bool
}

// DefaultOpset is the opset written unless asked otherwise.
const DefaultOpset = 17

// Check refuses options the writers cannot honour — an opset other than 13
// to 21 (0 is DefaultOpset) — before any model is read.
func (o Options) Check() error {
	if o.Opset != 0 && (o.Opset < 13 || o.Opset > 21) {
		return fmt.Errorf("opset %d: proxykit writes opsets 13 to 21", o.Opset)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ANN encodes the network as an ONNX model with standard operators:
// BatchNormalization keeps the ANN's running statistics, initializers are
// named after the parameters ("conv.1.weight"), the batch is symbolic.
func ANN(net *nn.Network, opt Options) ([]byte, error) {
	if err := opt.Check(); err != nil {
		return nil, err
	}
	if opt.Opset == 0 {
		opt.Opset = DefaultOpset
	}
	shapes, err := net.Shapes()
	if err != nil {
		return nil, err
	}
	g := &graphBuilder{}
	layers, inputs := net.Layers, net.Inputs
	if opt.FoldBN {
		nodes, _, _, err := lower.Fold(lower.NodesOf(net))
		if err != nil {
			return nil, err
		}
		layers, inputs = nil, nil
		for _, nd := range nodes {
			layers, inputs = append(layers, nd.Layer), append(inputs, nd.Inputs)
		}
	}
	names := make([]string, len(layers)) // each layer's output value
	for i, l := range layers {
		names[i] = fmt.Sprintf("%s_output", nn.NameOf(l))
		if i == len(layers)-1 {
			names[i] = "output"
		}
	}
	for i, l := range layers {
		var ins []string
		for _, j := range nn.NodeInputs(inputs, i) {
			if j < 0 {
				ins = append(ins, "input")
			} else {
				ins = append(ins, names[j])
			}
		}
		if err := g.emit(l, ins, names[i], nn.NameOf(l)); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	if len(net.Layers) == 0 {
		return nil, fmt.Errorf("the network has no layers")
	}
	last := shapes[len(shapes)-1]
	meta := map[string]string{}
	for k, v := range opt.Metadata {
		meta[k] = v
	}
	return g.model("proxykit_ann", opt.Opset, valueInfo("input", net.InputShape), []*msg{valueInfo("output", last)}, meta,
		opt.ProducerVersion), nil
}

// WriteANN writes the ANN to path atomically.
func WriteANN(path string, net *nn.Network, opt Options) error {
	b, err := ANN(net, opt)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, b)
}

// emit writes one layer reading the values ins and writing out, its
// first node named name, in the layer kind's ONNX form
// (nn.ONNXWriter); its parameters become initializers named after
// them, added once however often the layer is emitted (the SNN's steps).
func (g *graphBuilder) emit(l nn.Layer, ins []string, out, name string) error {
	w, ok := l.(nn.ONNXWriter)
	if !ok {
		return fmt.Errorf("%s %q: ONNX has no form for it in proxykit", nn.KindOf(l), nn.NameOf(l))
	}
	if err := w.ExportONNX(g, name, ins, out); err != nil {
		return fmt.Errorf("%s %q: %w", nn.KindOf(l), nn.NameOf(l), err)
	}
	return nil
}

// Node implements nn.ONNXGraph.
func (g *graphBuilder) Node(op, name string, ins, outs []string, attrs ...nn.ONNXAttr) {
	as := make([]attr, len(attrs))
	for i, a := range attrs {
		switch v := a.Value.(type) {
		case int64:
			as[i] = aInt(a.Name, v)
		case []int64:
			as[i] = aInts(a.Name, v...)
		case float32:
			as[i] = aFloat(a.Name, v)
		case string:
			as[i] = aString(a.Name, v)
		default:
			panic(fmt.Sprintf("exporter: attribute %s of %s is a %T", a.Name, op, a.Value))
		}
	}
	g.node(op, name, ins, outs, as...)
}

// Param implements nn.ONNXGraph.
func (g *graphBuilder) Param(p *nn.Param) string { return g.Constant(p.Name, p.Shape, p.Data) }

// Constant implements nn.ONNXGraph.
func (g *graphBuilder) Constant(name string, shape []int, data []float32) string {
	if g.added == nil {
		g.added = map[string]bool{}
	}
	if !g.added[name] {
		g.added[name] = true
		g.init(floatTensor(name, shape, data))
	}
	return name
}

// IntConstant implements nn.ONNXGraph.
func (g *graphBuilder) IntConstant(name string, data []int64) string {
	if g.added == nil {
		g.added = map[string]bool{}
	}
	if !g.added[name] {
		g.added[name] = true
		g.init(int64Tensor(name, []int{len(data)}, data))
	}
	return name
}
