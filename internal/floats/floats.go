// Package floats reads and writes float32 arrays stored as little-endian
// bytes (checkpoints, ONNX raw data) without per-element work where the
// machine's own layout is that one: on a little-endian machine the bytes
// are the values, and the slices share their memory.
package floats

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// littleEndian says whether this machine stores a float32 as IEEE 754
// little-endian bytes (every platform Go runs on except s390x and the
// big-endian MIPS and PowerPC ports).
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// FromLE returns the float32 values of b, little-endian, len(b)/4 of them
// (len(b) a multiple of 4). On a little-endian machine the result shares
// b's memory when b is 4-byte aligned (one copy otherwise, still no
// conversion); writing to it writes to b.
func FromLE(b []byte) []float32 {
	n := len(b) / 4
	if n == 0 {
		return []float32{}
	}
	if littleEndian {
		if uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
		}
		out := make([]float32, n)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 4*n), b)
		return out
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// LE returns the little-endian bytes of f. On a little-endian machine
// they share f's memory (writing to them writes to f).
func LE(f []float32) []byte {
	if len(f) == 0 {
		return []byte{}
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
	}
	b := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
