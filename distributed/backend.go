package distributed

import (
	"errors"
	"fmt"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
)

// Backend runs one rank's share of each global batch: it is the rank's
// own compute.Backend, with the kernels whose results depend on the whole
// batch completed across ranks while a share is set (SetShare):
//
//   - ProxyLossGrad divides by the global batch, 2(counts − onehot)/(B·K);
//   - with SyncBN, BatchNorm's batch statistics are the global batch's
//     (the per-rank sums of x, then of (x − mean)², all-reduced in float64),
//     its running statistics are updated with the global count, and its
//     backward pass uses the global Σdy and Σdy·x̂;
//   - each parameter gradient a backward kernel completes is marked, and a
//     bucket of them all-reduced as soon as it is whole where the
//     collectives run beside the kernels (NCCL); ReduceGradients finishes
//     the sums before the optimizer's step.
//
// A rank whose share of a batch is empty (a last batch smaller than the
// number of ranks) runs one stand-in sample that counts for nothing: its
// loss gradient is zero and it adds nothing to the statistics.
//
// Everything else passes through, so nn, spiking and train's Engine run
// on it unchanged; a collective's failure is returned by the next Err.
type Backend struct {
	compute.Backend
	sharded compute.Sharded
	g       *Group
	sync    bool

	active            bool
	rows, real, total int
	err               error

	sums, mean64, bsums compute.Buffer

	buckets []*bucket
	index   map[compute.Buffer]int // gradient buffer → bucket
	marked  map[compute.Buffer]bool
	next    int // the next bucket to start
	bytes   int64

	stats ReduceStats
}

// bucket is a group of gradient buffers all-reduced together.
type bucket struct {
	bufs    []compute.Buffer
	pending int
}

// ReduceStats are what the gradients' all-reduces cost, summed since the
// last ResetStats.
type ReduceStats struct {
	// Steps counts ReduceGradients calls.
	Steps int
	// Bytes is what each rank contributed to the all-reduces.
	Bytes int64
	// Wait is the time ReduceGradients spent, the sums' share of a step
	// not hidden behind the backward pass.
	Wait time.Duration
}

// Shard returns be as this rank's Backend. be must implement
// compute.Sharded (the CPU and CUDA backends do).
func (g *Group) Shard(be compute.Backend) (*Backend, error) {
	if g == nil || g.coll == nil {
		return nil, errNoGroup
	}
	if be == nil {
		return nil, fmt.Errorf("sharding: no backend (nil)")
	}
	s, ok := be.(compute.Sharded)
	if !ok {
		return nil, fmt.Errorf("the %s backend cannot run a share of a batch (it lacks compute.Sharded's kernels)", be.Name())
	}
	return &Backend{Backend: be, sharded: s, g: g, sync: g.opt.BatchNorm == SyncBN,
		index: map[compute.Buffer]int{}, marked: map[compute.Buffer]bool{}}, nil
}

// Group is the run the backend is a rank of.
func (b *Backend) Group() *Group { return b.g }

// AsElem implements compute.HalfStore: the inner backend's view of buf as
// values of type e, where it stores them (compute.HalfStore); else buf
// as it is, which a program's machine refuses as not of type e.
func (b *Backend) AsElem(buf compute.Buffer, e compute.Elem) compute.Buffer {
	if hs, ok := b.Inner().(compute.HalfStore); ok {
		return hs.AsElem(buf, e)
	}
	return buf
}

// Convert implements compute.HalfStore through the inner backend; one
// that stores float32 only fails.
func (b *Backend) Convert(x, y compute.Buffer) {
	if !b.ready() {
		return
	}
	hs, ok := b.Backend.(compute.HalfStore)
	if !ok {
		b.fail(fmt.Errorf("distributed: converting values on backend %s, which stores float32 only", b.Backend.Name()))
		return
	}
	hs.Convert(x, y)
}

// Inner is the rank's own backend (nil on a nil receiver).
func (b *Backend) Inner() compute.Backend {
	if b == nil {
		return nil
	}
	return b.Backend
}

