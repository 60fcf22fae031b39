package nn

import (
	"fmt"
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/program"
)

// Affine is y = x·Scale[c] + Shift[c] with constant Scale and Shift per
// channel (the first axis of a sample), or one pair for every value: an
// exported network's arithmetic with constants that is no layer's bias —
// the input normalisation (x − mean)/std a model carries inside, a scale
// between layers. ONNX's Sub, Div, Mul and Add of an activation and a
// constant read as it (Div by s as a multiplication by 1/s, rounded to
// float32). Its constants are fixed, as PyTorch's buffers are: training
// leaves them, checkpoints store them as the layer's state. In the SNN it
// maps every time step's values as in the ANN.
type Affine struct {
	LayerName    string
	Scale, Shift []float32

	scale, shift, zeros binding
	zero                []float32 // the backward map's shift (NewAffine's; made at need for a literal)
}

// NewAffine is the layer of scale and shift (one value each, or one per
// channel).
func NewAffine(name string, scale, shift []float32) *Affine {
	return &Affine{LayerName: name, Scale: scale, Shift: shift, zero: make([]float32, len(scale))}
}

// Info implements Layer.
func (l *Affine) Info() Info {
	summary := fmt.Sprintf("x·%g + %g", first(l.Scale), first(l.Shift))
	if len(l.Scale) > 1 {
		summary = fmt.Sprintf("x·scale + shift, %d channels", len(l.Scale))
	}
	return Info{Kind: "Affine", Name: l.LayerName, Summary: summary, Attrs: map[string]any{"channels": len(l.Scale)},
		Role: Role{Note: "constants"}}
}

// first is v[0], NaN for an empty v.
func first(v []float32) float32 {
	if len(v) == 0 {
		return float32(math.NaN())
	}
	return v[0]
}

// Validate implements Validator: as many finite scales as shifts, at
// least one.
func (l *Affine) Validate() error {
	if len(l.Scale) < 1 || len(l.Shift) != len(l.Scale) {
		return fmt.Errorf("scale and shift must hold one value, or one per channel, alike: %d and %d", len(l.Scale), len(l.Shift))
	}
	for i := range l.Scale {
		if math.IsNaN(float64(l.Scale[i])) || math.IsInf(float64(l.Scale[i]), 0) || math.IsNaN(float64(l.Shift[i])) || math.IsInf(float64(l.Shift[i]), 0) {
			return fmt.Errorf("channel %d: scale %g and shift %g must be finite", i, l.Scale[i], l.Shift[i])
		}
	}
	return nil
}

// OutputShape implements Layer: the input's shape, whose first axis has
// one channel per scale (any, for one scale).
func (l *Affine) OutputShape(ins [][]int) ([]int, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	in, err := one(ins)
	if err != nil {
		return nil, err
	}
	if err := checkIn(in); err != nil {
		return nil, err
	}
	if len(l.Scale) > 1 && (len(in) < 1 || in[0] != len(l.Scale)) {
		return nil, fmt.Errorf("Affine of %d channels cannot take an input %s", len(l.Scale), ShapeString(in))
	}
	return in, nil
}

// Params implements Layer: none; the constants are state.
func (l *Affine) Params() []*Param { return nil }

// channels is the channels and positions per channel of the map on a
// sample of shape in.
func (l *Affine) channels(in []int) (c, hw int) {
	if len(l.Scale) == 1 {
		return 1, Numel(in)
	}
	return len(l.Scale), Numel(in[1:])
}

// constants is the slots of the scale and shift.
func (l *Affine) constants(s *Site) (scale, shift program.Ref) {
	c := []int{len(l.Scale)}
	return s.B.External(s.Name+".scale", c, boundConstant{&l.scale, &l.Scale}), s.B.External(s.Name+".shift", c, boundConstant{&l.shift, &l.Shift})
}

// boundConstant is a layer's constant array as program memory that puts
// itself on the machine's backend (program.Binder), as a parameter does:
// an Affine layer a rewrite made (a BatchNorm folded for export) is bound
// by no network.
type boundConstant struct {
	b *binding
	h *[]float32
}

// Buffer implements program.Binding.
func (c boundConstant) Buffer(be compute.Backend) compute.Buffer { return c.b.on(be) }

