// Package dist runs proxy learning data-parallel: one process (rank) per
// device, each computing a share of every global batch, the gradients
// summed across ranks once per step (docs/design.md §8).
//
// It holds the communicators — Open MPI (opened at run time, never
// linked), NCCL through the CUDA backend, and ranks in one process for
// tests —, the detection of the launcher that started the process
// (mpirun, torchrun, srun), the rendezvous that bootstraps NCCL without
// MPI, and Backend, which runs a rank's share of each batch on a
// compute.Backend: the proxy loss over the global batch, BatchNorm's
// statistics synchronised across ranks, and the gradients' all-reduce in
// buckets. Package train's Trainer uses it when its Dist is set.
//
// Sums across ranks follow a fixed order: for a power-of-two number of
// ranks each holding a consecutive share of the batch (Split), the order
// of the CPU backend's batch reduction tree, so that data-parallel training
// on the CPU gives the bits of one process.
package distributed

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/proxykit/proxykit/compute"
)

// Comm is a communicator between the ranks of a data-parallel run over
// host memory: the compute.HostComm collectives, and a way to stop every
// rank.
type Comm interface {
	compute.HostComm
	// Abort stops every rank after err: under MPI the launcher ends the
	// job; ranks in one process return err from their collectives.
	Abort(err error)
	// Describe names the communicator, for logs.
	Describe() string
	// Close ends this rank's part (MPI_Finalize under MPI).
	Close() error
}

// ErrTimeout is wrapped by the error of a collective that waited for a
// rank longer than its timeout.
var ErrTimeout = errors.New("timed out")

// transport moves bytes between two ranks. Every wait is bounded by the
// transport's timeout; its errors name the rank waited for and what for.
type transport interface {
	rank() int
	size() int
	// exchange sends out to peer and receives len(in) bytes from peer,
	// both in flight at once.
	exchange(peer int, out, in []byte, what string) error
	send(peer int, out []byte, what string) error
	recv(peer int, in []byte, what string) error
	abort(err error)
	describe() string
	close() error
}

// p2pComm is a Comm over a transport: its collectives are built from
// exchanges between pairs of ranks in a fixed order.
type p2pComm struct {
	t     transport
	f32   []float32 // scratch for received values
	f64   []float64
	bytes []byte
}

// newComm wraps a transport.
func newComm(t transport) *p2pComm { return &p2pComm{t: t} }

func (c *p2pComm) Rank() int        { return c.t.rank() }
func (c *p2pComm) Size() int        { return c.t.size() }
func (c *p2pComm) Abort(err error)  { c.t.abort(err) }
func (c *p2pComm) Describe() string { return c.t.describe() }
func (c *p2pComm) Close() error     { return c.t.close() }

// AllReduceF32 implements compute.HostComm (see allReduce for the order).
func (c *p2pComm) AllReduceF32(x []float32) error {
	if len(c.f32) < len(x) {
		c.f32 = make([]float32, len(x))
	}
	return allReduce(c.t, x, c.f32, "all-reduce")
}

// AllReduceF64 implements compute.HostComm.
func (c *p2pComm) AllReduceF64(x []float64) error {
	if len(c.f64) < len(x) {
		c.f64 = make([]float64, len(x))
	}
	return allReduce(c.t, x, c.f64, "all-reduce")
}

// Broadcast implements compute.HostComm: a binomial tree from root.
func (c *p2pComm) Broadcast(root int, b []byte) error {
	p, r := c.t.size(), c.t.rank()
	if root < 0 || root >= p {
		return fmt.Errorf("broadcast from rank %d of %d", root, p)
	}
	v := (r - root + p) % p // rank relative to root
	for mask := 1; mask < p; mask <<= 1 {
		switch {
		case v < mask:
			if v+mask < p {
				if err := c.t.send((v+mask+root)%p, b, "broadcast"); err != nil {
					return err
				}
			}
		case v < 2*mask:
			if err := c.t.recv((v-mask+root)%p, b, "broadcast"); err != nil {
				return err
			}
		}
	}
	return nil
}

