package cuda

/*
#cgo CXXFLAGS: -std=c++20 -O2
#include <stdlib.h>
#include <string.h>
#include "emu_api.h"

// c_args copies n 8-byte argument values into C memory laid out as n
// pointers followed by the n values the pointers point to.
static void** c_args(const uint64_t* vals, int n) {
	void** a = (void**)malloc(n * 16 + 8);
	uint64_t* v = (uint64_t*)(a + n);
	for (int i = 0; i < n; i++) {
		v[i] = vals[i];
		a[i] = &v[i];
	}
	return a;
}
*/
import "C"

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/proxykit/proxykit/compute"
)

// cArgs returns a C copy of the argument list for a launch; free it after.
func cArgs(a *argList) unsafe.Pointer {
	if len(a.vals) == 0 {
		return unsafe.Pointer(C.c_args(nil, 0))
	}
	return unsafe.Pointer(C.c_args((*C.uint64_t)(unsafe.Pointer(&a.vals[0])), C.int(len(a.vals))))
}

// emuDevice is the emulated device: kernels.cu compiled for the host by
// cgo (emu.cpp), device memory in the C heap, GEMMs by compute.Sgemm. A
// dry one runs no kernel, GEMM or copy (Options.DryRun). While it
// captures, kernels, GEMMs and copies are recorded instead of run, with
// their arguments as they were queued, and the recording is the graph
// that later runs them (as a CUDA graph replays what a stream captured).
type emuDevice struct {
	dry bool
	rec *emuRecording // nil: not capturing (shared by the value's copies)
}

// emuRecording is what an emulated device records while it captures.
type emuRecording struct {
	on  bool
	ops []func() error
	bad string // what could not be captured
}

// emuGraph is an emulated device's graph: the recorded work.
type emuGraph struct{ ops []func() error }

func (g *emuGraph) nodes() int { return len(g.ops) }

// capturing records op when the device captures and reports whether it
// did.
func (d emuDevice) capturing(op func() error) bool {
	if d.rec == nil || !d.rec.on {
		return false
	}
	d.rec.ops = append(d.rec.ops, op)
	return true
}

// refuse notes what cannot be captured, while capturing.
func (d emuDevice) refuse(what string) error {
	if d.rec != nil && d.rec.on {
		if d.rec.bad == "" {
			d.rec.bad = what
		}
		return fmt.Errorf("emulated device: %s while capturing a graph", what)
	}
	return nil
}

func (d emuDevice) beginCapture() error {
	if d.rec.on {
		return fmt.Errorf("emulated device: a capture is under way")
	}
	*d.rec = emuRecording{on: true}
	return nil
}

func (d emuDevice) endCapture() (graph, error) {
	r := *d.rec
	*d.rec = emuRecording{}
	if r.bad != "" {
		return nil, fmt.Errorf("emulated device: cannot capture a graph: %s", r.bad)
	}
	return &emuGraph{ops: r.ops}, nil
}

func (d emuDevice) launchGraph(g graph) error {
	for _, op := range g.(*emuGraph).ops {
		if err := op(); err != nil {
			return err
		}
	}
	return nil
}

func (emuDevice) freeGraph(graph) {}

func (emuDevice) name() string { return "emulated CUDA device (host CPU)" }

func (d emuDevice) alloc(bytes int64) (devptr, error) {
	if err := d.refuse("an allocation"); err != nil {
		return 0, err
	}
	p := C.emu_alloc(C.uint64_t(bytes))
	if p == 0 {
		return 0, fmt.Errorf("emulated device: out of host memory for %d MB", bytes>>20)
	}
	return devptr(p), nil
}

func (emuDevice) free(p devptr) { C.emu_free(C.uint64_t(p)) }

// host is the host view of n floats at device address p.
func (emuDevice) host(p devptr, n int) []float32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(C.emu_ptr(C.uint64_t(p)))), n)
}

func (d emuDevice) htod(dst devptr, src []float32) error {
	if err := d.refuse("a copy from the host"); err != nil {
		return err
	}
	copy(d.host(dst, len(src)), src)
	return nil
}

func (d emuDevice) dtoh(dst []float32, src devptr) error {
	if err := d.refuse("a copy to the host"); err != nil {
		return err
	}
	copy(dst, d.host(src, len(dst)))
	return nil
}

func (d emuDevice) dtod(dst, src devptr, bytes int64) error {
	if d.capturing(func() error { return d.dtod(dst, src, bytes) }) {
		return nil
	}
	if d.dry {
		return nil
	}
	C.emu_copy(C.uint64_t(dst), C.uint64_t(src), C.uint64_t(bytes))
	return nil
}

