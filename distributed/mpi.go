package distributed

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// Open MPI is loaded at run time with dlopen, never linked, so that a
// proxykit binary starts on a machine without MPI and says what is missing
// only when a launcher asks for it. Only the few entry points proxykit
// calls are declared, with Open MPI's ABI (mpi.h of Open MPI 4 and 5,
// libmpi.so.40): handles are pointers, the predefined ones the addresses
// of the library's ompi_mpi_* objects. MPICH's libmpi has another ABI.

typedef void* MPI_Handle;

typedef struct {
	void* lib;
	int (*init_thread)(int*, char***, int, int*);
	int (*initialized)(int*);
	int (*finalize)(void);
	int (*comm_rank)(MPI_Handle, int*);
	int (*comm_size)(MPI_Handle, int*);
	int (*set_errhandler)(MPI_Handle, MPI_Handle);
	int (*isend)(const void*, int, MPI_Handle, int, int, MPI_Handle, MPI_Handle*);
	int (*irecv)(void*, int, MPI_Handle, int, int, MPI_Handle, MPI_Handle*);
	int (*test)(MPI_Handle*, int*, void*);
	int (*abort)(MPI_Handle, int);
	int (*error_string)(int, char*, int*);
	int (*get_library_version)(char*, int*);
	MPI_Handle world, byte_type, errors_return;
} pk_mpi;

#define PK_MPI_SYM(field, name) if ((m->field = dlsym(m->lib, name)) == NULL) return name;

// pk_mpi_load opens path; it returns NULL, or what is missing.
static const char* pk_mpi_load(pk_mpi* m, const char* path) {
	memset(m, 0, sizeof *m);
	// RTLD_GLOBAL: Open MPI's components (plugins it opens itself) resolve
	// their symbols against libmpi's.
	m->lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (m->lib == NULL) return path;
	PK_MPI_SYM(world, "ompi_mpi_comm_world");
	PK_MPI_SYM(byte_type, "ompi_mpi_byte");
	PK_MPI_SYM(errors_return, "ompi_mpi_errors_return");
	PK_MPI_SYM(init_thread, "MPI_Init_thread");
	PK_MPI_SYM(initialized, "MPI_Initialized");
	PK_MPI_SYM(finalize, "MPI_Finalize");
	PK_MPI_SYM(comm_rank, "MPI_Comm_rank");
	PK_MPI_SYM(comm_size, "MPI_Comm_size");
	PK_MPI_SYM(set_errhandler, "MPI_Comm_set_errhandler");
	PK_MPI_SYM(isend, "MPI_Isend");
	PK_MPI_SYM(irecv, "MPI_Irecv");
	PK_MPI_SYM(test, "MPI_Test");
	PK_MPI_SYM(abort, "MPI_Abort");
	PK_MPI_SYM(error_string, "MPI_Error_string");
	PK_MPI_SYM(get_library_version, "MPI_Get_library_version");
	return NULL;
}

static const char* pk_dlerror(void) { return dlerror(); }