// SetShare starts a step on this rank's share of a global batch of total
// samples: rows samples run, of which real count (0 for a stand-in). Sizes
// no share can have (real above rows or total, rows below 1) fail the
// step: Err returns why.
func (b *Backend) SetShare(rows, real, total int) {
	if !b.ready() {
		return
	}
	if rows < 1 || real < 0 || real > rows || total < real || total < 1 || total > compute.MaxValues {
		b.fail(fmt.Errorf("distributed: a share of %d rows, %d of them real, of a batch of %d", rows, real, total))
		return
	}
	b.active, b.rows, b.real, b.total = true, rows, real, total
}

// errZeroBackend is what a zero Backend's kernels fail with.
var errZeroBackend = errors.New("a zero distributed.Backend runs nothing: make one with Group.Shard")

// ready reports whether b was made by Group.Shard; a zero Backend's
// kernels fail (Err says why) and do nothing.
func (b *Backend) ready() bool {
	if b.Backend == nil || b.g == nil || b.sharded == nil {
		b.fail(errZeroBackend)
		return false
	}
	return true
}

// EndShare ends the step: kernels run for this rank alone again.
func (b *Backend) EndShare() { b.active = false }

// fail keeps the first error of a collective for Err.
func (b *Backend) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Err implements compute.Backend: a collective's failure first (a nil or
// zero Backend's: that it runs nothing).
func (b *Backend) Err() error {
	if b == nil || b.Backend == nil {
		return errZeroBackend
	}
	if err := b.err; err != nil {
		b.err = nil
		return err
	}
	return b.Backend.Err()
}

// allReduce sums one buffer across ranks (unless a collective failed).
func (b *Backend) allReduce(buf compute.Buffer, f64 bool) {
	if b.err != nil {
		return
	}
	if err := b.g.coll.AllReduce([]compute.Buffer{buf}, f64); err != nil {
		b.fail(err)
	}
}

// scratch returns a buffer of n values in *p, grown as needed.
func (b *Backend) scratch(p *compute.Buffer, n int) compute.Buffer {
	if *p == nil || (*p).Len() < n {
		if *p != nil {
			b.Backend.Free(*p)
			*p = nil
		}
		buf, err := b.Backend.Alloc(max(n, 256))
		if err != nil {
			b.fail(err)
			buf, _ = b.Backend.Alloc(0)
			return buf
		}
		*p = buf
	}
	return (*p).Slice(0, n)
}

// ProxyLossGrad implements compute.Backend over the global batch.
func (b *Backend) ProxyLossGrad(n, k int, counts, labels, dy compute.Buffer) {
	if !b.ready() {
		return
	}
	switch {
	case !b.active:
		b.Backend.ProxyLossGrad(n, k, counts, labels, dy)
	case b.real == 0:
		b.Backend.Fill(dy, 0)
	default:
		b.sharded.ProxyLossGradOf(n, b.total, k, counts, labels, dy)
	}
}

// BatchNormStats implements compute.Backend: with SyncBN, the global
// batch's statistics, from sums in the order of one process's (the sum of
// x, the mean, the sum of (x − mean)², the variance).
func (b *Backend) BatchNormStats(groups, n, c, hw int, layout compute.Layout, x, mean, variance compute.Buffer) {
	if !b.ready() {
		return
	}
	if !b.active || !b.sync {
		b.Backend.BatchNormStats(groups, n, c, hw, layout, x, mean, variance)
		return
	}
	if n != b.rows {
		b.fail(fmt.Errorf("distributed: BatchNorm statistics over %d samples in a share of %d", n, b.rows))
		return
	}
	if _, err := compute.Elements(groups, n, c, hw); err != nil {
		b.fail(fmt.Errorf("distributed: BatchNorm statistics: %w", err))
		return
	}
	if _, err := compute.Elements(b.total, hw); err != nil {
		b.fail(fmt.Errorf("distributed: BatchNorm statistics: %w", err))
		return
	}
	k, count := groups*c, b.total*hw
	sums, mu := b.scratch(&b.sums, 2*k), b.scratch(&b.mean64, 2*k)
	b.sharded.BatchNormSums(groups, b.real, c, hw, layout, x, nil, sums)
	b.allReduce(sums, true)
	b.sharded.BatchNormDivide(k, count, sums, mu, mean)
	b.sharded.BatchNormSums(groups, b.real, c, hw, layout, x, mu, sums)
	b.allReduce(sums, true)
	b.sharded.BatchNormDivide(k, count, sums, nil, variance)
}

