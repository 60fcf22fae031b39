package distributed

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/proxykit/proxykit/compute"
)

// Field is one entry of a run's fingerprint: something every rank must
// hold alike (a setting, the data's identity, the model's structure, a
// hash of its weights), by name, as text.
type Field struct {
	Name, Value string
}

// Fingerprint limits: a value longer than MaxFieldValue bytes is cut and
// ends with a hash of the whole; fields beyond MaxFields are folded into
// one.
const (
	MaxFieldValue = 200
	MaxFields     = 4096
)

// agreeShown is how many differing ranks a Disagreement lists.
const agreeShown = 8

// Disagreement is the error of Agree: the first field of the fingerprint
// on which some rank differs from rank 0, rank 0's value and the values
// of the first differing ranks.
type Disagreement struct {
	// Field is the field's name.
	Field string
	// Values are rank 0's value, then those of Ranks, in order.
	Values []string
	// Ranks are the first differing ranks (up to 8), in order.
	Ranks []int
	// More counts the differing ranks not listed.
	More int
}

// Error implements error: one line naming the field and the ranks'
// values, ranks of equal values together.
func (d *Disagreement) Error() string {
	var parts []string
	seen := map[string]int{} // value → its place in parts
	groups := [][]int{}
	vals := []string{}
	value := func(i int) string {
		if i < len(d.Values) {
			return d.Values[i]
		}
		return "no value"
	}
	for i, r := range d.Ranks {
		v := value(i + 1)
		if k, ok := seen[v]; ok {
			groups[k] = append(groups[k], r)
			continue
		}
		seen[v] = len(groups)
		groups = append(groups, []int{r})
		vals = append(vals, v)
	}
	parts = append(parts, fmt.Sprintf("rank 0 has %s", show(value(0))))
	for k, g := range groups {
		names := make([]string, len(g))
		for i, r := range g {
			names[i] = fmt.Sprint(r)
		}
		which := "rank " + names[0] + " has"
		if len(g) > 1 {
			which = "ranks " + strings.Join(names, ", ") + " have"
		}
		parts = append(parts, fmt.Sprintf("%s %s", which, show(vals[k])))
	}
	s := "the ranks disagree on " + show(d.Field) + ": " + strings.Join(parts, ", ")
	if d.More > 0 {
		s += fmt.Sprintf(" (and %d more ranks differ)", d.More)
	}
	return s + "; every rank must start from the same settings, data, model and checkpoint, so none trains"
}

// show quotes an empty value.
func show(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// normalise bounds a fingerprint: values cut at MaxFieldValue bytes (with
// a hash of the whole), one line each, at most MaxFields fields.
func normalise(fp []Field) []Field {
	out := make([]Field, 0, min(len(fp), MaxFields))
	cut := func(s string) string {
		s = oneLine(s)
		if len(s) <= MaxFieldValue {
			return s
		}
		h := sha256.Sum256([]byte(s))
		return strings.ToValidUTF8(s[:MaxFieldValue-20], "") + "… sha256 " + hex.EncodeToString(h[:4])
	}
	for i, f := range fp {
		if i == MaxFields-1 && len(fp) > MaxFields {
			h := sha256.New()
			for _, g := range fp[i:] {
				h.Write([]byte(g.Name + "\x00" + g.Value + "\x00"))
			}
			out = append(out, Field{"fields from " + cut(f.Name) + " on", "sha256 " + hex.EncodeToString(h.Sum(nil)[:8])})
			break
		}
		out = append(out, Field{cut(f.Name), cut(f.Value)})
	}
	return out
}

// encodeFields is a fingerprint's bytes: each name and value with its
// length.
func encodeFields(fp []Field) []byte {
	var b []byte
	for _, f := range fp {
		for _, s := range []string{f.Name, f.Value} {
			b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
			b = append(b, s...)
		}
	}
	return b
}

// decodeFields reads encodeFields' bytes.
func decodeFields(b []byte) ([]Field, bool) {
	var out []Field
	next := func() (string, bool) {
		if len(b) < 4 {
			return "", false
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return "", false
		}
		s := string(b[4 : 4+n])
		b = b[4+n:]
		return s, true
	}
	for len(b) > 0 {
		name, ok := next()
		if !ok {
			return nil, false
		}
		value, ok := next()
		if !ok {
			return nil, false
		}
		out = append(out, Field{name, value})
	}
	return out, true
}

// packBytes puts b into float64 values, 6 bytes each (exact integers
// below 2^48), after its length: what an all-reduce of sums can carry.
func packBytes(b []byte, slot []float64) {
	slot[0] = float64(len(b))
	for i := 0; i < len(b); i += 6 {
		var v uint64
		for j := i; j < min(i+6, len(b)); j++ {
			v |= uint64(b[j]) << (8 * (j - i))
		}
		slot[1+i/6] = float64(v)
	}
}

// unpackBytes reads packBytes' values.
func unpackBytes(slot []float64) []byte {
	n := int(slot[0])
	if n < 0 || n > 6*(len(slot)-1) {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint64(slot[1+i/6]) >> (8 * (i % 6)))
	}
	return b
}

