package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/internal/testutil"
)

// The second adversarial round (issue #23): each case of its list, by
// number, refused or handled as the issue asks. Every case failed on the
// code before the fixes.

// proxykitProcess starts this test binary as proxykit (TestExitCode's
// branch) with args; env adds variables (PROXYKIT_FSIZE: a file size
// limit in bytes).
func proxykitProcess(args []string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestExitCode$")
	cmd.Env = append(append(os.Environ(), "PROXYKIT_AS_MAIN=1", "PROXYKIT_ARGS="+strings.Join(args, " ")), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// smallCheckpoint trains the proxy fixture for one short epoch.
func smallCheckpoint(t *testing.T, dir string) string {
	t.Helper()
	ck := filepath.Join(dir, "small.ckpt")
	if out, err := run(t, "train", testutil.Path("proxy/net.onnx"), "--data", testutil.Path("proxy"), "--dataset", "mnist", "-o", ck,
		"--epochs", "1", "--max-train", "30", "--max-test", "10", "--batch-size", "10"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return ck
}

func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

// 1 and 7c, 7l: outputs that are one file are refused up front, naming
// both flags; nothing is written.
func TestRound2OutputsCollide(t *testing.T) {
	dir := t.TempDir()
	model, data := testutil.Path("proxy/net.onnx"), testutil.Path("proxy")
	csv, png := filepath.Join(dir, "run.csv"), filepath.Join(dir, "run.png")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", model, "--data", data, "--dataset", "mnist", "-o", csv, "--plot", png, "--epochs", "1"}, "-o " + csv + " and --plot's CSV"},
		{[]string{"train", model, "--data", data, "--dataset", "mnist", "-o", png, "--plot", png, "--epochs", "1"}, "-o " + png + " and --plot " + png},
		{[]string{"export", model, "--ann", filepath.Join(dir, "a.onnx"), "--snn", filepath.Join(dir, "a.onnx")}, "--ann " + filepath.Join(dir, "a.onnx") + " and --snn"},
		{[]string{"export", model, "--ann", model}, "--ann " + model + " is the input file"},
	} {
		if out, err := run(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q\n%s", c.args, err, c.want, out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused commands wrote %v", entries)
	}
}

// 2a: a sweep whose synaptic operations are 0 at every T (a silent SNN)
// prints its numbers and draws its figure; it used to panic in the log
// axis and lose the results.
func TestRound2SilentSweepPlots(t *testing.T) {
	dir := t.TempDir()
	fig := filepath.Join(dir, "f.png")
	out, err := run(t, "eval", testutil.Path("proxy/net.onnx"), "--data", testutil.Path("proxy"), "--dataset", "mnist",
		"--max-test", "5", "--threshold", "1e6", "--timesteps", "2,4,8", "--plot", fig, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, `"synops_per_image":0`) {
		t.Errorf("the SNN was not silent:\n%s", out)
	}
	if _, err := os.Stat(fig); err != nil {
		t.Errorf("no figure: %v", err)
	}
}

// 2b, 3a, 3b, 6f, 6g: plot refuses files that eval and train cannot have
// written, naming the field, quickly and without a panic.
func TestRound2PlotRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	sweep := func(edit func(m map[string]any)) string {
		m := map[string]any{"n": 10, "ann": 0.9, "threshold": 2, "reset": 0, "if_layers": []string{"a", "output"}, "synop_layers": []string{"fc"},
			"ann_macs_per_image": 100, "static_macs_per_image": 10,
			"points": []map[string]any{{"t": 1, "snn_strict": 0.5, "snn_ties": 0.6, "tie_share": 0.1, "rates": []float64{0.1, 0.2},
				"synops_per_image": 10, "layer_synops_per_image": []float64{10}}}}
		edit(m)
		return writeJSON(t, dir, m)
	}
	point := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { m["points"].([]map[string]any)[0][k] = v }
	}
	epoch := func(edit func(m map[string]any)) string {
		m := map[string]any{"epoch": 0, "bn_mode": "train", "train_loss": 0.1, "train_ann_acc": 0.5, "train_snn_acc": 0.5,
			"test": map[string]any{"n": 10, "ann": 0.5, "snn_strict": 0.5, "snn_ties": 0.5, "tie_share": 0}, "seconds": 1, "images_per_sec": 10}
		edit(m)
		return writeJSON(t, dir, m)
	}
	for _, c := range []struct {
		file, want string
	}{
		{sweep(point("t", 0)), "T = 0"},
		{sweep(point("t", -3)), "T = -3"},
		{sweep(point("synops_per_image", -1)), "synops_per_image is -1"},
		{sweep(point("rates", []float64{0.1})), "1 rates for 2 IF layers"},
		{sweep(func(m map[string]any) { delete(m["points"].([]map[string]any)[0], "rates") }), "0 rates for 2 IF layers"},
		{sweep(point("rates", []float64{1e308, -1e308})), "rates["},
		{sweep(point("snn_strict", 1e308)), "snn_strict is 1e+308"},
		{epoch(func(m map[string]any) { m["epoch"] = 1e12 }), "epoch 1000000000000"},
		{epoch(func(m map[string]any) { m["test"].(map[string]any)["ann"] = 1e308 }), "test.ann is 1e+308"},
		{writeRaw(t, dir, "{}"), `field "bn_mode" is missing`},
		{writeRaw(t, dir, "null"), "not a JSON object"},
	} {
		start := time.Now()
		out, err := run(t, "plot", c.file, "-o", filepath.Join(dir, "fig.png"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("plot %s: %v, want an error with %q\n%s", c.file, err, c.want, out)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("plot %s took %s", c.file, el)
		}
	}
	// 6f: two training logs are two runs, not one curve
	ck := smallCheckpoint(t, dir)
	if _, err := run(t, "plot", ck, ck, "--label", "A,B", "-o", filepath.Join(dir, "fig.png")); err == nil || !strings.Contains(err.Error(), "second training log") {
		t.Errorf("two training logs: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fig.png")); err == nil {
		t.Error("a refused plot drew a figure")
	}
}

func writeJSON(t *testing.T, dir string, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return writeRaw(t, dir, string(b))
}

func writeRaw(t *testing.T, dir, s string) string {
	f, err := os.CreateTemp(dir, "in*.json")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
	return f.Name()
}

// 3c, 3d, 7i: Ctrl-C stops a long sweep within a time step, exits 130 and
// says it was interrupted (it used to finish the batch and exit 0).
func TestRound2InterruptSweep(t *testing.T) {
	cmd, out := proxykitProcess([]string{"eval", testutil.Path("proxy/net.onnx"), "--data", testutil.Path("proxy"), "--dataset", "mnist",
		"--max-test", "1", "--timesteps", "1-1000000:500000"})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the simulation of 500,001 steps is under way
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := exitCode(err); code != 130 {
		t.Fatalf("exit %d, want 130:\n%s", code, out)
	}
	if el := time.Since(sent); el > 5*time.Second {
		t.Errorf("stopped %s after the signal", el)
	}
	if !strings.Contains(out.String(), "proxykit: interrupted") {
		t.Errorf("output does not say it was interrupted:\n%s", out)
	}
}

// 4: a second writer of a checkpoint being written is refused up front,
// naming the holder.
func TestRound2SecondWriterRefused(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "same.ckpt")
	lock, err := atomicfile.Lock(ck) // as a first train -o same.ckpt holds it
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	_, err = run(t, "train", testutil.Path("proxy/net.onnx"), "--data", testutil.Path("proxy"), "--dataset", "mnist", "-o", ck, "--epochs", "1")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("being written by process %d", os.Getpid())) {
		t.Errorf("second writer: %v", err)
	}
	if _, err := os.Stat(ck); err == nil {
		t.Error("the refused run wrote the checkpoint")
	}
}

