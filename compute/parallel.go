// Package compute holds the numeric kernels behind the nn and spiking
// packages. This file and its siblings are the CPU backend: each kernel is
// a plain Go loop that reads like the math (the reference), with AVX2 and
// AVX-512 versions of its inner loops beside it (dispatch.go), split
// across the machine's cores where the work is large enough to pay for it.
package compute

import (
	"runtime"
	"sync"
)

// maxWorkers is how many goroutines a kernel may split its work over.
func maxWorkers() int { return runtime.GOMAXPROCS(0) }

// parallelRange calls body(lo, hi) on disjoint chunks that cover [0, n),
// using up to GOMAXPROCS goroutines, and returns when all are done.
// Small ranges run on the calling goroutine.
func parallelRange(n int, body func(lo, hi int)) {
	parallelFor(n, maxWorkers(), func(_, lo, hi int) { body(lo, hi) })
}

// parallelFor calls body(w, lo, hi) on up to workers disjoint chunks
// that cover [0, n), w numbering the chunks from 0, and returns when all
// are done. Kernels use w to pick per-goroutine scratch memory; what a
// kernel computes never depends on how [0, n) was split.
func parallelFor(n, workers int, body func(w, lo, hi int)) {
	workers = min(workers, n)
	if workers <= 1 {
		if n > 0 {
			body(0, 0, n)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	w := 0
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(w, lo, hi int) {
			defer wg.Done()
			body(w, lo, hi)
		}(w, lo, hi)
		w++
	}
	wg.Wait()
}
