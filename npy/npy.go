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
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/proxykit/proxykit/internal/atomicfile"
)

// Array is an n-dimensional float32 array in C order.
type Array struct {
	Shape []int
	Data  []float32
	// Dtype is the element type the file held ("<f4", "|u1", ...).
	Dtype string
}

var (
	descrRe   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	fortranRe = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	shapeRe   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// ReadFile reads a .npy file. float32, float64 and integer arrays are
// accepted and converted to float32; with scaleUint8, uint8 values are
// divided by 255 (pixels to [0, 1]).
func ReadFile(path string, scaleUint8 bool) (*Array, error) {
	f, err := os.Open(path)
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
	h := string(header)
	m := descrRe.FindStringSubmatch(h)
	if m == nil {
		return nil, errors.New(".npy header has no 'descr' field")
	}
	descr := m[1]
	if fm := fortranRe.FindStringSubmatch(h); fm != nil && fm[1] == "True" {
		return nil, errors.New("Fortran-order arrays are not supported; save with np.ascontiguousarray")
	}
	sm := shapeRe.FindStringSubmatch(h)
	if sm == nil {
		return nil, errors.New(".npy header has no 'shape' field")
	}
	var shape []int
	n := 1
	for _, part := range strings.Split(sm[1], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := strconv.Atoi(part)
		if err != nil || d < 0 {
			return nil, fmt.Errorf(".npy 'shape' field has a bad dimension %q", part)
		}
		shape = append(shape, d)
		if d > 0 && n > math.MaxInt32/d {
			return nil, errors.New(".npy array is too large")
		}
		n *= d
	}
	size, conv := decoder(descr, scaleUint8)
	if conv == nil {
		return nil, fmt.Errorf("unsupported .npy dtype %q (want float32, float64 or an integer type)", descr)
	}
	raw := make([]byte, n*size)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("truncated .npy data: shape %v needs %d bytes", shape, n*size)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = conv(raw[i*size : (i+1)*size])
	}
	return &Array{Shape: shape, Data: data, Dtype: descr}, nil
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

// Encode returns the .npy (version 1.0) bytes of a float32 array.
func Encode(shape []int, data []float32) []byte {
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
	buf.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&buf, binary.LittleEndian, uint16(len(header)))
	buf.WriteString(header)
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	buf.Write(raw)
	return buf.Bytes()
}

// WriteFile writes a float32 array to path atomically: the bytes go to a
// temporary file in the same folder, renamed over path when complete.
func WriteFile(path string, shape []int, data []float32) error {
	return atomicfile.Write(path, Encode(shape, data))
}
