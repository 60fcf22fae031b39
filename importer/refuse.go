package importer

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/proxykit/proxykit/nn"
)

// Why a model is refused. A refusal names the node (or module) and says
// which of two things is the case: the operator is one an IF network
// cannot represent — an IF neuron's rate is a rectified, at most clipped,
// function of its input current, so only ReLU networks (ReLU, ReLU6 and
// Clip(0, c), max and average pooling, joins) have IF twins: "not a ReLU
// network" — or proxykit has not implemented it yet.

// notReLUPrefix starts every refusal of the first kind.
const notReLUPrefix = "not a ReLU network"

// nonReLU names, for each ONNX operator and torch.nn class that no IF
// layer can represent, what it computes.
var nonReLU = map[string]string{
	"Sigmoid":            "a sigmoid",
	"HardSigmoid":        "a hard sigmoid",
	"Hardsigmoid":        "a hard sigmoid",
	"HardSwish":          "Hardswish (x·hardsigmoid(x))",
	"Hardswish":          "Hardswish (x·hardsigmoid(x))",
	"SiLU":               "SiLU (x·sigmoid(x), swish)",
	"Gelu":               "GELU",
	"GELU":               "GELU",
	"Erf":                "GELU (its erf form, as torch.onnx writes it)",
	"Tanh":               "a tanh (or GELU's tanh form)",
	"Softplus":           "a softplus",
	"Softsign":           "a softsign",
	"Mish":               "Mish",
	"Elu":                "an ELU, negative below 0",
	"ELU":                "an ELU, negative below 0",
	"Selu":               "a SELU, negative below 0",
	"SELU":               "a SELU, negative below 0",
	"Celu":               "a CELU, negative below 0",
	"CELU":               "a CELU, negative below 0",
	"LeakyRelu":          "a leaky ReLU, negative below 0",
	"LeakyReLU":          "a leaky ReLU, negative below 0",
	"PRelu":              "a parametric ReLU, negative below 0",
	"PReLU":              "a parametric ReLU, negative below 0",
	"LayerNormalization": "LayerNorm, a normalisation by each sample's own statistics",
	"LayerNorm":          "LayerNorm, a normalisation by each sample's own statistics",
	"GroupNorm":          "GroupNorm, a normalisation by each sample's own statistics",
	"MultiheadAttention": "attention",
}

// notReLUError is the refusal of a node or module whose operator no IF
// layer can represent.
func notReLUError(what string) error {
	return fmt.Errorf("%s: %s has no integrate-and-fire form (an IF neuron's rate is a rectified, at most clipped, function of its input: "+
		"proxykit converts networks of ReLU, ReLU6/Clip(0, c), pooling, Add and Concat)", notReLUPrefix, what)
}

// notImplemented is the refusal of an operator an IF network could
// represent but proxykit does not read yet.
func notImplemented(op string) error {
	return fmt.Errorf("proxykit has not implemented operator %s (it imports %s, and Reshape, Transpose, Split, ReduceMean, Dropout, Identity "+
		"where the network stays a ReLU network: flattening, a channel shuffle, a split along channels, a spatial mean; it folds constant shape arithmetic)",
		op, strings.Join(nn.ONNXOps(), ", "))
}

