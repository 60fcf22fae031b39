//go:build cuda

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// cuDNN's legacy convolution API (still in cuDNN 9's libcudnn.so.9),
// loaded with dlopen. Descriptors and handles are opaque pointers; enums
// are ints; the algorithm-performance structs share one layout.

typedef void* H;
typedef struct {
	int algo;
	int status;
	float time;
	size_t memory;
	int determinism;
	int mathType;
	int reserved[3];
} pk_perf;

typedef struct {
	void* lib;
	size_t (*getVersion)(void);
	int (*create)(H*);
	int (*destroy)(H);
	const char* (*errorString)(int);
	int (*createTensor)(H*);
	int (*setTensor4d)(H, int, int, int, int, int, int);
	int (*destroyTensor)(H);
	int (*createFilter)(H*);
	int (*setFilter4d)(H, int, int, int, int, int, int);
	int (*destroyFilter)(H);
	int (*createConv)(H*);
	int (*setConv2d)(H, int, int, int, int, int, int, int, int);
	int (*setConvMath)(H, int);
	int (*destroyConv)(H);
	int (*fwdAlgo)(H, H, H, H, H, int, int*, pk_perf*);
	int (*fwdWS)(H, H, H, H, H, int, size_t*);
	int (*fwd)(H, const void*, H, const void*, H, const void*, H, int, void*, size_t, const void*, H, void*);
	int (*bwdDataAlgo)(H, H, H, H, H, int, int*, pk_perf*);
	int (*bwdDataWS)(H, H, H, H, H, int, size_t*);
	int (*bwdData)(H, const void*, H, const void*, H, const void*, H, int, void*, size_t, const void*, H, void*);
	int (*bwdFilterAlgo)(H, H, H, H, H, int, int*, pk_perf*);
	int (*bwdFilterWS)(H, H, H, H, H, int, size_t*);
	int (*bwdFilter)(H, const void*, H, const void*, H, const void*, H, int, void*, size_t, const void*, H, void*);
	int (*setStream)(H, void*);
	H handle;
} pk_dnn;

#define DNN_SYM(field, name) if ((d->field = dlsym(d->lib, name)) == NULL) return name;

