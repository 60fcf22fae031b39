//go:build cuda

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// NCCL is loaded at run time with dlopen, as cuBLAS is: a binary linked
// against it would not start without it. Only the entry points proxykit
// calls are declared, with nccl.h's ABI (NCCL 2.x); streams and events
// come from the driver API (cuda.h), opened again (dlopen returns the
// handle gpu.go opened).

typedef void* ncclComm_t;
typedef struct { char internal[128]; } ncclUniqueId;
typedef void* CUstreamN;
typedef void* CUeventN;

typedef struct {
	void* lib;
	void* cu;
	int (*getUniqueId)(ncclUniqueId*);
	int (*commInitRank)(ncclComm_t*, int, ncclUniqueId, int);
	int (*allReduce)(const void*, void*, size_t, int, int, ncclComm_t, CUstreamN);
	int (*broadcast)(const void*, void*, size_t, int, int, ncclComm_t, CUstreamN);
	int (*groupStart)(void);
	int (*groupEnd)(void);
	int (*commAbort)(ncclComm_t);
	int (*commDestroy)(ncclComm_t);
	int (*commGetAsyncError)(ncclComm_t, int*);
	const char* (*getErrorString)(int);
	int (*getVersion)(int*);
	int (*streamCreate)(CUstreamN*, unsigned);
	int (*streamDestroy)(CUstreamN);
	int (*eventCreate)(CUeventN*, unsigned);
	int (*eventRecord)(CUeventN, CUstreamN);
	int (*eventQuery)(CUeventN);
	int (*eventDestroy)(CUeventN);
	int (*streamWaitEvent)(CUstreamN, CUeventN, unsigned);
} pk_nccl;

#define PK_N_SYM(lib, field, name) if ((n->field = dlsym(lib, name)) == NULL) return name;

// pk_nccl_load opens NCCL at path; it returns NULL, or what is missing.
static const char* pk_nccl_load(pk_nccl* n, const char* path) {
	memset(n, 0, sizeof *n);
	n->lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (n->lib == NULL) return path;
	n->cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (n->cu == NULL) return "libcuda.so.1";
	PK_N_SYM(n->lib, getUniqueId, "ncclGetUniqueId");
	PK_N_SYM(n->lib, commInitRank, "ncclCommInitRank");
	PK_N_SYM(n->lib, allReduce, "ncclAllReduce");
	PK_N_SYM(n->lib, broadcast, "ncclBroadcast");
	PK_N_SYM(n->lib, groupStart, "ncclGroupStart");
	PK_N_SYM(n->lib, groupEnd, "ncclGroupEnd");
	PK_N_SYM(n->lib, commAbort, "ncclCommAbort");
	PK_N_SYM(n->lib, commDestroy, "ncclCommDestroy");
	PK_N_SYM(n->lib, commGetAsyncError, "ncclCommGetAsyncError");
	PK_N_SYM(n->lib, getErrorString, "ncclGetErrorString");
	PK_N_SYM(n->lib, getVersion, "ncclGetVersion");
	PK_N_SYM(n->cu, streamCreate, "cuStreamCreate");
	PK_N_SYM(n->cu, streamDestroy, "cuStreamDestroy_v2");
	PK_N_SYM(n->cu, eventCreate, "cuEventCreate");
	PK_N_SYM(n->cu, eventRecord, "cuEventRecord");
	PK_N_SYM(n->cu, eventQuery, "cuEventQuery");
	PK_N_SYM(n->cu, eventDestroy, "cuEventDestroy_v2");
	PK_N_SYM(n->cu, streamWaitEvent, "cuStreamWaitEvent");
	return NULL;
}