// notReLU looks through the graph, in node order, for operators an IF
// network cannot represent — by operator (Sigmoid, HardSigmoid, Erf…)
// and by what a node does with the network's activations: a product or
// quotient of two of them (gating, attention, normalisation), a power or
// square root of one (normalisation), a softmax inside the network
// (attention). It returns nil for a graph without any, else the refusal
// of the first, listing the others' kinds.
func (o *onnxOutline) notReLU() error {
	dynamic := map[string]bool{}
	for _, in := range o.Inputs {
		if !o.Initializers[in.Name] {
			dynamic[in.Name] = true
		}
	}
	readers := map[string][]int{}
	for i, n := range o.Nodes {
		for _, in := range n.Inputs {
			readers[in] = append(readers[in], i)
		}
	}
	isOutput := func(v string) bool {
		for { // through the nodes that pass a value on
			if slices.Contains(o.Outputs, v) {
				return true
			}
			r := readers[v]
			if len(r) != 1 || !slices.Contains([]string{"Identity", "Dropout"}, o.Nodes[r[0]].OpType) || len(o.Nodes[r[0]].Outputs) == 0 {
				return false
			}
			v = o.Nodes[r[0]].Outputs[0]
		}
	}
	// explained values are those of a construct already found and the
	// elementwise steps after it (GELU's Erf, Add and Mul; SiLU's Mul):
	// a node combining one with another activation is part of it
	explained := map[string]bool{}
	elementwise := []string{"Add", "Sub", "Mul", "Div", "Neg", "Sqrt", "Pow", "Reciprocal", "ReduceMean", "Erf", "Tanh", "Cast",
		"Identity", "Unsqueeze", "Squeeze"}
	var first error
	var others []string
	for i, n := range o.Nodes {
		var dyn []string
		part := false
		for _, in := range n.Inputs {
			if dynamic[in] {
				dyn = append(dyn, in)
				part = part || explained[in]
			}
		}
		if len(dyn) > 0 && n.OpType != "Shape" && n.OpType != "Size" {
			for _, out := range n.Outputs {
				dynamic[out] = true
			}
		}
		if len(dyn) == 0 || n.Domain != "" && n.Domain != "ai.onnx" {
			continue
		}
		if part {
			if len(dyn) == 1 && slices.Contains(elementwise, n.OpType) {
				for _, out := range n.Outputs {
					explained[out] = true
				}
			}
			continue
		}
		why := nonReLU[n.OpType]
		switch n.OpType {
		case "Sigmoid", "HardSigmoid":
			why = o.gate(n, readers, dynamic)
		case "Softmax", "LogSoftmax":
			if len(n.Outputs) > 0 && !isOutput(n.Outputs[0]) {
				why = "attention: a softmax over activations inside the network"
			}
		case "MatMul", "Einsum":
			if len(dyn) > 1 {
				why = "attention: a product of two activations"
			}
		case "Mul":
			if len(dyn) > 1 {
				why = "multiplicative gating: a product of two activations"
			}
		case "Div":
			switch {
			case len(n.Inputs) < 2 || !dynamic[n.Inputs[1]]:
			case !dynamic[n.Inputs[0]]:
				why = "a constant divided by activations (k/x)"
			default:
				why = "a normalisation by the activations' own statistics (LayerNorm as torch.onnx writes it: ReduceMean, Sub, Pow, Sqrt, Div)"
			}
		case "Reciprocal":
			why = "the reciprocal of activations (1/x)"
		case "Pow", "Sqrt":
			why = "a normalisation by the activations' own statistics (LayerNorm as torch.onnx writes it: ReduceMean, Sub, Pow, Sqrt, Div)"
		}
		if why == "" {
			continue
		}
		for _, out := range n.Outputs {
			explained[out] = true
		}
		if first == nil {
			first = fmt.Errorf("node %s: %w", o.nodeName(i), notReLUError(why))
			continue
		}
		if kind, _, _ := strings.Cut(why, ":"); !slices.Contains(others, kind) && !strings.Contains(first.Error(), kind) {
			others = append(others, kind)
		}
	}
	if first != nil && len(others) > 0 {
		return fmt.Errorf("%w; the graph also holds %s", first, strings.Join(others, "; "))
	}
	return first
}

// gate says what a Sigmoid or HardSigmoid node computes with its readers:
// x·σ(x) (SiLU, Hardswish) where a Mul reads it and its own input, a gate
// (squeeze-and-excitation) where a Mul reads it and another activation.
func (o *onnxOutline) gate(n outlineNode, readers map[string][]int, dynamic map[string]bool) string {
	swish, gate := nonReLU["SiLU"], "a sigmoid gate multiplying activations (squeeze-and-excitation)"
	if n.OpType == "HardSigmoid" {
		swish, gate = nonReLU["HardSwish"], "a hard-sigmoid gate multiplying activations (squeeze-and-excitation)"
	}
	if len(n.Outputs) == 0 || len(n.Inputs) == 0 {
		return nonReLU[n.OpType]
	}
	for _, r := range readers[n.Outputs[0]] {
		m := o.Nodes[r]
		if m.OpType != "Mul" {
			continue
		}
		if slices.Contains(m.Inputs, n.Inputs[0]) {
			return swish
		}
		for _, in := range m.Inputs {
			if in != n.Outputs[0] && dynamic[in] {
				return gate
			}
		}
	}
	return nonReLU[n.OpType]
}