// MPI_THREAD_SERIALIZED: any thread may call MPI, one at a time (Go moves
// goroutines between threads; proxykit serialises its calls).
static int pk_mpi_init(pk_mpi* m, int* provided) {
	int done = 0;
	m->initialized(&done);
	if (done) return -1;
	int rc = m->init_thread(NULL, NULL, 2, provided);
	if (rc == 0) m->set_errhandler(m->world, m->errors_return);
	return rc;
}
static int pk_mpi_rank(pk_mpi* m, int* r) { return m->comm_rank(m->world, r); }
static int pk_mpi_size(pk_mpi* m, int* s) { return m->comm_size(m->world, s); }
static int pk_mpi_isend(pk_mpi* m, const void* b, int n, int peer, MPI_Handle* req) {
	return m->isend(b, n, m->byte_type, peer, 0x70b, m->world, req);
}
static int pk_mpi_irecv(pk_mpi* m, void* b, int n, int peer, MPI_Handle* req) {
	return m->irecv(b, n, m->byte_type, peer, 0x70b, m->world, req);
}
static int pk_mpi_test(pk_mpi* m, MPI_Handle* req, int* flag) { return m->test(req, flag, NULL); }
static int pk_mpi_abort(pk_mpi* m, int code) { return m->abort(m->world, code); }
static int pk_mpi_finalize(pk_mpi* m) { return m->finalize(); }
static void pk_mpi_error(pk_mpi* m, int code, char* buf, int n) {
	int len = 0;
	buf[0] = 0;
	if (m->error_string(code, buf, &len) != 0 || len >= n) buf[0] = 0;
}
static void pk_mpi_version(pk_mpi* m, char* buf, int n) {
	int len = 0;
	buf[0] = 0;
	if (m->get_library_version(buf, &len) != 0 || len >= n) buf[0] = 0;
}
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// The process's MPI: initialised at most once (MPI cannot be initialised
// again after MPI_Finalize), shared by every communicator made over it.
var mpiState struct {
	sync.Mutex // serialises every MPI call (MPI_THREAD_SERIALIZED)
	api        *C.pk_mpi
	version    string
	finalized  bool
	broken     error // MPI's start-up timed out: MPI cannot be used in this process
}

// MPILibrary is the Open MPI library proxykit opens: $PROXYKIT_MPI, else
// libmpi.so.40 on the loader's path (Debian's libopenmpi3, which
// openmpi-bin installs).
func MPILibrary() string {
	if p := os.Getenv("PROXYKIT_MPI"); p != "" {
		return p
	}
	return "libmpi.so.40"
}

// OpenMPI initialises MPI (Open MPI, loaded at run time) in a process an
// MPI launcher started and returns its world communicator. Its waits fail
// after timeout, naming the rank waited for; Abort calls MPI_Abort, which
// makes the launcher end every rank. MPI's start-up itself
// (MPI_Init_thread) cannot be cancelled: if it has not finished within
// timeout (another rank never started it), OpenMPI returns an error naming
// that stage, and MPI can no longer be used in this process, which should
// end (Options.Fatal does it for Open).
func OpenMPI(timeout time.Duration) (Comm, error) { return openMPI(timeout, nil) }

// openMPI is OpenMPI with the handler of a start-up that outlives its
// timeout (Options.Fatal; nil: return the error).
func openMPI(timeout time.Duration, fatal func(error)) (Comm, error) {
	if timeout <= 0 || timeout > MaxTimeout {
		return nil, fmt.Errorf("MPI: timeout %s: want a positive duration of at most %s", timeout, MaxTimeout)
	}
	mpiState.Lock()
	defer mpiState.Unlock()
	if mpiState.finalized {
		return nil, fmt.Errorf("MPI was finalized in this process; it cannot start again")
	}
	if mpiState.broken != nil {
		return nil, mpiState.broken
	}
	if mpiState.api == nil {
		api, err := loadMPI(MPILibrary())
		if err != nil {
			return nil, err
		}
		// Open MPI's own handlers of SIGSEGV, SIGBUS, SIGFPE and SIGILL would
		// take those signals from Go's runtime, which turns them into
		// panics with a trace: leave them to Go unless the user chose.
		if _, set := os.LookupEnv("OMPI_MCA_opal_signal"); !set {
			os.Setenv("OMPI_MCA_opal_signal", "")
		}
		if err := initMPI(api, timeout, fatal); err != nil {
			return nil, err
		}
		var buf [512]C.char
		C.pk_mpi_version(api, &buf[0], 512)
		mpiState.api, mpiState.version = api, strings.TrimSpace(strings.SplitN(C.GoString(&buf[0]), ",", 2)[0])
	}
	t := &mpiTransport{api: mpiState.api, timeout: timeout, chunk: 1 << 30}
	var r, s C.int
	if rc := C.pk_mpi_rank(t.api, &r); rc != 0 {
		return nil, fmt.Errorf("MPI_Comm_rank: %s", mpiError(t.api, rc))
	}
	if rc := C.pk_mpi_size(t.api, &s); rc != 0 {
		return nil, fmt.Errorf("MPI_Comm_size: %s", mpiError(t.api, rc))
	}
	t.r, t.n = int(r), int(s)
	return newComm(t), nil
}