static const char* pk_dnn_load(pk_dnn* d, const char* path) {
	memset(d, 0, sizeof *d);
	d->lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (d->lib == NULL) return path;
	DNN_SYM(getVersion, "cudnnGetVersion");
	DNN_SYM(create, "cudnnCreate");
	DNN_SYM(destroy, "cudnnDestroy");
	DNN_SYM(errorString, "cudnnGetErrorString");
	DNN_SYM(createTensor, "cudnnCreateTensorDescriptor");
	DNN_SYM(setTensor4d, "cudnnSetTensor4dDescriptor");
	DNN_SYM(destroyTensor, "cudnnDestroyTensorDescriptor");
	DNN_SYM(createFilter, "cudnnCreateFilterDescriptor");
	DNN_SYM(setFilter4d, "cudnnSetFilter4dDescriptor");
	DNN_SYM(destroyFilter, "cudnnDestroyFilterDescriptor");
	DNN_SYM(createConv, "cudnnCreateConvolutionDescriptor");
	DNN_SYM(setConv2d, "cudnnSetConvolution2dDescriptor");
	DNN_SYM(setConvMath, "cudnnSetConvolutionMathType");
	DNN_SYM(destroyConv, "cudnnDestroyConvolutionDescriptor");
	DNN_SYM(fwdAlgo, "cudnnGetConvolutionForwardAlgorithm_v7");
	DNN_SYM(fwdWS, "cudnnGetConvolutionForwardWorkspaceSize");
	DNN_SYM(fwd, "cudnnConvolutionForward");
	DNN_SYM(bwdDataAlgo, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
	DNN_SYM(bwdDataWS, "cudnnGetConvolutionBackwardDataWorkspaceSize");
	DNN_SYM(bwdData, "cudnnConvolutionBackwardData");
	DNN_SYM(bwdFilterAlgo, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
	DNN_SYM(bwdFilterWS, "cudnnGetConvolutionBackwardFilterWorkspaceSize");
	DNN_SYM(bwdFilter, "cudnnConvolutionBackwardFilter");
	DNN_SYM(setStream, "cudnnSetStream");
	return NULL;
}

static const char* pk_dnn_error(pk_dnn* d, int st) { return d->errorString(st); }
static int pk_dnn_create(pk_dnn* d) { return d->create(&d->handle); }
static int pk_dnn_stream(pk_dnn* d, void* s) { return d->setStream(d->handle, s); }
static size_t pk_dnn_version(pk_dnn* d) { return d->getVersion(); }
static void pk_dnn_destroy(pk_dnn* d) { if (d->handle) d->destroy(d->handle); d->handle = NULL; }

// A plan: the descriptors of one convolution at one batch size, and the
// algorithms chosen for it.
typedef struct {
	H x, y, w, conv;
	int fwdAlgo, bwdDataAlgo, bwdFilterAlgo;
	size_t fwdWS, bwdDataWS, bwdFilterWS;
	unsigned allowed[3]; // per direction, a bit per algorithm number it may use
} pk_plan;

// choose picks the first algorithm the heuristics rank that succeeds, fits
// the workspace limit, is among allowed (a bit per algorithm number) and,
// if deterministic is set, is deterministic.
static int choose(pk_perf* p, int n, size_t limit, int deterministic, unsigned allowed, int* algo, size_t* ws) {
	for (int i = 0; i < n; i++) {
		if (p[i].status != 0 || p[i].memory > limit) continue;
		if (p[i].algo < 0 || p[i].algo > 31 || !((allowed >> p[i].algo) & 1u)) continue;
		if (deterministic && p[i].determinism != 1) continue;
		*algo = p[i].algo;
		*ws = p[i].memory;
		return 0;
	}
	return 1;
}

// pk_dnn_plan sets up a plan's descriptors from v, as the Go side lays
// them out (dnnDescriptors.ints): x's format, data type, n, c, h, w; y's;
// the filter's data type, format, k, c, h, w; the convolution's padding,
// stride, dilation (h, w each), mode and compute type. It returns 0, or
// the failing step (1..5) with the cuDNN status in *st.
static int pk_dnn_plan(pk_dnn* d, pk_plan* p, const int* v, int math, const unsigned* allowed, int* st) {
	memset(p, 0, sizeof *p);
	p->fwdAlgo = p->bwdDataAlgo = p->bwdFilterAlgo = -1;
	for (int k = 0; k < 3; k++) p->allowed[k] = allowed[k];
	if ((*st = d->createTensor(&p->x)) || (*st = d->setTensor4d(p->x, v[0], v[1], v[2], v[3], v[4], v[5]))) return 1;
	if ((*st = d->createTensor(&p->y)) || (*st = d->setTensor4d(p->y, v[6], v[7], v[8], v[9], v[10], v[11]))) return 2;
	if ((*st = d->createFilter(&p->w)) || (*st = d->setFilter4d(p->w, v[12], v[13], v[14], v[15], v[16], v[17]))) return 3;
	if ((*st = d->createConv(&p->conv)) ||
		(*st = d->setConv2d(p->conv, v[18], v[19], v[20], v[21], v[22], v[23], v[24], v[25]))) return 4;
	if ((*st = d->setConvMath(p->conv, math))) return 5;
	return 0;
}

// pk_dnn_choose picks the algorithm of one direction (0 forward, 1
// backward data, 2 backward filter) when first needed: the first the
// heuristics rank that succeeds, fits the workspace limit, is allowed
// (dnnAllowed) and for the backward passes is deterministic. It returns 0, 1 when none qualifies,
// or 2 with the cuDNN status in *st.
static int pk_dnn_choose(pk_dnn* d, pk_plan* p, int kind, size_t limit, int* st) {
	pk_perf perf[16];
	int got = 0;
	*st = 0;
	switch (kind) {
	case 0:
		if (p->fwdAlgo >= 0) return 0;
		if ((*st = d->fwdAlgo(d->handle, p->x, p->w, p->conv, p->y, 16, &got, perf))) return 2;
		return choose(perf, got, limit, 0, p->allowed[0], &p->fwdAlgo, &p->fwdWS);
	case 1:
		if (p->bwdDataAlgo >= 0) return 0;
		if ((*st = d->bwdDataAlgo(d->handle, p->w, p->y, p->conv, p->x, 16, &got, perf))) return 2;
		return choose(perf, got, limit, 1, p->allowed[1], &p->bwdDataAlgo, &p->bwdDataWS);
	default:
		if (p->bwdFilterAlgo >= 0) return 0;
		if ((*st = d->bwdFilterAlgo(d->handle, p->x, p->y, p->conv, p->w, 16, &got, perf))) return 2;
		return choose(perf, got, limit, 1, p->allowed[2], &p->bwdFilterAlgo, &p->bwdFilterWS);
	}
}

static void pk_dnn_unplan(pk_dnn* d, pk_plan* p) {
	if (p->x) d->destroyTensor(p->x);
	if (p->y) d->destroyTensor(p->y);
	if (p->w) d->destroyFilter(p->w);
	if (p->conv) d->destroyConv(p->conv);
}

static int pk_dnn_forward(pk_dnn* d, pk_plan* p, uint64_t x, uint64_t w, uint64_t y, uint64_t ws) {
	float one = 1, zero = 0;
	return d->fwd(d->handle, &one, p->x, (void*)x, p->w, (void*)w, p->conv, p->fwdAlgo, (void*)ws, p->fwdWS, &zero,
		p->y, (void*)y);
}

static int pk_dnn_backward_data(pk_dnn* d, pk_plan* p, uint64_t w, uint64_t dy, uint64_t dx, uint64_t ws) {
	float one = 1, zero = 0;
	return d->bwdData(d->handle, &one, p->w, (void*)w, p->y, (void*)dy, p->conv, p->bwdDataAlgo, (void*)ws,
		p->bwdDataWS, &zero, p->x, (void*)dx);
}

// accumulates into dw (beta = 1) with add, as the backend's contract asks;
// else writes it (beta = 0)
static int pk_dnn_backward_filter(pk_dnn* d, pk_plan* p, uint64_t x, uint64_t dy, uint64_t dw, uint64_t ws, int add) {
	float one = 1, beta = add ? 1 : 0;
	return d->bwdFilter(d->handle, &one, p->x, (void*)x, p->y, (void*)dy, p->conv, p->bwdFilterAlgo, (void*)ws,
		p->bwdFilterWS, &beta, p->w, (void*)dw);
}
*/
import "C"

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/proxykit/proxykit/compute"
)

// cudnn runs convolutions through cuDNN: implicit-GEMM and Winograd
// kernels that need no im2col buffer. Plans (descriptors and algorithms)
// are made once per geometry and batch size. The backward passes use
// deterministic algorithms only, so that training is reproducible.
type cudnn struct {
	g       *gpuDevice
	api     *C.pk_dnn
	version string
	major   int // the version's major number: how statuses are numbered (refusal)
	strict  bool
	limit   int64
	plans   map[planKey]*C.pk_plan
}

type planKey struct {
	g compute.ConvGeom
	n int
}

// loadCuDNN opens libcudnn.so.9 (or .8); $PROXYKIT_CUDNN names another file.
func loadCuDNN(g *gpuDevice, opt Options) (*cudnn, error) {
	d := &cudnn{g: g, api: (*C.pk_dnn)(C.malloc(C.sizeof_pk_dnn)), plans: map[planKey]*C.pk_plan{},
		limit: opt.DNNWorkspaceBytes, strict: opt.StrictFP32}
	paths := []string{"libcudnn.so.9", "libcudnn.so.8"}
	if p := os.Getenv("PROXYKIT_CUDNN"); p != "" {
		paths = append([]string{p}, paths...)
	}
	var tried []string
	for _, p := range paths {
		cs := C.CString(p)
		missing := C.pk_dnn_load(d.api, cs)
		C.free(unsafe.Pointer(cs))
		if missing != nil {
			tried = append(tried, C.GoString(missing))
			continue
		}
		g.enter()
		st := C.pk_dnn_create(d.api)
		g.exit()
		if st != 0 {
			return nil, fmt.Errorf("cuDNN (%s): cudnnCreate: %s", p, C.GoString(C.pk_dnn_error(d.api, st)))
		}
		if g.api.stream != nil { // CUDA graphs: cuDNN's work on the device's stream
			g.enter()
			st := C.pk_dnn_stream(d.api, unsafe.Pointer(g.api.stream))
			g.exit()
			if st != 0 {
				return nil, fmt.Errorf("cuDNN (%s): cudnnSetStream: %s", p, C.GoString(C.pk_dnn_error(d.api, st)))
			}
		}
		v := int(C.pk_dnn_version(d.api))
		d.major = v / 10000
		d.version = fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100)
		if v < 10000 {
			d.major = v / 1000
			d.version = fmt.Sprintf("%d.%d.%d", v/1000, v%1000/100, v%100)
		}
		return d, nil
	}
	return nil, fmt.Errorf("cuDNN not found (tried %v): convolutions use im2col and cuBLAS", tried)
}

