// Package checkpoint reads and writes proxykit checkpoints: safetensors
// files holding a network's architecture and weights, both networks'
// BatchNorm statistics, Adam's state, the run's settings and its progress,
// so that a run resumes exactly and any command can use the network.
package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/proxykit/proxykit/internal/limits"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"

	"github.com/nlpodyssey/safetensors"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/internal/floats"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// Format marks proxykit checkpoints in their metadata.
const Format = "proxykit-checkpoint/1"

// LayerState is one stateful layer's state (nn.Stateful): its arrays by
// name (BatchNorm: running_mean, running_var).
type LayerState map[string][]float32

// Progress is where training stands: the next epoch and batch to run, and
// what the current epoch has measured so far.
type Progress struct {
	Epoch   int                  `json:"epoch"`
	Batch   int                  `json:"batch"`
	Partial EpochTotals          `json:"partial"`
	History []results.EpochStats `json:"history"`
}

// EpochTotals accumulates an epoch's training measurements.
type EpochTotals struct {
	Images     int     `json:"images"`
	LossSum    float64 `json:"loss_sum"` // Σ over batches of loss × batch size
	ANNCorrect int     `json:"ann_correct"`
	SNNCorrect int     `json:"snn_correct"`
	Seconds    float64 `json:"seconds"`
}

// Checkpoint is everything needed to use a trained network or to resume
// training exactly: weights, both networks' layer state (BatchNorm's
// running statistics), Adam's moments,
// the settings and the progress. The RNG state is implied: permutations
// and augmentation draws derive from (seed, epoch, batch).
type Checkpoint struct {
	Arch   nn.Arch
	Params map[string]*nn.Param
	// ANNState and SNNState are the stateful layers' state, by layer name,
	// of the ANN and of the SNN (which keeps its own).
	ANNState map[string]LayerState
	SNNState map[string]LayerState
	Adam     *AdamState
	Settings recipe.Settings
	Progress Progress
	// Notes are free-form facts about how the checkpoint was made (for
	// instance the scales of an ANN-to-SNN conversion), shown by info.
	Notes map[string]string
	// Notices are what Decode assumed where a checkpoint written by an
	// older proxykit lacks a setting, for the user to see when resuming;
	// they are not saved.
	Notices []string
}

// AdamState is PyTorch's Adam as a checkpoint keeps it: its
// hyper-parameters, the number of steps made and both moments by parameter
// name.
type AdamState struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// Step counts the updates made so far.
	Step int
	// M and V are the first and second moments, by parameter name.
	M, V map[string][]float32
}

type f32View struct {
	shape []uint64
	data  []byte
}

func (v f32View) DType() safetensors.DType { return safetensors.F32 }
func (v f32View) Shape() []uint64          { return v.shape }
func (v f32View) Data() []byte             { return v.data }
func (v f32View) DataLen() uint64          { return uint64(len(v.data)) }

func view(shape []int, data []float32) f32View {
	s := make([]uint64, len(shape))
	for i, d := range shape {
		s[i] = uint64(d)
	}
	// the values' own bytes (safetensors copies them into the file)
	return f32View{s, floats.LE(data)}
}

