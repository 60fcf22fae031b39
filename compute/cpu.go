package compute

import (
	"fmt"
	"math"
	"sync"
	"syscall"

	"github.com/proxykit/proxykit/internal/limits"
)

// CPU is the CPU backend (its zero value is ready to use): buffers are
// host slices and every kernel is one of this package's loops, split
// across cores where the work is large enough to pay for it. Its inner
// loops come in a pure-Go reference, AVX2 and AVX-512 versions, chosen
// once, when the backend is created (dispatch.go); all of them, on any
// number of cores, give the same bits.
//
// It keeps prepared forms of weights (permuted and transposed for its
// kernels) from call to call, and drops one when its weight changes
// through Upload, Copy, Fill or Adam. A CPU value is used by one goroutine
// at a time.
type CPU struct {
	// AllSteps makes the SNN hand all T time steps to each kernel, as the
	// CUDA backend does, instead of one step at a time; the results are the
	// same (tests check it), the memory larger.
	AllSteps bool

	ks *kernelSet // the dispatch table; nil: defaultKernels
	// density overrides defaultEventDensity when not 0 (tests force the dense
	// path with -1 and the event-driven one with 2)
	density   float64
	work      workCounters
	ws        []workerScratch // per worker goroutine (scratch.go)
	root      []float32       // a batch tree's result
	tables    map[ConvGeom]*convTable
	rowTables map[rowKey]*rowTable
	rows      spikeList // a spiking linear layer's row lists
	tmp       []float32
	mu        sync.Mutex
	prepared  map[prepKey]*prepared
	memLimit  int64 // bytes Alloc may hand out in all (0: no limit)
	inUse     int64 // bytes allocated and not freed
}

// NewCPU returns a CPU backend with the widest kernels this CPU runs
// (AVX-512, AVX2 or the pure-Go reference), or those the environment
// variable PROXYKIT_CPU_KERNELS names.
func NewCPU() *CPU {
	c := &CPU{prepared: map[prepKey]*prepared{}, ks: defaultKernels}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		// memory free now, counting the page cache the kernel gives back
		c.memLimit = (int64(si.Freeram) + int64(si.Bufferram)) * int64(si.Unit)
		if avail := int64(limits.AvailableMemory()); avail > c.memLimit {
			c.memLimit = avail
		}
	}
	return c
}

// hostBuffer is a CPU buffer: a slice, and the allocation it belongs to.
type hostBuffer struct {
	data []float32
	root *hostRoot
	off  int
}

// hostRoot is shared by an allocation and its slices; version counts the
// writes that invalidate prepared weights.
type hostRoot struct {
	version uint64
	bytes   int64 // what Alloc counted for it, given back by Free
}

// Len implements Buffer.
func (b *hostBuffer) Len() int { return len(b.data) }

// Slice implements Buffer.
func (b *hostBuffer) Slice(lo, hi int) Buffer {
	return &hostBuffer{data: b.data[lo:hi:hi], root: b.root, off: b.off + lo}
}

// host returns the slice behind a CPU buffer (nil for nil).
func host(b Buffer) []float32 {
	if b == nil {
		return nil
	}
	hb, ok := b.(*hostBuffer)
	if !ok {
		panic(fmt.Sprintf("compute: a %T buffer passed to the CPU backend", b))
	}
	return hb.data
}

func touch(b Buffer) {
	if hb, ok := b.(*hostBuffer); ok {
		hb.root.version++
	}
}

type prepKey struct {
	root      *hostRoot
	off, n, o int
	kind      string
}

type prepared struct {
	version uint64
	data    []float32
}

// prepare returns the cached form kind of w, made by make(w, old) when
// absent or stale; old is the stale form (nil if none), whose memory make
// may reuse: the same kind, geometry and weight.
func (c *CPU) prepare(kind string, w Buffer, o int, make func(w, old []float32) []float32) []float32 {
	hb := w.(*hostBuffer)
	key := prepKey{hb.root, hb.off, len(hb.data), o, kind}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prepared == nil {
		c.prepared = map[prepKey]*prepared{}
	}
	var old []float32
	if p, ok := c.prepared[key]; ok {
		if p.version == hb.root.version {
			return p.data
		}
		old = p.data
	}
	p := &prepared{version: hb.root.version, data: make(hb.data, old)}
	c.prepared[key] = p
	return p.data
}

