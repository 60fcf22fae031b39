package hdf5

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestReadBackWithH5py writes each kind of dataset and reads the file with
// Debian's h5py, an independent reader.
func TestReadBackWithH5py(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.h5")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	root := f.Root()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(root.String("version", "0.5.0"))
	g, err := root.Group("node")
	must(err)
	must(g.String("type", "IF"))
	must(g.Float32("w", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6.5}))
	must(g.Int64("stride", []int{2}, []int64{1, 2}))
	must(g.Float32("scalar", nil, []float32{0.25}))
	must(g.Strings("edges", []int{2, 2}, []string{"a", "b", "b", "c"}))
	g.Close()
	must(f.Close())
	script := `
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f["version"][()] == b"0.5.0", f["version"][()]
n = f["node"]
assert n["type"][()] == b"IF"
assert n["w"].dtype == "float32" and n["w"].shape == (2, 3) and n["w"][1, 2] == 6.5
assert n["stride"].dtype == "int64" and list(n["stride"][()]) == [1, 2]
assert n["scalar"][()] == 0.25
assert n["edges"].shape == (2, 2) and n["edges"][1, 0] == b"b"
print("ok")
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("h5py (python3-h5py, installed by scripts/setup.sh) rejects the file: %v\n%s", err, out)
	}
}

func TestCreateFailsCleanly(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "missing", "x.h5")); err == nil {
		t.Error("created a file in a missing folder")
	}
}

// TestErrorsPrintNothing: a failing HDF5 call returns an error and prints
// nothing on stderr, whichever OS thread makes it (a full disk once
// printed hundreds of lines of HDF5's error stack).
func TestErrorsPrintNothing(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Dup2(int(w.Fd()), 2)
	var failures atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ { // on fresh OS threads, where nothing was set up
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			runtime.LockOSThread()
			f, err := Create(filepath.Join(t.TempDir(), fmt.Sprintf("%d.h5", i)))
			if err != nil {
				return
			}
			defer f.Close()
			root := f.Root()
			root.String("x", "a")
			if root.String("x", "again") != nil { // the name exists: HDF5 fails
				failures.Add(1)
			}
		}(i)
	}
	wg.Wait()
	syscall.Dup2(saved, 2)
	w.Close()
	printed, _ := io.ReadAll(r)
	if failures.Load() != 4 {
		t.Fatalf("%d of 4 duplicate writes failed", failures.Load())
	}
	if len(printed) > 0 {
		t.Errorf("HDF5 printed on stderr:\n%s", printed)
	}
}

// TestMissingLibrarySaysWhat runs a process in which the library cannot
// be found: Create fails with what to install, and nothing else breaks.
func TestMissingLibrarySaysWhat(t *testing.T) {
	if os.Getenv("PROXYKIT_HDF5") == "/nonexistent/libhdf5.so" {
		_, err := Create(filepath.Join(t.TempDir(), "x.h5"))
		if err == nil || !strings.Contains(err.Error(), "libhdf5") || !strings.Contains(err.Error(), "PROXYKIT_HDF5") {
			t.Fatalf("Create without the library: %v", err)
		}
		if Available() == nil {
			t.Fatal("Available says the missing library is there")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMissingLibrarySaysWhat$")
	cmd.Env = append(os.Environ(), "PROXYKIT_HDF5=/nonexistent/libhdf5.so")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestReadWhatH5pyWrites reads a file h5py writes the way NIR's Python
// package does (gzip-compressed arrays, float64 and int32 values,
// variable-length UTF-8 strings) plus fixed-length strings, and a file of
// this package's own writing.
func TestReadWhatH5pyWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "py.h5")
	script := `
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("version", data="1.0", dtype=h5py.string_dtype())
    g = f.create_group("node")
    g.create_dataset("w", data=np.arange(6, dtype=np.float64).reshape(2, 3) / 4, compression="gzip")
    g.create_dataset("i", data=np.array([3, -1], dtype=np.int32), compression="gzip")
    g.create_dataset("s", data=np.int64(7))
    g.create_dataset("edges", data=np.array([["a", "bb"], ["bb", "ccc"]], dtype=object), dtype=h5py.string_dtype())
    g.create_dataset("fixed", data=np.array([b"ab", b"c"], dtype="S3"))
    g.create_group("meta")