// Save writes the checkpoint atomically to path.
func (c *Checkpoint) Save(path string) error {
	if c == nil {
		return fmt.Errorf("checkpoint %s: nothing to save (nil)", path)
	}
	tensors := map[string]f32View{}
	for name, p := range c.Params {
		if p == nil {
			return fmt.Errorf("checkpoint %s: parameter %q is nil", path, name)
		}
		tensors["param/"+name] = view(p.Shape, p.Data)
	}
	for prefix, state := range map[string]map[string]LayerState{"ann_bn/": c.ANNState, "snn_bn/": c.SNNState} {
		for layer, arrays := range state {
			for name, a := range arrays {
				tensors[prefix+layer+"/"+name] = view([]int{len(a)}, a)
			}
		}
	}
	adam := map[string]any{}
	if c.Adam != nil {
		for name, m := range c.Adam.M {
			tensors["adam_m/"+name] = view([]int{len(m)}, m)
			tensors["adam_v/"+name] = view([]int{len(c.Adam.V[name])}, c.Adam.V[name])
		}
		adam = map[string]any{"lr": c.Adam.LR, "beta1": c.Adam.Beta1, "beta2": c.Adam.Beta2, "eps": c.Adam.Eps,
			"weight_decay": c.Adam.WeightDecay, "step": c.Adam.Step}
	}
	settings := c.Settings
	settings.BNStats = settings.BatchNormStats() // recorded always: "" on reading is an older checkpoint
	meta := map[string]any{"arch": c.Arch, "settings": settings, "progress": c.Progress, "adam": adam}
	if len(c.Notes) > 0 {
		meta["notes"] = c.Notes
	}
	metaStr := map[string]string{"format": Format}
	for k, v := range meta {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		metaStr[k] = string(b)
	}
	b, err := safetensors.Serialize(tensors, metaStr)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return atomicfile.Write(path, b)
}

// Is reports whether data looks like a checkpoint (a safetensors file).
func Is(data []byte) bool { return IsHead(data, int64(len(data))) }

// IsHead is Is from the first bytes of a file of size bytes: a header
// length that fits the file, then the header's JSON.
func IsHead(head []byte, size int64) bool {
	if len(head) < 9 || size < 10 {
		return false
	}
	n := binary.LittleEndian.Uint64(head[:8])
	return n > 0 && n < uint64(size) && head[8] == '{'
}

