// Package cuda is the CUDA backend of package compute: the kernels in
// kernels.cu, launched through the CUDA driver API on an NVIDIA GPU (build
// with -tags cuda), or on the emulated device, which compiles the same
// kernels for the host and runs them on the CPU (in every build). Above
// the kernels — launch sizes, buffer offsets, the SNN's multi-step order,
// host/device copies — the Go code is the same for both devices, so every
// CI run checks it without a GPU.
package cuda

import (
	_ "embed"
	"fmt"
	"unsafe"
)

// kernelSource is kernels.cu. Embedding it makes the Go build, and its
// cache, follow the kernels' source, which emu.cpp compiles for the
// emulated device (the go command does not track .cu files otherwise).
//
//go:embed kernels.cu
var kernelSource string

// devptr is a device address.
type devptr uint64

// dim3 is a launch's grid or block size.
type dim3 struct{ x, y, z uint32 }

// device is what the backend needs from the GPU or its emulation.
type device interface {
	// name describes the device for messages.
	name() string
	// alloc returns bytes of zeroed device memory.
	alloc(bytes int64) (devptr, error)
	free(p devptr)
	htod(dst devptr, src []float32) error
	dtoh(dst []float32, src devptr) error
	dtod(dst, src devptr, bytes int64) error
	// launch queues kernel k (an index from kernelIndex) on grid × block
	// with the given arguments (see args).
	launch(k int, grid, block dim3, args *argList) error
	kernelIndex(name string) (int, error)
	// gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices
	// (compute.Sgemm's contract), on cuBLAS or on the host.
	gemm(transA, transB bool, m, n, k int, alpha float32, a devptr, lda int, b devptr, ldb int, beta float32, c devptr, ldc int) error
	// gemmHalf computes C = op(A)·op(B) for row-major binary16 matrices
	// (leading dimensions in values), with float32 products and sums and
	// C rounded to binary16 once (cublasGemmEx, CUBLAS_COMPUTE_32F).
	gemmHalf(transA, transB bool, m, n, k int, a devptr, lda int, b devptr, ldb int, c devptr, ldc int) error
	// sync waits for queued work and returns its first error.
	sync() error
	// memInfo reports free and total device memory (0, 0 if unknown).
	memInfo() (free, total int64)
	close() error
	// beginCapture starts recording the work queued after it — kernels,
	// GEMMs, device copies — into a graph instead of running it;
	// endCapture ends the recording and returns the graph (an error where
	// something in between cannot be captured: a host copy, a wait, an
	// allocation). launchGraph runs a graph's work in its order;
	// freeGraph releases it.
	beginCapture() error
	endCapture() (graph, error)
	launchGraph(g graph) error
	freeGraph(g graph)
}

// graph is a device's recording of queued work (a CUDA graph on the GPU).
type graph interface{ nodes() int }

// args builds a kernel's argument list: a pointer to each argument's
// value, as cuLaunchKernel takes them, in memory that C code may keep
// during the call. Kernel parameters are typed exactly: devptr for
// pointers, int32 for int, int64 for long long, float32 for float.
type argList struct {
	vals []uint64
	ptrs []unsafe.Pointer
}

// argsOf packs values for a launch.
func argsOf(vals ...any) *argList {
	a := &argList{vals: make([]uint64, len(vals))}
	for i, v := range vals {
		switch v := v.(type) {
		case devptr:
			a.vals[i] = uint64(v)
		case int32:
			*(*int32)(unsafe.Pointer(&a.vals[i])) = v
		case int64:
			a.vals[i] = uint64(v)
		case float32:
			*(*float32)(unsafe.Pointer(&a.vals[i])) = v
		default:
			panic(fmt.Sprintf("cuda: kernel argument %d has type %T", i, v))
		}
	}
	return a
}