static int pk_nccl_unique(pk_nccl* n, void* out) { return n->getUniqueId((ncclUniqueId*)out); }
static int pk_nccl_init(pk_nccl* n, ncclComm_t* c, int size, const void* id, int rank) {
	ncclUniqueId u;
	memcpy(&u, id, sizeof u);
	return n->commInitRank(c, size, u, rank);
}
// ncclFloat32 = 7, ncclFloat64 = 8, ncclSum = 0
static int pk_nccl_allreduce(pk_nccl* n, unsigned long long p, size_t count, int f64, ncclComm_t c, CUstreamN s) {
	return n->allReduce((const void*)p, (void*)p, count, f64 ? 8 : 7, 0, c, s);
}
static int pk_nccl_bcast(pk_nccl* n, unsigned long long p, size_t count, int root, ncclComm_t c) {
	return n->broadcast((const void*)p, (void*)p, count, 7, root, c, NULL);
}
static int pk_nccl_group_start(pk_nccl* n) { return n->groupStart(); }
static int pk_nccl_group_end(pk_nccl* n) { return n->groupEnd(); }
static int pk_nccl_abort(pk_nccl* n, ncclComm_t c) { return n->commAbort(c); }
static int pk_nccl_destroy(pk_nccl* n, ncclComm_t c) { return n->commDestroy(c); }
static int pk_nccl_async(pk_nccl* n, ncclComm_t c) {
	int r = 0;
	int st = n->commGetAsyncError(c, &r);
	return st != 0 ? st : r;
}
static const char* pk_nccl_error(pk_nccl* n, int r) { return n->getErrorString(r); }
static int pk_nccl_version(pk_nccl* n) {
	int v = 0;
	n->getVersion(&v);
	return v;
}
// CU_STREAM_NON_BLOCKING = 1: no implicit order with the legacy default
// stream the kernels run on; events order the two.
static int pk_stream_create(pk_nccl* n, CUstreamN* s) { return n->streamCreate(s, 1); }
static int pk_stream_destroy(pk_nccl* n, CUstreamN s) { return n->streamDestroy(s); }
// CU_EVENT_DISABLE_TIMING = 2
static int pk_event_create(pk_nccl* n, CUeventN* e) { return n->eventCreate(e, 2); }
static int pk_event_record(pk_nccl* n, CUeventN e, CUstreamN s) { return n->eventRecord(e, s); }
static int pk_event_query(pk_nccl* n, CUeventN e) { return n->eventQuery(e); }
static int pk_event_destroy(pk_nccl* n, CUeventN e) { return n->eventDestroy(e); }
static int pk_stream_wait(pk_nccl* n, CUstreamN s, CUeventN e) { return n->streamWaitEvent(s, e, 0); }
*/
import "C"

import (
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/proxykit/proxykit/compute"
)

// ncclPath is the NCCL library loaded: $PROXYKIT_NCCL, else libnccl.so.2
// on the loader's path.
func ncclPath() string {
	if p := os.Getenv("PROXYKIT_NCCL"); p != "" {
		return p
	}
	return "libnccl.so.2"
}

// nccl implements the GPU's collectives: NCCL, loaded on first use.
func (g *gpuDevice) nccl() (ncclLib, error) {
	n := (*C.pk_nccl)(C.malloc(C.sizeof_pk_nccl))
	path := C.CString(ncclPath())
	defer C.free(unsafe.Pointer(path))
	if missing := C.pk_nccl_load(n, path); missing != nil {
		C.free(unsafe.Pointer(n))
		return nil, fmt.Errorf("data-parallel training on GPUs needs NCCL: %s not found (NVIDIA's libnccl2 package, or pip's nvidia-nccl-cu12; "+
			"put its folder in LD_LIBRARY_PATH or name the library in $PROXYKIT_NCCL)", C.GoString(missing))
	}
	v := int(C.pk_nccl_version(n))
	return &gpuNCCL{g: g, api: n, ver: fmt.Sprintf("NCCL %d.%d.%d", v/10000, v/100%100, v%100)}, nil
}

type gpuNCCL struct {
	g   *gpuDevice
	api *C.pk_nccl
	ver string
}

func (l *gpuNCCL) version() string { return l.ver }

func (l *gpuNCCL) check(what string, r C.int) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s (NCCL error %d)", what, C.GoString(C.pk_nccl_error(l.api, r)), int(r))
}

func (l *gpuNCCL) uniqueID() ([]byte, error) {
	id := make([]byte, 128)
	if err := l.check("ncclGetUniqueId", C.pk_nccl_unique(l.api, unsafe.Pointer(&id[0]))); err != nil {
		return nil, err
	}
	return id, nil
}

func (l *gpuNCCL) join(rank, size int, id []byte, _ compute.HostComm, timeout time.Duration) (ncclComm, error) {
	if len(id) != 128 {
		return nil, fmt.Errorf("an NCCL unique id of %d bytes, 128 expected", len(id))
	}
	l.g.enter()
	defer l.g.exit()
	c := &gpuComm{l: l, rank: rank, size: size, timeout: timeout}
	cid := C.CBytes(id)
	defer C.free(cid)
	if err := l.check("ncclCommInitRank", C.pk_nccl_init(l.api, &c.comm, C.int(size), cid, C.int(rank))); err != nil {
		return nil, err
	}
	if r := C.pk_stream_create(l.api, &c.stream); r != 0 {
		C.pk_nccl_destroy(l.api, c.comm)
		return nil, fmt.Errorf("cuStreamCreate: CUDA error %d", int(r))
	}
	for _, e := range []*C.CUeventN{&c.before, &c.after} {
		if r := C.pk_event_create(l.api, e); r != 0 {
			c.close()
			return nil, fmt.Errorf("cuEventCreate: CUDA error %d", int(r))
		}
	}
	return c, nil
}

// gpuComm is an NCCL communicator. Synchronous sums run on the kernels'
// stream; started ones on a stream of their own, ordered after the
// kernels before them by an event, and before the kernels after wait()
// by another. Every wait polls an event with a deadline, checking NCCL's
// asynchronous errors, and aborts the communicator when the deadline
// passes, so that no rank waits forever on a dead peer.
type gpuComm struct {
	l             *gpuNCCL
	comm          C.ncclComm_t
	stream        C.CUstreamN
	before, after C.CUeventN
	rank, size    int
	timeout       time.Duration
	started       bool
	aborted       error
}

