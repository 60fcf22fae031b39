package npy

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// encode is Encode, failing t on an error.
func encode(t testing.TB, shape []int, data []float32) []byte {
	t.Helper()
	b, err := Encode(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncodeRefusesAShapeThatIsNotTheData (F7): a shape that does not
// hold the data — fewer or more values, a negative dimension, a product
// that overflows, more dimensions than NumPy reads — is refused, by Encode
// and by WriteFile, which writes nothing (on 8d3f05f it wrote a file
// NumPy could not read).
func TestEncodeRefusesAShapeThatIsNotTheData(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		shape []int
		n     int
		want  string
	}{
		{[]int{2, 3}, 5, "shape [2 3] holds 6 values, the data 5"},
		{[]int{2, 3}, 7, "holds 6 values, the data 7"},
		{[]int{-2, -3}, 6, "negative dimension"},
		{[]int{1 << 62, 1 << 62}, 0, "more values than an int counts"},
		{make([]int, 65), 0, "65 dimensions"},
		{nil, 0, "holds 1 values, the data 0"},
	} {
		if _, err := Encode(c.shape, make([]float32, c.n)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Encode(%v, %d values): %v; want an error saying %q", c.shape, c.n, err, c.want)
		}
		path := filepath.Join(dir, "x.npy")
		if err := WriteFile(path, c.shape, make([]float32, c.n)); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("WriteFile(%v, %d values): %v", c.shape, c.n, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("WriteFile(%v, %d values) wrote a file", c.shape, c.n)
		}
	}
	if _, err := Read(nil, false); err == nil {
		t.Error("Read(nil): no error")
	}
}

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
		b := encode(t, shape, data)
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
	good := encode(t, []int{2, 2}, []float32{1, 2, 3, 4})
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

// header builds a version-1 .npy preamble around a header text.
func header(h string) []byte {
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	b.WriteByte(byte(len(h)))
	b.WriteByte(byte(len(h) >> 8))
	b.WriteString(h)
	return b.Bytes()
}

// TestHostileFiles feeds broken and lying .npy files: each must be refused
// with a clear error, and a header that claims 2·10⁹ float64 values in a
// 128-byte file must not allocate for them.
func TestHostileFiles(t *testing.T) {
	good := encode(t, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"trailing junk":   {append(append([]byte(nil), good...), 0, 0, 0, 0), "trailing bytes"},
		"truncated":       {good[:len(good)-1], "truncated"},
		"no shape":        {header("{'descr': '<f4', 'fortran_order': False, }\n"), `no "shape"`},
		"extra key":       {header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n"), `unknown key "x"`},
		"duplicate key":   {header("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}\n"), "twice"},
		"open tuple":      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}\n"), "'shape'"},
		"negative dim":    {header("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}\n"), "'shape'"},
		"int not tuple":   {header("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}\n"), "'shape'"},
		"fortran maybe":   {header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}\n"), "True or False"},
		"not a dict":      {header("['descr', '<f4']\n"), "not a dict"},
		"junk after dict": {header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x\n"), "not a dict"},
		"huge claim":      {header("{'descr': '<f8', 'fortran_order': False, 'shape': (2000000000,), }" + strings.Repeat(" ", 40) + "\n"), "truncated"},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Read(bytes.NewReader(c.data), false)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one with %q", name, err, c.want)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("%s: allocated %d bytes for a %d-byte file", name, grew, len(c.data))
		}
	}
	if a, err := Read(bytes.NewReader(good), false); err != nil || len(a.Data) != 6 {
		t.Errorf("the good file: %v", err)
	}
}

// FuzzRead feeds damaged .npy files: refused or read, never a panic, and
// what is read holds as many values as its shape says.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"../testdata/lenet_opset11.x.npy", "../testdata/pt/x.npy", "../testdata/asym_opset21.ann.npy"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(header("{'descr': '<f8', 'fortran_order': False, 'shape': (2000000000,), }\n"))
	f.Add(append(encode(f, []int{2}, []float32{1, 2}), 7))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(bytes.NewReader(data), true)
		if err != nil {
			return
		}
		n := 1
		for _, d := range a.Shape {
			n *= d
		}
		if n != len(a.Data) {
			t.Fatalf("shape %v but %d values", a.Shape, len(a.Data))
		}
	})
}
