package importer

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestAlignedMovesInPlace: a large initializer's bytes at every offset
// modulo 4 in the file come back 4-byte aligned, in the file's own memory
// (no copy), equal to what they were, having overwritten only the three
// bytes before them (their field's header); a small one, or bytes not in
// data, come back as they were.
func TestAlignedMovesInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for off := 3; off < 11; off++ {
		data := make([]byte, off+minRawBytes+16)
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		raw := data[off : off+minRawBytes]
		want := bytes.Clone(raw)
		before, after := bytes.Clone(data[:off-3]), bytes.Clone(data[off+minRawBytes:])
		got := aligned(data, raw)
		if p := uintptr(unsafe.Pointer(&got[0])); p%4 != 0 {
			t.Errorf("offset %d: the values start at %#x, not on 4 bytes", off, p)
		}
		base := uintptr(unsafe.Pointer(&data[0]))
		if p := uintptr(unsafe.Pointer(&got[0])); p < base || p+uintptr(len(got)) > base+uintptr(len(data)) {
			t.Errorf("offset %d: the values left the file's memory", off)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("offset %d: the moved bytes differ from the initializer's", off)
		}
		if !bytes.Equal(data[:off-3], before) || !bytes.Equal(data[off+minRawBytes:], after) {
			t.Errorf("offset %d: bytes outside the initializer and its header's last three changed", off)
		}
	}
	data := make([]byte, 64)
	if small := data[1:17]; &aligned(data, small)[0] != &small[0] {
		t.Error("a small initializer was moved")
	}
	other := make([]byte, minRawBytes+1)[1:]
	if &aligned(data, other)[0] != &other[0] {
		t.Error("bytes outside data were moved")
	}
}