// await polls event e (recorded on the stream the work was queued on)
// until done, an NCCL error, or the deadline, which aborts the communicator.
func (c *gpuComm) await(e C.CUeventN, what string) error {
	deadline := time.Now().Add(c.timeout)
	sleep := 10 * time.Microsecond
	for {
		c.l.g.enter()
		r := C.pk_event_query(c.l.api, e)
		async := C.pk_nccl_async(c.l.api, c.comm)
		c.l.g.exit()
		switch {
		case r == 0:
			return nil
		case r != 600: // CUDA_ERROR_NOT_READY
			return fmt.Errorf("rank %d: %s: CUDA error %d", c.rank, what, int(r))
		case async != 0 && async != 7: // 7: ncclInProgress
			c.abort()
			c.aborted = fmt.Errorf("rank %d: %s: %w", c.rank, what, c.l.check("NCCL", async))
			return c.aborted
		case time.Now().After(deadline):
			c.abort()
			c.aborted = fmt.Errorf("rank %d: %s did not complete within %s: a rank has stopped, died or hangs; the communicator was aborted", c.rank, what, c.timeout)
			return c.aborted
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, time.Millisecond)
	}
}

func (c *gpuComm) abort() {
	c.l.g.enter()
	defer c.l.g.exit()
	C.pk_nccl_abort(c.l.api, c.comm)
}

// queue runs the sums of spans on stream s as one NCCL group.
func (c *gpuComm) queue(spans []span, f64 bool, s C.CUstreamN) error {
	c.l.g.enter()
	defer c.l.g.exit()
	if err := c.l.check("ncclGroupStart", C.pk_nccl_group_start(c.l.api)); err != nil {
		return err
	}
	var first error
	for _, sp := range spans {
		count := sp.n
		if f64 {
			count /= 2
		}
		if err := c.l.check("ncclAllReduce", C.pk_nccl_allreduce(c.l.api, C.ulonglong(sp.p), C.size_t(count), b2c(f64), c.comm, s)); err != nil && first == nil {
			first = err
		}
	}
	if err := c.l.check("ncclGroupEnd", C.pk_nccl_group_end(c.l.api)); err != nil && first == nil {
		first = err
	}
	return first
}

func b2c(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (c *gpuComm) allReduce(spans []span, f64 bool) error {
	if c.aborted != nil {
		return c.aborted
	}
	if err := c.queue(spans, f64, nil); err != nil {
		return fmt.Errorf("rank %d: %w", c.rank, err)
	}
	c.l.g.enter()
	C.pk_event_record(c.l.api, c.after, nil)
	c.l.g.exit()
	return c.await(c.after, "NCCL all-reduce")
}

func (c *gpuComm) start(spans []span) error {
	if c.aborted != nil {
		return c.aborted
	}
	c.l.g.enter()
	C.pk_event_record(c.l.api, c.before, nil) // after the kernels queued so far
	C.pk_stream_wait(c.l.api, c.stream, c.before)
	c.l.g.exit()
	c.started = true
	if err := c.queue(spans, false, c.stream); err != nil {
		return fmt.Errorf("rank %d: %w", c.rank, err)
	}
	return nil
}

func (c *gpuComm) wait() error {
	if !c.started {
		return c.aborted
	}
	c.started = false
	c.l.g.enter()
	C.pk_event_record(c.l.api, c.after, c.stream)
	C.pk_stream_wait(c.l.api, nil, c.after) // kernels queued from now on wait for the sums
	c.l.g.exit()
	return c.await(c.after, "NCCL all-reduce of the gradients")
}

func (c *gpuComm) async() bool { return true }

func (c *gpuComm) broadcast(s span, root int) error {
	if c.aborted != nil {
		return c.aborted
	}
	c.l.g.enter()
	err := c.l.check("ncclBroadcast", C.pk_nccl_bcast(c.l.api, C.ulonglong(s.p), C.size_t(s.n), C.int(root), c.comm))
	C.pk_event_record(c.l.api, c.after, nil)
	c.l.g.exit()
	if err != nil {
		return err
	}
	return c.await(c.after, "NCCL broadcast")
}

func (c *gpuComm) describe() string {
	return fmt.Sprintf("%s, %d ranks, one GPU each", c.l.ver, c.size)
}

func (c *gpuComm) close() error {
	c.l.g.enter()
	defer c.l.g.exit()
	for _, e := range []C.CUeventN{c.before, c.after} {
		if e != nil {
			C.pk_event_destroy(c.l.api, e)
		}
	}
	if c.stream != nil {
		C.pk_stream_destroy(c.l.api, c.stream)
	}
	if c.aborted != nil {
		return nil // ncclCommAbort freed it
	}
	return c.l.check("ncclCommDestroy", C.pk_nccl_destroy(c.l.api, c.comm))
}
