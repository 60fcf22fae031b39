package nn

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Layer kinds, one file each.
//
// Everything proxykit knows about a layer kind is in that kind's file of
// this package: conv2d.go, batchnorm.go, linear.go, relu.go, clip.go,
// pool.go, globalavgpool.go, flatten.go, pad.go, softmax.go, add.go,
// concat.go, shuffle.go, slice.go.
// The file holds the kind's type, whose methods are its description (Info:
// kind, name, hyper-parameters as checkpoints store them, role in the
// SNN), its shape rule, its parameters, its lowering into program ops
// (Forward and Backward, a few kernels of compute.Backend each) and its
// float64 math (Reference); where the kind has them, its checks
// (Validate), how conversion scales it and its ONNX and NIR forms; and
// its registry entry (Kind), which makes the layer from a checkpoint's
// architecture, an ONNX node or a PyTorch module. The format packages do
// each format's own work — protobuf, pickles, HDF5, constant folding —
// and ask the kind for everything that depends on it, through the small
// interfaces in formats.go. Adding a kind is one file here (the Layer
// interface says what it must have, six methods), a line in Kinds and,
// where its ops are new, the ops in package program and their kernels in
// compute.

// Kind is one layer kind's registry entry: its names and how to make a
// layer of the kind from each description of it that proxykit reads.
// Names and FromArch are required; a kind reads ONNX or PyTorch where it
// sets the fields for them.
type Kind struct {
	// Names are the names Info.Kind gives for layers of the kind (pooling
	// has two: MaxPool2d and AvgPool2d).
	Names []string
	// FromArch makes the layer from its description in a checkpoint and
	// its parameters, in LayerSpec.Params order. The caller validates it.
	FromArch func(s LayerSpec, params []*Param) (Layer, error)
	// ONNXOps are the ONNX operators (domain ai.onnx) read as this kind;
	// FromONNX reads one. It returns nil and no error for a node that is
	// the identity on its input (all-zero Pad, a Concat of one input).
	ONNXOps  []string
	FromONNX func(n ONNXNode) (Layer, error)
	// TorchModules are the torch.nn module classes read as this kind;
	// FromTorch reads one.
	TorchModules []string
	FromTorch    func(m TorchModule) (Layer, error)
}

// Kinds lists every layer kind, in the order tables list them.
func Kinds() []Kind {
	return []Kind{conv2dKind(), batchNorm2dKind(), linearKind(), reluKind(), clipKind(), pool2dKind(), globalAvgPoolKind(),
		flattenKind(), pad2dKind(), softmaxKind(), addKind(), concatKind(), channelShuffleKind(), channelSliceKind(), affineKind()}
}

// KindNamed finds the kind whose layers' Kind is name.
func KindNamed(name string) (Kind, bool) {
	return findKind(func(k Kind) []string { return k.Names }, name)
}

// KindForONNX finds the kind that reads ONNX operator op.
func KindForONNX(op string) (Kind, bool) {
	return findKind(func(k Kind) []string { return k.ONNXOps }, op)
}

// KindForTorch finds the kind that reads the torch.nn module class cls
// (its name without the module path, e.g. "Conv2d").
func KindForTorch(cls string) (Kind, bool) {
	return findKind(func(k Kind) []string { return k.TorchModules }, cls)
}

func findKind(names func(Kind) []string, name string) (Kind, bool) {
	for _, k := range Kinds() {
		if slices.Contains(names(k), name) {
			return k, true
		}
	}
	return Kind{}, false
}

// ONNXOps lists the operators some kind reads, for messages.
func ONNXOps() []string {
	var ops []string
	for _, k := range Kinds() {
		ops = append(ops, k.ONNXOps...)
	}
	return ops
}

// TorchModules lists the torch.nn classes some kind reads, for messages.
func TorchModules() []string {
	var mods []string
	for _, k := range Kinds() {
		mods = append(mods, k.TorchModules...)
	}
	return mods
}

// Role says what a layer becomes in the SNN twin, what it does to spikes,
// how conversion treats it, and whether it only reshapes.
type Role struct {
	// Neuron: the layer becomes a layer of IF neurons (ReLU).
	Neuron bool
	// Head: the layer may only end the network, and the SNN leaves it out,
	// its output being spike counts (softmax).
	Head bool
	// KeepsSpikes: binary spikes in give binary spikes out (max pooling
	// takes their OR; flattening, zero padding and concatenation move
	// them), so later layers may treat the signal as spikes.
	KeepsSpikes bool
	// Join: the layer joins several inputs (Add, Concat).
	Join bool
	// View: the layer only reshapes, so its output may share its input's
	// buffer.
	View bool
	// Homogeneous: f(a·x) = a·f(x) for every a > 0, so that conversion's
	// normalisation passes through the layer unchanged.
	Homogeneous bool
	// Note says more, for tables ("own statistics").
	Note string
}

