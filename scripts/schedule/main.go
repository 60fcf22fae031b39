// Command schedule prints proxykit's training data stream — each epoch's
// sample order and crop offsets, as `proxykit train` draws them from its
// seed — as JSON, so that scripts/recipe_torch.py trains PyTorch on the
// very same stream.
//
// Usage: go run ./scripts/schedule -n 10000 -epochs 3 [-batch 100] [-seed 2020]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/train"
)

func main() {
	s := recipe.Default()
	n := flag.Int("n", 0, "training images")
	epochs := flag.Int("epochs", 1, "epochs")
	flag.IntVar(&s.BatchSize, "batch", s.BatchSize, "batch size")
	flag.Uint64Var(&s.Seed, "seed", s.Seed, "seed")
	flag.Parse()
	if *n < 1 || *epochs < 1 || s.BatchSize < 1 {
		fmt.Fprintln(os.Stderr, "schedule: -n, -epochs and -batch must be positive")
		os.Exit(2)
	}
	type epoch struct {
		Order []int    `json:"order"`
		Crops [][2]int `json:"crops"`
	}
	var out []epoch
	for e := 0; e < *epochs; e++ {
		o, c, err := train.Schedule(s, *n, e)
		if err != nil {
			fmt.Fprintln(os.Stderr, "schedule:", err)
			os.Exit(2)
		}
		out = append(out, epoch{o, c})
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"batch": s.BatchSize, "seed": s.Seed, "epochs": out}); err != nil {
		fmt.Fprintln(os.Stderr, "schedule:", err)
		os.Exit(1)
	}
}
