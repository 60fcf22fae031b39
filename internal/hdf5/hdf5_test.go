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
