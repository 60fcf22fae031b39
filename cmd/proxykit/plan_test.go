package main

import (
	"encoding/json"
	"fmt"
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

// TestPlanPrecision: --precision fp16 plans the SNN's convolutions and
// linear layers over spikes on 16-bit slots (the spikes they read, their weights' copies and
// the currents they write) and prices them, here or for --gpu from the
// CPU; the CPU refuses it for running, and names that contradict --fp32 or
// are no precision are refused by name.
func TestPlanPrecision(t *testing.T) {
	net := filepath.Join(t.TempDir(), "net.onnx")
	if out, err := run(t, "init", "--arch", "fmnist", "--width", "8", "-o", net); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, args := range [][]string{{"--device", "cuda-emu"}, {"--gpu", "h200"}} {
		out, err := run(t, append([]string{"plan", net, "--json", "--precision", "fp16"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var l program.Listing
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatal(err)
		}
		var half []string
		for _, s := range l.Slots {
			if s.Elem == "f16" {
				half = append(half, s.Name)
			}
		}
		// conv.0's and conv.4's spikes (pooled), conv.1's and conv.5's currents; conv.8's pooled spikes
		// and their flatten (fc.0), the linear layers' currents (fc.1, .3, .5, .7) and spikes (fc.2, .4,
		// .6); the six weights' copies
		want := []string{"snn.conv.0", "snn.conv.1", "snn.conv.4", "snn.conv.5", "snn.conv.8", "conv.1.weight.f16", "conv.5.weight.f16"}
		for i := range 8 {
			want = append(want, fmt.Sprintf("snn.fc.%d", i))
			if i%2 == 1 {
				want = append(want, fmt.Sprintf("fc.%d.weight.f16", i))
			}
		}
		if !sameSet(half, want) {
			t.Errorf("%v: 16-bit slots %v, want %v", args, half, want)
		}
	}
	for _, c := range []struct{ args []string }{
		{[]string{"--precision", "fp16", "--device", "cpu"}}, {[]string{"--precision", "fp8"}}, {[]string{"--precision", "tf32", "--fp32"}},
	} {
		out, err := run(t, append([]string{"plan", net}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), "--precision") {
			t.Errorf("%v: not refused by --precision's name: %v\n%s", c.args, err, out)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x]--; seen[x] < 0 {
			return false
		}
	}
	return true
}
