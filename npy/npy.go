// Package npy reads and writes NumPy .npy files of float32 data, the
// format tensors take in and out of the proxykit CLI.
package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/internal/limits"
)

// Array is an n-dimensional float32 array in C order.
type Array struct {
	Shape []int
	Data  []float32
	// Dtype is the element type the file held ("<f4", "|u1", ...).
	Dtype string
}

// ReadFile reads a .npy file. float32, float64 and integer arrays are
// accepted and converted to float32; with scaleUint8, uint8 values are
// divided by 255 (pixels to [0, 1]).
func ReadFile(path string, scaleUint8 bool) (*Array, error) {
	f, err := limits.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Read(f, scaleUint8)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Read decodes a .npy stream.
func Read(r io.Reader, scaleUint8 bool) (*Array, error) {
	if r == nil {
		return nil, errors.New("reading a .npy stream: no reader (nil)")
	}
	var magic [8]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, errors.New("not a .npy file: too short")
	}
	if string(magic[:6]) != "\x93NUMPY" {
		return nil, errors.New("not a .npy file: bad magic")
	}
	var hlen int
	switch magic[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, errors.New("truncated .npy header")
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, errors.New("truncated .npy header")
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, fmt.Errorf("unsupported .npy version %d", magic[6])
	}
	if hlen > 1<<20 {
		return nil, fmt.Errorf(".npy header of %d bytes is implausible", hlen)
	}
	header := make([]byte, hlen)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, errors.New("truncated .npy header")
	}
	descr, fortran, shape, err := parseHeader(string(header))
	if err != nil {
		return nil, err
	}
	if fortran {
		return nil, errors.New("Fortran-order arrays are not supported; save with np.ascontiguousarray")
	}
	n := 1
	for _, d := range shape {
		if d > 0 && n > math.MaxInt32/d {
			return nil, fmt.Errorf(".npy array of shape %v is too large", shape)
		}
		n *= d
	}
	size, conv := decoder(descr, scaleUint8)
	if conv == nil {
		return nil, fmt.Errorf("unsupported .npy dtype %q (want float32, float64 or an integer type)", descr)
	}
	// Read what the header promises, and one byte more to catch trailing
	// junk; the buffer grows with the bytes that arrive, so a header that
	// claims more than the file holds allocates nothing big.
	need := int64(n) * int64(size)
	raw, err := io.ReadAll(io.LimitReader(r, need+1))
	if err != nil {
		return nil, fmt.Errorf("reading .npy data: %w", err)
	}
	if int64(len(raw)) < need {
		return nil, fmt.Errorf("truncated .npy data: shape %v of %s needs %d bytes, the file holds %d", shape, descr, need, len(raw))
	}
	if int64(len(raw)) > need {
		return nil, fmt.Errorf(".npy data is longer than its shape %v of %s: trailing bytes after %d", shape, descr, need)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = conv(raw[i*size : (i+1)*size])
	}
	return &Array{Shape: shape, Data: data, Dtype: descr}, nil
}

// parseHeader reads the header's Python dict literal strictly: exactly the
// keys 'descr' (a string), 'fortran_order' (True or False) and 'shape' (a
// tuple of non-negative integers), in any order, with numpy's padding of
// spaces and a final newline.
func parseHeader(h string) (descr string, fortran bool, shape []int, err error) {
	bad := func(format string, args ...any) (string, bool, []int, error) {
		return "", false, nil, fmt.Errorf("malformed .npy header: "+format, args...)
	}
	h = strings.TrimRight(h, " \n")
	if !strings.HasPrefix(h, "{") || !strings.HasSuffix(h, "}") {
		return bad("not a dict literal")
	}
	p := &lexer{s: h[1 : len(h)-1]}
	seen := map[string]bool{}
	for {
		p.space()
		if p.done() {
			break
		}
		key, ok := p.quoted()
		if !ok {
			return bad("a key must be a quoted string at %q", p.rest())
		}
		if seen[key] {
			return bad("key %q appears twice", key)
		}
		seen[key] = true
		p.space()
		if !p.eat(':') {
			return bad("no ':' after key %q", key)
		}
		p.space()
		switch key {
		case "descr":
			if descr, ok = p.quoted(); !ok {
				return bad("'descr' must be a string")
			}
		case "fortran_order":
			switch {
			case p.word("True"):
				fortran = true
			case p.word("False"):
			default:
				return bad("'fortran_order' must be True or False")
			}
		case "shape":
			if shape, ok = p.tuple(); !ok {
				return bad("'shape' must be a tuple of non-negative integers")
			}
		default:
			return bad("unknown key %q", key)
		}
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.done() {
				return bad("expected ',' at %q", p.rest())
			}
		}
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return bad("no %q field", k)
		}
	}
	return descr, fortran, shape, nil
}

// lexer walks a header's characters.
type lexer struct {
	s string
	i int
}