// loadMPI opens the MPI library at path and finds its entry points.
func loadMPI(path string) (*C.pk_mpi, error) {
	api := (*C.pk_mpi)(C.malloc(C.sizeof_pk_mpi))
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	missing := C.pk_mpi_load(api, cpath)
	if missing == nil {
		return api, nil
	}
	C.free(unsafe.Pointer(api))
	// missing is cpath itself when the library could not be opened: read
	// it (and dlerror) before cpath is freed
	if missing == cpath {
		return nil, fmt.Errorf("MPI: cannot open %s (%s): data-parallel runs under mpirun need Open MPI's library "+
			"(Debian: apt-get install openmpi-bin), or its path in $PROXYKIT_MPI", path, oneLine(C.GoString(C.pk_dlerror())))
	}
	return nil, fmt.Errorf("MPI: %s has no %s: proxykit speaks Open MPI's ABI (libmpi.so.40, Open MPI 4 or 5); MPICH and its derivatives differ",
		path, C.GoString(missing))
}

// initMPI runs MPI_Init_thread under a watchdog: the call cannot be
// cancelled and waits for every rank of the job to start MPI, so a rank
// that never does (stuck before it, or not a proxykit process) would keep
// this one waiting for ever. After timeout it gives up: fatal(err), if
// set, then the error; the call stays behind in its thread, and MPI stays
// unusable in this process.
func initMPI(api *C.pk_mpi, timeout time.Duration, fatal func(error)) error {
	type result struct {
		rc       C.int
		provided C.int
	}
	done := make(chan result, 1)
	go func() {
		var provided C.int
		rc := C.pk_mpi_init(api, &provided)
		done <- result{rc, provided}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		switch {
		case r.rc == -1:
			return fmt.Errorf("MPI: already initialised in this process by another library")
		case r.rc != 0:
			return fmt.Errorf("MPI_Init_thread: %s", mpiError(api, r.rc))
		case r.provided < 2:
			return fmt.Errorf("MPI_Init_thread: the library gives thread level %d; proxykit needs MPI_THREAD_SERIALIZED (2)", int(r.provided))
		}
		return nil
	case <-timer.C:
		err := fmt.Errorf("MPI start-up (MPI_Init_thread) did not finish within %s: another rank of the job never started MPI "+
			"(it hangs or is stuck before it, or is not a proxykit process); MPI does not say which: %w", timeout, ErrTimeout)
		mpiState.broken = err
		if fatal != nil {
			fatal(err)
		}
		return err
	}
}

// oneLine joins a message's lines (a loader's error may hold several).
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// mpiError is MPI's text for an error code.
func mpiError(api *C.pk_mpi, rc C.int) string {
	var buf [512]C.char
	C.pk_mpi_error(api, rc, &buf[0], 512)
	if s := C.GoString(&buf[0]); s != "" {
		return fmt.Sprintf("%s (MPI error %d)", s, int(rc))
	}
	return fmt.Sprintf("MPI error %d", int(rc))
}

// mpiTransport moves bytes with MPI_Isend/MPI_Irecv on MPI_COMM_WORLD,
// polled with MPI_Test until done or past the timeout: a blocking MPI call
// would wait for a hung peer forever.
type mpiTransport struct {
	api     *C.pk_mpi
	r, n    int
	timeout time.Duration
	chunk   int // the most bytes in one message (MPI counts are C ints)
	// stuck keeps the pins of transfers that failed with requests still
	// posted (a timeout): MPI may write into those buffers until the job is
	// aborted, so they stay pinned, never reused by the collector.
	stuck []*runtime.Pinner
}

func (t *mpiTransport) rank() int { return t.r }
func (t *mpiTransport) size() int { return t.n }
func (t *mpiTransport) describe() string {
	return fmt.Sprintf("MPI (%s), %d ranks", mpiState.version, t.n)
}

