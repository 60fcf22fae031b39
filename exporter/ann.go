package exporter

import (
	"fmt"
	"sort"

	"github.com/proxykit/proxykit/internal/atomicfile"
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
}

// DefaultOpset is the opset written unless asked otherwise.
const DefaultOpset = 17

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
	if opt.Opset == 0 {
		opt.Opset = DefaultOpset
	}
	if opt.Opset < 13 || opt.Opset > 21 {
		return nil, fmt.Errorf("opset %d: proxykit writes opsets 13 to 21", opt.Opset)
	}
	shapes, err := net.Shapes()
	if err != nil {
		return nil, err
	}
	g := &graphBuilder{}
	layers := net.Layers
	if opt.FoldBN {
		if !net.IsChain() {
			return nil, fmt.Errorf("folding BatchNorm is implemented for chains of layers; export this branching network without it")
		}
		if layers, err = FoldBatchNorm(layers); err != nil {
			return nil, err
		}
	}
	names := make([]string, len(layers)) // each layer's output value
	for i, l := range layers {
		names[i] = fmt.Sprintf("%s_output", l.Name())
		if i == len(layers)-1 {
			names[i] = "output"
		}
	}
	var inputs [][]int
	if !opt.FoldBN {
		inputs = net.Inputs
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
		if err := g.emit(l, ins, names[i], l.Name()); err != nil {
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
	return g.model("proxykit_ann", opt.Opset, valueInfo("input", net.InputShape), valueInfo("output", last), meta,
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

// emit emits a layer reading the values ins: a join as ONNX's Add (Sum for
// more than two) or Concat along channels, any other layer by layer.
func (g *graphBuilder) emit(l nn.Layer, ins []string, out, name string) error {
	switch l.(type) {
	case *nn.Add:
		op := "Add"
		if len(ins) > 2 {
			op = "Sum"
		}
		g.node(op, name, ins, []string{out})
		return nil
	case *nn.Concat:
		g.node("Concat", name, ins, []string{out}, aInt("axis", 1))
		return nil
	}
	return g.layer(l, ins[0], out, name)
}

// layer emits the nodes of one layer reading value in and writing out; its
// parameters become initializers named after them, added once however
// often the layer is emitted (the SNN's time steps).
func (g *graphBuilder) layer(l nn.Layer, in, out, name string) error {
	switch l := l.(type) {
	case *nn.Conv2d:
		ins := []string{in, g.param(l.Weight)}
		if l.Bias != nil {
			ins = append(ins, g.param(l.Bias))
		}
		g.node("Conv", name, ins, []string{out}, aInts("kernel_shape", ints(l.Weight.Shape[2], l.Weight.Shape[3])...),
			aInts("strides", ints(l.SH, l.SW)...), aInts("pads", ints(l.PT, l.PL, l.PB, l.PR)...),
			aInts("dilations", ints(l.DH, l.DW)...), aInt("group", int64(max(l.Groups, 1))))
	case *nn.BatchNorm2d:
		c := len(l.Gamma.Data)
		mean := g.constant(l.LayerName+".running_mean", []int{c}, l.RunningMean)
		variance := g.constant(l.LayerName+".running_var", []int{c}, l.RunningVar)
		g.node("BatchNormalization", name, []string{in, g.param(l.Gamma), g.param(l.Beta), mean, variance}, []string{out},
			aFloat("epsilon", l.Eps), aFloat("momentum", 1-l.Momentum))
	case *nn.Linear:
		ins := []string{in, g.param(l.Weight)}
		if l.Bias != nil {
			ins = append(ins, g.param(l.Bias))
		}
		g.node("Gemm", name, ins, []string{out}, aInt("transB", 1))
	case *nn.ReLU:
		g.node("Relu", name, []string{in}, []string{out})
	case *nn.Pool2d:
		attrs := []attr{aInts("kernel_shape", ints(l.KH, l.KW)...), aInts("strides", ints(l.SH, l.SW)...),
			aInts("pads", ints(l.PT, l.PL, l.PB, l.PR)...), aInt("ceil_mode", b2i(l.Ceil))}
		op := "MaxPool"
		if !l.Max {
			op = "AveragePool"
			attrs = append(attrs, aInt("count_include_pad", b2i(l.CountPad)))
		}
		g.node(op, name, []string{in}, []string{out}, attrs...)
	case *nn.GlobalAvgPool:
		g.node("GlobalAveragePool", name, []string{in}, []string{out})
	case *nn.Flatten:
		g.node("Flatten", name, []string{in}, []string{out}, aInt("axis", 1))
	case *nn.Pad2d:
		pads := g.intConstant(l.LayerName+".pads", ints(0, 0, l.PT, l.PL, 0, 0, l.PB, l.PR))
		value := g.constant(l.LayerName+".value", nil, []float32{l.Value})
		g.node("Pad", name, []string{in, pads, value}, []string{out}, aString("mode", "constant"))
	case *nn.Softmax:
		g.node(l.Kind(), name, []string{in}, []string{out}, aInt("axis", 1))
	default:
		return fmt.Errorf("%s %q has no ONNX form", l.Kind(), l.Name())
	}
	return nil
}

// param adds a parameter as an initializer (once) and returns its name.
func (g *graphBuilder) param(p *nn.Param) string { return g.constant(p.Name, p.Shape, p.Data) }

// constant adds a float initializer (once) and returns its name.
func (g *graphBuilder) constant(name string, shape []int, data []float32) string {
	if g.added == nil {
		g.added = map[string]bool{}
	}
	if !g.added[name] {
		g.added[name] = true
		g.init(floatTensor(name, shape, data))
	}
	return name
}

// intConstant adds a 1-D int64 initializer (once) and returns its name.
func (g *graphBuilder) intConstant(name string, data []int64) string {
	if g.added == nil {
		g.added = map[string]bool{}
	}
	if !g.added[name] {
		g.added[name] = true
		g.init(int64Tensor(name, []int{len(data)}, data))
	}
	return name
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
