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
	ifSpikes  []float32       // IF with pooling: the spikes before they are pooled
	root      []float32       // a batch tree's result
	tables    map[ConvGeom]*convTable
	rowTables map[rowKey]*rowTable
	rows      spikeList // a spiking linear layer's row lists
	tmp       []float32
	last      lastScratch // the channels-last kernels' (nhwc.go)
	mu        sync.Mutex
	prepared  map[prepKey]*prepared
	memLimit  int64 // bytes Alloc may hand out in all (0: not known yet)
	inUse     int64 // bytes allocated and not freed
	err       error // the first kernel refused since Err
}

// NewCPU returns a CPU backend with the widest kernels this CPU runs
// (AVX-512, AVX2 or the pure-Go reference), or those the environment
// variable PROXYKIT_CPU_KERNELS names.
func NewCPU() *CPU {
	return &CPU{prepared: map[prepKey]*prepared{}, ks: defaultKernels, memLimit: freeMemory()}
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

// memLimitOf is how many bytes Alloc may hand out in all: what NewCPU
// found free, or for a zero CPU what is free at its first Alloc.
func (c *CPU) memLimitOf() int64 {
	if c.memLimit == 0 {
		c.memLimit = freeMemory()
	}
	return c.memLimit
}

// freeMemory is the memory free now, counting the page cache the kernel
// gives back (0: unknown).
func freeMemory() int64 {
	var limit int64
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		limit = (int64(si.Freeram) + int64(si.Bufferram)) * int64(si.Unit)
	}
	if avail := int64(limits.AvailableMemory()); avail > limit {
		limit = avail
	}
	return limit
}

// Alloc implements Backend: n from 0 to MaxValues, within the memory
// this machine had free.
func (c *CPU) Alloc(n int) (Buffer, error) {
	if c == nil {
		return nil, errNotCPU
	}
	if n < 0 || n > MaxValues {
		return nil, fmt.Errorf("cpu: cannot allocate %d values (0 to %d)", n, MaxValues)
	}
	bytes := int64(n) * 4
	c.mu.Lock()
	limit := c.memLimitOf()
	if limit > 0 && c.inUse+bytes > limit || limit <= 0 && bytes > 1<<40 {
		inUse := c.inUse
		c.mu.Unlock()
		return nil, fmt.Errorf("cpu: %d MB more asked for, with %d MB already in use: more than the %d MB of memory this machine had free (a smaller batch size, width or T needs less)",
			bytes>>20, inUse>>20, limit>>20)
	}
	c.inUse += bytes
	c.mu.Unlock()
	return &hostBuffer{data: make([]float32, n), root: &hostRoot{bytes: bytes}}, nil
}

// Adopt implements Backend: the buffer is host's own memory.
func (c *CPU) Adopt(h []float32) (Buffer, error) {
	if c == nil {
		return nil, errNotCPU
	}
	return &hostBuffer{data: h[:len(h):len(h)], root: &hostRoot{}}, nil
}

