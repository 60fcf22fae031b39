package nn

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Layer is one node kind of a feed-forward network, described: its
// shape rule, its parameters, its lowering into program ops (a forward
// and a backward pass, each a few kernels of compute.Backend) and its
// math in float64, the reference its lowering is checked against. Kinds
// are in Kinds (kind.go says where each lives). What else a kind can do
// it says by implementing optional interfaces: Validator, ONNXWriter,
// NIRWriter, Scalable, Synaptic, InputPinned.
type Layer interface {
	// Info describes the layer: kind, name, hyper-parameters, role.
	Info() Info
	// OutputShape is the per-sample output shape for the inputs'
	// per-sample shapes (one input; several for joins), or an error
	// saying why they do not fit.
	OutputShape(in [][]int) ([]int, error)
	// Params lists the layer's trainable parameters (none for most).
	Params() []*Param
	// Forward emits the ops computing s.Y from s.X.
	Forward(s *Site)
	// Backward emits the ops writing the inputs' gradients s.DX (those
	// not program.None) from s.DY and adding the parameters' gradients.
	// s.X and s.Y are what the forward pass left.
	Backward(s *Site)
	// Reference computes the forward pass in float64 on host arrays: xs[k]
	// holds n samples of shape in[k]; batchStats as Site.BatchStats
	// (running statistics are not updated).
	Reference(xs [][]float64, in [][]int, n int, batchStats bool) []float64
}

// Info describes a layer.
type Info struct {
	// Kind is the PyTorch-style layer type, e.g. "Conv2d".
	Kind string
	// Name is the layer's name, taken from the imported model where it had
	// one.
	Name string
	// Summary gives the hyper-parameters in a few words.
	Summary string
	// Attrs are the hyper-parameters as a checkpoint's architecture stores
	// them (nil for none); the kind's FromArch reads them back.
	Attrs map[string]any
	// Role says what the layer becomes in the SNN twin.
	Role Role
}

// Validator is a layer with hyper-parameters or parameter shapes to check
// by PyTorch's rules (ValidateLayers also checks that values are finite).
type Validator interface {
	Validate() error
}

// ONNXWriter is a layer with an ONNX form.
type ONNXWriter interface {
	// ExportONNX writes the layer as ONNX nodes (the first named name)
	// reading the values ins and writing the value out.
	ExportONNX(g ONNXGraph, name string, ins []string, out string) error
}

// NIRWriter is a layer with a NIR form.
type NIRWriter interface {
	// ExportNIR writes the layer's NIR nodes for a per-sample input shape
	// in (spikes: the input is binary spikes), or says why NIR cannot
	// express it.
	ExportNIR(g NIRGraph, in []int, spikes bool) error
}

// KindOf is l's kind.
func KindOf(l Layer) string { return l.Info().Kind }

// NameOf is l's name.
func NameOf(l Layer) string { return l.Info().Name }

// RoleOf is l's role.
func RoleOf(l Layer) Role { return l.Info().Role }

// one is the single input's shape of a layer that takes one.
func one(ins [][]int) ([]int, error) {
	if len(ins) != 1 {
		return nil, fmt.Errorf("takes one input, got %d", len(ins))
	}
	return ins[0], nil
}

// optData is p's host values, nil for a nil p.
func optData(p *Param) []float32 {
	if p == nil {
		return nil
	}
	return p.Data
}

// Stateful is a layer with state besides its parameters that training
// updates and checkpoints store: BatchNorm's running statistics. The SNN
// twin keeps its own copy of it (WithOwnState).
type Stateful interface {
	Layer
	// State is the state's host arrays by name (current after SyncState),
	// in a fixed order; a PyTorch state dict holds them as
	// "<layer>.<name>".
	State() []NamedArray
	// BindState puts the state on be; SyncState copies it back to host;
	// ReleaseState copies it back and frees it there; UploadState tells
	// the bound backend that the host arrays changed.
	BindState(be compute.Backend) error
	SyncState() error
	ReleaseState() error
	UploadState()
	// WithOwnState is a layer sharing this one's parameters with a copy of
	// its state.
	WithOwnState() Layer
}

// NamedArray is one named array of a layer's state.
type NamedArray struct {
	Name string
	Data []float32
}

// StatefulLayers lists the stateful layers among layers, in order.
func StatefulLayers(layers []Layer) []Stateful {
	var out []Stateful
	for _, l := range layers {
		if s, ok := l.(Stateful); ok {
			out = append(out, s)
		}
	}
	return out
}