// Bind implements program.Binder.
func (c boundConstant) Bind(be compute.Backend) (compute.Buffer, error) { return c.b.bind(be, *c.h) }

// Forward implements Layer: y = x·scale + shift (one rounding each).
func (l *Affine) Forward(s *Site) {
	c, hw := l.channels(s.In[0])
	scale, shift := l.constants(s)
	s.Emit(&program.ChannelAffine{C: c, HW: hw, Rate: s.Rate, X: s.X[0], Scale: scale, Shift: shift, Y: s.Y})
}

// Backward implements Layer: dx = dy·scale.
func (l *Affine) Backward(s *Site) {
	if s.DX[0] == program.None {
		return
	}
	c, hw := l.channels(s.In[0])
	scale, _ := l.constants(s)
	if len(l.zero) != len(l.Scale) {
		l.zero = make([]float32, len(l.Scale))
	}
	zeros := s.B.External(s.Name+".zeros", []int{len(l.Scale)}, boundConstant{&l.zeros, &l.zero})
	s.Emit(&program.ChannelAffine{C: c, HW: hw, Rate: s.Rate, X: s.DY, Scale: scale, Shift: zeros, Y: s.DX[0]})
}

// Reference implements Layer.
func (l *Affine) Reference(xs [][]float64, in [][]int, n int, _ bool) []float64 {
	c, hw := l.channels(in[0])
	y := make([]float64, len(xs[0]))
	for i, v := range xs[0] {
		ch := (i / hw) % c
		y[i] = v*float64(l.Scale[ch]) + float64(l.Shift[ch])
	}
	return y
}

// State implements Stateful: the scale and the shift.
func (l *Affine) State() []NamedArray {
	return []NamedArray{{"scale", l.Scale}, {"shift", l.Shift}}
}

// BindState implements Stateful.
func (l *Affine) BindState(be compute.Backend) error {
	if len(l.zero) != len(l.Scale) {
		l.zero = make([]float32, len(l.Scale))
	}
	for _, b := range []struct {
		b *binding
		h []float32
	}{{&l.scale, l.Scale}, {&l.shift, l.Shift}, {&l.zeros, l.zero}} {
		if _, err := b.b.bind(be, b.h); err != nil {
			return fmt.Errorf("Affine %s: %w", l.LayerName, err)
		}
	}
	return nil
}

// SyncState implements Stateful.
func (l *Affine) SyncState() error {
	if err := l.scale.sync(l.Scale); err != nil {
		return fmt.Errorf("Affine %s: %w", l.LayerName, err)
	}
	return l.shift.sync(l.Shift)
}

// ReleaseState implements Stateful.
func (l *Affine) ReleaseState() error {
	for _, b := range []struct {
		b *binding
		h []float32
	}{{&l.scale, l.Scale}, {&l.shift, l.Shift}, {&l.zeros, l.zero}} {
		if err := b.b.release(b.h); err != nil {
			return fmt.Errorf("Affine %s: %w", l.LayerName, err)
		}
	}
	return nil
}

// UploadState implements Stateful.
func (l *Affine) UploadState() {
	l.scale.upload(l.Scale)
	l.shift.upload(l.Shift)
}

// WithOwnState implements Stateful: the same constants (nothing updates
// them; conversion scales them in place, for the ANN and its SNN alike)
// with bindings of its own.
func (l *Affine) WithOwnState() Layer { return NewAffine(l.LayerName, l.Scale, l.Shift) }

// ScaleInput implements Scalable: an input f times smaller takes a scale
// f times larger.
func (l *Affine) ScaleInput(f float64) error {
	if err := checkScale(f); err != nil {
		return err
	}
	return l.scaleBy(f, l.Scale)
}

// ScaleOutput implements Scalable: scale and shift times f, rounded to
// float32 (±Inf past its range, which Validate refuses and conversion
// checks for, as it does for weights).
func (l *Affine) ScaleOutput(f float64) {
	for _, v := range [][]float32{l.Scale, l.Shift} {
		for i, x := range v {
			v[i] = float32(float64(x) * f)
		}
	}
}

