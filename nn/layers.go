package nn

import (
	"fmt"
	"math"

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
	// Forward emits the ops computing s.Y from s.X. Package lower calls
	// it, and Backward and Reference, only for a layer whose OutputShape
	// accepted s.In (a layer Validate accepts), on a Site it made
	// (NewSite) inside a pass: these three trust their arguments.
	Forward(s *Site)
	// Backward emits the ops writing the inputs' gradients s.DX (those
	// not program.None) from s.DY and adding the parameters' gradients.
	// s.X and s.Y are what the forward pass left.
	Backward(s *Site)
	// Reference computes the forward pass in float64 on host arrays: xs[k]
	// holds n samples of shape in[k]; batchStats as Site.BatchStats
	// (running statistics are not updated). It is the tests' oracle and
	// trusts its arguments: in must be shapes OutputShape accepted and
	// xs[k] must hold n samples of in[k], or it may panic.
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

// KindOf is l's kind ("" for nil).
func KindOf(l Layer) string { return infoOf(l).Kind }

// NameOf is l's name ("" for nil).
func NameOf(l Layer) string { return infoOf(l).Name }

// RoleOf is l's role (none for nil).
func RoleOf(l Layer) Role { return infoOf(l).Role }

// infoOf is l's Info, the zero Info for nil.
func infoOf(l Layer) Info {
	if l == nil {
		return Info{}
	}
	return l.Info()
}

// one is the single input's shape of a layer that takes one (checkIn).
func one(ins [][]int) ([]int, error) {
	if len(ins) != 1 {
		return nil, fmt.Errorf("takes one input, got %d", len(ins))
	}
	return ins[0], checkIn(ins[0])
}

// joined are the inputs' shapes of a join (Add, Concat): two or more,
// each checked (checkIn).
func joined(kind string, ins [][]int) error {
	if len(ins) < 2 {
		return fmt.Errorf("%s joins two or more inputs, got %d", kind, len(ins))
	}
	for _, in := range ins {
		if err := checkIn(in); err != nil {
			return err
		}
	}
	return nil
}

// checkIn refuses a per-sample input shape that no network has: no size
// at all, a size below 1, or more than MaxValuesPerSample values (Validate
// bounds every layer's output so), so that no shape rule's arithmetic
// overflows.
func checkIn(in []int) error {
	if len(in) == 0 {
		return fmt.Errorf("an input of per-sample shape []: a sample has at least one axis")
	}
	n := 1
	for _, d := range in {
		if d < 1 || d > MaxValuesPerSample/n {
			return fmt.Errorf("input shape %s: every size must be positive and a sample at most %d values", ShapeString(in), MaxValuesPerSample)
		}
		n *= d
	}
	return nil
}

// params are the parameters ps that are set: Params never lists nil.
func params(ps ...*Param) []*Param {
	out := ps[:0:0]
	for _, p := range ps {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// checkScale refuses a scale that conversion never sets: not positive or
// not finite (Scalable).
func checkScale(f float64) error {
	if !(f > 0) || math.IsInf(f, 0) {
		return fmt.Errorf("scale %g: a layer's scale must be positive and finite", f)
	}
	return nil
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
