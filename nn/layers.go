package nn

import (
	"github.com/proxykit/proxykit/compute"
)

// Layer is one stage of a feed-forward network, of one of the kinds in
// Kinds (kind.go says where each kind lives), with its forward and
// backward pass on a compute.Backend. Shapes passed to OutputShape and
// AuxSize are per sample (no batch dimension); Forward and Backward take
// batched values whose shapes an Executor checked and whose buffers (and
// the layer's parameters) are on the backend they are given.
type Layer interface {
	// Name is the layer's name, taken from the imported model where it had one.
	Name() string
	// Kind is the PyTorch-style layer type, e.g. "Conv2d".
	Kind() string
	// Describe gives the layer's hyper-parameters in a few words.
	Describe() string
	// OutputShape is the per-sample output shape for a per-sample input shape,
	// or an error saying why the input does not fit.
	OutputShape(in []int) ([]int, error)
	// Params lists the layer's trainable parameters (none for most layers).
	Params() []*Param
	// AuxSize is the number of workspace values Forward and Backward need
	// beside x and y, for a per-sample input shape and mode.Groups groups.
	AuxSize(in []int, groups int) int
	// Forward computes y from x. aux keeps what Backward needs.
	Forward(be compute.Backend, x, y Value, aux compute.Buffer, mode Mode)
	// Backward takes dLoss/dy, writes dLoss/dx (skipped when dx.Buf is nil)
	// and adds the parameter gradients into each Param's gradient buffer.
	// x, y and aux are what the forward pass in mode left.
	Backward(be compute.Backend, x, y, dy, dx Value, aux compute.Buffer, mode Mode)
	// Attrs are the layer's hyper-parameters as a checkpoint's
	// architecture stores them (nil for none); its kind's FromArch reads
	// them back.
	Attrs() map[string]any
	// Validate checks the layer's hyper-parameters and parameter shapes by
	// PyTorch's rules (ValidateLayers also checks that values are finite).
	Validate() error
	// Role says what the layer becomes in the SNN twin, how conversion
	// scales it and whether it only reshapes.
	Role() Role
	// ExportONNX writes the layer as ONNX nodes (the first named name)
	// reading the values ins and writing the value out.
	ExportONNX(g ONNXGraph, name string, ins []string, out string) error
	// ExportNIR writes the layer's NIR nodes for a per-sample input shape
	// in (spikes: the input is binary spikes), or says why NIR cannot
	// express it.
	ExportNIR(g NIRGraph, in []int, spikes bool) error
}

// Mode says how layers behave in a forward pass.
type Mode struct {
	// BatchStats: BatchNorm normalises with the batch's statistics and
	// updates its running statistics (PyTorch's train()); otherwise it uses
	// the running statistics (eval()).
	BatchStats bool
	// Groups splits the batch into that many equal groups of consecutive
	// samples, each with BatchNorm statistics of its own: the SNN's time
	// steps, run together. 0 means 1.
	Groups int
	// Spikes says that the input holds spikes (mostly zeros), for backends
	// with kernels that skip them.
	Spikes bool
}

func (m Mode) groups() int { return max(m.Groups, 1) }

// noAux is AuxSize for layers without workspace.
type noAux struct{}

// AuxSize implements Layer.
func (noAux) AuxSize([]int, int) int { return 0 }

func opt(p *Param, be compute.Backend) compute.Buffer {
	if p == nil {
		return nil
	}
	return p.Buffer(be)
}

func optGrad(p *Param, be compute.Backend) compute.Buffer {
	if p == nil {
		return nil
	}
	return p.GradBuffer(be)
}
