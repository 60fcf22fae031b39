package floats

import (
	"encoding/binary"
	"math"
	"testing"
)

// TestRoundTrip holds FromLE and LE to encoding/binary's little-endian
// reading and writing, for aligned and unaligned bytes, and checks that on
// this machine FromLE shares aligned memory rather than copying.
func TestRoundTrip(t *testing.T) {
	vals := []float32{0, -0, 1, -2.5, float32(math.Inf(1)), float32(math.NaN()), math.SmallestNonzeroFloat32, math.MaxFloat32, 3.1415927}
	want := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(want[4*i:], math.Float32bits(v))
	}
	if got := LE(vals); string(got) != string(want) {
		t.Fatalf("LE: % x, want % x", got, want)
	}
	for off := 0; off < 4; off++ {
		buf := make([]byte, off+len(want))
		copy(buf[off:], want)
		got := FromLE(buf[off:])
		if len(got) != len(vals) {
			t.Fatalf("offset %d: %d values", off, len(got))
		}
		for i := range vals {
			if math.Float32bits(got[i]) != math.Float32bits(vals[i]) {
				t.Errorf("offset %d: value %d is %g, want %g", off, i, got[i], vals[i])
			}
		}
	}
	if littleEndian {
		b := make([]byte, 8)
		f := FromLE(b)
		f[1] = 1
		if binary.LittleEndian.Uint32(b[4:]) != math.Float32bits(1) {
			t.Error("FromLE copied aligned bytes on a little-endian machine")
		}
	}
	if len(FromLE(nil)) != 0 || len(LE(nil)) != 0 {
		t.Error("empty input")
	}
}
