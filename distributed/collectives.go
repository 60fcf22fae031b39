package distributed

import (
	"fmt"
	"unsafe"

	"github.com/proxykit/proxykit/compute"
)

// hostCollectives are compute.Collectives over a host communicator for a
// backend whose buffers are host memory (the CPU backend): each buffer is
// summed in place by the communicator's fixed-order all-reduce. Start
// defers the sums to Wait: on the CPU the cores that would move the data
// are the ones computing the backward pass, so overlapping them does not
// pay (docs/design.md §8).
type hostCollectives struct {
	c       Comm
	pending []compute.Buffer
}

func (h *hostCollectives) host(b compute.Buffer) ([]float32, error) {
	d, ok := compute.HostData(b)
	if !ok {
		return nil, fmt.Errorf("MPI collectives take host buffers (the CPU backend's); got a %T", b)
	}
	return d, nil
}

// AllReduce implements compute.Collectives.
func (h *hostCollectives) AllReduce(bufs []compute.Buffer, f64 bool) error {
	for _, b := range bufs {
		d, err := h.host(b)
		if err != nil {
			return err
		}
		if f64 {
			var d64 []float64
			if d64, err = compute.Float64s(d); err == nil {
				err = h.c.AllReduceF64(d64)
			}
		} else {
			err = h.c.AllReduceF32(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Start implements compute.Collectives: the sums run in Wait.
func (h *hostCollectives) Start(bufs []compute.Buffer) error {
	h.pending = append(h.pending, bufs...)
	return nil
}

// Wait implements compute.Collectives.
func (h *hostCollectives) Wait() error {
	bufs := h.pending
	h.pending = h.pending[:0]
	return h.AllReduce(bufs, false)
}

// Async implements compute.Collectives.
func (h *hostCollectives) Async() bool { return false }

// Broadcast implements compute.Collectives.
func (h *hostCollectives) Broadcast(root int, bufs []compute.Buffer) error {
	for _, b := range bufs {
		d, err := h.host(b)
		if err != nil {
			return err
		}
		if err := h.c.Broadcast(root, bytesOf(d)); err != nil {
			return err
		}
	}
	return nil
}

// Describe implements compute.Collectives.
func (h *hostCollectives) Describe() string { return h.c.Describe() }

// Close implements compute.Collectives (the communicator is the group's).
func (h *hostCollectives) Close() error { return nil }

// stagedComm is a host communicator carried by a backend's collectives
// (NCCL under torchrun and srun, where there is no MPI): the values are
// copied to the device, summed there, and copied back. It serves the
// trainer's few small host collectives (a step's counts, the evaluation's).
type stagedComm struct {
	rank, size int
	be         compute.Backend
	coll       compute.Collectives
	buf        compute.Buffer
	host       []float32
	abort      func(error)
	describe   string
}

// stage copies n float32 values' worth of src to the device buffer, runs
// op on it, and copies the result back into dst.
func (s *stagedComm) stage(vals []float32, op func(compute.Buffer) error) error {
	n := len(vals)
	if n == 0 {
		return op(nil)
	}
	if s.buf == nil || s.buf.Len() < n {
		if s.buf != nil {
			s.be.Free(s.buf)
		}
		b, err := s.be.Alloc(max(n, 1024))
		if err != nil {
			return err
		}
		s.buf = b
	}
	b := s.buf.Slice(0, n)
	s.be.Upload(b, vals)
	if err := op(b); err != nil {
		return err
	}
	return s.be.Download(vals, b)
}

func (s *stagedComm) Rank() int { return s.rank }
func (s *stagedComm) Size() int { return s.size }

// AllReduceF32 implements compute.HostComm.
func (s *stagedComm) AllReduceF32(x []float32) error {
	return s.stage(x, func(b compute.Buffer) error {
		if b == nil {
			return nil
		}
		return s.coll.AllReduce([]compute.Buffer{b}, false)
	})
}

// AllReduceF64 implements compute.HostComm.
func (s *stagedComm) AllReduceF64(x []float64) error {
	if len(x) == 0 {
		return nil
	}
	f := unsafe.Slice((*float32)(unsafe.Pointer(&x[0])), 2*len(x))
	return s.stage(f, func(b compute.Buffer) error { return s.coll.AllReduce([]compute.Buffer{b}, true) })
}

// Broadcast implements compute.HostComm.
func (s *stagedComm) Broadcast(root int, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	f := make([]float32, (len(b)+3)/4)
	copy(bytesOf(f), b)
	err := s.stage(f, func(buf compute.Buffer) error { return s.coll.Broadcast(root, []compute.Buffer{buf}) })
	copy(b, bytesOf(f))
	return err
}

// Abort implements Comm.
func (s *stagedComm) Abort(err error) {
	if s.abort != nil {
		s.abort(err)
	}
}

// Describe implements Comm.
func (s *stagedComm) Describe() string { return s.describe }

// Close implements Comm.
func (s *stagedComm) Close() error {
	if s.buf != nil {
		s.be.Free(s.buf)
		s.buf = nil
	}
	return nil
}
