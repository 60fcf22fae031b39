package nn

import "fmt"

// The interfaces through which a layer kind reads and writes the file
// formats. The importer and the exporter implement them; each kind's file
// uses them for its own part of each format.

// ONNXNode is an ONNX node being imported, as a kind's FromONNX sees it.
type ONNXNode interface {
	// Op is the node's operator and Name its name.
	Op() string
	Name() string
	// Opset is the model's default-domain opset.
	Opset() int
	// LayerName names the layer made from the node: after the node where
	// it has a usable name, else prefix and a number; unique in the model.
	LayerName(prefix string) string
	// Activations are the per-sample shapes of the node's inputs that are
	// computed from the network's input, in input order (at least one).
	Activations() [][]int
	// NumInputs is the number of inputs the node lists; IsActivation says
	// whether input i is an activation.
	NumInputs() int
	IsActivation(i int) bool
	// Const is input i, a constant; nil when the input is absent. It is an
	// error, naming the input as what, when input i is an activation.
	Const(i int, what string) (*ONNXConst, error)
	// Int, Ints, Float and String read attributes; a missing one is def
	// (Ints: ok false).
	Int(name string, def int64) (int64, error)
	Ints(name string) (v []int64, ok bool, err error)
	Float(name string, def float32) (float32, error)
	String(name, def string) (string, error)
	// HasOutput says whether the node's output i is named.
	HasOutput(i int) bool
	// Note tells the user something about the import.
	Note(s string)
}

// ONNXConst is a constant tensor of an ONNX graph: float (F) or integer (I).
type ONNXConst struct {
	Shape []int
	F     []float32
	I     []int64
}

// Numel is the number of values.
func (k *ONNXConst) Numel() int {
	if k.F != nil {
		return len(k.F)
	}
	return len(k.I)
}

// IsInt says whether the constant holds integers.
func (k *ONNXConst) IsInt() bool { return k.F == nil }

// Floats is the values as float32.
func (k *ONNXConst) Floats() []float32 {
	if !k.IsInt() {
		return k.F
	}
	out := make([]float32, len(k.I))
	for i, v := range k.I {
		out[i] = float32(v)
	}
	return out
}

// Ints is the values as int64 (floats truncated).
func (k *ONNXConst) Ints() []int64 {
	if k.IsInt() {
		return k.I
	}
	out := make([]int64, len(k.F))
	for i, v := range k.F {
		out[i] = int64(v)
	}
	return out
}

// transposed2D is a 2-D float constant's transpose.
func (k *ONNXConst) transposed2D() (*ONNXConst, error) {
	r, c := k.Shape[0], k.Shape[1]
	if r < 0 || c < 0 || len(k.F) != r*c {
		return nil, fmt.Errorf("a constant of shape %v holds %d values", k.Shape, len(k.F))
	}
	out := make([]float32, r*c)
	// in tiles of 32×32, so that both sides stay in the cache (a plain
	// double loop misses it on every write of a large matrix)
	const tile = 32
	for i0 := 0; i0 < r; i0 += tile {
		for j0 := 0; j0 < c; j0 += tile {
			for i := i0; i < min(i0+tile, r); i++ {
				row := k.F[i*c : (i+1)*c]
				for j := j0; j < min(j0+tile, c); j++ {
					out[j*r+i] = row[j]
				}
			}
		}
	}
	return &ONNXConst{Shape: []int{c, r}, F: out}, nil
}

// onnxWindow reads the kernel-window attributes shared by Conv and the
// pools: strides, pads [top, left, bottom, right] (auto_pad resolved for
// the per-sample input shape in) and dilations.
func onnxWindow(n ONNXNode, in []int, kh, kw int) (sh, sw, pt, pl, pb, pr, dh, dw int, err error) {
	sh, sw, dh, dw = 1, 1, 1, 1
	if s, ok, e := n.Ints("strides"); e != nil {
		err = e
		return
	} else if ok {
		if len(s) != 2 || s[0] < 1 || s[1] < 1 {
			err = fmt.Errorf("strides %v: proxykit needs two positive 2-D strides", s)
			return
		}
		sh, sw = int(s[0]), int(s[1])
	}
	if d, ok, e := n.Ints("dilations"); e != nil {
		err = e
		return
	} else if ok {
		if len(d) != 2 || d[0] < 1 || d[1] < 1 {
			err = fmt.Errorf("dilations %v: proxykit needs two positive 2-D dilations", d)
			return
		}
		dh, dw = int(d[0]), int(d[1])
	}
	autoPad, e := n.String("auto_pad", "NOTSET")
	if e != nil {
		err = e
		return
	}
	switch autoPad {
	case "NOTSET", "":
		if p, ok, e := n.Ints("pads"); e != nil {
			err = e
			return
		} else if ok {
			if len(p) != 4 {
				err = fmt.Errorf("pads %v: proxykit needs 4 values for a 2-D window", p)
				return
			}
			for _, v := range p {
				if v < 0 {
					err = fmt.Errorf("negative pads %v are not supported", p)
					return
				}
			}
			pt, pl, pb, pr = int(p[0]), int(p[1]), int(p[2]), int(p[3])
		}
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		same := func(size, k, s, d int) (int, int) {
			out := (size + s - 1) / s
			total := max((out-1)*s+(k-1)*d+1-size, 0)
			if autoPad == "SAME_UPPER" {
				return total / 2, total - total/2
			}
			return total - total/2, total / 2
		}
		pt, pb = same(in[1], kh, sh, dh)
		pl, pr = same(in[2], kw, sw, dw)
	default:
		err = fmt.Errorf("auto_pad %q is not supported", autoPad)
	}
	return
}

