// Package exporter writes proxykit's networks to files other tools read:
// the ANN as ONNX.
package exporter

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// msg builds one protobuf message field by field (ONNX's onnx.proto).
type msg struct{ b []byte }

func (m *msg) varint(num protowire.Number, v uint64) *msg {
	m.b = protowire.AppendTag(m.b, num, protowire.VarintType)
	m.b = protowire.AppendVarint(m.b, v)
	return m
}

func (m *msg) str(num protowire.Number, s string) *msg {
	m.b = protowire.AppendTag(m.b, num, protowire.BytesType)
	m.b = protowire.AppendString(m.b, s)
	return m
}

func (m *msg) bytes(num protowire.Number, b []byte) *msg {
	m.b = protowire.AppendTag(m.b, num, protowire.BytesType)
	m.b = protowire.AppendBytes(m.b, b)
	return m
}

func (m *msg) sub(num protowire.Number, s *msg) *msg { return m.bytes(num, s.b) }

func (m *msg) f32(num protowire.Number, f float32) *msg {
	m.b = protowire.AppendTag(m.b, num, protowire.Fixed32Type)
	m.b = protowire.AppendFixed32(m.b, math.Float32bits(f))
	return m
}

// ONNX enums.
const (
	onnxFloat = 1
	onnxInt64 = 7

	attrFloat  = 1
	attrInt    = 2
	attrString = 3
	attrInts   = 7
)

// attr is an ONNX node attribute.
type attr struct {
	name string
	f    *float32
	i    *int64
	s    *string
	ints []int64
}

func aInt(name string, v int64) attr     { return attr{name: name, i: &v} }
func aFloat(name string, v float32) attr { return attr{name: name, f: &v} }
func aInts(name string, v ...int64) attr { return attr{name: name, ints: v} }
func aString(name string, v string) attr { return attr{name: name, s: &v} }
func ints(v ...int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func (a attr) encode() *msg {
	m := (&msg{}).str(1, a.name)
	switch {
	case a.f != nil:
		m.f32(2, *a.f).varint(20, attrFloat)
	case a.i != nil:
		m.varint(3, uint64(*a.i)).varint(20, attrInt)
	case a.s != nil:
		m.str(4, *a.s).varint(20, attrString)
	default:
		for _, v := range a.ints {
			m.varint(8, uint64(v))
		}
		m.varint(20, attrInts)
	}
	return m
}

func floatTensor(name string, shape []int, data []float32) *msg {
	m := &msg{}
	for _, d := range shape {
		m.varint(1, uint64(d))
	}
	m.varint(2, onnxFloat).str(8, name)
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return m.bytes(9, raw)
}

func int64Tensor(name string, shape []int, data []int64) *msg {
	m := &msg{}
	for _, d := range shape {
		m.varint(1, uint64(d))
	}
	m.varint(2, onnxInt64).str(8, name)
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return m.bytes(9, raw)
}

// valueInfo describes a float tensor whose first dimension is the symbolic batch.
func valueInfo(name string, perSample []int) *msg {
	shape := (&msg{}).sub(1, (&msg{}).str(2, "batch"))
	for _, d := range perSample {
		shape.sub(1, (&msg{}).varint(1, uint64(d)))
	}
	tt := (&msg{}).varint(1, onnxFloat).sub(2, shape)
	return (&msg{}).str(1, name).sub(2, (&msg{}).sub(1, tt))
}

// graphBuilder collects nodes and initializers.
type graphBuilder struct {
	nodes, inits []*msg
	added        map[string]bool // initializer names already emitted
	inShapes     [][]int         // of the layer being emitted
}

func (g *graphBuilder) node(op, name string, inputs, outputs []string, attrs ...attr) {
	m := &msg{}
	for _, in := range inputs {
		m.str(1, in)
	}
	for _, out := range outputs {
		m.str(2, out)
	}
	m.str(3, name).str(4, op)
	for _, a := range attrs {
		m.sub(5, a.encode())
	}
	g.nodes = append(g.nodes, m)
}

func (g *graphBuilder) init(t *msg) { g.inits = append(g.inits, t) }

// model wraps a graph into a ModelProto.
func (g *graphBuilder) model(name string, opset int, input *msg, outputs []*msg, meta map[string]string, producerVersion string) []byte {
	graph := &msg{}
	for _, n := range g.nodes {
		graph.sub(1, n)
	}
	graph.str(2, name)
	for _, t := range g.inits {
		graph.sub(5, t)
	}
	graph.sub(11, input)
	for _, o := range outputs {
		graph.sub(12, o)
	}
	m := (&msg{}).varint(1, 8).str(2, "proxykit").str(3, producerVersion)
	m.sub(7, graph)
	m.sub(8, (&msg{}).str(1, "").varint(2, uint64(opset)))
	for _, k := range sortedKeys(meta) {
		m.sub(14, (&msg{}).str(1, k).str(2, meta[k]))
	}
	return m.b
}