func (l *lexer) done() bool   { return l.i >= len(l.s) }
func (l *lexer) rest() string { return l.s[l.i:min(len(l.s), l.i+20)] }
func (l *lexer) space() {
	for !l.done() && (l.s[l.i] == ' ' || l.s[l.i] == '\t') {
		l.i++
	}
}
func (l *lexer) eat(c byte) bool {
	if !l.done() && l.s[l.i] == c {
		l.i++
		return true
	}
	return false
}
func (l *lexer) word(w string) bool {
	if strings.HasPrefix(l.s[l.i:], w) {
		l.i += len(w)
		return true
	}
	return false
}

// quoted reads a '...' or "..." string without escapes.
func (l *lexer) quoted() (string, bool) {
	if l.done() || (l.s[l.i] != '\'' && l.s[l.i] != '"') {
		return "", false
	}
	q := l.s[l.i]
	end := strings.IndexByte(l.s[l.i+1:], q)
	if end < 0 {
		return "", false
	}
	v := l.s[l.i+1 : l.i+1+end]
	if strings.ContainsRune(v, '\\') {
		return "", false
	}
	l.i += end + 2
	return v, true
}

// tuple reads (), (n,) or (n, m, ...) of non-negative integers.
func (l *lexer) tuple() ([]int, bool) {
	if !l.eat('(') {
		return nil, false
	}
	dims := []int{}
	for {
		l.space()
		if l.eat(')') {
			return dims, true
		}
		j := l.i
		for j < len(l.s) && l.s[j] >= '0' && l.s[j] <= '9' {
			j++
		}
		if j == l.i || j-l.i > 10 {
			return nil, false
		}
		d, err := strconv.Atoi(l.s[l.i:j])
		if err != nil || d > math.MaxInt32 {
			return nil, false
		}
		dims = append(dims, d)
		l.i = j
		l.space()
		if !l.eat(',') {
			l.space()
			if !l.eat(')') {
				return nil, false
			}
			// (n) without a comma is an int, not a tuple, in Python
			if len(dims) == 1 {
				return nil, false
			}
			return dims, true
		}
	}
}

func decoder(descr string, scaleUint8 bool) (int, func([]byte) float32) {
	le := binary.LittleEndian
	switch descr {
	case "<f4", "=f4":
		return 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) }
	case ">f4":
		return 4, func(b []byte) float32 { return math.Float32frombits(binary.BigEndian.Uint32(b)) }
	case "<f8", "=f8":
		return 8, func(b []byte) float32 { return float32(math.Float64frombits(le.Uint64(b))) }
	case "|u1", "<u1":
		if scaleUint8 {
			return 1, func(b []byte) float32 { return float32(b[0]) / 255 }
		}
		return 1, func(b []byte) float32 { return float32(b[0]) }
	case "|i1", "<i1":
		return 1, func(b []byte) float32 { return float32(int8(b[0])) }
	case "<i4":
		return 4, func(b []byte) float32 { return float32(int32(le.Uint32(b))) }
	case "<i8":
		return 8, func(b []byte) float32 { return float32(int64(le.Uint64(b))) }
	}
	return 0, nil
}

// MaxDims is the most dimensions an array may have: NumPy's own limit.
const MaxDims = 64

// Encode returns the .npy (version 1.0) bytes of a float32 array of the
// given shape (C order). It refuses a shape that does not hold exactly
// len(data) values — a negative dimension, a product that overflows, more
// than MaxDims dimensions —, which would make a file NumPy cannot read.
func Encode(shape []int, data []float32) ([]byte, error) {
	if len(shape) > MaxDims {
		return nil, fmt.Errorf(".npy: an array of %d dimensions (NumPy reads at most %d)", len(shape), MaxDims)
	}
	n := 1
	for _, d := range shape {
		switch {
		case d < 0:
			return nil, fmt.Errorf(".npy: shape %v has a negative dimension", shape)
		case d > 0 && n > math.MaxInt/d:
			return nil, fmt.Errorf(".npy: shape %v holds more values than an int counts", shape)
		}
		n *= d
	}
	if n != len(data) {
		return nil, fmt.Errorf(".npy: shape %v holds %d values, the data %d", shape, n, len(data))
	}
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	sh := strings.Join(dims, ", ")
	if len(shape) == 1 {
		sh += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", sh)
	// Pad so that the data starts on a 64-byte boundary, header ending in '\n'.
	total := 10 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	var buf bytes.Buffer
	buf.Grow(10 + len(header) + 4*len(data))
	buf.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&buf, binary.LittleEndian, uint16(len(header)))
	buf.WriteString(header)
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	buf.Write(raw)
	return buf.Bytes(), nil
}

// WriteFile writes a float32 array to path atomically: the bytes go to a
// temporary file in the same folder, renamed over path when complete. A
// shape that does not hold the data is refused (Encode).
func WriteFile(path string, shape []int, data []float32) error {
	b, err := Encode(shape, data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, b)
}
