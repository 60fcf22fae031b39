package compute

import (
	"fmt"
	"time"
	"unsafe"
)

// Data-parallel training (package distributed, docs/design.md §8) runs each
// global batch as shares, one per process. Most kernels need nothing new:
// a share's gradients are partial sums the processes add. The kernels
// whose results depend on the whole batch — the proxy loss's mean and
// BatchNorm's batch statistics and their backward pass — come in two
// parts: sums over the share, which the processes combine, and what is
// computed from the combined sums.

// Sharded is implemented by backends that can run a share of a batch whose
// other shares run elsewhere. Float64 values (BatchNorm's sums) occupy two
// float32 places of a Buffer each: allocate 2·n values for n of them.
type Sharded interface {
	Backend
	// ProxyLossGradOf is ProxyLossGrad for the n rows of one share of a
	// batch of total rows: dy = 2(counts − onehot)/(total·k).
	ProxyLossGradOf(n, total, k int, counts, labels, dy Buffer)
	// BatchNormSums writes, for each of groups groups of n samples (x is
	// [groups·n, c, hw], or [groups·n, hw, c] with layout NHWC) and each
	// channel, the sum over the group's samples
	// and pixels of x, or with mean (float64 values, [groups, c]) of
	// (x − mean)², into sums (float64 values, [groups, c]). The sum over a
	// batch is the processes' sums added in the batch reduction order
	// (docs/design.md §4); BatchNormStats is these sums divided by the
	// count (BatchNormDivide).
	BatchNormSums(groups, n, c, hw int, layout Layout, x, mean, sums Buffer)
	// BatchNormDivide writes out32[i] = float32(sums[i]/count) and, if out64
	// is not nil, out64[i] = sums[i]/count (float64), for n values.
	BatchNormDivide(n, count int, sums, out64, out32 Buffer)
	// BatchNormBackwardSums writes Σdy and Σdy·x̂ of each channel over n
	// samples into sums ([2, c], float32: Σdy first) and adds them into
	// dgamma and dbeta: BatchNormBackward's sums, for the statistics
	// (mean, variance) the forward pass normalised with.
	BatchNormBackwardSums(n, c, hw int, layout Layout, eps float32, mean, variance, x, dy, sums, dgamma, dbeta Buffer)
	// BatchNormBackwardData writes dx for n samples with batch statistics,
	// from sums over the whole batch of count values per channel:
	// dx = γ·invstd·(dy − Σdy/count − x̂·Σdy·x̂/count).
	BatchNormBackwardData(n, c, hw, count int, layout Layout, eps float32, gamma, mean, variance, x, dy, sums, dx Buffer)
}

// HostComm is a communicator between the processes of a data-parallel run
// over host memory (package distributed implements it over MPI, and between
// ranks of one process for tests). A backend's collectives use it to
// share their bootstrap token or, on the emulated CUDA device, to move
// the data.
type HostComm interface {
	// Rank is this process's index, from 0; Size the number of processes.
	Rank() int
	Size() int
	// AllReduceF32 and AllReduceF64 replace x by its sum over the
	// processes, every process getting the same bits.
	AllReduceF32(x []float32) error
	AllReduceF64(x []float64) error
	// Broadcast copies root's b into every process's b (of equal length).
	Broadcast(root int, b []byte) error
}

// Collectives sum and broadcast one backend's buffers across the processes
// of a data-parallel run: NCCL on the CUDA backend, package distributed's host
// collectives on the CPU.
type Collectives interface {
	// AllReduce replaces each buffer by its sum over the processes, in
	// place: float32 values, or with f64 float64 values (two places each).
	AllReduce(bufs []Buffer, f64 bool) error
	// Start begins the sum of bufs (float32) in the order of the calls;
	// where Async, it runs beside kernels queued later (NCCL on a stream
	// of its own). Wait ends every started sum: kernels queued after it
	// see the sums.
	Start(bufs []Buffer) error
	Wait() error
	// Async says whether Start overlaps with later kernels.
	Async() bool
	// Broadcast copies root's buffers into every process's.
	Broadcast(root int, bufs []Buffer) error
	// Describe names the library and transport, for logs.
	Describe() string
	Close() error
}

// CollectiveBackend is implemented by backends with collectives of their
// own (the CUDA backend: NCCL, or its emulation on the emulated device).
type CollectiveBackend interface {
	// CollectiveID makes, on rank 0, the token every rank joins with
	// (ncclGetUniqueId).
	CollectiveID() ([]byte, error)
	// JoinCollectives joins rank of size processes with rank 0's token.
	// host, if not nil, is the processes' host communicator; a
	// collective that has not completed within timeout fails, saying so.
	JoinCollectives(rank, size int, id []byte, host HostComm, timeout time.Duration) (Collectives, error)
}

// HostData is the host memory behind a CPU buffer, or false for another
// backend's buffer.
func HostData(b Buffer) ([]float32, bool) {
	hb, ok := b.(*hostBuffer)
	if !ok {
		return nil, false
	}
	return hb.data, true
}

// Float64s views float32 places as the float64 values they hold (two
// places each); an odd number of places holds no whole number of them and
// is refused.
func Float64s(f []float32) ([]float64, error) {
	if len(f)%2 != 0 {
		return nil, fmt.Errorf("compute: %d float32 places hold no whole number of float64 values", len(f))
	}
	if len(f) == 0 {
		return nil, nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(&f[0])), len(f)/2), nil
}