// kernels is the backend's dispatch table.
func (c *CPU) kernels() *kernelSet {
	if c.ks == nil {
		return defaultKernels
	}
	return c.ks
}

// eventDensity is the share of non-zero inputs below which a sample's
// product runs event-driven.
func (c *CPU) eventDensity() float64 {
	if c.density != 0 {
		return c.density
	}
	return defaultEventDensity
}

// Kernels names the kernel set the backend runs: "avx512", "avx2" or
// "generic" (the pure-Go reference).
func (c *CPU) Kernels() string { return c.kernels().name }

// Name implements Backend.
func (c *CPU) Name() string { return "cpu" }

// StepsAtOnce implements Backend: one step at a time, unless AllSteps.
func (c *CPU) StepsAtOnce(timesteps int) int {
	if c.AllSteps {
		return timesteps
	}
	return 1
}

// Alloc implements Backend.
func (c *CPU) Alloc(n int) (Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cpu: cannot allocate %d values", n)
	}
	bytes := int64(n) * 4
	c.mu.Lock()
	if c.memLimit > 0 && c.inUse+bytes > c.memLimit {
		inUse := c.inUse
		c.mu.Unlock()
		return nil, fmt.Errorf("cpu: %d MB more asked for, with %d MB already in use: more than the %d MB of memory this machine had free (a smaller batch size, width or T needs less)",
			bytes>>20, inUse>>20, c.memLimit>>20)
	}
	c.inUse += bytes
	c.mu.Unlock()
	return &hostBuffer{data: make([]float32, n), root: &hostRoot{bytes: bytes}}, nil
}

// Adopt implements Backend: the buffer is host's own memory.
func (c *CPU) Adopt(h []float32) (Buffer, error) {
	return &hostBuffer{data: h[:len(h):len(h)], root: &hostRoot{}}, nil
}

// Free implements Backend.
func (c *CPU) Free(b Buffer) {
	hb, ok := b.(*hostBuffer)
	if !ok {
		return
	}
	c.mu.Lock()
	for k := range c.prepared {
		if k.root == hb.root {
			delete(c.prepared, k)
		}
	}
	c.inUse -= hb.root.bytes
	hb.root.bytes = 0
	c.mu.Unlock()
}

// Upload implements Backend. Uploading a host slice into the buffer that
// adopted it copies nothing; it tells the backend that the values changed.
func (c *CPU) Upload(dst Buffer, src []float32) {
	d := host(dst)
	if len(d) > 0 && len(src) > 0 && &d[0] != &src[0] {
		copy(d, src)
	}
	touch(dst)
}

// Download implements Backend.
func (c *CPU) Download(dst []float32, src Buffer) error {
	s := host(src)
	if len(s) > 0 && len(dst) > 0 && &s[0] != &dst[0] {
		copy(dst, s)
	}
	return nil
}

// Copy implements Backend.
func (c *CPU) Copy(dst, src Buffer) {
	copy(host(dst), host(src))
	touch(dst)
}

// AddTo implements Backend.
func (c *CPU) AddTo(dst, src Buffer) {
	d, s := host(dst), host(src)
	for i := range d {
		d[i] += s[i]
	}
	touch(dst)
}

// CopyChannels implements Backend.
func (c *CPU) CopyChannels(n, ch, hw int, src Buffer, srcC, srcOff int, dst Buffer, dstC, dstOff int) {
	CopyChannels(n, ch, hw, host(src), srcC, srcOff, host(dst), dstC, dstOff)
	touch(dst)
}

// Fill implements Backend.
func (c *CPU) Fill(dst Buffer, v float32) {
	d := host(dst)
	if v == 0 && !math.Signbit(float64(v)) {
		clear(d)
	} else if len(d) > 0 {
		d[0] = v
		for i := 1; i < len(d); i *= 2 {
			copy(d[i:], d[:i])
		}
	}
	touch(dst)
}

