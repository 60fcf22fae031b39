//go:build cuda

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The CUDA driver API, cuBLAS and cuDNN are loaded at run time with dlopen:
// a binary linked against them would not start on a machine without an
// NVIDIA driver, and cuBLAS's symbols carry its major version. Only the
// few entry points proxykit calls are declared, with the ABI types of
// cuda.h, cublas_api.h and cudnn.h.

typedef int CUresult;
typedef int CUdevice;
typedef void* CUcontext;
typedef void* CUmodule;
typedef void* CUfunction;
typedef void* CUstream;
typedef void* CUgraph;
typedef void* CUgraphExec;
typedef void* CUgraphNode;
typedef unsigned long long CUdeviceptr;

typedef struct {
	void* lib;
	CUresult (*cuInit)(unsigned);
	CUresult (*cuDriverGetVersion)(int*);
	CUresult (*cuDeviceGetCount)(int*);
	CUresult (*cuDeviceGet)(CUdevice*, int);
	CUresult (*cuDeviceGetName)(char*, int, CUdevice);
	CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice);
	CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
	CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
	CUresult (*cuCtxSetCurrent)(CUcontext);
	CUresult (*cuCtxSynchronize)(void);
	CUresult (*cuModuleLoadDataEx)(CUmodule*, const void*, unsigned, int*, void**);
	CUresult (*cuModuleUnload)(CUmodule);
	CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*);
	CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
		CUstream, void**, void**);
	CUresult (*cuMemAlloc)(CUdeviceptr*, size_t);
	CUresult (*cuMemFree)(CUdeviceptr);
	CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void*, size_t);
	CUresult (*cuMemcpyDtoH)(void*, CUdeviceptr, size_t);
	CUresult (*cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
	CUresult (*cuMemGetInfo)(size_t*, size_t*);
	CUresult (*cuGetErrorString)(CUresult, const char**);
	// streams and graphs (Options.Graphs), loaded by pk_cu_load_graphs
	CUresult (*cuStreamCreate)(CUstream*, unsigned);
	CUresult (*cuStreamDestroy)(CUstream);
	CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
	CUresult (*cuStreamBeginCapture)(CUstream, int);
	CUresult (*cuStreamEndCapture)(CUstream, CUgraph*);
	CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec*, CUgraph, unsigned long long);
	CUresult (*cuGraphLaunch)(CUgraphExec, CUstream);
	CUresult (*cuGraphExecDestroy)(CUgraphExec);
	CUresult (*cuGraphDestroy)(CUgraph);
	CUresult (*cuGraphGetNodes)(CUgraph, CUgraphNode*, size_t*);
	CUstream stream; // NULL: the legacy default stream
} pk_cu;

#define PK_SYM(api, field, name) \
	if (((api)->field = dlsym((api)->lib, name)) == NULL) return name;

