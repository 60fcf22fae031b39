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
// dry one runs no kernel, GEMM or copy (Options.DryRun).
type emuDevice struct{ dry bool }

func (emuDevice) name() string { return "emulated CUDA device (host CPU)" }

func (emuDevice) alloc(bytes int64) (devptr, error) {
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
	copy(d.host(dst, len(src)), src)
	return nil
}

func (d emuDevice) dtoh(dst []float32, src devptr) error {
	copy(dst, d.host(src, len(dst)))
	return nil
}

func (d emuDevice) dtod(dst, src devptr, bytes int64) error {
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
	if d.dry {
		return nil
	}
	rowsA, rowsB := m, k
	if transA {
		rowsA = k
	}
	if transB {
		rowsB = n
	}
	span := func(rows, ld, cols int) int { return (rows-1)*ld + cols }
	colsA, colsB := k, n
	if transA {
		colsA = m
	}
	if transB {
		colsB = k
	}
	return compute.Sgemm(transA, transB, m, n, k, alpha, d.host(a, span(rowsA, lda, colsA)), lda,
		d.host(b, span(rowsB, ldb, colsB)), ldb, beta, d.host(c, span(m, ldc, n)), ldc)
}

func (emuDevice) sync() error                  { return nil }
func (emuDevice) memInfo() (free, total int64) { return 0, 0 }
func (emuDevice) close() error                 { return nil }
