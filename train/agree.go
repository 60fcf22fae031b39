package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/distributed"
)

// The ranks of a data-parallel run agree before the first step (Run
// calls agree once): every rank sends a fingerprint of what must be equal
// — each setting that changes the result, the backend's arithmetic, the
// data sets by content, the model's structure, the checkpoint position,
// and hashes of the weights, the layers' state (BatchNorm's running
// statistics) and the optimizer's —
// and where any rank differs from rank 0 every rank refuses the run,
// naming the first field that differs and the ranks' values
// (distributed.Agree). What may differ per rank stays out: the device
// index, where the data was read from, where outputs go, how progress is
// shown.

// dataSample is how many images of a data set its fingerprint hashes
// (with all its labels): spread over the set, the first and last among
// them.
const dataSample = 64

// agree checks, once, under Dist, that every rank starts from the same
// run.
func (t *Trainer) agree() error {
	if t.Dist == nil || t.agreed {
		return nil
	}
	if t.engine != nil {
		if err := t.engine.Sync(); err != nil {
			return fmt.Errorf("reading the state back from %s: %w", t.engine.Backend.Name(), err)
		}
	}
	if err := t.Opt.Sync(); err != nil {
		return fmt.Errorf("reading the optimizer back: %w", err)
	}
	if err := distributed.Agree(t.Dist.Host(), t.fingerprint()); err != nil {
		return err
	}
	t.agreed = true
	return nil
}

// fingerprint is what every rank of a run must hold alike, in the order
// a disagreement is looked for: settings first, the weights' hash last.
func (t *Trainer) fingerprint() []distributed.Field {
	var fp []distributed.Field
	add := func(name, value string) { fp = append(fp, distributed.Field{Name: name, Value: value}) }
	for _, f := range t.Settings.Fields() {
		add("setting "+f.Flag, f.Value)
	}
	if t.Backend != nil {
		arith := t.Backend.Name()
		if p, ok := t.Backend.(interface{ Precision() string }); ok {
			arith += ", " + p.Precision()
		}
		add("backend and precision", arith)
	}
	add("training data", dataIdentity(t.Train))
	add("test data", dataIdentity(t.Test))
	ck := checkpoint.New(t.ANN, t.SNN, t.Settings)
	add("model input", dims(ck.Arch.InputShape))
	add("model layers", fmt.Sprint(len(ck.Arch.Layers)))
	for i, l := range ck.Arch.Layers {
		var shapes []string
		for _, name := range l.Params {
			if p := ck.Params[name]; p != nil {
				shapes = append(shapes, name+" "+dims(p.Shape))
			}
		}
		attrs, _ := json.Marshal(l.Attrs)
		v := l.Kind
		if len(shapes) > 0 {
			v += "; " + strings.Join(shapes, ", ")
		}
		if len(l.Attrs) > 0 {
			v += "; " + string(attrs)
		}
		if len(l.Inputs) > 0 {
			v += fmt.Sprintf("; inputs %v", l.Inputs)
		}
		add(fmt.Sprintf("model layer %d (%s): kind, width and shapes", i, l.Name), v)
	}
	p := t.Progress
	add("checkpoint position", fmt.Sprintf("epoch %d, batch %d (%d images into the epoch, %d and %d correct, loss sum %v; %d epochs done before)",
		p.Epoch, p.Batch, p.Partial.Images, p.Partial.ANNCorrect, p.Partial.SNNCorrect, p.Partial.LossSum, len(p.History)))
	h := sha256.New()
	n := 0
	for _, prm := range t.ANN.Params() {
		hashFloats(h, prm.Name, prm.Data)
		n += len(prm.Data)
	}
	add("model weights", fmt.Sprintf("sha256 %s of %d values", short(h), n))
	h.Reset()
	for _, state := range []map[string]checkpoint.LayerState{ck.ANNState, ck.SNNState} {
		for _, layer := range slices.Sorted(maps.Keys(state)) {
			for _, array := range slices.Sorted(maps.Keys(state[layer])) {
				hashFloats(h, layer+" "+array, state[layer][array])
			}
		}
		h.Write([]byte{0})
	}
	add("layer state (BatchNorm running statistics)", "sha256 "+short(h))
	a := t.Opt.AdamState
	h.Reset()
	for _, name := range slices.Sorted(maps.Keys(a.M)) {
		hashFloats(h, name+" m", a.M[name])
		hashFloats(h, name+" v", a.V[name])
	}
	add("optimizer state", fmt.Sprintf("%d steps, lr %v, betas %v,%v, eps %v, weight decay %v, moments sha256 %s",
		a.Step, a.LR, a.Beta1, a.Beta2, a.Eps, a.WeightDecay, short(h)))
	return fp
}

// dataIdentity names a data set by content: its sizes, and a hash of all
// its labels and of dataSample of its images, not where it was read from.
func dataIdentity(d *data.Dataset) string {
	if d == nil {
		return "none"
	}
	h := sha256.New()
	h.Write(d.Labels)
	k := min(d.N, dataSample)
	sz := d.C * d.H * d.W
	for i := 0; i < k; i++ {
		idx := 0
		if k > 1 {
			idx = i * (d.N - 1) / (k - 1)
		}
		if (idx+1)*sz <= len(d.Images) {
			hashFloats(h, fmt.Sprint(idx), d.Images[idx*sz:(idx+1)*sz])
		}
	}
	return fmt.Sprintf("%s, %d images of %d×%d×%d, %d classes, sha256 %s (labels and %d images)", d.Name, d.N, d.C, d.H, d.W, d.Classes, short(h), k)
}

// hashFloats adds a named array's bits to h.
func hashFloats(h hash.Hash, name string, xs []float32) {
	h.Write([]byte(name))
	buf := make([]byte, 8, 8+4*min(len(xs), 1<<14))
	binary.LittleEndian.PutUint64(buf, uint64(len(xs)))
	h.Write(buf)
	for len(xs) > 0 {
		chunk := xs[:min(len(xs), 1<<14)]
		xs = xs[len(chunk):]
		buf = buf[:0]
		for _, v := range chunk {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		h.Write(buf)
	}
}

// dims writes a shape as 8×1×3×3.
func dims(shape []int) string {
	s := make([]string, len(shape))
	for i, d := range shape {
		s[i] = fmt.Sprint(d)
	}
	return strings.Join(s, "×")
}

// short is a hash's first 8 bytes in hexadecimal.
func short(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)[:8]) }