// 5: SIGTERM during an export leaves no temporary files behind.
func TestRound2InterruptedExportLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	args := func(d string) []string {
		return []string{"export", testutil.Path("fmnist_w8_bn.onnx"), "--timesteps", "4096", "--ann", filepath.Join(d, "a.onnx"),
			"--snn", filepath.Join(d, "s.onnx"), "--nir", filepath.Join(d, "s.nir")}
	}
	// how long an export takes here, then signals at fractions of it
	start := time.Now()
	whole, out := proxykitProcess(args(t.TempDir()))
	if err := whole.Run(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	took := time.Since(start)
	interrupted := 0
	for _, frac := range []float64{0.2, 0.4, 0.6, 0.8} {
		d := filepath.Join(dir, fmt.Sprint(frac))
		os.Mkdir(d, 0o755)
		cmd, out := proxykitProcess(args(d))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(frac * float64(took)))
		cmd.Process.Signal(syscall.SIGTERM)
		switch code := exitCode(cmd.Wait()); code {
		case 130:
			interrupted++
			if entries, _ := os.ReadDir(d); len(entries) != 0 {
				t.Errorf("an interrupted export left %v", entries)
			}
		case 0: // it finished first: all three files
			if entries, _ := os.ReadDir(d); len(entries) != 3 {
				t.Errorf("a finished export left %v", entries)
			}
		default:
			t.Errorf("exit %d:\n%s", code, out)
		}
		noTemporaries(t, d)
	}
	if interrupted == 0 {
		t.Errorf("no export was interrupted (each took %s)", took)
	}
}

