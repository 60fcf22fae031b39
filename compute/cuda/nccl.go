package cuda

import (
	"fmt"
	"time"

	"github.com/proxykit/proxykit/compute"
)

// The CUDA backend's collectives (compute.CollectiveBackend): NCCL's
// all-reduce and broadcast on device memory, for data-parallel training
// (package distributed). Everything above the library calls — which buffers,
// grouping, ordering against the kernels, waiting with a deadline — is
// this file's, the same on the GPU (nccl_gpu.go: libnccl.so.2 loaded at
// run time) and on the emulated device (nccl_emu.go: the same calls served
// on host memory through the processes' host communicator), so that CI
// runs this code without a GPU.

// span is a run of n float32 places of device memory.
type span struct {
	p devptr
	n int
}

// ncclLib is NCCL, or its emulation.
type ncclLib interface {
	// version names the library.
	version() string
	// uniqueID is ncclGetUniqueId's token (rank 0 makes it).
	uniqueID() ([]byte, error)
	// join is ncclCommInitRank; host, if not nil, is the processes' host
	// communicator (the emulation moves its data through it).
	join(rank, size int, id []byte, host compute.HostComm, timeout time.Duration) (ncclComm, error)
}

// ncclComm is one rank's communicator.
type ncclComm interface {
	// allReduce sums each span (float32, or with f64 float64 values, two
	// places each) over the ranks in place, after the kernels queued
	// before it; it returns once done, or failed, or past the timeout.
	allReduce(spans []span, f64 bool) error
	// start queues the float32 sums of spans on a stream of their own,
	// after the kernels queued before; kernels queued later may run
	// meanwhile. wait makes kernels queued after it see every started sum,
	// and returns once they are done (or failed, or past the timeout).
	start(spans []span) error
	wait() error
	// async says whether start's sums run beside later kernels.
	async() bool
	// broadcast copies root's span to every rank.
	broadcast(s span, root int) error
	// describe names the library and the transport.
	describe() string
	close() error
}

// nccl returns the device's NCCL, loading it on first use.
func (be *Backend) nccl() (ncclLib, error) {
	if be.lib == nil {
		d, ok := be.dev.(interface{ nccl() (ncclLib, error) })
		if !ok {
			return nil, fmt.Errorf("%s has no collectives", be.dev.name())
		}
		lib, err := d.nccl()
		if err != nil {
			return nil, err
		}
		be.lib = lib
	}
	return be.lib, nil
}

// CollectiveID implements compute.CollectiveBackend: ncclGetUniqueId.
func (be *Backend) CollectiveID() ([]byte, error) {
	if err := be.ready(); err != nil {
		return nil, err
	}
	lib, err := be.nccl()
	if err != nil {
		return nil, err
	}
	return lib.uniqueID()
}

// JoinCollectives implements compute.CollectiveBackend: ncclCommInitRank.
func (be *Backend) JoinCollectives(rank, size int, id []byte, host compute.HostComm, timeout time.Duration) (compute.Collectives, error) {
	if err := be.ready(); err != nil {
		return nil, err
	}
	lib, err := be.nccl()
	if err != nil {
		return nil, err
	}
	if err := be.Err(); err != nil {
		return nil, err
	}
	comm, err := lib.join(rank, size, id, host, timeout)
	if err != nil {
		return nil, fmt.Errorf("%s, rank %d of %d: %w", lib.version(), rank, size, err)
	}
	return &collectives{be: be, comm: comm}, nil
}

// collectives implement compute.Collectives on the backend's buffers.
type collectives struct {
	be   *Backend
	comm ncclComm
}

// spans are the buffers' device memory.
func spans(bufs []compute.Buffer) []span {
	out := make([]span, len(bufs))
	for i, b := range bufs {
		out[i] = span{ptr(b), b.Len()}
	}
	return out
}

// count records a collective call and its bytes in the traffic counters.
func (c *collectives) count(kind string, bufs []compute.Buffer) {
	c.be.count.Calls[kind]++
	for _, b := range bufs {
		c.be.count.Read[kind] += 4 * int64(b.Len())
		c.be.count.Written[kind] += 4 * int64(b.Len())
	}
}

// AllReduce implements compute.Collectives.
func (c *collectives) AllReduce(bufs []compute.Buffer, f64 bool) error {
	if len(bufs) == 0 {
		return nil
	}
	if c.be.err != nil {
		return c.be.Err()
	}
	c.count("nccl all-reduce", bufs)
	return c.comm.allReduce(spans(bufs), f64)
}

// Start implements compute.Collectives.
func (c *collectives) Start(bufs []compute.Buffer) error {
	if len(bufs) == 0 {
		return nil
	}
	c.count("nccl all-reduce", bufs)
	return c.comm.start(spans(bufs))
}

// Wait implements compute.Collectives.
func (c *collectives) Wait() error { return c.comm.wait() }

// Async implements compute.Collectives.
func (c *collectives) Async() bool { return c.comm.async() }

// Broadcast implements compute.Collectives.
func (c *collectives) Broadcast(root int, bufs []compute.Buffer) error {
	c.count("nccl broadcast", bufs)
	for _, b := range bufs {
		if err := c.comm.broadcast(span{ptr(b), b.Len()}, root); err != nil {
			return err
		}
	}
	return nil
}

// Describe implements compute.Collectives.
func (c *collectives) Describe() string { return c.comm.describe() }

// Close implements compute.Collectives.
func (c *collectives) Close() error { return c.comm.close() }

var _ compute.CollectiveBackend = (*Backend)(nil)