// ONNX tensor data types (onnx.proto's TensorProto.DataType) and their
// sizes in raw_data.
var onnxTypes = map[uint64]struct {
	name string
	size int
}{1: {"FLOAT", 4}, 2: {"UINT8", 1}, 3: {"INT8", 1}, 4: {"UINT16", 2}, 5: {"INT16", 2}, 6: {"INT32", 4}, 7: {"INT64", 8},
	8: {"STRING", 0}, 9: {"BOOL", 1}, 10: {"FLOAT16", 2}, 11: {"DOUBLE", 8}, 12: {"UINT32", 4}, 13: {"UINT64", 8},
	16: {"BFLOAT16", 2}}

// More field numbers of onnx.proto.
const (
	nodeAttribute   = 5
	attributeName   = 1
	attributeTensor = 5
	tensorSegment   = 3
)

// undecodable names a tensor of the model that onnx-go (v0.5) cannot
// decode and why, or returns "" when it finds none. onnx-go decodes
// FLOAT, DOUBLE, INT32, INT64 and BOOL tensors, reads 8 bytes per
// boolean in raw_data (ONNX stores one), and no segmented tensor.
func undecodable(data []byte) string {
	top, err := fields(data)
	if err != nil {
		return ""
	}
	var graph []byte
	for _, f := range top {
		if f.num == modelGraph && f.isLen {
			graph = f.bytes
		}
	}
	gf, err := fields(graph)
	if err != nil {
		return ""
	}
	for _, f := range gf {
		if !f.isLen {
			continue
		}
		switch f.num {
		case graphInitializer:
			if why, name := tensorProblem(f.bytes); why != "" {
				return fmt.Sprintf("initializer %q: %s", name, why)
			}
		case graphNode:
			nf, err := fields(f.bytes)
			if err != nil {
				continue
			}
			n, _ := scanNode(f.bytes)
			for _, a := range nf {
				if a.num != nodeAttribute || !a.isLen {
					continue
				}
				af, err := fields(a.bytes)
				if err != nil {
					continue
				}
				attr := ""
				for _, x := range af {
					if x.num == attributeName && x.isLen {
						attr = string(x.bytes)
					}
				}
				for _, x := range af {
					if x.num == attributeTensor && x.isLen {
						if why, _ := tensorProblem(x.bytes); why != "" {
							return fmt.Sprintf("node %s (%s), attribute %s: %s", n.Name, n.OpType, attr, why)
						}
					}
				}
			}
		}
	}
	return ""
}

// tensorProblem says why onnx-go cannot decode a TensorProto, and its name.
func tensorProblem(b []byte) (why, name string) {
	tf, err := fields(b)
	if err != nil {
		return "", ""
	}
	var typ uint64
	raw, hasRaw, dims := 0, false, []int64{}
	for _, t := range tf {
		switch {
		case t.num == tensorName && t.isLen:
			name = string(t.bytes)
		case t.num == tensorDataType && !t.isLen:
			typ = t.varint
		case t.num == tensorRawData && t.isLen:
			raw, hasRaw = len(t.bytes), true
		case t.num == tensorSegment:
			why = "a segmented tensor, which onnx-go does not decode"
		case t.num == tensorDims && !t.isLen:
			dims = append(dims, int64(t.varint))
		case t.num == tensorDims && t.isLen:
			for p := t.bytes; len(p) > 0; {
				d, n := protowire.ConsumeVarint(p)
				if n < 0 {
					break
				}
				dims, p = append(dims, int64(d)), p[n:]
			}
		}
	}
	if why != "" {
		return why, name
	}
	t, known := onnxTypes[typ]
	switch {
	case !known:
		return fmt.Sprintf("a tensor of ONNX data type %d, which onnx-go does not decode", typ), name
	case !slices.Contains([]uint64{1, 6, 7, 9, 11}, typ):
		return fmt.Sprintf("a %s %s; onnx-go decodes only FLOAT, DOUBLE, INT32, INT64 and BOOL tensors", t.name, tensorShape(dims)), name
	case typ == 9 && hasRaw && raw%8 != 0:
		return fmt.Sprintf("a BOOL %s stored in %d byte(s): onnx-go reads 8 bytes per boolean where ONNX stores 1", tensorShape(dims), raw), name
	case hasRaw && raw%t.size != 0:
		return fmt.Sprintf("a %s %s whose %d bytes of raw data are not a whole number of values", t.name, tensorShape(dims), raw), name
	}
	return "", name
}

// tensorShape describes a tensor's dims for messages.
func tensorShape(dims []int64) string {
	if len(dims) == 0 {
		return "scalar"
	}
	return fmt.Sprintf("tensor %v", dims)
}