// TorchModule is a torch.nn module read from a pickled checkpoint, as a
// kind's FromTorch sees it. Errors it returns name the module.
type TorchModule interface {
	// Path is the module's path in the tree ("features.0"): the layer's name.
	Path() string
	// Class is the module's class name without its module path ("Conv2d").
	Class() string
	// Param is a parameter (weight, bias) under Path.name; nil when absent
	// and not required.
	Param(name string, required bool) (*Param, error)
	// Buffer is a buffer's values (running_mean).
	Buffer(name string) ([]float32, error)
	// IsSet says whether attribute name is present and not None.
	IsSet(name string) bool
	// Int, Float and String read an attribute; ok is false when it is
	// missing, None or of another type.
	Int(name string) (int, bool)
	Float(name string) (float64, bool)
	String(name string) (string, bool)
	// Ints reads a tuple of integers (a single integer gives one value).
	Ints(name string) ([]int, bool)
	// Pair reads an int-or-pair attribute (kernel_size), def when missing
	// or None.
	Pair(name string, def [2]int) ([2]int, error)
}

// ONNXGraph is an ONNX graph under construction, as a layer's ExportONNX
// writes into it.
type ONNXGraph interface {
	// Param adds a parameter as an initializer named after it (once,
	// however often it is used) and returns its name.
	Param(p *Param) string
	// Constant adds a float initializer (once) and returns its name.
	Constant(name string, shape []int, data []float32) string
	// IntConstant adds a 1-D int64 initializer (once) and returns its name.
	IntConstant(name string, data []int64) string
	// Node adds a node.
	Node(op, name string, ins, outs []string, attrs ...ONNXAttr)
}

// ONNXAttr is an attribute of an ONNX node; Value is an int64, []int64,
// float32 or string.
type ONNXAttr struct {
	Name  string
	Value any
}

// NIRGraph is a NIR graph under construction, as a layer's ExportNIR
// writes into it. A layer's nodes are chained in the order it adds them;
// the first reads the layer's inputs (NIR sums the edges into a node), and
// the layer's output is its last node's. A layer that adds no node passes
// the sum of its inputs on: the identity for one input, Add for several.
type NIRGraph interface {
	// Node adds a node of NIR type typ, named after base (made unique).
	Node(base, typ string) NIRNode
	// Neurons is the SNN's IF setting as NIR writes it: v_threshold (NIR
	// fires on v > v_threshold), v_reset, and notes for the IF nodes.
	Neurons() (vThreshold, vReset float32, notes map[string]string)
	// MaxPoolThreshold says to write max pooling over spikes as SumPool2d
	// followed by NIR's Threshold instead of an IF layer.
	MaxPoolThreshold() bool
	// AvgPoolAsConv says to write average pooling as a Conv2d (weights
	// 1/(kh·kw) from each channel to itself, zero elsewhere) instead of
	// NIR's AvgPool2d, which sinabs's loader does not map.
	AvgPoolAsConv() bool
}

// NIRAvgPoolConv writes average pooling of a [C, H, W] input over kh×kw
// windows as a NIR Conv2d: weight[c, c] = 1/(kh·kw), zero between
// channels, no bias; zero padding counts in the divisor, as in
// count_include_pad.
func NIRAvgPoolConv(g NIRGraph, name string, in []int, kh, kw, sh, sw, ph, pw int) {
	c := in[0]
	w := make([]float32, c*c*kh*kw)
	inv := float32(1 / float64(kh*kw))
	for ch := 0; ch < c; ch++ {
		tap := w[(ch*c+ch)*kh*kw : (ch*c+ch+1)*kh*kw]
		for i := range tap {
			tap[i] = inv
		}
	}
	n := g.Node(name, "Conv2d")
	n.Floats("weight", []int{c, c, kh, kw}, w)
	n.Floats("bias", []int{c}, make([]float32, c))
	n.Ints("stride", sh, sw)
	n.Ints("padding", ph, pw)
	n.Ints("dilation", 1, 1)
	n.Scalar("groups", 1)
	n.Ints("input_shape", in[1:]...)
	n.Meta("replaces", fmt.Sprintf("average pooling over %dx%d windows (stride %d,%d, padding %d,%d): a convolution with weights 1/%d from each channel to itself", kh, kw, sh, sw, ph, pw, kh*kw))
}

// NIRNode is a NIR node's fields.
type NIRNode interface {
	// Floats sets a float32 array field.
	Floats(field string, shape []int, data []float32)
	// Ints sets an int64 array field.
	Ints(field string, v ...int)
	// Scalar sets an int64 scalar field.
	Scalar(field string, v int64)
	// Meta sets a string note (kept in the node's metadata).
	Meta(key, value string)
}

// Full is shape filled with v, for NIR's per-neuron parameters.
func Full(shape []int, v float32) []float32 {
	d := make([]float32, Numel(shape))
	for i := range d {
		d[i] = v
	}
	return d
}

// i64s converts ints for ONNX attributes.
func i64s(v ...int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
