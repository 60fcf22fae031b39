package importer

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// onnxOutline is the structure of an ONNX model that onnx-go's Backend
// interface does not pass on: opsets, node names and ordered inputs, graph
// inputs with symbolic dimensions, and which values are initializers. It is
// read by a small protobuf walk over the same bytes onnx-go decodes.
type onnxOutline struct {
	IRVersion       int64
	Producer        string
	ProducerVersion string
	Opset           int64 // version of the default ("" or "ai.onnx") domain
	Nodes           []outlineNode
	Initializers    map[string]bool
	Inputs          []outlineValue // graph inputs, initializers included
	Outputs         []string
	// Empty names the values declared with a zero-size dimension
	// (initializers, graph inputs and outputs, value infos).
	Empty map[string]bool
	// Metadata is the model's metadata_props.
	Metadata map[string]string
	// Raw holds the float initializers large enough to read directly
	// from the file's bytes (rawTensor), by name.
	Raw map[string]rawTensor
}

// rawTensor is a float32 initializer stored as raw_data: its shape and its
// bytes in the model file. proxykit reads it from those bytes without
// copying (internal/floats), instead of through onnx-go, whose decoding
// copies the data three times; onnx-go gets a placeholder (slimONNX).
type rawTensor struct {
	dims []int
	raw  []byte
}

// minRawBytes is the smallest initializer read from the file's bytes:
// smaller ones go through onnx-go, where the copies cost nothing.
const minRawBytes = 4096

type outlineNode struct {
	Name, OpType, Domain string
	Inputs, Outputs      []string
}

type outlineValue struct {
	Name string
	Dims []outlineDim
}

type outlineDim struct {
	Value int64
	Param string // symbolic name, when Value is unknown
	Known bool
}

// ONNX protobuf field numbers (onnx.proto).
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelGraph           = 7
	modelOpsetImport     = 8
	modelMetadataProps   = 14
	entryKey             = 1
	entryValue           = 2
	opsetDomain          = 1
	opsetVersion         = 2
	graphNode            = 1
	graphInitializer     = 5
	graphInput           = 11
	graphOutput          = 12
	graphValueInfo       = 13
	nodeInput            = 1
	nodeOutput           = 2
	nodeName             = 3
	nodeOpType           = 4
	nodeDomain           = 7
	tensorDims           = 1
	tensorDataType       = 2
	tensorName           = 8
	tensorRawData        = 9
	tensorFloat          = 1 // TensorProto.DataType FLOAT
	valueName            = 1
	valueType            = 2
	typeTensor           = 1
	tensorTypeShape      = 2
	shapeDim             = 1
	dimValue             = 1
	dimParam             = 2
)

// maxDeclaredElems bounds the element count of a declared graph value.
const maxDeclaredElems = 1 << 24

// field is one decoded protobuf field: a varint or a length-delimited payload.
type field struct {
	num    protowire.Number
	varint uint64
	bytes  []byte
	isLen  bool
}

// fields splits a protobuf message into its fields.
func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num}
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			f.varint = v
			b = b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			f.bytes, f.isLen = v, true
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
		}
		out = append(out, f)
	}
	return out, nil
}