// 6a, 6b, 7a-like metadata: a checkpoint's metadata and statistics are
// checked where they enter, at load, naming the field.
func TestRound2CheckpointMetadataRefused(t *testing.T) {
	dir := t.TempDir()
	ck := smallCheckpoint(t, dir)
	model, data := testutil.Path("proxy/net.onnx"), testutil.Path("proxy")
	for _, c := range []struct {
		name string
		edit func(c *checkpoint.Checkpoint)
		want string
	}{
		{"snnvar.ckpt", func(c *checkpoint.Checkpoint) {
			for _, s := range c.SNNState {
				s["running_var"][0] = -1
				break
			}
		}, "SNN BatchNorm"},
		{"lr.ckpt", func(c *checkpoint.Checkpoint) { c.Adam.LR = -0.5 }, "learning rate -0.5"},
		{"eps.ckpt", func(c *checkpoint.Checkpoint) { c.Adam.Eps = -1e-3 }, "eps -0.001"},
		{"step.ckpt", func(c *checkpoint.Checkpoint) { c.Adam.Step = math.MaxInt64 }, "steps made"},
		{"loss.ckpt", func(c *checkpoint.Checkpoint) { c.Progress.Partial.LossSum = -1 }, "partial sums"},
	} {
		path := edit(t, ck, filepath.Join(dir, c.name), c.edit)
		for _, args := range [][]string{{"eval", path, "--data", data}, {"train", model, "--data", data, "-o", filepath.Join(dir, "out.ckpt"), "--resume", path, "--epochs", "2"}} {
			if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v: %v, want an error with %q", c.name, args[0], err, c.want)
			}
		}
	}
	// 6c: a threshold and reset too far apart for float32
	if _, err := run(t, "convert-snn", testutil.Path("convert/ann.onnx"), "--data", data, "--dataset", "mnist", "-o", filepath.Join(dir, "c.ckpt"),
		"--threshold", "3e38", "--reset", "-3e38"); err == nil || !strings.Contains(err.Error(), "too far apart") {
		t.Errorf("convert-snn with v_th − v_reset = Inf: %v", err)
	}
	// 7j: notes with escape sequences are printed escaped
	noted := edit(t, ck, filepath.Join(dir, "noted.ckpt"), func(c *checkpoint.Checkpoint) { c.Notes = map[string]string{"x\x1b[2J": "\x1b]0;pwned\x07"} })
	out, err := run(t, "import", noted)
	if err != nil || strings.Contains(out, "\x1b") || !strings.Contains(out, `\x1b]0;pwned\x07`) {
		t.Errorf("import printed the notes raw (%v):\n%q", err, out)
	}
}