// supports reports whether cuDNN runs g (dnnSupports).
func (d *cudnn) supports(g compute.ConvGeom) bool { return dnnSupports(g) }

// plan returns the plan of g at batch n with the algorithm of direction
// kind (0 forward, 1 backward data, 2 backward filter) chosen.
func (d *cudnn) plan(g compute.ConvGeom, n, kind int) (*C.pk_plan, error) {
	key := planKey{g, n}
	p, ok := d.plans[key]
	if !ok {
		var err error
		if p, err = d.newPlan(g, n); err != nil {
			return nil, err
		}
		d.plans[key] = p
	}
	var st C.int
	limit := d.workspaceLimit()
	d.g.enter()
	r := C.pk_dnn_choose(d.api, p, C.int(kind), C.size_t(limit), &st)
	d.g.exit()
	switch r {
	case 0:
		return p, nil
	case 1:
		return nil, &planError{fmt.Sprintf("no allowed cuDNN algorithm within %d MB (%s, batch %d; backward: deterministic ones; "+
			"forward in strict FP32: implicit GEMM)", limit>>20, dnnDirection(kind), n)}
	}
	return nil, &planError{fmt.Sprintf("cuDNN algorithm query (batch %d): %s", n, C.GoString(C.pk_dnn_error(d.api, st)))}
}

