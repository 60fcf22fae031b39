package npy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures in testdata were written by NumPy (scripts/make_fixtures.py).
func TestReadsNumPyFiles(t *testing.T) {
	a, err := ReadFile("../testdata/lenet_opset11.x.npy", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 4 || a.Shape[0] != 8 || a.Shape[1] != 1 || a.Shape[2] != 28 || a.Shape[3] != 28 || a.Dtype != "<f4" {
		t.Fatalf("shape %v dtype %s", a.Shape, a.Dtype)
	}
	var lo, hi float32 = 1, 0
	for _, v := range a.Data {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo < 0 || hi > 1 || hi == 0 {
		t.Errorf("pixels span [%g, %g], want within [0, 1]", lo, hi)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, shape := range [][]int{{3}, {2, 5}, {0, 10}, {1, 2, 3, 4}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(i) * 0.25
		}
		b := Encode(shape, data)
		if (len(b)-len(data)*4)%64 != 0 {
			t.Errorf("shape %v: header not padded to 64 bytes", shape)
		}
		a, err := Read(bytes.NewReader(b), false)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Shape) != len(shape) || len(a.Data) != n {
			t.Fatalf("shape %v read back as %v", shape, a.Shape)
		}
		for i := range data {
			if a.Data[i] != data[i] {
				t.Fatalf("value %d: %g, want %g", i, a.Data[i], data[i])
			}
		}
	}
}

func TestBadFiles(t *testing.T) {
	good := Encode([]int{2, 2}, []float32{1, 2, 3, 4})
	cases := map[string][]byte{
		"too short":   []byte("\x93NUM"),
		"bad magic":   []byte("PK\x03\x04whatever"),
		"truncated":   good[:len(good)-3],
		"fortran":     bytes.Replace(good, []byte("'fortran_order': False"), []byte("'fortran_order': True "), 1),
		"bad dtype":   bytes.Replace(good, []byte("<f4"), []byte("<c8"), 1),
		"bad shape":   bytes.Replace(good, []byte("(2, 2)"), []byte("(2, x)"), 1),
		"no shape":    bytes.Replace(good, []byte("'shape'"), []byte("'shap3'"), 1),
		"huge header": append([]byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f"), good[10:]...),
	}
	for name, b := range cases {
		if _, err := Read(bytes.NewReader(b), false); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
}

func TestWriteFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "y.npy")
	if err := WriteFile(p, []int{1}, []float32{7}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "y.npy"), []int{1}, []float32{7}); err == nil {
		t.Error("write into a missing folder succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "tmp") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}