// Load reads a checkpoint file.
func Load(path string) (*Checkpoint, error) {
	data, err := limits.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Decode parses checkpoint bytes. The checkpoint's arrays may share data's
// memory (they do on little-endian machines): data must not be reused.
func Decode(data []byte) (c *Checkpoint, err error) {
	if !Is(data) {
		return nil, errors.New("not a proxykit checkpoint (safetensors) file")
	}
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return nil, fmt.Errorf("not a valid checkpoint: %w", err)
	}
	_, md, err := safetensors.ReadMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("not a valid checkpoint: %w", err)
	}
	meta := md.Metadata()
	if meta["format"] != Format {
		return nil, fmt.Errorf("not a proxykit checkpoint: metadata format %q, want %q", meta["format"], Format)
	}
	c = &Checkpoint{Params: map[string]*nn.Param{}, ANNState: map[string]LayerState{}, SNNState: map[string]LayerState{}}
	for key, dst := range map[string]any{"arch": &c.Arch, "settings": &c.Settings, "progress": &c.Progress} {
		if err := json.Unmarshal([]byte(meta[key]), dst); err != nil {
			return nil, fmt.Errorf("checkpoint metadata %q: %w", key, err)
		}
	}
	if c.Settings.BNStats == "" {
		c.Settings.BNStats = recipe.BNSync
		c.Notices = append(c.Notices, "the checkpoint does not record where a data-parallel run takes BatchNorm's statistics (it was written "+
			"before proxykit recorded that setting): it resumes with "+recipe.BNSync+" (the global batch's), what such runs used unless told otherwise")
	}
	if c.Settings.Method == "" { // written before there was a choice: a proxy run
		c.Settings.Method = recipe.MethodProxy
	}
	if s := meta["notes"]; s != "" {
		if err := json.Unmarshal([]byte(s), &c.Notes); err != nil {
			return nil, fmt.Errorf("checkpoint metadata \"notes\": %w", err)
		}
	}
	var adam struct {
		LR          float64 `json:"lr"`
		Beta1       float64 `json:"beta1"`
		Beta2       float64 `json:"beta2"`
		Eps         float64 `json:"eps"`
		WeightDecay float64 `json:"weight_decay"`
		Step        int     `json:"step"`
	}
	if s := meta["adam"]; s != "" && s != "{}" {
		if err := json.Unmarshal([]byte(s), &adam); err != nil {
			return nil, fmt.Errorf("checkpoint metadata \"adam\": %w", err)
		}
		c.Adam = &AdamState{LR: adam.LR, Beta1: adam.Beta1, Beta2: adam.Beta2, Eps: adam.Eps, WeightDecay: adam.WeightDecay,
			Step: adam.Step, M: map[string][]float32{}, V: map[string][]float32{}}
	}
	floats := func(tv safetensors.TensorView, name string) ([]float32, []int, error) {
		if tv.DType() != safetensors.F32 {
			return nil, nil, fmt.Errorf("tensor %q is %s, want F32", name, tv.DType())
		}
		// the file's bytes are the values: no copy on little-endian
		// machines (the tensors share data's memory)
		raw := tv.Data()
		if len(raw)%4 != 0 {
			return nil, nil, fmt.Errorf("tensor %q holds %d bytes, not whole float32 values", name, len(raw))
		}
		out := floats.FromLE(raw)
		shape := make([]int, len(tv.Shape()))
		for i, d := range tv.Shape() {
			shape[i] = int(d)
		}
		return out, shape, nil
	}
	names := st.Names()
	sort.Strings(names)
	for _, key := range names {
		tv, _ := st.Tensor(key)
		data, shape, err := floats(tv, key)
		if err != nil {
			return nil, err
		}
		var kind, rest string
		for i := 0; i < len(key); i++ {
			if key[i] == '/' {
				kind, rest = key[:i], key[i+1:]
				break
			}
		}
		switch kind {
		case "param":
			c.Params[rest] = nn.NewParam(rest, data, shape...)
		case "ann_bn", "snn_bn":
			state := c.ANNState
			if kind == "snn_bn" {
				state = c.SNNState
			}
			layer, field := splitLast(rest)
			if layer == "" || field == "" {
				return nil, fmt.Errorf("unknown checkpoint tensor %q", key)
			}
			if state[layer] == nil {
				state[layer] = LayerState{}
			}
			state[layer][field] = data
		case "adam_m", "adam_v":
			if c.Adam == nil {
				return nil, fmt.Errorf("checkpoint has tensor %q but no optimizer settings", key)
			}
			if kind == "adam_m" {
				c.Adam.M[rest] = data
			} else {
				c.Adam.V[rest] = data
			}
		default:
			return nil, fmt.Errorf("unknown checkpoint tensor %q", key)
		}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// check refuses metadata and statistics no run can have written: the
// settings (recipe.Settings.Validate), Adam's hyper-parameters and step
// count, layer state that is not finite, a position before the start.
// (A layer's own rules, such as BatchNorm's variances not below 0, are
// checked when the state is restored into it: RestoreState.)
func (c *Checkpoint) check() error {
	if err := c.Settings.Validate(); err != nil {
		return fmt.Errorf("checkpoint settings: %w", err)
	}
	if a := c.Adam; a != nil {
		finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
		switch {
		case !(a.LR > 0) || !finite(a.LR):
			return fmt.Errorf("checkpoint optimizer: learning rate %g; want a positive finite value", a.LR)
		case !(a.Beta1 >= 0 && a.Beta1 < 1 && a.Beta2 >= 0 && a.Beta2 < 1):
			return fmt.Errorf("checkpoint optimizer: betas %g, %g; want values in [0, 1)", a.Beta1, a.Beta2)
		case !(a.Eps >= 0) || !finite(a.Eps):
			return fmt.Errorf("checkpoint optimizer: eps %g; want a finite value of at least 0", a.Eps)
		case !(a.WeightDecay >= 0) || !finite(a.WeightDecay):
			return fmt.Errorf("checkpoint optimizer: weight decay %g; want a finite value of at least 0", a.WeightDecay)
		case a.Step < 0 || a.Step > MaxSteps:
			return fmt.Errorf("checkpoint optimizer: %d steps made; want 0 to %d", a.Step, MaxSteps)
		}
	}
	for which, state := range map[string]map[string]LayerState{"ANN": c.ANNState, "SNN": c.SNNState} {
		for _, layer := range slices.Sorted(maps.Keys(state)) {
			for _, name := range slices.Sorted(maps.Keys(state[layer])) {
				if err := nn.CheckFinite(which+" layer "+layer+" "+name, state[layer][name]); err != nil {
					return fmt.Errorf("checkpoint: %w", err)
				}
			}
		}
	}
	p := c.Progress
	if p.Epoch < 0 || p.Batch < 0 || p.Partial.Images < 0 || len(p.History) > p.Epoch {
		return fmt.Errorf("checkpoint position: epoch %d, batch %d, %d images, %d epochs in the history; none can be negative, nor the history longer than the epochs",
			p.Epoch, p.Batch, p.Partial.Images, len(p.History))
	}
	if t := p.Partial; t.ANNCorrect < 0 || t.SNNCorrect < 0 || t.ANNCorrect > t.Images || t.SNNCorrect > t.Images ||
		!(t.LossSum >= 0) || math.IsInf(t.LossSum, 0) || !(t.Seconds >= 0) || math.IsInf(t.Seconds, 0) {
		return fmt.Errorf("checkpoint position: the epoch's partial sums (%d images, %d and %d correct, loss sum %g, %g s) are not a run's",
			t.Images, t.ANNCorrect, t.SNNCorrect, t.LossSum, t.Seconds)
	}
	return nil
}

// MaxSteps bounds the optimizer steps a checkpoint may record: 2^53, the
// largest count a float64 bias correction still distinguishes.
const MaxSteps = 1 << 53

func splitLast(s string) (string, string) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// Network rebuilds the checkpoint's ANN with its layer state.
func (c *Checkpoint) Network(name string) (*nn.Network, error) {
	if c == nil {
		return nil, fmt.Errorf("no checkpoint (nil) to build %s from", name)
	}
	net, err := c.Arch.Build(name, c.Params)
	if err != nil {
		return nil, fmt.Errorf("checkpoint architecture: %w", err)
	}
	if err := RestoreState("ANN", c.ANNState, nn.StatefulLayers(net.Layers)); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return net, nil
}

// StateOf copies stateful layers' state, by layer name (nil layers have
// none).
func StateOf(layers []nn.Stateful) map[string]LayerState {
	out := map[string]LayerState{}
	for _, l := range layers {
		if l == nil {
			continue
		}
		st := LayerState{}
		for _, a := range l.State() {
			st[a.Name] = append([]float32(nil), a.Data...)
		}
		out[nn.NameOf(l)] = st
	}
	return out
}

// RestoreState copies state (of the network named which, for messages)
// into layers, which must each find exactly their arrays there, of their
// sizes, and accept them (nn.Validator: a BatchNorm's variances are not
// negative).
func RestoreState(which string, state map[string]LayerState, layers []nn.Stateful) error {
	if err := checkState(which, state, layers); err != nil {
		return err
	}
	for _, l := range layers {
		st := state[nn.NameOf(l)]
		for _, a := range l.State() {
			copy(a.Data, st[a.Name])
		}
		if v, ok := l.(nn.Validator); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("%s %s %q: %w", which, nn.KindOf(l), nn.NameOf(l), err)
			}
		}
	}
	return nil
}