// Scalable is a layer with weights whose scale conversion sets.
type Scalable interface {
	Layer
	// ScaleInput makes the layer take an input f times smaller than the
	// one it was trained on: y(x/f) equals the old y(x).
	ScaleInput(f float64) error
	// ScaleOutput makes the layer's output f times the old one.
	ScaleOutput(f float64)
}

// Synaptic is a layer with weights that connect inputs to outputs: what
// an SNN spends synaptic operations on and an ANN multiply-accumulates.
type Synaptic interface {
	Layer
	// FanOut gives, for a per-sample input shape, the number of
	// connections that leave each input position: how many additions one
	// spike there triggers.
	FanOut(in []int) []float32
	// MACs is the number of multiply-accumulates on one sample of shape in.
	MACs(in []int) int64
}

// InputPinned is a layer whose parameters fix its per-sample input's
// leading dimension: the channels of a [C H W] input (Conv2d) or the
// features of an [F] input (Linear). Readers of files that record no
// input shape start from the first such layer.
type InputPinned interface {
	Layer
	// PinnedInput is the input's leading dimension and its rank.
	PinnedInput() (lead, rank int)
}

// FanOut is l's fan-out for input shape in (Synaptic), ok false for a
// layer without weights.
func FanOut(l Layer, in []int) (fan []float32, ok bool) {
	s, ok := l.(Synaptic)
	if !ok {
		return nil, false
	}
	if _, err := l.OutputShape([][]int{in}); err != nil {
		return nil, false
	}
	return s.FanOut(in), true
}

// MACs is the number of multiply-accumulates a layer with weights does on
// one sample of shape in (0 for other layers): what an ANN spends where an
// SNN spends synaptic operations.
func MACs(l Layer, in []int) int64 {
	s, ok := l.(Synaptic)
	if !ok {
		return 0
	}
	if _, err := l.OutputShape([][]int{in}); err != nil {
		return 0
	}
	return s.MACs(in)
}

// decodeAttrs reads a LayerSpec's attributes into a kind's typed struct.
func decodeAttrs(s LayerSpec, into any) error {
	if s.Attrs == nil {
		return nil
	}
	b, err := json.Marshal(s.Attrs)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("attributes: %w", err)
	}
	return nil
}

// specParams checks that a LayerSpec has between lo and hi parameters.
func specParams(ps []*Param, lo, hi int) error {
	if len(ps) < lo || len(ps) > hi {
		if lo == hi {
			return fmt.Errorf("%d parameters, want %d", len(ps), lo)
		}
		return fmt.Errorf("%d parameters, want %d to %d", len(ps), lo, hi)
	}
	return nil
}

// specPairs checks that attribute lists have two values and pads four.
func specPairs(pads []int, pairs ...[]int) error {
	for _, p := range pairs {
		if len(p) != 2 {
			return fmt.Errorf("malformed attributes: %v is not a pair", p)
		}
	}
	if len(pads) != 4 {
		return fmt.Errorf("malformed attributes: pads %v are not four values", pads)
	}
	return nil
}

// optParam returns ps[i], or nil when there are not that many.
func optParam(ps []*Param, i int) *Param {
	if i < len(ps) {
		return ps[i]
	}
	return nil
}

// pos and nonneg check integer fields, which are at most
// MaxValuesPerSample besides (so that no shape rule's arithmetic
// overflows).
func pos(field string, vs ...int) error {
	for _, v := range vs {
		if v < 1 {
			return fmt.Errorf("%s must be at least 1, got %d", field, v)
		}
	}
	return atMost(field, vs)
}

func nonneg(field string, vs ...int) error {
	for _, v := range vs {
		if v < 0 {
			return fmt.Errorf("%s must not be negative, got %d", field, v)
		}
	}
	return atMost(field, vs)
}

func atMost(field string, vs []int) error {
	for _, v := range vs {
		if v > MaxValuesPerSample {
			return fmt.Errorf("%s must be at most %d, got %d", field, MaxValuesPerSample, v)
		}
	}
	return nil
}

// scaleParam multiplies a parameter's values by f (nil: nothing).
func scaleParam(p *Param, f float64) {
	if p == nil {
		return
	}
	for i := range p.Data {
		p.Data[i] = float32(float64(p.Data[i]) * f)
	}
}