// scaleBy multiplies v by f, all or, where a product is no finite
// float32, none.
func (l *Affine) scaleBy(f float64, v []float32) error {
	out := make([]float32, len(v))
	for i, x := range v {
		p := float32(float64(x) * f)
		if math.IsInf(float64(p), 0) || math.IsNaN(float64(p)) {
			return fmt.Errorf("Affine %s: %g·%g is no finite float32", l.LayerName, x, f)
		}
		out[i] = p
	}
	copy(v, out)
	return nil
}

// ExportONNX implements ONNXWriter: Mul by the scale, then Add of the
// shift, the constants shaped to broadcast over the input's channels; a
// scale of ones is no Mul and a shift of zeros no Add (x·s + 0 rounds as
// x·s), so that a layer imported from one Sub, Div, Mul or Add reads back
// as one layer, and one with both a scale and a shift as two Affine
// layers that compute the same values.
func (l *Affine) ExportONNX(g ONNXGraph, name string, ins []string, out string) error {
	if err := onnxArgs(l, g, ins, 1); err != nil {
		return err
	}
	shape := []int{len(l.Scale)}
	if in := g.InputShapes(); len(l.Scale) > 1 && len(in) == 1 {
		for range len(in[0]) - 1 {
			shape = append(shape, 1)
		}
	}
	mul, add := !all(l.Scale, 1), !all(l.Shift, 0)
	if mul || !add {
		to := out
		if add {
			to = name + ".scaled"
		}
		g.Node("Mul", name+"_mul", []string{ins[0], g.Constant(l.LayerName+".scale", shape, l.Scale)}, []string{to})
		ins = []string{to}
	}
	if add {
		g.Node("Add", name, []string{ins[0], g.Constant(l.LayerName+".shift", shape, l.Shift)}, []string{out})
	}
	return nil
}

// all reports whether every value of v is x.
func all(v []float32, x float32) bool {
	for _, y := range v {
		if y != x {
			return false
		}
	}
	return true
}

// ExportNIR implements NIRWriter: NIR has no such map, so it is a 1×1
// convolution from each channel to itself with the shift as its bias on a
// [C H W] input, an Affine node of the same diagonal weight on a [C] one.
func (l *Affine) ExportNIR(g NIRGraph, in []int, spikes bool) error {
	if _, err := nirArgs(l, g, in); err != nil {
		return err
	}
	if len(in) != 1 && len(in) != 3 {
		return fmt.Errorf("Affine %s: NIR takes it on a [C] or [C H W] input, got %s", l.LayerName, ShapeString(in))
	}
	c := in[0]
	if n := Numel([]int{c, c}); n < 0 || n > MaxValuesPerSample {
		return fmt.Errorf("Affine %s of %d channels as a NIR weight: more than %d values", l.LayerName, c, MaxValuesPerSample)
	}
	w, b := make([]float32, c*c), make([]float32, c)
	for i := 0; i < c; i++ {
		ch := i % len(l.Scale)
		w[i*c+i], b[i] = l.Scale[ch], l.Shift[ch]
	}
	if len(in) == 1 {
		return (&Linear{LayerName: l.LayerName, Weight: NewParam(l.LayerName+".weight", w, c, c), Bias: NewParam(l.LayerName+".bias", b, c)}).
			ExportNIR(g, in, spikes)
	}
	return (&Conv2d{LayerName: l.LayerName, Weight: NewParam(l.LayerName+".weight", w, c, c, 1, 1), Bias: NewParam(l.LayerName+".bias", b, c),
		SH: 1, SW: 1, DH: 1, DW: 1}).ExportNIR(g, in, spikes)
}

func affineKind() Kind {
	return Kind{Names: []string{"Affine"}, FromArch: func(s LayerSpec, ps []*Param) (Layer, error) {
		var a struct {
			Channels int `json:"channels"`
		}
		if err := decodeAttrs(s, &a); err != nil {
			return nil, err
		}
		if a.Channels < 1 || a.Channels > MaxValuesPerSample {
			return nil, fmt.Errorf("Affine of %d channels", a.Channels)
		}
		scale := make([]float32, a.Channels)
		for i := range scale {
			scale[i] = 1
		}
		// the checkpoint's reader fills the constants in (State)
		return NewAffine(s.Name, scale, make([]float32, a.Channels)), specParams(ps, 0, 0)
	}}
}
