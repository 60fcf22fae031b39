// Command allreduce times proxykit's host all-reduce (package distributed: the
// fixed-order recursive halving and doubling over Open MPI) on the
// gradients of the paper's network (docs/scaling.md). Run it under
// mpirun; rank 0 prints one JSON object.
//
// Usage: go build -o allreduce ./scripts/allreduce && mpirun -np 2 ./allreduce [-width 128] [-reps 20]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/nn"
)

func main() {
	width := flag.Int("width", 128, "the paper's network at this width: its gradients are the vector summed")
	reps := flag.Int("reps", 20, "timed all-reduces, after 3 untimed")
	flag.Parse()
	if err := run(*width, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "allreduce:", err)
		os.Exit(1)
	}
}

func run(width, reps int) error {
	net, err := nn.Reference(width, 2020)
	if err != nil {
		return err
	}
	c, err := distributed.OpenMPI(time.Minute)
	if err != nil {
		return err
	}
	defer c.Close()
	grad := make([]float32, net.ParamCount())
	for i := range grad {
		grad[i] = float32(i%7) * 1e-3
	}
	var times []float64
	for i := -3; i < reps; i++ {
		if err := c.AllReduceF64([]float64{0}); err != nil { // start together
			return err
		}
		start := time.Now()
		if err := c.AllReduceF32(grad); err != nil {
			return err
		}
		if i >= 0 {
			times = append(times, time.Since(start).Seconds())
		}
	}
	sort.Float64s(times)
	if c.Rank() != 0 {
		return nil
	}
	bytes := 4 * float64(len(grad))
	med := times[len(times)/2]
	p := float64(c.Size())
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"ranks": c.Size(), "communicator": c.Describe(), "network": net.Name, "parameters": len(grad), "bytes": bytes,
		"median_seconds": med, "min_seconds": times[0], "max_seconds": times[len(times)-1],
		// nccl-tests' measures: algorithm bandwidth, and bus bandwidth = algbw·2(p−1)/p
		"algbw_gb_per_s": bytes / med / 1e9, "busbw_gb_per_s": bytes / med / 1e9 * 2 * (p - 1) / p,
	})
}