func (t *mpiTransport) close() error {
	mpiState.Lock()
	defer mpiState.Unlock()
	if mpiState.finalized {
		return nil
	}
	mpiState.finalized = true
	if rc := C.pk_mpi_finalize(t.api); rc != 0 {
		return fmt.Errorf("MPI_Finalize: %s", mpiError(t.api, rc))
	}
	return nil
}

// abort ends the job: MPI_Abort makes the launcher kill every rank, this
// one included. Should it return, MPI counts as finalized: no call follows.
func (t *mpiTransport) abort(error) {
	mpiState.Lock()
	defer mpiState.Unlock()
	C.pk_mpi_abort(t.api, 1)
	mpiState.finalized = true
}

func (t *mpiTransport) send(peer int, out []byte, what string) error {
	return t.transfer(peer, out, nil, true, false, what)
}

func (t *mpiTransport) recv(peer int, in []byte, what string) error {
	return t.transfer(peer, nil, in, false, true, what)
}

func (t *mpiTransport) exchange(peer int, out, in []byte, what string) error {
	return t.transfer(peer, out, in, true, true, what)
}

// transfer sends out and/or receives in, in chunks, both directions in
// flight together.
func (t *mpiTransport) transfer(peer int, out, in []byte, sending, receiving bool, what string) error {
	pin := new(runtime.Pinner) // MPI holds the buffers until the requests complete
	for off := 0; off == 0 || off < max(len(out), len(in)); off += t.chunk {
		o := out[min(off, len(out)):min(off+t.chunk, len(out))]
		i := in[min(off, len(in)):min(off+t.chunk, len(in))]
		if err := t.transferChunk(pin, peer, o, i, sending, receiving, what); err != nil {
			mpiState.Lock()
			t.stuck = append(t.stuck, pin)
			mpiState.Unlock()
			return err
		}
	}
	pin.Unpin()
	return nil
}

func (t *mpiTransport) transferChunk(pin *runtime.Pinner, peer int, out, in []byte, sending, receiving bool, what string) error {
	ptr := func(b []byte) unsafe.Pointer {
		if len(b) == 0 {
			return nil
		}
		pin.Pin(&b[0])
		return unsafe.Pointer(&b[0])
	}
	mpiState.Lock()
	if mpiState.finalized {
		mpiState.Unlock()
		return fmt.Errorf("rank %d: MPI was finalized or aborted in this process (%s)", t.r, what)
	}
	var reqs [2]C.MPI_Handle
	nreq := 0
	if receiving {
		if rc := C.pk_mpi_irecv(t.api, ptr(in), C.int(len(in)), C.int(peer), &reqs[nreq]); rc != 0 {
			mpiState.Unlock()
			return fmt.Errorf("rank %d: MPI_Irecv from rank %d (%s): %s", t.r, peer, what, mpiError(t.api, rc))
		}
		nreq++
	}
	if sending {
		if rc := C.pk_mpi_isend(t.api, ptr(out), C.int(len(out)), C.int(peer), &reqs[nreq]); rc != 0 {
			mpiState.Unlock()
			return fmt.Errorf("rank %d: MPI_Isend to rank %d (%s): %s", t.r, peer, what, mpiError(t.api, rc))
		}
		nreq++
	}
	mpiState.Unlock()
	deadline := time.Now().Add(t.timeout)
	var b backoff
	done := [2]bool{}
	for {
		all := true
		mpiState.Lock()
		for k := 0; k < nreq; k++ {
			if done[k] {
				continue
			}
			var flag C.int
			if rc := C.pk_mpi_test(t.api, &reqs[k], &flag); rc != 0 {
				mpiState.Unlock()
				return fmt.Errorf("rank %d: MPI_Test, rank %d (%s): %s", t.r, peer, what, mpiError(t.api, rc))
			}
			done[k] = flag != 0
			all = all && done[k]
		}
		mpiState.Unlock()
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return timeoutError(t.r, peer, t.timeout, what)
		}
		b.wait()
	}
}
