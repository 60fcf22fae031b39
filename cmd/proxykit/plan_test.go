package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/program"
)

// TestPlan: the paper's network planned for a training step on the CPU
// (one step at a time) and for the GPU's multi-step order, as text and
// JSON; the totals are the program's (one proxy step of the paper's
// network costs about 5.9 GFLOP an image, design §7).
func TestPlan(t *testing.T) {
	dir := t.TempDir()
	net := filepath.Join(dir, "net.onnx")
	if out, err := run(t, "init", "--arch", "fmnist", "-o", net); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, dev := range []string{"cpu", "cuda-emu"} {
		out, err := run(t, "plan", net, "--device", dev, "--json")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var l program.Listing
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("%s: %v", dev, err)
		}
		perImage := float64(l.Totals.FLOPs) / 100 / 1e9
		if perImage < 5.8 || perImage > 6.0 {
			t.Errorf("%s: %.2f GFLOP an image, want about 5.9", dev, perImage)
		}
		steps := 1
		if dev != "cpu" {
			steps = 15
		}
		if l.Capacity.Steps != steps {
			t.Errorf("%s: planned for %d steps at once, want %d", dev, l.Capacity.Steps, steps)
		}
		kinds := map[string]bool{}
		for _, p := range l.Passes {
			kinds[p.Kind] = true
		}
		for _, k := range []string{"ANN forward", "SNN time steps", "proxy loss", "ANN backward", "optimizer"} {
			if !kinds[k] {
				t.Errorf("%s: no %s pass", dev, k)
			}
		}
	}
	out, err := run(t, "plan", net, "--infer", "--batch-size", "7")
	if err != nil || !strings.Contains(out, "SNN time steps (×15)") || strings.Contains(out, "ANN backward") {
		t.Errorf("plan --infer: %v\n%s", err, out)
	}
}