// 6d, 6e, 7e, 7f, 7g, 7h: models proxykit must refuse, or warn about,
// naming the layer or node.
func TestRound2ModelsNamed(t *testing.T) {
	for _, c := range []struct {
		file, want string
	}{
		{"softmax_dim0.pt", "Softmax over dim 0"},
		{"softmax_mid.pt", `layer 1 (Softmax "1")`},
		{"groups_mismatch.pt", `layer 1 (Conv2d "1"): groups 3`},
		{"self_edge.onnx", `node loop (Add) reads its own output "y"`},
		{"two_producers.onnx", `value "y" is written by two nodes, one (Relu) and two (Relu)`},
		{"dead_node.onnx", "node unused (Relu) computes a value that no node reads"},
	} {
		if _, err := run(t, "import", testutil.Path("hostile/"+c.file)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.file, err, c.want)
		}
	}
	// a custom module whose forward adds a shortcut: every command says
	// what it assumed, on stderr
	dir := t.TempDir()
	cmd, out := proxykitProcess([]string{"infer", testutil.Path("hostile/custom_shortcut.pt"), "--input", testutil.Path("lenet_opset11.x.npy"),
		"--output", filepath.Join(dir, "y.npy")})
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "note: module 1 (__main__.Shortcut) is a custom module") {
		t.Errorf("infer on a custom module (%v) did not warn:\n%s", err, out)
	}
}

// 7a: a full disk (here a file size limit) says no checkpoint was written,
// not that one holds the run.
func TestRound2FullDiskMessage(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck.ckpt")
	cmd, out := proxykitProcess([]string{"train", testutil.Path("proxy/net.onnx"), "--data", testutil.Path("proxy"), "--dataset", "mnist",
		"-o", ck, "--epochs", "1", "--max-train", "20", "--max-test", "10", "--batch-size", "10"}, "PROXYKIT_FSIZE=65536")
	if code := exitCode(cmd.Run()); code != 1 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if s := out.String(); strings.Contains(s, "holds the run") || !strings.Contains(s, "this run wrote no checkpoint to "+ck) {
		t.Errorf("message:\n%s", s)
	}
	noTemporaries(t, dir)
}

// 7d: resuming a checkpoint of another width names the shapes.
func TestRound2ResumeOtherWidth(t *testing.T) {
	dir := t.TempDir()
	narrow, wide, ck := filepath.Join(dir, "n.onnx"), filepath.Join(dir, "w.onnx"), filepath.Join(dir, "n.ckpt")
	for _, a := range [][]string{
		{"init", "--arch", "resnet", "--input", "1x28x28", "--width", "4", "-o", narrow},
		{"init", "--arch", "resnet", "--input", "1x28x28", "--width", "8", "-o", wide},
		{"train", narrow, "--data", testutil.Path("proxy"), "--dataset", "mnist", "-o", ck, "--epochs", "1", "--max-train", "10", "--max-test", "10", "--batch-size", "10"},
	} {
		if out, err := run(t, a...); err != nil {
			t.Fatalf("%v: %v\n%s", a, err, out)
		}
	}
	_, err := run(t, "train", wide, "--data", testutil.Path("proxy"), "--dataset", "mnist", "-o", filepath.Join(dir, "w.ckpt"), "--resume", ck, "--epochs", "2")
	if err == nil || !strings.Contains(err.Error(), `parameter "conv1.weight" is [4 1 3 3] in the checkpoint and [8 1 3 3] in the model`) {
		t.Errorf("resume of another width: %v", err)
	}
}