// f64 is a CPU buffer's float64 values, n of them at least: buf's check,
// in float32 places.
func (a *args) f64(name string, b Buffer, n int, optional bool) []float64 {
	var f []float32
	if optional {
		f = a.opt(name, b, a.size(2, n))
	} else {
		f = a.buf(name, b, a.size(2, n))
	}
	if a.err != nil || f == nil {
		return nil
	}
	v, _ := Float64s(f[:len(f)&^1])
	return v
}

// ProxyLossGradOf implements Sharded.
func (c *CPU) ProxyLossGradOf(n, total, k int, counts, labels, dy Buffer) {
	if cs, ls, ds, ok := c.lossArgs("ProxyLossGradOf", n, total, k, counts, labels, dy); ok {
		proxyLossGradOf(n, total, k, cs, ls, ds)
	}
}

// proxyLossGradOf writes the proxy loss gradient of n rows of a batch of
// total rows: dy = 2(counts − onehot)/(total·k), rounded as ProxyLossGrad.
func proxyLossGradOf(n, total, k int, counts, labels, dy []float32) {
	scale := float32(2) / float32(total*k)
	for i := 0; i < n; i++ {
		label := int(labels[i])
		for j := 0; j < k; j++ {
			d := counts[i*k+j]
			if j == label {
				d--
			}
			dy[i*k+j] = scale * d
		}
	}
}

// BatchNormSums implements Sharded: BatchNormStats's sums, in its order
// (a share's sums are a subtree of the batch reduction tree).
func (c *CPU) BatchNormSums(groups, n, cc, hw int, layout Layout, x, mean, sums Buffer) {
	a := args{kernel: "BatchNormSums"}
	a.layout(layout)
	gc := a.size(groups, cc)
	xh, mu, out := a.buf("x", x, a.size(groups, n, cc, hw)), a.f64("mean", mean, gc, true), a.f64("sums", sums, gc, false)
	if !c.ok(&a) {
		return
	}
	if layout.Last() {
		xh = c.toNCHW(0, groups*n, cc, hw, xh)
	}
	ks := c.kernels()
	for g := 0; g < groups; g++ {
		var mg []float64
		if mu != nil {
			mg = mu[g*cc : (g+1)*cc]
		}
		ks.bnSums(n, cc, hw, xh[g*n*cc*hw:(g+1)*n*cc*hw], mg, out[g*cc:(g+1)*cc])
	}
}

// BatchNormDivide implements Sharded.
func (c *CPU) BatchNormDivide(n, count int, sums, out64, out32 Buffer) {
	a := args{kernel: "BatchNormDivide"}
	s, o64, o32 := a.f64("sums", sums, n, false), a.f64("out64", out64, n, true), a.buf("out32", out32, n)
	if !c.ok(&a) {
		return
	}
	m := float64(count)
	for i := 0; i < n; i++ {
		q := s[i] / m
		if o64 != nil {
			o64[i] = q
		}
		o32[i] = float32(q)
	}
}

// BatchNormBackwardSums implements Sharded: BatchNormBackward's sums, in
// its order, added into dgamma and dbeta.
func (c *CPU) BatchNormBackwardSums(n, cc, hw int, layout Layout, eps float32, mean, variance, x, dy, sums, dgamma, dbeta Buffer) {
	a := args{kernel: "BatchNormBackwardSums"}
	a.layout(layout)
	size := a.size(n, cc, hw)
	ms, vs, xs, dys := a.buf("mean", mean, cc), a.buf("variance", variance, cc), a.buf("x", x, size), a.buf("dy", dy, size)
	s, dg, db := a.buf("sums", sums, a.size(2, cc)), a.buf("dgamma", dgamma, cc), a.buf("dbeta", dbeta, cc)
	if !c.ok(&a) {
		return
	}
	if layout.Last() {
		xs, dys = c.toNCHW(0, n, cc, hw, xs), c.toNCHW(1, n, cc, hw, dys)
	}
	bnBackwardSums(n, cc, hw, ms, bnInvStd(cc, eps, vs), xs, dys, s)
	for ch := 0; ch < cc; ch++ {
		dg[ch] += s[cc+ch]
		db[ch] += s[ch]
	}
}

// BatchNormBackwardData implements Sharded: BatchNormBackward's dx, from
// the whole batch's sums over count values per channel.
func (c *CPU) BatchNormBackwardData(n, cc, hw, count int, layout Layout, eps float32, gamma, mean, variance, x, dy, sums, dx Buffer) {
	a := args{kernel: "BatchNormBackwardData"}
	a.layout(layout)
	size := a.size(n, cc, hw)
	gs, ms, vs := a.buf("gamma", gamma, cc), a.buf("mean", mean, cc), a.buf("variance", variance, cc)
	xs, dys, dxs, ss := a.buf("x", x, size), a.buf("dy", dy, size), a.buf("dx", dx, size), a.buf("sums", sums, a.size(2, cc))
	if !c.ok(&a) {
		return
	}
	if !layout.Last() {
		bnBackwardData(n, cc, hw, count, gs, ms, bnInvStd(cc, eps, vs), xs, dys, ss, dxs)
		return
	}
	xt, dyt, dxt := c.toNCHW(0, n, cc, hw, xs), c.toNCHW(1, n, cc, hw, dys), c.scratchLast(2, len(dxs))
	bnBackwardData(n, cc, hw, count, gs, ms, bnInvStd(cc, eps, vs), xt, dyt, ss, dxt)
	c.fromNCHW(n, cc, hw, dxt, dxs)
}

var _ Sharded = (*CPU)(nil)
