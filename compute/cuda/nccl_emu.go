package cuda

import (
	"crypto/rand"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/proxykit/proxykit/compute"
)

// NCCL on the emulated device: the calls nccl.go makes, served on host
// memory (device memory is host memory there). Its transport is the
// processes' host communicator (MPI under mpirun, or ranks in one process)
// or, without one (torchrun's variables, in a test), the ranks of this
// process that joined with the same unique id. Sums run when they are
// started: the emulated device runs every kernel when it is queued, so
// that is after the kernels before and beside (before) those after.

// nccl implements the device's collectives.
func (d emuDevice) nccl() (ncclLib, error) { return emuNCCL{d}, nil }

type emuNCCL struct{ d emuDevice }

func (emuNCCL) version() string { return "NCCL emulated on host memory" }

// uniqueID is 128 random bytes, as NCCL's is 128 bytes.
func (emuNCCL) uniqueID() ([]byte, error) {
	id := make([]byte, 128)
	_, err := rand.Read(id)
	return id, err
}

func (e emuNCCL) join(rank, size int, id []byte, host compute.HostComm, timeout time.Duration) (ncclComm, error) {
	if rank < 0 || rank >= size {
		return nil, fmt.Errorf("rank %d of %d", rank, size)
	}
	if host != nil {
		if host.Rank() != rank || host.Size() != size {
			return nil, fmt.Errorf("the host communicator is rank %d of %d", host.Rank(), host.Size())
		}
		return &emuComm{d: e.d, host: host, via: "the host communicator"}, nil
	}
	c, err := joinClique(string(id), rank, size, timeout)
	if err != nil {
		return nil, err
	}
	return &emuComm{d: e.d, host: c, via: fmt.Sprintf("%d ranks in this process", size)}, nil
}

// emuComm is an emulated communicator over a host transport.
type emuComm struct {
	d    emuDevice
	host compute.HostComm
	via  string
}

func (c *emuComm) allReduce(spans []span, f64 bool) error {
	if c.d.dry {
		return nil
	}
	for _, s := range spans {
		v := c.d.host(s.p, s.n)
		var err error
		if f64 {
			var v64 []float64
			if v64, err = compute.Float64s(v); err == nil {
				err = c.host.AllReduceF64(v64)
			}
		} else {
			err = c.host.AllReduceF32(v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *emuComm) start(spans []span) error { return c.allReduce(spans, false) }
func (c *emuComm) wait() error              { return nil }
func (c *emuComm) async() bool              { return true }

func (c *emuComm) broadcast(s span, root int) error {
	if c.d.dry || s.n == 0 {
		return nil
	}
	v := c.d.host(s.p, s.n)
	return c.host.Broadcast(root, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*s.n))
}

func (c *emuComm) describe() string { return "NCCL emulated on host memory over " + c.via }
func (c *emuComm) close() error     { return nil }

// The ranks of one process find each other by unique id, as NCCL's ranks
// find each other through the id's bootstrap address: this registry is
// process-wide by nature.
var cliques struct {
	sync.Mutex
	byID map[string]*clique
}

// clique is the ranks of this process that joined with one id; it is a
// compute.HostComm for each of them (cliqueRank).
type clique struct {
	size    int
	timeout time.Duration
	posts   [][]byte // by rank, the current collective's inputs
	joined  int
	bar     barrier
}

// joinClique joins rank to the clique of id and waits for all size ranks.
func joinClique(id string, rank, size int, timeout time.Duration) (*cliqueRank, error) {
	cliques.Lock()
	if cliques.byID == nil {
		cliques.byID = map[string]*clique{}
	}
	c := cliques.byID[id]
	if c == nil {
		c = &clique{size: size, timeout: timeout, posts: make([][]byte, size), bar: barrier{n: size, ch: make(chan struct{})}}
		cliques.byID[id] = c
	}
	c.joined++
	if c.joined == size {
		delete(cliques.byID, id)
	}
	cliques.Unlock()
	if c.size != size {
		return nil, fmt.Errorf("rank %d joined a communicator of %d ranks as one of %d", rank, c.size, size)
	}
	r := &cliqueRank{c: c, rank: rank}
	if err := c.bar.wait(timeout); err != nil {
		return nil, fmt.Errorf("rank %d: not every rank of %d joined within %s (the emulated device's collectives without MPI reach only ranks of this process)", rank, size, timeout)
	}
	return r, nil
}

// barrier releases its n waiters together, again and again.
type barrier struct {
	mu    sync.Mutex
	n, at int
	ch    chan struct{}
}

func (b *barrier) wait(timeout time.Duration) error {
	b.mu.Lock()
	ch := b.ch
	b.at++
	if b.at == b.n {
		close(ch)
		b.ch, b.at = make(chan struct{}), 0
	}
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("a rank did not reach the collective within %s", timeout)
	}
}

// cliqueRank is one rank's view of a clique.
type cliqueRank struct {
	c    *clique
	rank int
}

func (r *cliqueRank) Rank() int { return r.rank }
func (r *cliqueRank) Size() int { return r.c.size }

// exchange posts in, waits for every rank's post, calls read on them all
// (in rank order) and waits until every rank has read.
func (r *cliqueRank) exchange(in []byte, read func(posts [][]byte)) error {
	r.c.posts[r.rank] = append([]byte(nil), in...)
	if err := r.c.bar.wait(r.c.timeout); err != nil {
		return fmt.Errorf("rank %d: %w", r.rank, err)
	}
	read(r.c.posts)
	if err := r.c.bar.wait(r.c.timeout); err != nil {
		return fmt.Errorf("rank %d: %w", r.rank, err)
	}
	return nil
}

// AllReduceF32 implements compute.HostComm: the sum in rank order.
func (r *cliqueRank) AllReduceF32(x []float32) error {
	if len(x) == 0 {
		return nil
	}
	return r.exchange(unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x)), func(posts [][]byte) {
		clear(x)
		for _, p := range posts {
			for i, v := range unsafe.Slice((*float32)(unsafe.Pointer(&p[0])), len(x)) {
				x[i] += v
			}
		}
	})
}

// AllReduceF64 implements compute.HostComm.
func (r *cliqueRank) AllReduceF64(x []float64) error {
	if len(x) == 0 {
		return nil
	}
	return r.exchange(unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 8*len(x)), func(posts [][]byte) {
		clear(x)
		for _, p := range posts {
			for i, v := range unsafe.Slice((*float64)(unsafe.Pointer(&p[0])), len(x)) {
				x[i] += v
			}
		}
	})
}

// Broadcast implements compute.HostComm.
func (r *cliqueRank) Broadcast(root int, b []byte) error {
	return r.exchange(b, func(posts [][]byte) { copy(b, posts[root]) })
}
