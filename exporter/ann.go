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
	cur := "input"
	for i, l := range net.Layers {
		out := fmt.Sprintf("%s_output", l.Name())
		if i == len(net.Layers)-1 {
			out = "output"
		}
		name := l.Name()
		switch l := l.(type) {
		case *nn.Conv2d:
			ins := []string{cur, l.Weight.Name}
			g.init(floatTensor(l.Weight.Name, l.Weight.Shape, l.Weight.Data))
			if l.Bias != nil {
				ins = append(ins, l.Bias.Name)
				g.init(floatTensor(l.Bias.Name, l.Bias.Shape, l.Bias.Data))
			}
			g.node("Conv", name, ins, []string{out}, aInts("kernel_shape", ints(l.Weight.Shape[2], l.Weight.Shape[3])...),
				aInts("strides", ints(l.SH, l.SW)...), aInts("pads", ints(l.PT, l.PL, l.PB, l.PR)...),
				aInts("dilations", ints(l.DH, l.DW)...), aInt("group", 1))
		case *nn.BatchNorm2d:
			c := len(l.Gamma.Data)
			mean, variance := l.LayerName+".running_mean", l.LayerName+".running_var"
			g.init(floatTensor(l.Gamma.Name, []int{c}, l.Gamma.Data))
			g.init(floatTensor(l.Beta.Name, []int{c}, l.Beta.Data))
			g.init(floatTensor(mean, []int{c}, l.RunningMean))
			g.init(floatTensor(variance, []int{c}, l.RunningVar))
			g.node("BatchNormalization", name, []string{cur, l.Gamma.Name, l.Beta.Name, mean, variance}, []string{out},
				aFloat("epsilon", l.Eps), aFloat("momentum", 1-l.Momentum))
		case *nn.Linear:
			ins := []string{cur, l.Weight.Name}
			g.init(floatTensor(l.Weight.Name, l.Weight.Shape, l.Weight.Data))
			if l.Bias != nil {
				ins = append(ins, l.Bias.Name)
				g.init(floatTensor(l.Bias.Name, l.Bias.Shape, l.Bias.Data))
			}
			g.node("Gemm", name, ins, []string{out}, aInt("transB", 1))
		case *nn.ReLU:
			g.node("Relu", name, []string{cur}, []string{out})
		case *nn.Pool2d:
			attrs := []attr{aInts("kernel_shape", ints(l.KH, l.KW)...), aInts("strides", ints(l.SH, l.SW)...),
				aInts("pads", ints(l.PT, l.PL, l.PB, l.PR)...), aInt("ceil_mode", b2i(l.Ceil))}
			op := "MaxPool"
			if !l.Max {
				op = "AveragePool"
				attrs = append(attrs, aInt("count_include_pad", b2i(l.CountPad)))
			}
			g.node(op, name, []string{cur}, []string{out}, attrs...)
		case *nn.GlobalAvgPool:
			g.node("GlobalAveragePool", name, []string{cur}, []string{out})
		case *nn.Flatten:
			g.node("Flatten", name, []string{cur}, []string{out}, aInt("axis", 1))
		case *nn.Pad2d:
			pads, value := name+".pads", name+".value"
			g.init(int64Tensor(pads, []int{8}, ints(0, 0, l.PT, l.PL, 0, 0, l.PB, l.PR)))
			g.init(floatTensor(value, nil, []float32{l.Value}))
			g.node("Pad", name, []string{cur, pads, value}, []string{out}, aString("mode", "constant"))
		case *nn.Softmax:
			g.node(l.Kind(), name, []string{cur}, []string{out}, aInt("axis", 1))
		default:
			return nil, fmt.Errorf("layer %d (%s %q): no ONNX form", i, l.Kind(), l.Name())
		}
		cur = out
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

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