// pk_cu_load opens libcuda.so.1; it returns NULL, or what failed.
static const char* pk_cu_load(pk_cu* a) {
	memset(a, 0, sizeof *a);
	a->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (a->lib == NULL) return "libcuda.so.1";
	PK_SYM(a, cuInit, "cuInit");
	PK_SYM(a, cuDriverGetVersion, "cuDriverGetVersion");
	PK_SYM(a, cuDeviceGetCount, "cuDeviceGetCount");
	PK_SYM(a, cuDeviceGet, "cuDeviceGet");
	PK_SYM(a, cuDeviceGetName, "cuDeviceGetName");
	PK_SYM(a, cuDeviceGetAttribute, "cuDeviceGetAttribute");
	PK_SYM(a, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
	PK_SYM(a, cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
	PK_SYM(a, cuCtxSetCurrent, "cuCtxSetCurrent");
	PK_SYM(a, cuCtxSynchronize, "cuCtxSynchronize");
	PK_SYM(a, cuModuleLoadDataEx, "cuModuleLoadDataEx");
	PK_SYM(a, cuModuleUnload, "cuModuleUnload");
	PK_SYM(a, cuModuleGetFunction, "cuModuleGetFunction");
	PK_SYM(a, cuLaunchKernel, "cuLaunchKernel");
	PK_SYM(a, cuMemAlloc, "cuMemAlloc_v2");
	PK_SYM(a, cuMemFree, "cuMemFree_v2");
	PK_SYM(a, cuMemcpyHtoD, "cuMemcpyHtoD_v2");
	PK_SYM(a, cuMemcpyDtoH, "cuMemcpyDtoH_v2");
	PK_SYM(a, cuMemcpyDtoD, "cuMemcpyDtoD_v2");
	PK_SYM(a, cuMemGetInfo, "cuMemGetInfo_v2");
	PK_SYM(a, cuGetErrorString, "cuGetErrorString");
	return NULL;
}

// pk_cu_load_graphs loads what CUDA graphs need; it returns NULL, or the
// symbol missing.
static const char* pk_cu_load_graphs(pk_cu* a) {
	PK_SYM(a, cuStreamCreate, "cuStreamCreate");
	PK_SYM(a, cuStreamDestroy, "cuStreamDestroy_v2");
	PK_SYM(a, cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
	PK_SYM(a, cuStreamBeginCapture, "cuStreamBeginCapture_v2");
	PK_SYM(a, cuStreamEndCapture, "cuStreamEndCapture");
	PK_SYM(a, cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
	PK_SYM(a, cuGraphLaunch, "cuGraphLaunch");
	PK_SYM(a, cuGraphExecDestroy, "cuGraphExecDestroy");
	PK_SYM(a, cuGraphDestroy, "cuGraphDestroy");
	PK_SYM(a, cuGraphGetNodes, "cuGraphGetNodes");
	return NULL;
}

// The stream every piece of work is queued on when graphs are used: a
// blocking stream (flags 0), so that the synchronous host copies on the
// legacy stream still wait for it.
static CUresult pk_cu_stream(pk_cu* a) { return a->cuStreamCreate(&a->stream, 0); }
static CUresult pk_cu_stream_destroy(pk_cu* a) {
	CUresult r = a->stream ? a->cuStreamDestroy(a->stream) : 0;
	a->stream = NULL;
	return r;
}
// CU_STREAM_CAPTURE_MODE_RELAXED: calls of this process's other threads do
// not end the capture.
static CUresult pk_cu_begin_capture(pk_cu* a) { return a->cuStreamBeginCapture(a->stream, 2); }
static CUresult pk_cu_end_capture(pk_cu* a, CUgraph* g, CUgraphExec* e, size_t* nodes) {
	CUresult r = a->cuStreamEndCapture(a->stream, g);
	if (r != 0) return r;
	if ((r = a->cuGraphGetNodes(*g, NULL, nodes)) != 0) return r;
	return a->cuGraphInstantiateWithFlags(e, *g, 0);
}
static CUresult pk_cu_graph_launch(pk_cu* a, CUgraphExec e) { return a->cuGraphLaunch(e, a->stream); }
static void pk_cu_graph_free(pk_cu* a, CUgraph g, CUgraphExec e) {
	if (e) a->cuGraphExecDestroy(e);
	if (g) a->cuGraphDestroy(g);
}

static const char* pk_cu_error(pk_cu* a, CUresult r) {
	const char* s = NULL;
	if (a->cuGetErrorString == NULL || a->cuGetErrorString(r, &s) != 0 || s == NULL) return "unknown CUDA error";
	return s;
}

static CUresult pk_cu_init(pk_cu* a) { return a->cuInit(0); }
static CUresult pk_cu_count(pk_cu* a, int* n) { return a->cuDeviceGetCount(n); }
static CUresult pk_cu_device(pk_cu* a, int ordinal, CUdevice* d) { return a->cuDeviceGet(d, ordinal); }
static CUresult pk_cu_name(pk_cu* a, CUdevice d, char* buf, int n) { return a->cuDeviceGetName(buf, n, d); }
static CUresult pk_cu_attr(pk_cu* a, CUdevice d, int attr, int* v) { return a->cuDeviceGetAttribute(v, attr, d); }
static CUresult pk_cu_driver(pk_cu* a, int* v) { return a->cuDriverGetVersion(v); }
static CUresult pk_cu_retain(pk_cu* a, CUdevice d, CUcontext* c) { return a->cuDevicePrimaryCtxRetain(c, d); }
static CUresult pk_cu_release(pk_cu* a, CUdevice d) { return a->cuDevicePrimaryCtxRelease(d); }
static CUresult pk_cu_set(pk_cu* a, CUcontext c) { return a->cuCtxSetCurrent(c); }
static CUresult pk_cu_sync(pk_cu* a) { return a->cuCtxSynchronize(); }
static CUresult pk_cu_alloc(pk_cu* a, size_t bytes, CUdeviceptr* p) { return a->cuMemAlloc(p, bytes); }
static CUresult pk_cu_free(pk_cu* a, CUdeviceptr p) { return a->cuMemFree(p); }
static CUresult pk_cu_htod(pk_cu* a, CUdeviceptr d, const void* s, size_t n) { return a->cuMemcpyHtoD(d, s, n); }
static CUresult pk_cu_dtoh(pk_cu* a, void* d, CUdeviceptr s, size_t n) { return a->cuMemcpyDtoH(d, s, n); }
static CUresult pk_cu_dtod(pk_cu* a, CUdeviceptr d, CUdeviceptr s, size_t n) {
	return a->stream ? a->cuMemcpyDtoDAsync(d, s, n, a->stream) : a->cuMemcpyDtoD(d, s, n);
}
static CUresult pk_cu_meminfo(pk_cu* a, size_t* f, size_t* t) { return a->cuMemGetInfo(f, t); }
static CUresult pk_cu_function(pk_cu* a, CUmodule m, const char* name, CUfunction* f) {
	return a->cuModuleGetFunction(f, m, name);
}
static CUresult pk_cu_unload(pk_cu* a, CUmodule m) { return a->cuModuleUnload(m); }

// pk_cu_load_ptx JIT-compiles PTX, returning the compiler's error log in log.
static CUresult pk_cu_load_ptx(pk_cu* a, const char* ptx, CUmodule* m, char* log, size_t logSize) {
	int opts[2] = {5, 6}; // CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
	void* vals[2] = {log, (void*)(uintptr_t)logSize};
	return a->cuModuleLoadDataEx(m, ptx, 2, opts, vals);
}

static CUresult pk_cu_launch(pk_cu* a, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
	unsigned bz, void** args) {
	return a->cuLaunchKernel(f, gx, gy, gz, bx, by, bz, 0, a->stream, args, NULL);
}

// cuBLAS

typedef void* cublasHandle_t;
typedef struct {
	void* lib;
	int (*create)(cublasHandle_t*);
	int (*destroy)(cublasHandle_t);
	int (*setMathMode)(cublasHandle_t, int);
	int (*sgemm)(cublasHandle_t, int, int, int, int, int, const float*, const float*, int, const float*, int,
		const float*, float*, int);
	int (*gemmEx)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int,
		const void*, void*, int, int, int, int);
	int (*setStream)(cublasHandle_t, void*);
	int (*setWorkspace)(cublasHandle_t, void*, size_t);
	cublasHandle_t h;
} pk_blas;

static const char* pk_blas_load(pk_blas* b, const char* path) {
	memset(b, 0, sizeof *b);
	b->lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (b->lib == NULL) return path;
	PK_SYM(b, create, "cublasCreate_v2");
	PK_SYM(b, destroy, "cublasDestroy_v2");
	PK_SYM(b, setMathMode, "cublasSetMathMode");
	PK_SYM(b, sgemm, "cublasSgemm_v2");
	PK_SYM(b, gemmEx, "cublasGemmEx");
	b->setStream = dlsym(b->lib, "cublasSetStream_v2");
	b->setWorkspace = dlsym(b->lib, "cublasSetWorkspace_v2");
	return NULL;
}

// pk_blas_stream puts cuBLAS's work on stream s with a workspace of its
// own (so that a graph capture allocates nothing); it returns 0, or -1
// where this cuBLAS cannot.
static int pk_blas_stream(pk_blas* b, void* s, CUdeviceptr ws, size_t bytes) {
	if (b->setStream == NULL || b->setWorkspace == NULL) return -1;
	int st = b->setStream(b->h, s);
	if (st != 0) return st;
	return b->setWorkspace(b->h, (void*)ws, bytes);
}

static int pk_blas_create(pk_blas* b, int mathMode) {
	int st = b->create(&b->h);
	if (st != 0) return st;
	return b->setMathMode(b->h, mathMode);
}

static int pk_blas_sgemm(pk_blas* b, int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr A, int lda,
	CUdeviceptr B, int ldb, float beta, CUdeviceptr C, int ldc) {
	return b->sgemm(b->h, ta, tb, m, n, k, &alpha, (const float*)A, lda, (const float*)B, ldb, &beta, (float*)C, ldc);
}

// pk_blas_hgemm is cublasGemmEx on binary16 A, B and C (CUDA_R_16F, 2)
// with float32 scalars, products and sums (CUBLAS_COMPUTE_32F, 68) and
// cuBLAS's choice of algorithm (CUBLAS_GEMM_DEFAULT, -1).
static int pk_blas_hgemm(pk_blas* b, int ta, int tb, int m, int n, int k, CUdeviceptr A, int lda, CUdeviceptr B,
	int ldb, CUdeviceptr C, int ldc) {
	float alpha = 1, beta = 0;
	return b->gemmEx(b->h, ta, tb, m, n, k, &alpha, (const void*)A, 2, lda, (const void*)B, 2, ldb, &beta, (void*)C, 2,
		ldc, 68, -1);
}

static void pk_blas_destroy(pk_blas* b) {
	if (b->h != NULL) b->destroy(b->h);
	b->h = NULL;
}
*/
import "C"

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"

	"github.com/proxykit/proxykit/setting"
)

// kernelPTX is kernels.cu compiled by nvcc for compute_80 (gen.go); the
// driver JIT-compiles it for the GPU at hand.
//
//go:embed kernels.ptx
var kernelPTX string

// gpuDevice is an NVIDIA GPU through the driver API. Every call makes the
// device's primary context current on a locked OS thread first (cuBLAS
// failed with a context of proxykit's own).
type gpuDevice struct {
	api     *C.pk_cu
	blas    *C.pk_blas
	dev     C.CUdevice
	ctx     C.CUcontext
	module  C.CUmodule
	funcs   []C.CUfunction
	index   map[string]int
	desc    string
	dnn     *cudnn
	dnnWarn string
	blasWS  C.CUdeviceptr // cuBLAS's workspace where graphs are used
}

// gpuGraph is a captured CUDA graph, instantiated.
type gpuGraph struct {
	g C.CUgraph
	e C.CUgraphExec
	n int
}

func (gg *gpuGraph) nodes() int { return gg.n }

func (g *gpuDevice) check(what string, r C.CUresult) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s (CUDA error %d)", what, C.GoString(C.pk_cu_error(g.api, r)), int(r))
}

// enter makes the context current on this OS thread; the caller defers exit.
func (g *gpuDevice) enter() {
	runtime.LockOSThread()
	C.pk_cu_set(g.api, g.ctx)
}

func (g *gpuDevice) exit() { runtime.UnlockOSThread() }

// visibleGPUs counts the GPUs the driver shows this process (after
// CUDA_VISIBLE_DEVICES).
func visibleGPUs() (int, error) {
	api := (*C.pk_cu)(C.malloc(C.sizeof_pk_cu))
	defer C.free(unsafe.Pointer(api))
	if missing := C.pk_cu_load(api); missing != nil {
		return 0, setting.Errorf("%s cuda: no NVIDIA driver here (%s not found)", setting.Device, C.GoString(missing))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if r := C.pk_cu_init(api); r != 0 {
		return 0, setting.Errorf("%s cuda: the NVIDIA driver found no usable GPU: cuInit: %s (CUDA error %d)", setting.Device, C.GoString(C.pk_cu_error(api, r)), int(r))
	}
	var n C.int
	if r := C.pk_cu_count(api, &n); r != 0 {
		return 0, setting.Errorf("%s cuda: cuDeviceGetCount: %s (CUDA error %d)", setting.Device, C.GoString(C.pk_cu_error(api, r)), int(r))
	}
	return int(n), nil
}

// openGPU loads the driver, picks the device, loads the kernels and cuBLAS.
func openGPU(opt Options) (device, error) {
	g := &gpuDevice{api: (*C.pk_cu)(C.malloc(C.sizeof_pk_cu)), blas: (*C.pk_blas)(C.malloc(C.sizeof_pk_blas)),
		index: map[string]int{}}
	C.memset(unsafe.Pointer(g.blas), 0, C.sizeof_pk_blas)
	if missing := C.pk_cu_load(g.api); missing != nil {
		return nil, setting.Errorf("%s cuda: no NVIDIA driver here (%s not found): it needs an NVIDIA GPU and its driver; "+
			"%[1]s cuda-emu runs the same code path on the CPU", setting.Device, C.GoString(missing))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := g.check("cuInit", C.pk_cu_init(g.api)); err != nil {
		return nil, setting.Errorf("%s cuda: the NVIDIA driver found no usable GPU: %w", setting.Device, err)
	}
	var count C.int
	if err := g.check("cuDeviceGetCount", C.pk_cu_count(g.api, &count)); err != nil || count == 0 {
		return nil, setting.Errorf("%s cuda: no CUDA device (%v)", setting.Device, err)
	}
	if opt.Device < 0 || opt.Device >= int(count) {
		return nil, setting.Errorf("%s cuda: GPU %d asked for, %d present", setting.Device, opt.Device, int(count))
	}
	if err := g.check("cuDeviceGet", C.pk_cu_device(g.api, C.int(opt.Device), &g.dev)); err != nil {
		return nil, err
	}
	var name [256]C.char
	C.pk_cu_name(g.api, g.dev, &name[0], 256)
	var major, minor, sms, driver C.int
	C.pk_cu_attr(g.api, g.dev, 75, &major) // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
	C.pk_cu_attr(g.api, g.dev, 76, &minor)
	C.pk_cu_attr(g.api, g.dev, 16, &sms) // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
	C.pk_cu_driver(g.api, &driver)
	if major < 8 {
		return nil, setting.Errorf("%s cuda: %s has compute capability %d.%d; proxykit's kernels need 8.0 or newer", setting.Device,
			C.GoString(&name[0]), int(major), int(minor))
	}
	if err := g.check("cuDevicePrimaryCtxRetain", C.pk_cu_retain(g.api, g.dev, &g.ctx)); err != nil {
		return nil, err
	}
	C.pk_cu_set(g.api, g.ctx)
	src := C.CString(kernelPTX)
	defer C.free(unsafe.Pointer(src))
	var log [8192]C.char
	if err := g.check("loading the kernels", C.pk_cu_load_ptx(g.api, src, &g.module, &log[0], 8192)); err != nil {
		C.pk_cu_release(g.api, g.dev)
		return nil, fmt.Errorf("%w: %s", err, C.GoString(&log[0]))
	}
	for i, k := range kernelNames {
		cs := C.CString(k)
		var f C.CUfunction
		err := g.check("kernel "+k, C.pk_cu_function(g.api, g.module, cs, &f))
		C.free(unsafe.Pointer(cs))
		if err != nil {
			g.close()
			return nil, err
		}
		g.funcs = append(g.funcs, f)
		g.index[k] = i
	}
	if err := g.loadBLAS(opt); err != nil {
		g.close()
		return nil, err
	}
	if opt.Graphs {
		if err := g.useStream(); err != nil {
			g.close()
			return nil, err
		}
	}
	var free, total C.size_t
	C.pk_cu_meminfo(g.api, &free, &total)
	g.desc = fmt.Sprintf("%s (compute capability %d.%d, %d SMs, %d MB, driver %d.%d)", C.GoString(&name[0]), int(major),
		int(minor), int(sms), int64(total)>>20, int(driver)/1000, int(driver)%1000/10)
	if !opt.NoCuDNN {
		d, err := loadCuDNN(g, opt)
		if err != nil {
			g.dnnWarn = err.Error()
		} else {
			g.dnn = d
		}
	}
	return g, nil
}

// blasWorkspaceBytes is cuBLAS's own workspace where graphs are used: a
// capture must allocate nothing (cuBLAS 12's documented 32 MiB for Hopper).
const blasWorkspaceBytes = 32 << 20

// useStream queues all work on a stream of the device's own, which CUDA
// graphs capture (the legacy default stream cannot be captured), cuBLAS's
// too with a workspace of its own.
func (g *gpuDevice) useStream() error {
	if missing := C.pk_cu_load_graphs(g.api); missing != nil {
		return fmt.Errorf("CUDA graphs: this driver lacks %s", C.GoString(missing))
	}
	if err := g.check("cuStreamCreate", C.pk_cu_stream(g.api)); err != nil {
		return err
	}
	if err := g.check("cuBLAS workspace", C.pk_cu_alloc(g.api, blasWorkspaceBytes, &g.blasWS)); err != nil {
		return err
	}
	if st := C.pk_blas_stream(g.blas, unsafe.Pointer(g.api.stream), g.blasWS, blasWorkspaceBytes); st != 0 {
		return fmt.Errorf("CUDA graphs: cuBLAS cannot take a stream and a workspace (status %d)", int(st))
	}
	return nil
}

func (g *gpuDevice) beginCapture() error {
	if g.api.stream == nil {
		return fmt.Errorf("CUDA graphs are off")
	}
	g.enter()
	defer g.exit()
	return g.check("cuStreamBeginCapture", C.pk_cu_begin_capture(g.api))
}

func (g *gpuDevice) endCapture() (graph, error) {
	g.enter()
	defer g.exit()
	var cg C.CUgraph
	var ce C.CUgraphExec
	var n C.size_t
	if err := g.check("capturing a CUDA graph", C.pk_cu_end_capture(g.api, &cg, &ce, &n)); err != nil {
		C.pk_cu_graph_free(g.api, cg, ce)
		return nil, err
	}
	return &gpuGraph{g: cg, e: ce, n: int(n)}, nil
}

func (g *gpuDevice) launchGraph(gr graph) error {
	g.enter()
	defer g.exit()
	return g.check("launching a CUDA graph", C.pk_cu_graph_launch(g.api, gr.(*gpuGraph).e))
}

func (g *gpuDevice) freeGraph(gr graph) {
	g.enter()
	defer g.exit()
	gg := gr.(*gpuGraph)
	C.pk_cu_graph_free(g.api, gg.g, gg.e)
}

// blasPaths are where cuBLAS is looked for: $PROXYKIT_CUBLAS, the loader's
// path (LD_LIBRARY_PATH, the system), then the CUDA toolkit's folders.
func blasPaths() []string {
	var paths []string
	if p := os.Getenv("PROXYKIT_CUBLAS"); p != "" {
		paths = append(paths, p)
	}
	for _, v := range []string{"13", "12", "11"} {
		paths = append(paths, "libcublas.so."+v)
	}
	for _, dir := range []string{"/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"} {
		matches, _ := filepath.Glob(filepath.Join(dir, "libcublas.so.1[123]"))
		paths = append(paths, matches...)
	}
	return paths
}

func (g *gpuDevice) loadBLAS(opt Options) error {
	var tried []string
	for _, p := range blasPaths() {
		cs := C.CString(p)
		missing := C.pk_blas_load(g.blas, cs)
		C.free(unsafe.Pointer(cs))
		if missing == nil {
			mode := C.int(3) // CUBLAS_TF32_TENSOR_OP_MATH
			if opt.StrictFP32 {
				mode = 0 // CUBLAS_DEFAULT_MATH
			}
			if st := C.pk_blas_create(g.blas, mode); st != 0 {
				return fmt.Errorf("cuBLAS (%s): cublasCreate failed with status %d", p, int(st))
			}
			return nil
		}
		tried = append(tried, C.GoString(missing))
	}
	return setting.Errorf("%s cuda: cuBLAS not found (tried %v); put the CUDA toolkit's lib folder in LD_LIBRARY_PATH or name the library in PROXYKIT_CUBLAS", setting.Device, tried)
}

func (g *gpuDevice) name() string { return g.desc }

func (g *gpuDevice) alloc(bytes int64) (devptr, error) {
	g.enter()
	defer g.exit()
	var p C.CUdeviceptr
	if err := g.check("cuMemAlloc", C.pk_cu_alloc(g.api, C.size_t(bytes), &p)); err != nil {
		return 0, err
	}
	return devptr(p), nil
}

func (g *gpuDevice) free(p devptr) {
	g.enter()
	defer g.exit()
	C.pk_cu_free(g.api, C.CUdeviceptr(p))
}

func (g *gpuDevice) htod(dst devptr, src []float32) error {
	g.enter()
	defer g.exit()
	return g.check("copy to the GPU", C.pk_cu_htod(g.api, C.CUdeviceptr(dst), unsafe.Pointer(&src[0]), C.size_t(4*len(src))))
}

func (g *gpuDevice) dtoh(dst []float32, src devptr) error {
	g.enter()
	defer g.exit()
	return g.check("copy from the GPU", C.pk_cu_dtoh(g.api, unsafe.Pointer(&dst[0]), C.CUdeviceptr(src), C.size_t(4*len(dst))))
}

func (g *gpuDevice) dtod(dst, src devptr, bytes int64) error {
	g.enter()
	defer g.exit()
	return g.check("copy on the GPU", C.pk_cu_dtod(g.api, C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(bytes)))
}

func (g *gpuDevice) kernelIndex(name string) (int, error) {
	i, ok := g.index[name]
	if !ok {
		return 0, fmt.Errorf("no kernel %s in kernels.ptx", name)
	}
	return i, nil
}

func (g *gpuDevice) launch(k int, grid, block dim3, args *argList) error {
	ca := cArgs(args)
	defer C.free(ca)
	g.enter()
	defer g.exit()
	return g.check("launching "+kernelNames[k], C.pk_cu_launch(g.api, g.funcs[k], C.unsigned(grid.x), C.unsigned(grid.y),
		C.unsigned(grid.z), C.unsigned(block.x), C.unsigned(block.y), C.unsigned(block.z), (*unsafe.Pointer)(ca)))
}

// gemm is cuBLAS's column-major SGEMM on the transposed problem: a
// row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ.
func (g *gpuDevice) gemm(transA, transB bool, m, n, k int, alpha float32, a devptr, lda int, b devptr, ldb int,
	beta float32, c devptr, ldc int) error {
	g.enter()
	defer g.exit()
	op := func(t bool) C.int {
		if t {
			return 1 // CUBLAS_OP_T
		}
		return 0
	}
	if st := C.pk_blas_sgemm(g.blas, op(transB), op(transA), C.int(n), C.int(m), C.int(k), C.float(alpha),
		C.CUdeviceptr(b), C.int(ldb), C.CUdeviceptr(a), C.int(lda), C.float(beta), C.CUdeviceptr(c), C.int(ldc)); st != 0 {
		return fmt.Errorf("cublasSgemm (%dx%dx%d): status %d", m, n, k, int(st))
	}
	return nil
}

// gemmHalf is gemm's transposed problem on cublasGemmEx.
func (g *gpuDevice) gemmHalf(transA, transB bool, m, n, k int, a devptr, lda int, b devptr, ldb int, c devptr, ldc int) error {
	g.enter()
	defer g.exit()
	if st := C.pk_blas_hgemm(g.blas, C.int(b2i(transB)), C.int(b2i(transA)), C.int(n), C.int(m), C.int(k), C.CUdeviceptr(b), C.int(ldb),
		C.CUdeviceptr(a), C.int(lda), C.CUdeviceptr(c), C.int(ldc)); st != 0 {
		return fmt.Errorf("cublasGemmEx on binary16 (%dx%dx%d): status %d", m, n, k, int(st))
	}
	return nil
}

func (g *gpuDevice) sync() error {
	g.enter()
	defer g.exit()
	return g.check("GPU", C.pk_cu_sync(g.api))
}

func (g *gpuDevice) memInfo() (free, total int64) {
	g.enter()
	defer g.exit()
	var f, t C.size_t
	if C.pk_cu_meminfo(g.api, &f, &t) != 0 {
		return 0, 0
	}
	return int64(f), int64(t)
}

func (g *gpuDevice) close() error {
	g.enter()
	defer g.exit()
	err := g.check("GPU", C.pk_cu_sync(g.api))
	if g.dnn != nil {
		g.dnn.close()
	}
	C.pk_blas_destroy(g.blas)
	if g.blasWS != 0 {
		C.pk_cu_free(g.api, g.blasWS)
		g.blasWS = 0
	}
	C.pk_cu_stream_destroy(g.api)
	if g.module != nil {
		C.pk_cu_unload(g.api, g.module)
		g.module = nil
	}
	if g.ctx != nil {
		C.pk_cu_release(g.api, g.dev)
		g.ctx = nil
	}
	return err
}

// cudnn implements dnnDevice.
func (g *gpuDevice) cudnn() *cudnn { return g.dnn }

// CuDNNStatus says whether cuDNN's convolutions are in use, and if not why.
func (g *gpuDevice) cudnnStatus() string {
	if g.dnn != nil {
		return "cuDNN " + g.dnn.version
	}
	return g.dnnWarn
}