func (emuDevice) kernelIndex(name string) (int, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	k := int(C.emu_kernel_index(cs))
	if k < 0 {
		return 0, fmt.Errorf("emulated device: no kernel %s in emu.cpp's table", name)
	}
	return k, nil
}

func (d emuDevice) launch(k int, grid, block dim3, args *argList) error {
	if d.capturing(func() error {
		return d.launch(k, grid, block, &argList{vals: slices.Clone(args.vals)})
	}) {
		return nil
	}
	if d.dry {
		return nil
	}
	ca := cArgs(args)
	defer C.free(ca)
	if C.emu_launch(C.int(k), C.unsigned(grid.x), C.unsigned(grid.y), C.unsigned(grid.z), C.unsigned(block.x),
		C.unsigned(block.y), C.unsigned(block.z), (*unsafe.Pointer)(ca)) != 0 {
		return fmt.Errorf("emulated device: bad kernel index %d", k)
	}
	return nil
}

// gemm is served by the CPU backend's GEMM, on the host views of the
// matrices (sized from their shapes and leading dimensions).
func (d emuDevice) gemm(transA, transB bool, m, n, k int, alpha float32, a devptr, lda int, b devptr, ldb int,
	beta float32, c devptr, ldc int) error {
	if d.capturing(func() error { return d.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) }) {
		return nil
	}
	if d.dry {
		return nil
	}
	na, nb := operandSpans(transA, transB, m, n, k, lda, ldb)
	return compute.Sgemm(transA, transB, m, n, k, alpha, d.host(a, na), lda, d.host(b, nb), ldb, beta, d.host(c, matrixSpan(m, ldc, n)), ldc)
}

// matrixSpan is how many values a row-major matrix of rows rows of cols values
// with leading dimension ld reaches.
func matrixSpan(rows, ld, cols int) int { return (rows-1)*ld + cols }

// operandSpans are the spans of a GEMM's operands A and B (gemm's
// contract).
func operandSpans(transA, transB bool, m, n, k, lda, ldb int) (na, nb int) {
	rowsA, colsA, rowsB, colsB := m, k, k, n
	if transA {
		rowsA, colsA = k, m
	}
	if transB {
		rowsB, colsB = n, k
	}
	return matrixSpan(rowsA, lda, colsA), matrixSpan(rowsB, ldb, colsB)
}

// gemmHalf converts the binary16 operands into float32 copies with the
// device's own pk_convert, multiplies them as gemm does (float32 sums)
// and rounds C back once. Where C has values between its rows (ldc > n)
// they are converted too and make the round trip binary16 → float32 →
// binary16 unchanged (signalling NaNs quieted).
func (d emuDevice) gemmHalf(transA, transB bool, m, n, k int, a devptr, lda int, b devptr, ldb int, c devptr, ldc int) error {
	if d.capturing(func() error { return d.gemmHalf(transA, transB, m, n, k, a, lda, b, ldb, c, ldc) }) {
		return nil
	}
	if d.dry {
		return nil
	}
	na, nb := operandSpans(transA, transB, m, n, k, lda, ldb)
	nc := matrixSpan(m, ldc, n)
	var f [3]devptr
	defer func() {
		for _, p := range f {
			if p != 0 {
				d.free(p)
			}
		}
	}()
	for i, op := range []struct {
		p devptr
		n int
	}{{a, na}, {b, nb}, {c, nc}} {
		var err error
		if f[i], err = d.alloc(4 * int64(op.n)); err != nil {
			return err
		}
		if i == 2 && ldc == n { // C is all written: its old values are not needed
			continue
		}
		if err := d.convert(op.p, true, f[i], false, op.n); err != nil {
			return err
		}
	}
	if err := d.gemm(transA, transB, m, n, k, 1, f[0], lda, f[1], ldb, 0, f[2], ldc); err != nil {
		return err
	}
	return d.convert(f[2], false, c, true, nc)
}

// convert runs pk_convert on n values (binary16 where half says so).
func (d emuDevice) convert(x devptr, xHalf bool, y devptr, yHalf bool, n int) error {
	k, err := d.kernelIndex("pk_convert")
	if err != nil {
		return err
	}
	blocks := min((int64(n)+blockSize-1)/blockSize, maxBlocks)
	return d.launch(k, dim3{uint32(blocks), 1, 1}, dim3{blockSize, 1, 1}, argsOf(x, b2i(xHalf), y, b2i(yHalf), int64(n)))
}

func (d emuDevice) sync() error                { return d.refuse("a wait for queued work") }
func (emuDevice) memInfo() (free, total int64) { return 0, 0 }
func (emuDevice) close() error                 { return nil }