// Sum implements Backend.
func (c *CPU) Sum(x Buffer) (float64, error) {
	var s float64
	for _, v := range host(x) {
		s += float64(v)
	}
	return s, nil
}

// Err implements Backend: CPU kernels do not fail.
func (c *CPU) Err() error { return nil }

// Close implements Backend.
func (c *CPU) Close() error {
	c.mu.Lock()
	clear(c.prepared)
	c.mu.Unlock()
	return nil
}

// Conv2dForward implements Backend.
func (c *CPU) Conv2dForward(g ConvGeom, n int, x, w, bias, y Buffer) {
	c.convForward(g, n, host(x), host(w), host(bias), host(y), w)
}

// Conv2dBackward implements Backend.
func (c *CPU) Conv2dBackward(g ConvGeom, n int, x, w, dy, dx, dw, db Buffer) {
	c.convBackward(g, n, host(x), host(w), host(dy), host(dx), host(dw), host(db), w)
}

// LinearForward implements Backend: with spikes, rows whose inputs are
// mostly zeros run event-driven, adding only the weight rows of their
// non-zero inputs.
func (c *CPU) LinearForward(n, in, out int, x, w, bias, y Buffer, spikes bool) {
	c.linearForward(n, in, out, host(x), host(w), host(bias), host(y), w, spikes)
}

// LinearBackward implements Backend.
func (c *CPU) LinearBackward(n, in, out int, x, w, dy, dx, dw, db Buffer) {
	c.linearBackward(n, in, out, host(x), host(w), host(dy), host(dx), host(dw), host(db))
}

// elementwise calls f on chunks of 64 Ki values that cover [0, n), split
// across cores.
func elementwise(n int, f func(lo, hi int)) {
	const chunk = 1 << 16
	parallelFor((n+chunk-1)/chunk, maxWorkers(), func(_, lo, hi int) {
		f(lo*chunk, min(hi*chunk, n))
	})
}

// ReLUForward implements Backend.
func (c *CPU) ReLUForward(x, y Buffer) {
	ks, xs, ys := c.kernels(), host(x), host(y)
	elementwise(len(xs), func(lo, hi int) { ks.relu(xs[lo:hi], ys[lo:hi]) })
}

// ReLUBackward implements Backend.
func (c *CPU) ReLUBackward(y, dy, dx Buffer) {
	ks, ys, dys, dxs := c.kernels(), host(y), host(dy), host(dx)
	elementwise(len(ys), func(lo, hi int) { ks.reluGrad(ys[lo:hi], dys[lo:hi], dxs[lo:hi]) })
}

// ClipForward implements Backend.
func (c *CPU) ClipForward(ceiling float32, x, y Buffer) {
	xs, ys := host(x), host(y)
	elementwise(len(xs), func(lo, hi int) { Clip(ceiling, xs[lo:hi], ys[lo:hi]) })
}

// ClipBackward implements Backend.
func (c *CPU) ClipBackward(ceiling float32, y, dy, dx Buffer) {
	ys, dys, dxs := host(y), host(dy), host(dx)
	elementwise(len(ys), func(lo, hi int) { ClipGrad(ceiling, ys[lo:hi], dys[lo:hi], dxs[lo:hi]) })
}

// ChannelShuffle implements Backend.
func (c *CPU) ChannelShuffle(n, groups, ch, hw int, x, y Buffer) {
	ChannelShuffle(n, groups, ch, hw, host(x), host(y))
}

// MaxPool2dForward implements Backend.
func (c *CPU) MaxPool2dForward(g PoolGeom, n int, x, y Buffer) {
	MaxPool2dForward(g, n, host(x), host(y))
}

// MaxPool2dBackward implements Backend.
func (c *CPU) MaxPool2dBackward(g PoolGeom, n int, x, dy, dx Buffer) {
	MaxPool2dBackward(g, n, host(x), host(dy), host(dx))
}

// AvgPool2dForward implements Backend.
func (c *CPU) AvgPool2dForward(g PoolGeom, n int, countPad bool, x, y Buffer) {
	AvgPool2dForward(g, n, countPad, host(x), host(y))
}

