package compute

import "math/bits"

// The batch reduction rule. Every sum over the samples of a batch in the
// training step — the weight and bias gradients of convolutions and
// linear layers, BatchNorm's statistics and the sums of its backward pass
// — is computed the same way:
//
//  1. Each sample contributes a leaf: its own term, summed over
//     everything but the batch (a convolution's output positions, a
//     BatchNorm channel's pixels) in a fixed order of its own.
//  2. Leaves [lo, hi) combine in a binary tree: a single leaf is itself;
//     otherwise the sum of [lo, mid) plus the sum of [mid, hi), with
//     mid = lo + ⌊(hi−lo)/2⌋, the left sum the left operand.
//  3. The tree's root is then added once to the accumulated gradient
//     (or taken as the statistic).
//
// The tree's shape depends only on the number of samples, never on the
// number of cores: workers take whole subtrees. And the two halves of a
// batch of 2m samples are exactly the root's two subtrees, the halves of
// those its grandchildren, and so on: a process that holds a
// (1/2^j)-share of the batch, a contiguous block of a batch divisible by
// 2^j, computes exactly one subtree, and adding the shares' results
// pairwise in the same tree gives the single process's bits
// (TestBatchTreeSplits shows it).

// treeMid is where the batch tree splits [lo, hi).
func treeMid(lo, hi int) int { return lo + (hi-lo)/2 }

type number interface{ ~float32 | ~float64 }

// batchTree sums n samples' leaves into dst (len(dst) values,
// overwritten) by the batch reduction rule. leaves(w, lo, hi, buf) writes
// into buf (every value) the sum of the subtree [lo, hi) by the rule,
// for hi−lo ≤ span: with span 1, sample lo's leaf; a kernel that sums a
// few leaves in registers takes a larger span. w numbers the worker
// goroutine, below workers. add(dst, src) adds elementwise. scratch(w,
// i) returns worker w's i-th buffer of len(dst) values (any contents;
// nil: batchTree allocates).
func batchTree[T number](n, workers, span int, dst []T, leaves func(w, lo, hi int, buf []T), add func(dst, src []T),
	scratch func(w, i int) []T) {
	if n == 0 {
		clear(dst)
		return
	}
	workers = max(1, min(workers, n))
	levels := bits.Len(uint(n)) + 1
	if scratch == nil { // buffers for this call, each made once
		bufs := make([][][]T, workers)
		scratch = func(w, i int) []T {
			for len(bufs[w]) <= i {
				bufs[w] = append(bufs[w], nil)
			}
			if bufs[w][i] == nil {
				bufs[w][i] = make([]T, len(dst))
			}
			return bufs[w][i]
		}
	}
	// the subtrees the workers take: the nodes at depth ⌈log₂ workers⌉,
	// or smaller ones above that depth
	type span2 struct{ lo, hi int }
	var tasks []span2
	var frontier func(lo, hi, depth int)
	frontier = func(lo, hi, depth int) {
		if depth == 0 || hi-lo <= span {
			tasks = append(tasks, span2{lo, hi})
			return
		}
		m := treeMid(lo, hi)
		frontier(lo, m, depth-1)
		frontier(m, hi, depth-1)
	}
	frontier(0, n, bits.Len(uint(workers-1)))
	results := make([][]T, len(tasks))
	parallelFor(len(tasks), workers, func(w, lo, hi int) {
		for t := lo; t < hi; t++ {
			if t == 0 {
				results[t] = dst
			} else {
				results[t] = scratch(w, levels+t-lo)
			}
			subtree(w, tasks[t].lo, tasks[t].hi, span, 0, results[t], scratch, leaves, add)
		}
	})
	// combine the workers' subtrees in the same tree
	next := 0
	var combine func(lo, hi int) []T
	combine = func(lo, hi int) []T {
		if next < len(tasks) && tasks[next] == (span2{lo, hi}) {
			next++
			return results[next-1]
		}
		m := treeMid(lo, hi)
		left := combine(lo, m)
		add(left, combine(m, hi))
		return left
	}
	combine(0, n) // results[0], the leftmost, is dst
}

// subtree sums the subtree [lo, hi) into out, depth-first, with worker
// w's scratch buffer i for the right half at tree level i.
func subtree[T number](w, lo, hi, span, level int, out []T, scratch func(w, i int) []T, leaves func(w, lo, hi int, buf []T),
	add func(dst, src []T)) {
	if hi-lo <= span {
		leaves(w, lo, hi, out)
		return
	}
	m := treeMid(lo, hi)
	subtree(w, lo, m, span, level+1, out, scratch, leaves, add)
	right := scratch(w, level)
	subtree(w, m, hi, span, level+1, right, scratch, leaves, add)
	add(out, right)
}

// addF64 adds src into dst.
func addF64(dst, src []float64) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}