// workspaceLimit is the most workspace an algorithm may ask for: the
// option, else three quarters of the free device memory (at least 512 MB).
func (d *cudnn) workspaceLimit() int64 {
	if d.limit > 0 {
		return d.limit
	}
	free, _ := d.g.memInfo()
	return max(512<<20, free/4*3)
}

func (d *cudnn) newPlan(g compute.ConvGeom, n int) (*C.pk_plan, error) {
	desc := descriptorsOf(g, n, d.strict)
	var v [dnnDescriptorIntCount]C.int
	for i, x := range desc.ints() {
		v[i] = C.int(x)
	}
	p := (*C.pk_plan)(C.malloc(C.sizeof_pk_plan))
	var st C.int
	d.g.enter()
	allowed := [3]C.unsigned{C.unsigned(desc.Allowed[0]), C.unsigned(desc.Allowed[1]), C.unsigned(desc.Allowed[2])}
	step := C.pk_dnn_plan(d.api, p, &v[0], C.int(desc.Conv.Math), &allowed[0], &st)
	d.g.exit()
	if step != 0 {
		C.pk_dnn_unplan(d.api, p)
		C.free(unsafe.Pointer(p))
		return nil, &planError{fmt.Sprintf("cuDNN could not plan the convolution (batch %d, step %d: %s)", n, int(step),
			C.GoString(C.pk_dnn_error(d.api, st)))}
	}
	return p, nil
}

func (d *cudnn) workspace(be *Backend, bytes C.size_t) (devptr, error) {
	if bytes == 0 {
		return 0, nil
	}
	w, err := be.workspace("cudnn", int((bytes+3)/4))
	if err != nil {
		return 0, err
	}
	return w.ptr, nil
}

// run makes a cuDNN call; a status that refuses the configuration (bad
// parameter, not supported: nothing ran) is a *planError, so that the
// backend computes that direction another way.
func (d *cudnn) run(what string, f func() C.int) error {
	d.g.enter()
	st := f()
	d.g.exit()
	if st != 0 {
		msg := fmt.Sprintf("cuDNN %s: %s", what, C.GoString(C.pk_dnn_error(d.api, st)))
		if refusal(int(st), d.major) {
			return &planError{msg}
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

func (d *cudnn) forward(be *Backend, g compute.ConvGeom, n int, x, w, y devptr) error {
	p, err := d.plan(g, n, 0)
	if err != nil {
		return err
	}
	ws, err := d.workspace(be, p.fwdWS)
	if err != nil {
		return err
	}
	return d.run("convolution forward", func() C.int {
		return C.pk_dnn_forward(d.api, p, C.uint64_t(x), C.uint64_t(w), C.uint64_t(y), C.uint64_t(ws))
	})
}

func (d *cudnn) backwardData(be *Backend, g compute.ConvGeom, n int, w, dy, dx devptr) error {
	p, err := d.plan(g, n, 1)
	if err != nil {
		return err
	}
	ws, err := d.workspace(be, p.bwdDataWS)
	if err != nil {
		return err
	}
	return d.run("convolution backward data", func() C.int {
		return C.pk_dnn_backward_data(d.api, p, C.uint64_t(w), C.uint64_t(dy), C.uint64_t(dx), C.uint64_t(ws))
	})
}

func (d *cudnn) backwardFilter(be *Backend, g compute.ConvGeom, n int, x, dy, dw devptr, accumulate bool) error {
	p, err := d.plan(g, n, 2)
	if err != nil {
		return err
	}
	ws, err := d.workspace(be, p.bwdFilterWS)
	if err != nil {
		return err
	}
	return d.run("convolution backward filter", func() C.int {
		return C.pk_dnn_backward_filter(d.api, p, C.uint64_t(x), C.uint64_t(dy), C.uint64_t(dw), C.uint64_t(ws), C.int(b2i(accumulate)))
	})
}

func (d *cudnn) close() {
	for k, p := range d.plans {
		C.pk_dnn_unplan(d.api, p)
		C.free(unsafe.Pointer(p))
		delete(d.plans, k)
	}
	d.g.enter()
	C.pk_dnn_destroy(d.api)
	d.g.exit()
}