// AvgPool2dBackward implements Backend.
func (c *CPU) AvgPool2dBackward(g PoolGeom, n int, countPad bool, dy, dx Buffer) {
	AvgPool2dBackward(g, n, countPad, host(dy), host(dx))
}

// GlobalAvgPoolForward implements Backend.
func (c *CPU) GlobalAvgPoolForward(nc, hw int, x, y Buffer) {
	GlobalAvgPoolForward(nc, hw, host(x), host(y))
}

// GlobalAvgPoolBackward implements Backend.
func (c *CPU) GlobalAvgPoolBackward(nc, hw int, dy, dx Buffer) {
	GlobalAvgPoolBackward(nc, hw, host(dy), host(dx))
}

// Pad2dForward implements Backend.
func (c *CPU) Pad2dForward(g PadGeom, nc int, x, y Buffer) { Pad2dForward(g, nc, host(x), host(y)) }

// Pad2dBackward implements Backend.
func (c *CPU) Pad2dBackward(g PadGeom, nc int, dy, dx Buffer) {
	Pad2dBackward(g, nc, host(dy), host(dx))
}

// SoftmaxForward implements Backend.
func (c *CPU) SoftmaxForward(n, k int, log bool, x, y Buffer) {
	SoftmaxForward(n, k, log, host(x), host(y))
}

// SoftmaxBackward implements Backend.
func (c *CPU) SoftmaxBackward(n, k int, log bool, y, dy, dx Buffer) {
	SoftmaxBackward(n, k, log, host(y), host(dy), host(dx))
}

// BatchNormStats implements Backend.
func (c *CPU) BatchNormStats(groups, n, ch, hw int, x, mean, variance Buffer) {
	c.kernels().BatchNormStats(groups, n, ch, hw, host(x), host(mean), host(variance))
}

// BatchNormUpdateRunning implements Backend.
func (c *CPU) BatchNormUpdateRunning(groups, ch, count int, momentum float32, mean, variance, runMean, runVar Buffer) {
	BatchNormUpdateRunning(groups, ch, count, momentum, host(mean), host(variance), host(runMean), host(runVar))
}

// BatchNormScaleShift implements Backend.
func (c *CPU) BatchNormScaleShift(groups, ch int, eps float32, gamma, beta, mean, variance, scale, shift Buffer) {
	BatchNormScaleShift(groups, ch, eps, host(gamma), host(beta), host(mean), host(variance), host(scale), host(shift))
}

// ChannelAffine implements Backend.
func (c *CPU) ChannelAffine(groups, n, ch, hw int, x, scale, shift, y Buffer) {
	c.kernels().ChannelAffine(groups, n, ch, hw, host(x), host(scale), host(shift), host(y))
}

// BatchNormBackward implements Backend.
func (c *CPU) BatchNormBackward(n, ch, hw int, batchStats bool, eps float32, gamma, mean, variance, x, dy, dx, dgamma, dbeta Buffer) {
	BatchNormBackward(n, ch, hw, batchStats, eps, host(gamma), host(mean), host(variance), host(x), host(dy), host(dx),
		host(dgamma), host(dbeta))
}

// IF implements Backend.
func (c *CPU) IF(a IFArgs) {
	c.kernels().IFForward(a, host(a.In), host(a.Scale), host(a.Shift), host(a.V), host(a.Spikes), host(a.Counts))
}

// ProxyLossGrad implements Backend.
func (c *CPU) ProxyLossGrad(n, k int, counts, labels, dy Buffer) {
	ProxyLossGrad(n, k, host(counts), host(labels), host(dy))
}

// Adam implements Backend.
func (c *CPU) Adam(a AdamArgs, p, grad, m, v Buffer) {
	ks := c.kernels()
	stepSize, sqrtBC2 := a.Factors()
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	f := [8]float32{stepSize, sqrtBC2, b1, 1 - b1, b2, 1 - b2, float32(a.WeightDecay), float32(a.Eps)}
	ph, gh, mh, vh := host(p), host(grad), host(m), host(v)
	elementwise(len(ph), func(lo, hi int) { ks.adam(ph[lo:hi], gh[lo:hi], mh[lo:hi], vh[lo:hi], &f) })
	touch(p)
}

var _ Backend = (*CPU)(nil)