// Free implements Backend.
func (c *CPU) Free(b Buffer) {
	hb, ok := b.(*hostBuffer)
	if !ok || hb == nil {
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
	a := args{kernel: "Upload"}
	d := a.buf("dst", dst, len(src))
	if !c.ok(&a) {
		return
	}
	if len(d) > 0 && len(src) > 0 && &d[0] != &src[0] {
		copy(d, src)
	}
	touch(dst)
}

// Download implements Backend.
func (c *CPU) Download(dst []float32, src Buffer) error {
	a := args{kernel: "Download"}
	s := a.buf("src", src, len(dst))
	if a.err != nil {
		return fmt.Errorf("cpu: Download: %w", a.err)
	}
	if len(s) > 0 && len(dst) > 0 && &s[0] != &dst[0] {
		copy(dst, s)
	}
	return nil
}

// Copy implements Backend.
func (c *CPU) Copy(dst, src Buffer) {
	a := args{kernel: "Copy"}
	s := a.buf("src", src, 0)
	d := a.buf("dst", dst, len(s))
	if a.err == nil && len(d) != len(s) {
		a.fail("dst holds %d values, src %d: they must be equal", len(d), len(s))
	}
	if !c.ok(&a) {
		return
	}
	copy(d, s)
	touch(dst)
}

// AddTo implements Backend.
func (c *CPU) AddTo(dst, src Buffer) {
	a := args{kernel: "AddTo"}
	d := a.buf("dst", dst, 0)
	s := a.buf("src", src, len(d))
	if a.err == nil && len(d) != len(s) {
		a.fail("dst holds %d values, src %d: they must be equal", len(d), len(s))
	}
	if !c.ok(&a) {
		return
	}
	for i := range d {
		d[i] += s[i]
	}
	touch(dst)
}

// CopyChannels implements Backend.
func (c *CPU) CopyChannels(n, ch, hw int, src Buffer, srcC, srcOff int, dst Buffer, dstC, dstOff int) {
	a := args{kernel: "CopyChannels"}
	a.in(0, MaxValues, "srcOff", srcOff, "dstOff", dstOff, "ch", ch)
	if a.err == nil && (srcOff+ch > srcC || dstOff+ch > dstC) {
		a.fail("channels [%d, %d) of %d and [%d, %d) of %d", srcOff, srcOff+ch, srcC, dstOff, dstOff+ch, dstC)
	}
	s := a.buf("src", src, a.size(n, srcC, hw))
	d := a.buf("dst", dst, a.size(n, dstC, hw))
	if !c.ok(&a) {
		return
	}
	copyChannels(n, ch, hw, s, srcC, srcOff, d, dstC, dstOff)
	touch(dst)
}

// Fill implements Backend.
func (c *CPU) Fill(dst Buffer, v float32) {
	a := args{kernel: "Fill"}
	d := a.buf("dst", dst, 0)
	if !c.ok(&a) {
		return
	}
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
	a := args{kernel: "Sum"}
	xs := a.buf("x", x, 0)
	if a.err != nil {
		return 0, fmt.Errorf("cpu: Sum: %w", a.err)
	}
	var s float64
	for _, v := range xs {
		s += float64(v)
	}
	return s, nil
}

// Err implements Backend: the first kernel refused since the last call
// (CPU kernels fail only on arguments no caller may give; a nil CPU's
// is that it is none).
func (c *CPU) Err() error {
	if c == nil {
		return errNotCPU
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.err
	c.err = nil
	return err
}

// Close implements Backend.
func (c *CPU) Close() error {
	if c == nil {
		return errNotCPU
	}
	c.mu.Lock()
	clear(c.prepared)
	c.mu.Unlock()
	return nil
}

// Conv2dForward implements Backend.
func (c *CPU) Conv2dForward(g ConvGeom, n int, x, w, bias, y Buffer) {
	a := args{kernel: "Conv2dForward"}
	a.conv(g)
	xs := a.buf("x", x, a.size(n, g.C, g.H, g.W))
	ws := a.buf("w", w, a.size(g.O, g.GroupPatch()))
	bs := a.opt("bias", bias, g.O)
	ys := a.buf("y", y, a.size(n, g.O, g.OutH(), g.OutW()))
	if !c.ok(&a) {
		return
	}
	if g.Layout.Last() {
		c.convForwardLast(g, n, xs, ws, bs, ys)
		return
	}
	c.convForward(g, n, xs, ws, bs, ys, w)
}

// Conv2dBackward implements Backend.
func (c *CPU) Conv2dBackward(g ConvGeom, n int, x, w, dy, dx, dw, db Buffer, accumulate bool) {
	a := args{kernel: "Conv2dBackward"}
	a.conv(g)
	in, wn, out := a.size(n, g.C, g.H, g.W), a.size(g.O, g.GroupPatch()), a.size(n, g.O, g.OutH(), g.OutW())
	xs, ws, dys := a.buf("x", x, in), a.buf("w", w, wn), a.buf("dy", dy, out)
	dxs, dws, dbs := a.opt("dx", dx, in), a.opt("dw", dw, wn), a.opt("db", db, g.O)
	if !c.ok(&a) {
		return
	}
	if !accumulate { // the sums below add into zeros: the bits of a fill first
		zero(dws, wn)
		zero(dbs, g.O)
	}
	if g.Layout.Last() {
		c.convBackwardLast(g, n, xs, ws, dys, dxs, dws, dbs)
		return
	}
	c.convBackward(g, n, xs, ws, dys, dxs, dws, dbs, w)
}

// zero sets the first n values of s, a buffer's values or nil, to 0.
func zero(s []float32, n int) {
	if s != nil {
		clear(s[:n])
	}
}

// LinearForward implements Backend: with spikes, rows whose inputs are
// mostly zeros run event-driven, adding only the weight rows of their
// non-zero inputs.
func (c *CPU) LinearForward(n, in, out int, x, w, bias, y Buffer, spikes bool) {
	a := args{kernel: "LinearForward"}
	xs, ws := a.buf("x", x, a.size(n, in)), a.buf("w", w, a.size(out, in))
	bs, ys := a.opt("bias", bias, out), a.buf("y", y, a.size(n, out))
	if !c.ok(&a) {
		return
	}
	c.linearForward(n, in, out, xs, ws, bs, ys, w, spikes)
}

// LinearBackward implements Backend.
func (c *CPU) LinearBackward(n, in, out int, x, w, dy, dx, dw, db Buffer, accumulate bool) {
	a := args{kernel: "LinearBackward"}
	xn, wn, yn := a.size(n, in), a.size(out, in), a.size(n, out)
	xs, ws, dys := a.buf("x", x, xn), a.buf("w", w, wn), a.buf("dy", dy, yn)
	dxs, dws, dbs := a.opt("dx", dx, xn), a.opt("dw", dw, wn), a.opt("db", db, out)
	if !c.ok(&a) {
		return
	}
	if !accumulate { // the sums below add into zeros: the bits of a fill first
		zero(dws, wn)
		zero(dbs, out)
	}
	c.linearBackward(n, in, out, xs, ws, dys, dxs, dws, dbs)
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
	a := args{kernel: "ReLUForward"}
	xs := a.buf("x", x, 0)
	ys := a.buf("y", y, len(xs))
	if !c.ok(&a) {
		return
	}
	ks := c.kernels()
	elementwise(len(xs), func(lo, hi int) { ks.relu(xs[lo:hi], ys[lo:hi]) })
}

// ReLUBackward implements Backend.
func (c *CPU) ReLUBackward(y, dy, dx Buffer) {
	a := args{kernel: "ReLUBackward"}
	ys := a.buf("y", y, 0)
	dys, dxs := a.buf("dy", dy, len(ys)), a.buf("dx", dx, len(ys))
	if !c.ok(&a) {
		return
	}
	ks := c.kernels()
	elementwise(len(ys), func(lo, hi int) { ks.reluGrad(ys[lo:hi], dys[lo:hi], dxs[lo:hi]) })
}

// ClipForward implements Backend.
func (c *CPU) ClipForward(ceiling float32, x, y Buffer) {
	a := args{kernel: "ClipForward"}
	xs := a.buf("x", x, 0)
	ys := a.buf("y", y, len(xs))
	if !c.ok(&a) {
		return
	}
	elementwise(len(xs), func(lo, hi int) { clip(ceiling, xs[lo:hi], ys[lo:hi]) })
}

// ClipBackward implements Backend.
func (c *CPU) ClipBackward(ceiling float32, y, dy, dx Buffer) {
	a := args{kernel: "ClipBackward"}
	ys := a.buf("y", y, 0)
	dys, dxs := a.buf("dy", dy, len(ys)), a.buf("dx", dx, len(ys))
	if !c.ok(&a) {
		return
	}
	elementwise(len(ys), func(lo, hi int) { clipGrad(ceiling, ys[lo:hi], dys[lo:hi], dxs[lo:hi]) })
}

// ChannelShuffle implements Backend.
func (c *CPU) ChannelShuffle(n, groups, ch, hw int, x, y Buffer) {
	a := args{kernel: "ChannelShuffle"}
	a.in(1, MaxValues, "groups", groups)
	if a.err == nil && ch%groups != 0 {
		a.fail("%d groups do not divide %d channels", groups, ch)
	}
	xs := a.buf("x", x, a.size(n, ch, hw))
	ys := a.buf("y", y, a.size(n, ch, hw))
	if !c.ok(&a) {
		return
	}
	channelShuffle(n, groups, ch, hw, xs, ys)
	touch(y)
}

// pooled checks a pooling call: x (or dx) and y (or dy) for n samples.
func (c *CPU) pooled(kernel string, g PoolGeom, n int, in, out Buffer, inName, outName string) ([]float32, []float32, bool) {
	a := args{kernel: kernel}
	a.pool(g)
	xs := a.buf(inName, in, a.size(n, g.C, g.H, g.W))
	ys := a.buf(outName, out, a.size(n, g.C, g.OutH(), g.OutW()))
	return xs, ys, c.ok(&a)
}

// pool runs a pooling kernel f over n samples: in (x or dx) and out (y or
// dy) in g's layout, x2 max pooling's input in its backward pass (nil
// otherwise); channels-last through poolLast.
func (c *CPU) pool(g PoolGeom, n int, in, out, x2 []float32, backward bool, f func(g PoolGeom, in, out, x2 []float32)) {
	if g.Layout.Last() {
		c.poolLast(g, n, in, out, x2, backward, f)
		return
	}
	f(g, in, out, x2)
}

// MaxPool2dForward implements Backend.
func (c *CPU) MaxPool2dForward(g PoolGeom, n int, x, y Buffer) {
	if xs, ys, ok := c.pooled("MaxPool2dForward", g, n, x, y, "x", "y"); ok {
		c.pool(g, n, xs, ys, nil, false, func(g PoolGeom, in, out, _ []float32) { maxPool2dForward(g, n, in, out) })
	}
}

// MaxPool2dBackward implements Backend.
func (c *CPU) MaxPool2dBackward(g PoolGeom, n int, x, dy, dx Buffer, relu bool) {
	xs, dys, ok := c.pooled("MaxPool2dBackward", g, n, x, dy, "x", "dy")
	if !ok {
		return
	}
	if dxs, _, ok := c.pooled("MaxPool2dBackward", g, n, dx, dy, "dx", "dy"); ok {
		c.pool(g, n, dxs, dys, xs, true, func(g PoolGeom, in, out, x2 []float32) { maxPool2dBackward(g, n, x2, out, in) })
		if relu { // ReLUBackward(x, dx, dx)
			ks := c.kernels()
			elementwise(len(xs), func(lo, hi int) { ks.reluGrad(xs[lo:hi], dxs[lo:hi], dxs[lo:hi]) })
		}
	}
}

// AvgPool2dForward implements Backend.
func (c *CPU) AvgPool2dForward(g PoolGeom, n int, countPad bool, x, y Buffer) {
	if xs, ys, ok := c.pooled("AvgPool2dForward", g, n, x, y, "x", "y"); ok {
		c.pool(g, n, xs, ys, nil, false, func(g PoolGeom, in, out, _ []float32) { avgPool2dForward(g, n, countPad, in, out) })
	}
}

// AvgPool2dBackward implements Backend.
func (c *CPU) AvgPool2dBackward(g PoolGeom, n int, countPad bool, dy, dx Buffer) {
	if dxs, dys, ok := c.pooled("AvgPool2dBackward", g, n, dx, dy, "dx", "dy"); ok {
		c.pool(g, n, dxs, dys, nil, true, func(g PoolGeom, in, out, _ []float32) { avgPool2dBackward(g, n, countPad, out, in) })
	}
}

// GlobalAvgPoolForward implements Backend.
func (c *CPU) GlobalAvgPoolForward(nc, hw int, x, y Buffer) {
	a := args{kernel: "GlobalAvgPoolForward"}
	a.in(1, MaxValues, "hw", hw)
	xs, ys := a.buf("x", x, a.size(nc, hw)), a.buf("y", y, a.size(nc))
	if c.ok(&a) {
		globalAvgPoolForward(nc, hw, xs, ys)
	}
}

// GlobalAvgPoolBackward implements Backend.
func (c *CPU) GlobalAvgPoolBackward(nc, hw int, dy, dx Buffer) {
	a := args{kernel: "GlobalAvgPoolBackward"}
	a.in(1, MaxValues, "hw", hw)
	dys, dxs := a.buf("dy", dy, a.size(nc)), a.buf("dx", dx, a.size(nc, hw))
	if c.ok(&a) {
		globalAvgPoolBackward(nc, hw, dys, dxs)
	}
}

// padded checks a padding call.
func (c *CPU) padded(kernel string, g PadGeom, nc int, in, out Buffer, inName, outName string) ([]float32, []float32, bool) {
	a := args{kernel: kernel}
	a.pad(g)
	xs := a.buf(inName, in, a.size(nc, g.H, g.W))
	ys := a.buf(outName, out, a.size(nc, g.OutH(), g.OutW()))
	return xs, ys, c.ok(&a)
}

// Pad2dForward implements Backend.
func (c *CPU) Pad2dForward(g PadGeom, nc int, x, y Buffer) {
	if xs, ys, ok := c.padded("Pad2dForward", g, nc, x, y, "x", "y"); ok {
		pad2dForward(g, nc, xs, ys)
	}
}

// Pad2dBackward implements Backend.
func (c *CPU) Pad2dBackward(g PadGeom, nc int, dy, dx Buffer) {
	if dxs, dys, ok := c.padded("Pad2dBackward", g, nc, dx, dy, "dx", "dy"); ok {
		pad2dBackward(g, nc, dys, dxs)
	}
}

// SoftmaxForward implements Backend.
func (c *CPU) SoftmaxForward(n, k int, log bool, x, y Buffer) {
	a := args{kernel: "SoftmaxForward"}
	a.in(1, MaxValues, "k", k)
	size := a.size(n, k)
	xs, ys := a.buf("x", x, size), a.buf("y", y, size)
	if c.ok(&a) {
		softmaxForward(n, k, log, xs, ys)
	}
}

// SoftmaxBackward implements Backend.
func (c *CPU) SoftmaxBackward(n, k int, log bool, y, dy, dx Buffer) {
	a := args{kernel: "SoftmaxBackward"}
	a.in(1, MaxValues, "k", k)
	size := a.size(n, k)
	ys, dys, dxs := a.buf("y", y, size), a.buf("dy", dy, size), a.buf("dx", dx, size)
	if c.ok(&a) {
		softmaxBackward(n, k, log, ys, dys, dxs)
	}
}

// BatchNormStats implements Backend.
func (c *CPU) BatchNormStats(groups, n, ch, hw int, layout Layout, x, mean, variance Buffer) {
	a := args{kernel: "BatchNormStats"}
	a.layout(layout)
	xs := a.buf("x", x, a.size(groups, n, ch, hw))
	ms, vs := a.buf("mean", mean, a.size(groups, ch)), a.buf("variance", variance, a.size(groups, ch))
	if c.ok(&a) {
		if layout.Last() {
			xs = c.toNCHW(0, groups*n, ch, hw, xs)
		}
		c.kernels().BatchNormStats(groups, n, ch, hw, xs, ms, vs)
	}
}

// BatchNormUpdateRunning implements Backend.
func (c *CPU) BatchNormUpdateRunning(groups, ch, count int, momentum float32, mean, variance, runMean, runVar Buffer) {
	a := args{kernel: "BatchNormUpdateRunning"}
	a.in(0, MaxValues, "count", count)
	gc := a.size(groups, ch)
	ms, vs := a.buf("mean", mean, gc), a.buf("variance", variance, gc)
	rm, rv := a.buf("runMean", runMean, ch), a.buf("runVar", runVar, ch)
	if c.ok(&a) {
		batchNormUpdateRunning(groups, ch, count, momentum, ms, vs, rm, rv)
	}
}

// BatchNormScaleShift implements Backend.
func (c *CPU) BatchNormScaleShift(groups, ch int, eps float32, gamma, beta, mean, variance, scale, shift Buffer) {
	a := args{kernel: "BatchNormScaleShift"}
	gc := a.size(groups, ch)
	gs, bs := a.buf("gamma", gamma, ch), a.buf("beta", beta, ch)
	ms, vs := a.buf("mean", mean, gc), a.buf("variance", variance, gc)
	ss, hs := a.buf("scale", scale, gc), a.buf("shift", shift, gc)
	if c.ok(&a) {
		batchNormScaleShift(groups, ch, eps, gs, bs, ms, vs, ss, hs)
	}
}

// ChannelAffine implements Backend: channels-last, a sample of hw pixels
// is hw samples of ch channels × 1 (each value's map is the same).
func (c *CPU) ChannelAffine(groups, n, ch, hw int, layout Layout, x, scale, shift, y Buffer, relu bool) {
	a := args{kernel: "ChannelAffine"}
	a.layout(layout)
	size, gc := a.size(groups, n, ch, hw), a.size(groups, ch)
	xs, ys := a.buf("x", x, size), a.buf("y", y, size)
	ss, hs := a.opt("scale", scale, gc), a.buf("shift", shift, gc)
	if c.ok(&a) {
		if layout.Last() {
			n, hw = n*hw, 1
		}
		c.kernels().ChannelAffine(groups, n, ch, hw, xs, ss, hs, ys, relu)
	}
}

// BatchNormBackward implements Backend.
func (c *CPU) BatchNormBackward(n, ch, hw int, layout Layout, batchStats bool, eps float32, gamma, mean, variance, x, dy, dx, dgamma, dbeta Buffer, accumulate bool) {
	a := args{kernel: "BatchNormBackward"}
	a.layout(layout)
	size := a.size(n, ch, hw)
	gs, ms, vs := a.buf("gamma", gamma, ch), a.buf("mean", mean, ch), a.buf("variance", variance, ch)
	xs, dys, dxs := a.buf("x", x, size), a.buf("dy", dy, size), a.opt("dx", dx, size)
	dgs, dbs := a.buf("dgamma", dgamma, ch), a.buf("dbeta", dbeta, ch)
	if !c.ok(&a) {
		return
	}
	if !accumulate { // added into zeros: the bits of a fill first
		zero(dgs, ch)
		zero(dbs, ch)
	}
	if !layout.Last() {
		batchNormBackward(n, ch, hw, batchStats, eps, gs, ms, vs, xs, dys, dxs, dgs, dbs)
		return
	}
	xt, dyt := c.toNCHW(0, n, ch, hw, xs), c.toNCHW(1, n, ch, hw, dys)
	var dxt []float32
	if dxs != nil {
		dxt = c.scratchLast(2, len(dxs))
	}
	batchNormBackward(n, ch, hw, batchStats, eps, gs, ms, vs, xt, dyt, dxt, dgs, dbs)
	if dxs != nil {
		c.fromNCHW(n, ch, hw, dxt, dxs)
	}
}

// ifInputs checks an IF call's steps and input (its current, and the
// fused map where set): the values of Steps·N and the input's slices.
func (a *args) ifInputs(f IFArgs) (steps int, in, scale, shift []float32) {
	steps = a.size(f.Steps, f.N)
	inN := steps
	if f.Constant {
		inN = a.size(f.N)
	}
	in = a.buf("In", f.In, inN)
	if f.Scale != nil || f.Shift != nil {
		a.in(1, MaxValues, "C", f.C, "HW", f.HW)
		rows := 1
		if f.PerStep {
			rows = f.Steps
		}
		scale, shift = a.opt("Scale", f.Scale, a.size(rows, f.C)), a.buf("Shift", f.Shift, a.size(rows, f.C))
	}
	return steps, in, scale, shift
}

// IF implements Backend.
func (c *CPU) IF(f IFArgs) {
	a := args{kernel: "IF"}
	steps, in, scale, shift := a.ifInputs(f)
	out := steps // spikes written
	if g := f.Pool; g != nil {
		a.pool(*g)
		if plane := g.C * g.H * g.W; !PoolFits(*g) || plane < 1 || f.N%plane != 0 {
			a.fail("pooling %dx%d stride %d,%d over %d×%dx%d planes cannot be computed in the IF kernel for %d neurons", g.KH, g.KW, g.SH, g.SW,
				g.C, g.H, g.W, f.N)
		} else {
			out = a.size(f.Steps, f.N/(g.KH*g.KW))
		}
	}
	a.layout(f.Layout)
	v, spikes, counts := a.buf("V", f.V, a.size(f.N)), a.buf("Spikes", f.Spikes, out), a.opt("Counts", f.Counts, f.N)
	if !c.ok(&a) {
		return
	}
	if f.Layout.Last() {
		// a neuron's channel is j mod C: HW samples of C channels × 1
		f.HW = 1
	}
	if f.Start {
		for i := range v {
			v[i] = f.Reset
		}
		clear(counts)
	}
	if f.Pool == nil {
		c.kernels().IFForward(f, in, scale, shift, v, spikes, counts)
		return
	}
	// the spikes into scratch, then each step's max-pooling: the bits of
	// IF followed by MaxPool2dForward
	g := *f.Pool
	unpooled := grow(&c.ifSpikes, f.Steps*f.N)
	c.kernels().IFForward(f, in, scale, shift, v, unpooled, counts)
	g.Layout = f.Layout
	planes := f.N / (g.H * g.W)
	per := planes * g.OutH() * g.OutW()
	n := planes / g.C
	for t := 0; t < f.Steps; t++ {
		c.pool(g, n, unpooled[t*f.N:(t+1)*f.N], spikes[t*per:(t+1)*per], nil, false, func(g PoolGeom, in, out, _ []float32) { maxPool2dForward(g, n, in, out) })
	}
}

// lossArgs checks a proxy loss gradient's arguments: n rows of k classes
// of a batch of total rows.
func (c *CPU) lossArgs(kernel string, n, total, k int, counts, labels, dy Buffer) (cs, ls, ds []float32, ok bool) {
	a := args{kernel: kernel}
	a.in(1, MaxValues, "k", k)
	a.in(n, MaxValues, "total", total)
	size := a.size(n, k)
	cs, ls, ds = a.buf("counts", counts, size), a.buf("labels", labels, a.size(n)), a.buf("dy", dy, size)
	return cs, ls, ds, c.ok(&a)
}

// ProxyLossGrad implements Backend.
func (c *CPU) ProxyLossGrad(n, k int, counts, labels, dy Buffer) {
	if cs, ls, ds, ok := c.lossArgs("ProxyLossGrad", n, max(n, 1), k, counts, labels, dy); ok {
		proxyLossGrad(n, k, cs, ls, ds)
	}
}

// Adam implements Backend.
func (c *CPU) Adam(f AdamArgs, p, grad, m, v Buffer) {
	a := args{kernel: "Adam"}
	ph := a.buf("p", p, 0)
	gh, mh, vh := a.buf("grad", grad, len(ph)), a.buf("m", m, len(ph)), a.buf("v", v, len(ph))
	if f.Step < 1 {
		a.fail("step %d: steps count from 1", f.Step)
	}
	if !c.ok(&a) {
		return
	}
	ks := c.kernels()
	stepSize, sqrtBC2 := f.Factors()
	b1, b2 := float32(f.Beta1), float32(f.Beta2)
	fs := [8]float32{stepSize, sqrtBC2, b1, 1 - b1, b2, 1 - b2, float32(f.WeightDecay), float32(f.Eps)}
	elementwise(len(ph), func(lo, hi int) { ks.adam(ph[lo:hi], gh[lo:hi], mh[lo:hi], vh[lo:hi], &fs) })
	touch(p)
}

var _ Backend = (*CPU)(nil)