// BatchNormUpdateRunning implements compute.Backend: with SyncBN the
// count is the global batch's; with RankBN a stand-in does not update.
func (b *Backend) BatchNormUpdateRunning(groups, c, count int, momentum float32, mean, variance, runMean, runVar compute.Buffer) {
	if !b.ready() {
		return
	}
	switch {
	case b.active && b.sync:
		if count < 0 || count/b.rows > compute.MaxValues/b.total {
			b.fail(fmt.Errorf("distributed: BatchNorm running statistics over %d values", count))
			return
		}
		count = count / b.rows * b.total
	case b.active && b.real == 0:
		return
	}
	b.Backend.BatchNormUpdateRunning(groups, c, count, momentum, mean, variance, runMean, runVar)
}

// BatchNormBackward implements compute.Backend: with SyncBN and batch
// statistics, this rank's Σdy and Σdy·x̂ go into dγ and dβ (summed with
// the other gradients later) and, summed across ranks, into dx. Without
// accumulate they are written (zeroed first where the sums add into them).
func (b *Backend) BatchNormBackward(n, c, hw int, layout compute.Layout, batchStats bool, eps float32, gamma, mean, variance, x, dy, dx, dgamma, dbeta compute.Buffer, accumulate bool) {
	if !b.ready() {
		return
	}
	if !b.active || !b.sync || !batchStats {
		b.Backend.BatchNormBackward(n, c, hw, layout, batchStats, eps, gamma, mean, variance, x, dy, dx, dgamma, dbeta, accumulate)
		b.gradDone(dgamma, dbeta)
		return
	}
	if !accumulate { // BatchNormBackwardSums adds into them
		b.zero(dgamma, dbeta)
	}
	if _, err := compute.Elements(n, c, hw, b.total); err != nil {
		b.fail(fmt.Errorf("distributed: BatchNorm backward: %w", err))
		return
	}
	sums := b.scratch(&b.bsums, 2*c)
	if b.real == 0 {
		b.Backend.Fill(sums, 0)
	} else {
		b.sharded.BatchNormBackwardSums(n, c, hw, layout, eps, mean, variance, x, dy, sums, dgamma, dbeta)
	}
	b.allReduce(sums, false)
	if dx != nil {
		if b.real == 0 {
			b.Backend.Fill(dx, 0)
		} else {
			b.sharded.BatchNormBackwardData(n, c, hw, b.total*hw, layout, eps, gamma, mean, variance, x, dy, sums, dx)
		}
	}
	b.gradDone(dgamma, dbeta)
}

// Conv2dBackward implements compute.Backend, marking dw and db done.
func (b *Backend) Conv2dBackward(g compute.ConvGeom, n int, x, w, dy, dx, dw, db compute.Buffer, accumulate bool) {
	if !b.ready() {
		return
	}
	b.Backend.Conv2dBackward(g, n, x, w, dy, dx, dw, db, accumulate)
	b.gradDone(dw, db)
}

// LinearBackward implements compute.Backend, marking dw and db done.
func (b *Backend) LinearBackward(n, in, out int, x, w, dy, dx, dw, db compute.Buffer, accumulate bool) {
	if !b.ready() {
		return
	}
	b.Backend.LinearBackward(n, in, out, x, w, dy, dx, dw, db, accumulate)
	b.gradDone(dw, db)
}

// zero fills the gradients that are there with 0.
func (b *Backend) zero(grads ...compute.Buffer) {
	for _, g := range grads {
		if g != nil {
			b.Backend.Fill(g, 0)
		}
	}
}

