package compute

// workerScratch is one worker goroutine's memory, kept by the CPU backend
// from call to call so that its kernels allocate nothing in the steady
// state (a CPU is used by one goroutine at a time; a kernel hands worker
// w's scratch to the goroutine it numbers w).
type workerScratch struct {
	col, dcol, outT, tile []float32
	list                  spikeList
	cursor                []int32
	tree                  [][]float32
}

// scratch returns the scratch of n workers, growing the set; call it
// before starting the workers.
func (c *CPU) scratch(n int) []workerScratch {
	if len(c.ws) < n {
		c.ws = append(c.ws, make([]workerScratch, n-len(c.ws))...)
	}
	return c.ws[:n]
}

// grow returns (*buf)[:n], reallocated when too small; its contents are
// whatever they were.
func grow[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	*buf = (*buf)[:n]
	return *buf
}

// treeBuf is the worker's i-th batch-tree buffer of size values.
func (ws *workerScratch) treeBuf(i, size int) []float32 {
	for len(ws.tree) <= i {
		ws.tree = append(ws.tree, nil)
	}
	return grow(&ws.tree[i], size)
}