// checkState checks that state holds each layer's arrays, of its sizes,
// finite, and nothing else for it.
func checkState(which string, state map[string]LayerState, layers []nn.Stateful) error {
	for i, l := range layers {
		if l == nil {
			return fmt.Errorf("the %s's stateful layer %d is nil", which, i)
		}
		name := nn.NameOf(l)
		st, ok := state[name]
		arrays := l.State()
		if !ok {
			return fmt.Errorf("the checkpoint lacks the %s's state of %s layer %q", which, nn.KindOf(l), name)
		}
		if len(st) != len(arrays) {
			return fmt.Errorf("the checkpoint's %s state of %s layer %q has %d arrays, the layer %d", which, nn.KindOf(l), name, len(st), len(arrays))
		}
		for _, a := range arrays {
			v, ok := st[a.Name]
			if !ok || len(v) != len(a.Data) {
				return fmt.Errorf("the checkpoint lacks the %s's %s of %s layer %q (%d values)", which, a.Name, nn.KindOf(l), name, len(a.Data))
			}
			if err := nn.CheckFinite(which+" "+nn.KindOf(l)+" "+name+" "+a.Name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// SameArch reports whether two architectures are the same, ignoring names of the source.
func SameArch(a, b nn.Arch) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// New is the checkpoint of a network: its parameters, the ANN's and the
// SNN's layer state and the settings to use it with; no optimizer
// state and no progress, so that train starts from it as from any model
// (a trainer adds its own). A nil ann gives no architecture and no
// parameters, a nil snn no SNN statistics.
func New(ann *nn.Network, snn *spiking.Network, s recipe.Settings) *Checkpoint {
	c := &Checkpoint{Params: map[string]*nn.Param{}, ANNState: map[string]LayerState{}, SNNState: map[string]LayerState{}, Settings: s}
	if ann != nil {
		for _, p := range ann.Params() {
			c.Params[p.Name] = p
		}
		c.Arch, c.ANNState = nn.ArchOf(ann), StateOf(nn.StatefulLayers(ann.Layers))
	}
	if snn != nil {
		c.SNNState = StateOf(snn.Stateful())
	}
	return c
}

// CheckResumable checks, before anything is restored, that the checkpoint
// holds all a resumed run needs, of the right sizes and finite: every
// parameter, both networks' layer state, Adam's settings and both
// moments of every parameter (once a step was made), and a position
// inside the run.
func (c *Checkpoint) CheckResumable(ann *nn.Network, snn *spiking.Network, batches int) error {
	switch {
	case c == nil:
		return fmt.Errorf("no checkpoint to resume (nil)")
	case ann == nil || snn == nil:
		return fmt.Errorf("resuming a checkpoint: the networks to restore it into are required (nil)")
	}
	for _, p := range ann.Params() {
		q, ok := c.Params[p.Name]
		switch {
		case !ok:
			return fmt.Errorf("the checkpoint lacks parameter %q", p.Name)
		case !slices.Equal(q.Shape, p.Shape) || len(q.Data) != len(p.Data):
			return fmt.Errorf("parameter %q is %s in the checkpoint and %s in the model: they are networks of different sizes",
				p.Name, nn.ShapeString(q.Shape), nn.ShapeString(p.Shape))
		}
		if err := nn.CheckFinite("parameter "+p.Name, q.Data); err != nil {
			return err
		}
	}
	if err := checkState("ANN", c.ANNState, nn.StatefulLayers(ann.Layers)); err != nil {
		return err
	}
	if err := checkState("SNN", c.SNNState, snn.Stateful()); err != nil {
		return err
	}
	a := c.Adam
	if a == nil {
		return fmt.Errorf("the checkpoint has no optimizer state: it cannot be resumed; a new run can start from it")
	}
	if a.Step < 0 {
		return fmt.Errorf("the checkpoint's optimizer has made %d steps", a.Step)
	}
	if a.Step > 0 {
		for _, p := range ann.Params() {
			m, v := a.M[p.Name], a.V[p.Name]
			if len(m) != len(p.Data) || len(v) != len(p.Data) {
				return fmt.Errorf("the checkpoint's optimizer state for %q holds %d and %d values, want %d", p.Name, len(m), len(v), len(p.Data))
			}
			if err := nn.CheckFinite("Adam's first moment of "+p.Name, m); err != nil {
				return err
			}
			if err := nn.CheckFinite("Adam's second moment of "+p.Name, v); err != nil {
				return err
			}
		}
	}
	pr := c.Progress
	if pr.Epoch < 0 || pr.Batch < 0 || pr.Batch > batches || pr.Partial.Images < 0 {
		return fmt.Errorf("the checkpoint's position (epoch %d, batch %d of %d, %d images) is not one a run can be at", pr.Epoch, pr.Batch, batches, pr.Partial.Images)
	}
	return nil
}