// WatchGradients sorts params' gradients (on this backend) into buckets of
// about Options.BucketBytes, in the backward pass's order (the last
// layers' first), for ReduceGradients.
func (b *Backend) WatchGradients(params []*nn.Param) {
	if !b.ready() {
		return
	}
	for i, p := range params {
		if p == nil {
			b.fail(fmt.Errorf("distributed: watching the gradients: parameter %d is nil", i))
			return
		}
		if p.GradBuffer(b) == nil {
			b.fail(fmt.Errorf("distributed: watching the gradients: parameter %s is not bound to this backend", p.Name))
			return
		}
	}
	b.buckets, b.index, b.bytes = nil, map[compute.Buffer]int{}, 0
	var cur *bucket
	size := 0
	for i := len(params) - 1; i >= 0; i-- {
		g := params[i].GradBuffer(b)
		if cur == nil || size+4*g.Len() > b.g.opt.BucketBytes && size > 0 {
			cur, size = &bucket{}, 0
			b.buckets = append(b.buckets, cur)
		}
		cur.bufs = append(cur.bufs, g)
		cur.pending++
		size += 4 * g.Len()
		b.bytes += 4 * int64(g.Len())
		b.index[g] = len(b.buckets) - 1
	}
}

// gradDone marks gradient buffers complete and starts every whole bucket
// in order where the collectives overlap with kernels.
func (b *Backend) gradDone(bufs ...compute.Buffer) {
	if !b.active {
		return
	}
	for _, g := range bufs {
		if g == nil {
			continue
		}
		i, ok := b.index[g]
		if !ok || b.marked[g] {
			continue
		}
		b.marked[g] = true
		b.buckets[i].pending--
	}
	if !b.g.coll.Async() {
		return
	}
	for b.next < len(b.buckets) && b.buckets[b.next].pending == 0 && b.err == nil {
		if err := b.g.coll.Start(b.buckets[b.next].bufs); err != nil {
			b.fail(err)
		}
		b.next++
	}
}

// ReduceGradients sums the watched gradients across ranks (the buckets
// not started yet, then waiting for all), so that every rank holds the
// global batch's gradient before the optimizer's step.
func (b *Backend) ReduceGradients() error {
	if b == nil || !b.ready() {
		return errZeroBackend
	}
	start := time.Now()
	for ; b.next < len(b.buckets) && b.err == nil; b.next++ {
		if err := b.g.coll.Start(b.buckets[b.next].bufs); err != nil {
			b.fail(err)
		}
	}
	if b.err == nil {
		if err := b.g.coll.Wait(); err != nil {
			b.fail(err)
		}
	}
	b.next = 0
	clear(b.marked)
	for _, bk := range b.buckets {
		bk.pending = len(bk.bufs)
	}
	b.stats.Steps++
	b.stats.Bytes += b.bytes
	b.stats.Wait += time.Since(start)
	return b.Err()
}

// GradientBytes is what one all-reduce of the watched gradients moves per
// rank into the sum: their size.
func (b *Backend) GradientBytes() int64 { return b.bytes }

// Stats are the all-reduces' costs since the last ResetStats.
func (b *Backend) Stats() ReduceStats { return b.stats }

// ResetStats starts counting again.
func (b *Backend) ResetStats() { b.stats = ReduceStats{} }

// FreeScratch gives the scratch buffers back (the rank's backend stays open).
func (b *Backend) FreeScratch() {
	for _, p := range []*compute.Buffer{&b.sums, &b.mean64, &b.bsums} {
		if *p != nil {
			b.Backend.Free(*p)
			*p = nil
		}
	}
}

// Describe names the rank's device, for logs.
func (b *Backend) Describe() string {
	if b.Backend == nil {
		return "no backend (a zero distributed.Backend)"
	}
	if d, ok := b.Backend.(interface{ Describe() string }); ok {
		return d.Describe()
	}
	return b.Backend.Name()
}

var _ compute.Backend = (*Backend)(nil)
