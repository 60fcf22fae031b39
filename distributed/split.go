package distributed

// Split is rank r's share [lo, hi) of a batch of n samples spread over
// size ranks, consecutive shares in rank order. With size a power of two
// the shares are the nodes at depth log2(size) of the batch reduction tree
// of docs/design.md §4 — [lo, hi) halved at lo + ⌊(hi−lo)/2⌋, the lower
// half to the lower ranks —, so that every rank's partial sums are
// subtrees of one process's and their fixed-order all-reduce (allReduce)
// gives one process's bits, for any n (equal shares when size divides n).
// Otherwise the shares are ⌊n·r/size⌋ … ⌊n·(r+1)/size⌋. A share is empty
// only when n < size.
func Split(n, size, r int) (lo, hi int) {
	if size&(size-1) != 0 {
		return n * r / size, n * (r + 1) / size
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

// MaxShare is the largest share of a batch of n samples over size ranks.
func MaxShare(n, size int) int {
	m := 0
	for r := 0; r < size; r++ {
		lo, hi := Split(n, size, r)
		m = max(m, hi-lo)
	}
	return m
}