func scanONNX(data []byte) (*onnxOutline, error) {
	top, err := fields(data)
	if err != nil {
		return nil, fmt.Errorf("not a valid ONNX file: %w", err)
	}
	o := &onnxOutline{Initializers: map[string]bool{}, Opset: -1, Empty: map[string]bool{}, Raw: map[string]rawTensor{},
		Metadata: map[string]string{}}
	var graph []byte
	sawGraph := false
	for _, f := range top {
		switch {
		case f.num == modelIRVersion && !f.isLen:
			o.IRVersion = int64(f.varint)
		case f.num == modelProducerName && f.isLen:
			o.Producer = string(f.bytes)
		case f.num == modelProducerVersion && f.isLen:
			o.ProducerVersion = string(f.bytes)
		case f.num == modelGraph && f.isLen:
			graph, sawGraph = f.bytes, true
		case f.num == modelMetadataProps && f.isLen:
			fs, err := fields(f.bytes)
			if err != nil {
				return nil, fmt.Errorf("not a valid ONNX file: metadata_props: %w", err)
			}
			var k, v string
			for _, g := range fs {
				if g.num == entryKey && g.isLen {
					k = string(g.bytes)
				}
				if g.num == entryValue && g.isLen {
					v = string(g.bytes)
				}
			}
			o.Metadata[k] = v
		case f.num == modelOpsetImport && f.isLen:
			fs, err := fields(f.bytes)
			if err != nil {
				return nil, fmt.Errorf("not a valid ONNX file: opset_import: %w", err)
			}
			domain, version := "", int64(0)
			for _, g := range fs {
				if g.num == opsetDomain && g.isLen {
					domain = string(g.bytes)
				}
				if g.num == opsetVersion && !g.isLen {
					version = int64(g.varint)
				}
			}
			if domain == "" || domain == "ai.onnx" {
				o.Opset = version
			}
		}
	}
	if !sawGraph {
		return nil, errors.New("not an ONNX model: it has no graph")
	}
	gf, err := fields(graph)
	if err != nil {
		return nil, fmt.Errorf("not a valid ONNX file: graph: %w", err)
	}
	var declared []outlineValue
	for _, f := range gf {
		if !f.isLen {
			continue
		}
		switch f.num {
		case graphNode:
			n, err := scanNode(f.bytes)
			if err != nil {
				return nil, err
			}
			o.Nodes = append(o.Nodes, n)
		case graphInitializer:
			tf, err := fields(f.bytes)
			if err != nil {
				return nil, fmt.Errorf("not a valid ONNX file: initializer: %w", err)
			}
			name, empty := "", false
			var dims []uint64
			var raw []byte
			dataType, plain := uint64(0), true // plain: only name, dims, type and raw_data
			for _, t := range tf {
				switch {
				case t.num == tensorDims && !t.isLen:
					empty = empty || t.varint == 0
					dims = append(dims, t.varint)
				case t.num == tensorDims && t.isLen: // packed dims
					for b := t.bytes; len(b) > 0; {
						d, n := protowire.ConsumeVarint(b)
						if n < 0 {
							return nil, errors.New("not a valid ONNX file: initializer dims")
						}
						empty = empty || d == 0
						dims = append(dims, d)
						b = b[n:]
					}
				case t.num == tensorName && t.isLen:
					name = string(t.bytes)
					o.Initializers[name] = true
				case t.num == tensorDataType && !t.isLen:
					dataType = t.varint
				case t.num == tensorRawData && t.isLen:
					raw = t.bytes
				default:
					plain = false
				}
			}
			if empty {
				o.Empty[name] = true
			}
			if plain && dataType == tensorFloat && len(raw) >= minRawBytes && name != "" {
				if err := o.addRaw(name, dims, raw); err != nil {
					return nil, err
				}
			}
		case graphInput:
			v, err := scanValue(f.bytes)
			if err != nil {
				return nil, err
			}
			o.Inputs = append(o.Inputs, v)
			o.noteEmpty(v)
			declared = append(declared, v)
		case graphOutput:
			v, err := scanValue(f.bytes)
			if err != nil {
				return nil, err
			}
			o.Outputs = append(o.Outputs, v.Name)
			o.noteEmpty(v)
			declared = append(declared, v)
		case graphValueInfo:
			v, err := scanValue(f.bytes)
			if err != nil {
				return nil, err
			}
			o.noteEmpty(v)
			declared = append(declared, v)
		}
	}
	// initializers may come after the inputs that name them: check at the end
	for _, v := range declared {
		if err := o.checkDeclared(v, len(data)); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *onnxOutline) noteEmpty(v outlineValue) {
	for _, d := range v.Dims {
		if d.Known && d.Value == 0 {
			o.Empty[v.Name] = true
		}
	}
}

// checkEmpty refuses empty tensors (a zero-size dimension), naming the
// first node that reads or writes one: proxykit's layers have no empty
// form, and onnx-go's decoder fails on them.
func (o *onnxOutline) checkEmpty() error {
	if len(o.Empty) == 0 {
		return nil
	}
	for i, n := range o.Nodes {
		for _, list := range [][]string{n.Inputs, n.Outputs} {
			for _, v := range list {
				if o.Empty[v] {
					name := n.Name
					if name == "" {
						name = fmt.Sprintf("#%d", i)
					}
					return fmt.Errorf("node %s (%s): value %q is an empty tensor (a zero-size dimension); proxykit does not support empty tensors", name, n.OpType, v)
				}
			}
		}
	}
	for v := range o.Empty {
		return fmt.Errorf("value %q is an empty tensor (a zero-size dimension); proxykit does not support empty tensors", v)
	}
	return nil
}

func scanNode(b []byte) (outlineNode, error) {
	var n outlineNode
	fs, err := fields(b)
	if err != nil {
		return n, fmt.Errorf("not a valid ONNX file: node: %w", err)
	}
	for _, f := range fs {
		if !f.isLen {
			continue
		}
		switch f.num {
		case nodeInput:
			n.Inputs = append(n.Inputs, string(f.bytes))
		case nodeOutput:
			n.Outputs = append(n.Outputs, string(f.bytes))
		case nodeName:
			n.Name = string(f.bytes)
		case nodeOpType:
			n.OpType = string(f.bytes)
		case nodeDomain:
			n.Domain = string(f.bytes)
		}
	}
	return n, nil
}

func scanValue(b []byte) (outlineValue, error) {
	var v outlineValue
	bad := func(err error) (outlineValue, error) {
		return v, fmt.Errorf("not a valid ONNX file: graph input or output: %w", err)
	}
	fs, err := fields(b)
	if err != nil {
		return bad(err)
	}
	for _, f := range fs {
		if f.num == valueName && f.isLen {
			v.Name = string(f.bytes)
		}
		if f.num != valueType || !f.isLen {
			continue
		}
		tf, err := fields(f.bytes)
		if err != nil {
			return bad(err)
		}
		for _, t := range tf {
			if t.num != typeTensor || !t.isLen {
				continue
			}
			sf, err := fields(t.bytes)
			if err != nil {
				return bad(err)
			}
			for _, s := range sf {
				if s.num != tensorTypeShape || !s.isLen {
					continue
				}
				df, err := fields(s.bytes)
				if err != nil {
					return bad(err)
				}
				for _, d := range df {
					if d.num != shapeDim || !d.isLen {
						continue
					}
					xf, err := fields(d.bytes)
					if err != nil {
						return bad(err)
					}
					var dim outlineDim
					for _, x := range xf {
						if x.num == dimValue && !x.isLen {
							dim.Value, dim.Known = int64(x.varint), true
						}
						if x.num == dimParam && x.isLen {
							dim.Param = string(x.bytes)
						}
					}
					v.Dims = append(v.Dims, dim)
				}
			}
		}
	}
	return v, nil
}

// checkDeclared refuses absurd declared shapes before onnx-go, which
// allocates every declared value, reads them: an activation may hold at
// most 2^24 elements (a batch of one real image's feature maps is far
// below); a value the file holds as an initializer (older exporters list
// weights among the graph inputs) may declare as many as the file has
// bytes for, so VGG's 4096×25088 layer passes and a small file claiming
// gigabytes does not.
func (o *onnxOutline) checkDeclared(v outlineValue, fileBytes int) error {
	limit := int64(maxDeclaredElems)
	if o.Initializers[v.Name] {
		limit = max(limit, int64(fileBytes/4))
	}
	elems := int64(1)
	for _, d := range v.Dims {
		if d.Known {
			if d.Value < 0 || d.Value > limit || elems*max(d.Value, 1) > limit {
				return fmt.Errorf("value %q declares a shape too large to be real", v.Name)
			}
			elems *= max(d.Value, 1)
		}
	}
	return nil
}

// checkWiring refuses graphs whose wiring no exporter writes, naming the
// node, before the graph is built: a node reading its own output, a value
// written by two nodes (or by a node and the graph's inputs).
func (o *onnxOutline) checkWiring() error {
	producer := map[string]int{}
	for _, v := range o.Inputs {
		producer[v.Name] = -1
	}
	for name := range o.Initializers {
		producer[name] = -1
	}
	for i, n := range o.Nodes {
		for _, out := range n.Outputs {
			if out == "" {
				continue // an optional output left out
			}
			if slices.Contains(n.Inputs, out) {
				return fmt.Errorf("node %s reads its own output %q", o.nodeName(i), out)
			}
			if j, ok := producer[out]; ok {
				if j < 0 {
					return fmt.Errorf("node %s writes %q, which is also an input or initializer of the graph", o.nodeName(i), out)
				}
				return fmt.Errorf("value %q is written by two nodes, %s and %s", out, o.nodeName(j), o.nodeName(i))
			}
			producer[out] = i
		}
	}
	return nil
}

// deadNodes names the nodes whose outputs no node reads and the graph does
// not return.
func (o *onnxOutline) deadNodes() []string {
	read := map[string]bool{}
	for _, n := range o.Nodes {
		for _, in := range n.Inputs {
			read[in] = true
		}
	}
	for _, out := range o.Outputs {
		read[out] = true
	}
	var dead []string
	for i, n := range o.Nodes {
		if !slices.ContainsFunc(n.Outputs, func(out string) bool { return out != "" && read[out] }) {
			dead = append(dead, o.nodeName(i))
		}
	}
	return dead
}

// nodeName names node i for messages: its name, or its position, and its
// operator.
func (o *onnxOutline) nodeName(i int) string {
	if n := o.Nodes[i].Name; n != "" {
		return fmt.Sprintf("%s (%s)", n, o.Nodes[i].OpType)
	}
	return fmt.Sprintf("#%d (%s)", i, o.Nodes[i].OpType)
}

// addRaw records a float32 initializer held as raw_data, checking that
// its bytes are the values its shape needs.
func (o *onnxOutline) addRaw(name string, dims []uint64, raw []byte) error {
	n := uint64(1)
	shape := make([]int, len(dims))
	for i, d := range dims {
		if d > uint64(len(raw)) || n*d > uint64(len(raw)) {
			return fmt.Errorf("initializer %q declares a shape %v larger than its %d bytes of data", name, dims, len(raw))
		}
		n *= d
		shape[i] = int(d)
	}
	if 4*n != uint64(len(raw)) {
		return fmt.Errorf("initializer %q: %d bytes of raw data for shape %v (%d float32 values, %d bytes)", name, len(raw), dims, n, 4*n)
	}
	o.Raw[name] = rawTensor{dims: shape, raw: raw}
	return nil
}

// slimONNX is the model with each initializer of raw (read by proxykit
// from the file's bytes) replaced by a one-value placeholder of the same
// name, for onnx-go to decode the rest: the graph, the attributes and the
// small constants. Every other byte is the model's.
func slimONNX(data []byte, raw map[string]rawTensor) ([]byte, error) {
	if len(raw) == 0 {
		return data, nil
	}
	out := make([]byte, 0, 1<<16)
	err := eachField(data, func(num protowire.Number, typ protowire.Type, value, whole []byte) error {
		if num != modelGraph || typ != protowire.BytesType {
			out = append(out, whole...)
			return nil
		}
		var graph []byte
		err := eachField(value, func(num protowire.Number, typ protowire.Type, value, whole []byte) error {
			if num == graphInitializer && typ == protowire.BytesType {
				if name := tensorNameOf(value); name != "" {
					if _, ok := raw[name]; ok {
						var t []byte
						t = protowire.AppendTag(t, tensorDims, protowire.VarintType)
						t = protowire.AppendVarint(t, 1)
						t = protowire.AppendTag(t, tensorDataType, protowire.VarintType)
						t = protowire.AppendVarint(t, tensorFloat)
						t = protowire.AppendTag(t, tensorName, protowire.BytesType)
						t = protowire.AppendString(t, name)
						t = protowire.AppendTag(t, tensorRawData, protowire.BytesType)
						t = protowire.AppendBytes(t, make([]byte, 4))
						graph = protowire.AppendTag(graph, graphInitializer, protowire.BytesType)
						graph = protowire.AppendBytes(graph, t)
						return nil
					}
				}
			}
			graph = append(graph, whole...)
			return nil
		})
		if err != nil {
			return err
		}
		out = protowire.AppendTag(out, modelGraph, protowire.BytesType)
		out = protowire.AppendBytes(out, graph)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("not a valid ONNX file: %w", err)
	}
	return out, nil
}

// eachField calls fn with each field of a protobuf message: its number,
// type, value (a length-delimited field's payload; else nil) and whole
// encoding (tag included).
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, value, whole []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		var value []byte
		if typ == protowire.BytesType {
			value, _ = protowire.ConsumeBytes(b[n:])
		}
		if err := fn(num, typ, value, b[:n+m]); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

// tensorNameOf is a TensorProto's name ("" if it has none or is damaged).
func tensorNameOf(t []byte) string {
	name := ""
	eachField(t, func(num protowire.Number, typ protowire.Type, value, _ []byte) error {
		if num == tensorName && typ == protowire.BytesType {
			name = string(value)
		}
		return nil
	})
	return name
}
