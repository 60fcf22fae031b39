// Package compute holds the numeric kernels behind the nn and spiking
// packages. This file and its siblings are the pure-Go CPU backend: each
// kernel is a plain loop that reads like the math, split across the
// machine's cores where the work is large enough to pay for it.
package compute

import (
	"runtime"
	"sync"
)

// ParallelFor calls body(lo, hi) on disjoint chunks that cover [0, n),
// using up to GOMAXPROCS goroutines, and returns when all are done.
// Small ranges run on the calling goroutine.
func ParallelFor(n int, body func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		if n > 0 {
			body(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := lo + chunk
		if hi > n {
			hi = n
		}
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			body(lo, hi)
		}(lo, hi)
	}
	wg.Wait()
}