// number is what allReduce sums.
type number interface{ ~float32 | ~float64 }

// bytesOf views a slice's memory as bytes.
func bytesOf[T any](x []T) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), len(x)*int(unsafe.Sizeof(x[0])))
}

// allReduce replaces x on every rank by its sum over the ranks, the same
// bits everywhere, in a fixed order: a reduce-scatter by recursive halving
// with the partner at distance 1, 2, 4, … (rank r ^ d), then an allgather
// by recursive doubling back. With p a power of two, each value's sum is
// then the binary tree over the ranks in order — ((x0+x1)+(x2+x3)) for
// four — the batch reduction tree of docs/design.md §4 one level up, so
// that ranks holding consecutive equal shares of a batch (Split) sum their
// gradients to the one-process bits. The pair's sum a+b is commutative
// in IEEE arithmetic, so both partners get the same bits. With p not a
// power of two the ranks beyond the largest power of two q first add
// their values into rank r − q's and get the result back at the end: a
// fixed order too, though not a batch tree. scratch holds len(x) values.
// Traffic per rank: about 2·len(x) values in all, in 2·log2(q) exchanges.
func allReduce[T number](t transport, x, scratch []T, what string) error {
	p, r := t.size(), t.rank()
	if p == 1 {
		return nil
	}
	q := 1
	for q*2 <= p {
		q *= 2
	}
	if r >= q { // fold into rank r − q, get the sum back
		if err := t.send(r-q, bytesOf(x), what); err != nil {
			return err
		}
		return t.recv(r-q, bytesOf(x), what)
	}
	if r+q < p {
		tmp := scratch[:len(x)]
		if err := t.recv(r+q, bytesOf(tmp), what); err != nil {
			return err
		}
		for i, v := range tmp {
			x[i] += v
		}
	}
	type span struct{ lo, hi int }
	var spans []span // the segment held before each halving
	lo, hi := 0, len(x)
	for d := 1; d < q; d <<= 1 {
		peer := r ^ d
		mid := lo + (hi-lo)/2
		keep, give := span{lo, mid}, span{mid, hi}
		if r&d != 0 {
			keep, give = give, keep
		}
		tmp := scratch[:keep.hi-keep.lo]
		if err := t.exchange(peer, bytesOf(x[give.lo:give.hi]), bytesOf(tmp), what); err != nil {
			return err
		}
		kept := x[keep.lo:keep.hi]
		for i, v := range tmp {
			kept[i] += v
		}
		spans = append(spans, span{lo, hi})
		lo, hi = keep.lo, keep.hi
	}
	for d, k := q/2, len(spans)-1; d >= 1; d, k = d/2, k-1 {
		peer := r ^ d
		s := spans[k]
		other := span{s.lo, lo} // the half of s the peer holds
		if lo == s.lo {
			other = span{hi, s.hi}
		}
		if err := t.exchange(peer, bytesOf(x[lo:hi]), bytesOf(x[other.lo:other.hi]), what); err != nil {
			return err
		}
		lo, hi = s.lo, s.hi
	}
	if r+q < p {
		return t.send(r+q, bytesOf(x), what)
	}
	return nil
}

// backoff paces a polling wait: it yields at first, then sleeps, up to a
// millisecond, so that a rank waiting for a slower one leaves it the CPU.
type backoff struct{ n int }

func (b *backoff) wait() {
	b.n++
	switch {
	case b.n < 200:
		runtime.Gosched()
	case b.n < 400:
		time.Sleep(20 * time.Microsecond)
	default:
		time.Sleep(time.Millisecond)
	}
}

// timeoutError says that a rank waited for another too long.
func timeoutError(rank, peer int, timeout time.Duration, what string) error {
	return fmt.Errorf("rank %d got no answer from rank %d within %s (%s): rank %d has stopped, died or hangs: %w",
		rank, peer, timeout, what, peer, ErrTimeout)
}
