package distributed

import "math/bits"

// Split is rank r's share [lo, hi) of a batch of n samples spread over
// size ranks, consecutive shares in rank order. With size a power of two
// the shares are the nodes at depth log2(size) of the batch reduction tree
// of docs/design.md §4 — [lo, hi) halved at lo + ⌊(hi−lo)/2⌋, the lower
// half to the lower ranks —, so that every rank's partial sums are
// subtrees of one process's and their fixed-order all-reduce (allReduce)
// gives one process's bits, for any n (equal shares when size divides n).
// Otherwise the shares are ⌊n·r/size⌋ … ⌊n·(r+1)/size⌋. A share is empty
// only when n < size; it is empty too for what is no rank's share: n < 0,
// size < 1, r outside [0, size).
func Split(n, size, r int) (lo, hi int) {
	if n < 0 || size < 1 || r < 0 || r >= size {
		return 0, 0
	}
	if size&(size-1) != 0 {
		return mulDiv(n, r, size), mulDiv(n, r+1, size)
	}
	lo, hi = 0, n
	for bit := size >> 1; bit > 0; bit >>= 1 {
		mid := lo + (hi-lo)/2
		if r&bit != 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, hi
}

// mulDiv is ⌊a·b/c⌋ for 0 ≤ b ≤ c, without overflow.
func mulDiv(a, b, c int) int {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int(q)
}

// MaxShare is the largest share of a batch of n samples over size ranks:
// ⌈n/size⌉ (halving a span leaves at most ⌈half⌉ on either side; ⌊n·r/size⌋
// steps are at most ⌈n/size⌉ apart); 0 for n < 0 or size < 1.
func MaxShare(n, size int) int {
	if n < 0 || size < 1 {
		return 0
	}
	m := n / size
	if n%size != 0 {
		m++
	}
	return m
}
