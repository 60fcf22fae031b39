package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/program"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
)

// TestTrainSurrogateCommand: train --method surrogate trains, says so,
// records the method in its checkpoint and resumes with it, and the
// method's flags are refused where they do not apply, naming them.
func TestTrainSurrogateCommand(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "s.ckpt")
	model := testutil.Path("proxy/net.onnx")
	base := []string{"train", model, "--data", testutil.Path("proxy"), "--dataset", "mnist", "--batch-size", "50", "--max-train", "100",
		"--timesteps", "4", "--lr", "1e-3"}
	out, err := run(t, append(base, "-o", ck, "--epochs", "1", "--method", "surrogate", "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	var st results.EpochStats
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &st); err != nil || st.Method != "surrogate" {
		t.Errorf("--json printed %q (%v)", out, err)
	}
	c, err := checkpoint.Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Settings.Surrogate; c.Settings.Method != recipe.MethodSurrogate || g == nil || *g != recipe.DefaultSurrogate() {
		t.Errorf("the checkpoint records method %q, surrogate %+v", c.Settings.Method, g)
	}
	out, err = run(t, append(base, "-o", ck, "--resume", ck, "--epochs", "2")...)
	if err != nil || !strings.Contains(out, "surrogate gradients through time (sigmoid, α = 4, through the reset)") ||
		!strings.Contains(out, "epoch 2 (BN eval): loss") || !strings.Contains(out, "surrogate gradients, train SNN") {
		t.Errorf("resumed surrogate run (%v):\n%s", err, out)
	}
	other := filepath.Join(dir, "o.ckpt")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", ck, "--resume", ck, "--epochs", "3", "--method", "proxy"}, "--method proxy differs from the checkpoint's surrogate"},
		{[]string{"-o", ck, "--resume", ck, "--epochs", "3", "--detach-reset"}, "--detach-reset true differs from the checkpoint's false"},
		{[]string{"-o", other, "--surrogate-alpha", "2"}, "a surrogate gradient is set for --method proxy; it applies to --method surrogate"},
		{[]string{"-o", other, "--method", "sgd"}, `--method "sgd": want proxy or surrogate`},
		{[]string{"-o", other, "--method", "surrogate", "--surrogate-alpha", "0"}, "--surrogate-alpha must be positive"},
	} {
		if _, err := run(t, append(base, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

// TestBenchSurrogate: bench --method surrogate reports the surrogate step
// beside the proxy step, with the activations each plans (T steps of
// them for BPTT: more than the proxy step's).
func TestBenchSurrogate(t *testing.T) {
	out, err := run(t, "bench", "--arch", "tiny", "--batch-size", "20", "--infer-batch-size", "20", "--timesteps", "4", "--seconds", "0",
		"--method", "surrogate", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Result results.BenchResult `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	r := b.Result
	if s := r.Surrogate; s == nil || s.StepSeconds <= 0 || s.Steps < 1 || s.GFLOPPerImage <= 0 || s.ActivationMB <= r.TrainActivationMB || r.TrainActivationMB <= 0 {
		t.Errorf("bench --method surrogate: %+v, surrogate %+v", r, r.Surrogate)
	}
	text, err := run(t, "bench", "--arch", "tiny", "--batch-size", "20", "--infer-batch-size", "20", "--timesteps", "4", "--seconds", "0",
		"--method", "surrogate")
	if err != nil || !strings.Contains(text, "surrogate-gradient step (BPTT), batch 20:") || !strings.Contains(text, "the proxy step's time per step") {
		t.Errorf("bench's report (%v):\n%s", err, text)
	}
}

// TestPlanSurrogate: plan --method surrogate lists the surrogate step's
// passes (the forward pass through all T steps, kept, and the backward
// pass through them) and its memory, T steps of activations, above the
// proxy step's; --gpu prices it.
func TestPlanSurrogate(t *testing.T) {
	net := filepath.Join(t.TempDir(), "net.onnx")
	if out, err := run(t, "init", "--arch", "fmnist", "--width", "8", "-o", net); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	listing := func(args ...string) program.Listing {
		out, err := run(t, append([]string{"plan", net, "--json", "--batch-size", "20", "--timesteps", "6"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var l program.Listing
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	proxy, sg := listing(), listing("--method", "surrogate")
	var kinds []string
	for _, p := range sg.Passes {
		kinds = append(kinds, p.Kind)
	}
	if want := []string{program.BPTTForward.String(), program.Loss.String(), program.BPTTBackward.String(), program.Update.String()}; !slices.Equal(kinds, want) {
		t.Errorf("plan --method surrogate's passes %v, want %v", kinds, want)
	}
	if sg.Capacity.Steps != 6 || sg.Totals.ActivationBytes <= 2*proxy.Totals.ActivationBytes {
		t.Errorf("surrogate step planned for %d steps, %d bytes of activations; the proxy step's %d", sg.Capacity.Steps, sg.Totals.ActivationBytes,
			proxy.Totals.ActivationBytes)
	}
	out, err := run(t, "plan", net, "--method", "surrogate", "--gpu", "h200", "--batch-size", "20", "--timesteps", "6")
	if err != nil || !strings.Contains(out, "pk_if_surrogate_grad") || !strings.Contains(out, "predicted") {
		t.Errorf("plan --method surrogate --gpu h200 (%v):\n%s", err, out)
	}
}