`
	if out, err := exec.Command("/usr/bin/python3", "-c", script, path).CombinedOutput(); err != nil {
		t.Fatalf("h5py (python3-h5py, installed by scripts/setup.sh): %v\n%s", err, out)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root := f.Root()
	if names, err := root.Members(); err != nil || strings.Join(names, ",") != "node,version" {
		t.Fatalf("root members %v, %v", names, err)
	}
	g, err := root.Open("node")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	names, err := g.Members()
	if err != nil || strings.Join(names, ",") != "edges,fixed,i,meta,s,w" {
		t.Fatalf("members %v, %v", names, err)
	}
	if k, err := g.Kind("meta"); err != nil || k != IsGroup {
		t.Errorf("meta: kind %d, %v", k, err)
	}
	if k, err := g.Kind("w"); err != nil || k != IsDataset {
		t.Errorf("w: kind %d, %v", k, err)
	}
	if _, err := g.Kind("absent"); err == nil {
		t.Error("a missing member has a kind")
	}
	read := func(name string) *Dataset {
		t.Helper()
		d, err := g.Dataset(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		return d
	}
	w := read("w")
	if v, err := w.Float32(); err != nil || w.Class != Float || fmt.Sprint(w.Shape, v) != "[2 3] [0 0.25 0.5 0.75 1 1.25]" {
		t.Errorf("w: %v %v %v", w.Shape, v, err)
	}
	if v, err := w.Float64(); err != nil || v[5] != 1.25 {
		t.Errorf("w as float64: %v %v", v, err)
	}
	if _, err := w.Int64(); err == nil {
		t.Error("floats read as integers")
	}
	if v, err := read("i").Int64(); err != nil || fmt.Sprint(v) != "[3 -1]" {
		t.Errorf("i: %v %v", v, err)
	}
	if s := read("s"); len(s.Shape) != 0 || s.Len() != 1 {
		t.Errorf("scalar shape %v", s.Shape)
	} else if v, err := s.Int64(); err != nil || v[0] != 7 {
		t.Errorf("s: %v %v", v, err)
	}
	if v, err := read("edges").Strings(); err != nil || strings.Join(v, ",") != "a,bb,bb,ccc" {
		t.Errorf("edges: %q %v", v, err)
	}
	if v, err := read("fixed").Strings(); err != nil || strings.Join(v, ",") != "ab,c" {
		t.Errorf("fixed: %q %v", v, err)
	}
	if _, err := read("w").Strings(); err == nil {
		t.Error("numbers read as strings")
	}
	d, err := root.Dataset("version")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v, err := d.Strings(); err != nil || len(v) != 1 || v[0] != "1.0" {
		t.Errorf("version %q %v", v, err)
	}

	// what this package writes reads back
	own := filepath.Join(t.TempDir(), "own.h5")
	wf, err := Create(own)
	if err != nil {
		t.Fatal(err)
	}
	wr := wf.Root()
	if err := wr.Float32("x", []int{3}, []float32{1, 2.5, -3}); err != nil {
		t.Fatal(err)
	}
	if err := wr.String("type", "Conv2d"); err != nil {
		t.Fatal(err)
	}
	if err := wf.Close(); err != nil {
		t.Fatal(err)
	}
	rf, err := Open(own)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	x, err := rf.Root().Dataset("x")
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	typ, err := rf.Root().Dataset("type")
	if err != nil {
		t.Fatal(err)
	}
	defer typ.Close()
	if v, err := x.Float32(); err != nil || fmt.Sprint(v) != "[1 2.5 -3]" {
		t.Errorf("own x: %v %v", v, err)
	}
	if v, err := typ.Strings(); err != nil || v[0] != "Conv2d" {
		t.Errorf("own type: %v %v", v, err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "absent.h5")); err == nil {
		t.Error("opened a missing file")
	}
}