// Agree checks, before a run starts, that every rank of c holds the same
// fingerprint fp (nil is a fingerprint with no fields): rank 0 sends its
// own, each rank compares it with its own, and where any differs every
// rank returns the same *Disagreement — the first field on which a rank
// differs, rank 0's value and the differing ranks' values — instead of
// starting a run whose ranks would train different things together. It is
// a collective: every rank calls it, with a fingerprint of the same
// fields in the same order, and its waits are c's (bounded by its
// timeout). Values are cut at MaxFieldValue bytes; what is long (weights,
// data) belongs in a field as a hash.
func Agree(c compute.HostComm, fp []Field) error {
	if c == nil {
		return fmt.Errorf("agreeing on a fingerprint: no communicator (nil)")
	}
	size, rank := c.Size(), c.Rank()
	if size < 2 {
		return nil
	}
	mine := normalise(fp)
	// rank 0's fingerprint, its length first
	var ref []byte
	if rank == 0 {
		ref = encodeFields(mine)
	}
	n := binary.BigEndian.AppendUint64(nil, uint64(len(ref)))
	if err := c.Broadcast(0, n); err != nil {
		return fmt.Errorf("%w (sending rank 0's fingerprint of the run)", err)
	}
	// a bound every rank computes alike: MaxFields fields of name and value
	if m := binary.BigEndian.Uint64(n); m > MaxFields*2*(4+3*MaxFieldValue+64) {
		return fmt.Errorf("rank 0's fingerprint of %d bytes: not a fingerprint (do all ranks run the same proxykit?)", m)
	} else if rank != 0 {
		ref = make([]byte, m)
	}
	if err := c.Broadcast(0, ref); err != nil {
		return fmt.Errorf("%w (sending rank 0's fingerprint of the run)", err)
	}
	theirs, ok := decodeFields(ref)
	if !ok {
		theirs = []Field{{"rank 0's fingerprint", "unreadable"}}
	}
	// where this rank first differs (1-based; 0: nowhere), gathered
	differs := func(i int) bool {
		return i >= len(mine) || i >= len(theirs) || mine[i] != theirs[i]
	}
	first := 0
	for i := 0; i < max(len(mine), len(theirs)); i++ {
		if differs(i) {
			first = i + 1
			break
		}
	}
	at := make([]float64, size)
	at[rank] = float64(first)
	if err := c.AllReduceF64(at); err != nil {
		return fmt.Errorf("%w (comparing the ranks' fingerprints of the run)", err)
	}
	f := 0 // the first field where any rank differs, 1-based
	for _, v := range at {
		if v > 0 && (f == 0 || int(v) < f) {
			f = int(v)
		}
	}
	if f == 0 {
		return nil
	}
	f--
	// which ranks differ on field f, then the values of the first few
	at = make([]float64, size)
	if differs(f) {
		at[rank] = 1
	}
	if err := c.AllReduceF64(at); err != nil {
		return fmt.Errorf("%w (comparing the ranks' fingerprints of the run)", err)
	}
	d := &Disagreement{}
	slot := -1
	for r, v := range at {
		if v == 0 {
			continue
		}
		if len(d.Ranks) < agreeShown {
			if r == rank {
				slot = len(d.Ranks)
			}
			d.Ranks = append(d.Ranks, r)
		} else {
			d.More++
		}
	}
	const width = 1 + (2*MaxFieldValue+8+5)/6 // a field, name and value with their lengths, packed
	vals := make([]float64, agreeShown*width)
	if slot >= 0 {
		var v []byte
		if f < len(mine) {
			v = encodeFields([]Field{mine[f]})
		}
		packBytes(v, vals[slot*width:(slot+1)*width])
	}
	if err := c.AllReduceF64(vals); err != nil {
		return fmt.Errorf("%w (comparing the ranks' fingerprints of the run)", err)
	}
	field := func(fs []Field) Field {
		if f < len(fs) {
			return fs[f]
		}
		return Field{"the fingerprint's fields", fmt.Sprintf("only %d fields", len(fs))}
	}
	ref0 := field(theirs)
	d.Field, d.Values = ref0.Name, []string{ref0.Value}
	for k := range d.Ranks {
		got, _ := decodeFields(unpackBytes(vals[k*width : (k+1)*width]))
		v := Field{"no such field", "(it has fewer fields)"}
		if len(got) == 1 {
			v = got[0]
		}
		if v.Name != ref0.Name {
			v.Value = v.Name + " " + v.Value
		}
		d.Values = append(d.Values, v.Value)
	}
	return d
}
