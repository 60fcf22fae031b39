package main

import (
	"bytes"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/npy"
)

// run executes proxykit's command tree in-process.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestImportPrintsTable(t *testing.T) {
	out, err := run(t, "import", testutil.Path("fmnist_w8_bn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"opset 14", "input [B 1 28 28]", "Conv2d (static input, once)",
		"BatchNorm2d (static input, once), own statistics", "IF", "MaxPool2d (each step), on spikes (OR)", "[8 28 28]", "[10]",
		"IF (counts over T)", "19 layers"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestInferMatchesPyTorch(t *testing.T) {
	for _, device := range []string{"cpu", "cuda-emu"} {
		t.Run(device, func(t *testing.T) { inferMatchesPyTorch(t, device) })
	}
}

func inferMatchesPyTorch(t *testing.T, device string) {
	dir := t.TempDir()
	for _, name := range []string{"fmnist_w8_bn", "lenet_opset11"} {
		ann := filepath.Join(dir, name+".ann.npy")
		snn := filepath.Join(dir, name+".counts.npy")
		if _, err := run(t, "infer", testutil.Path(name+".onnx"), "--input", testutil.Path(name+".x.npy"), "--output", ann, "--network", "ann", "--batch-size", "5", "--device", device); err != nil {
			t.Fatal(err)
		}
		// a batch of 5 leaves a smaller last batch: the executors take any batch up to their capacity
		if _, err := run(t, "infer", testutil.Path(name+".onnx"), "--input", testutil.Path(name+".x.npy"), "--output", snn, "--network", "snn", "--timesteps", "15", "--threshold", "2.0", "--reset", "0", "--batch-size", "5", "--device", device); err != nil {
			t.Fatal(err)
		}
		y, err := npy.ReadFile(ann, false)
		if err != nil {
			t.Fatal(err)
		}
		want := testutil.Array(t, name+".ann.npy")
		if rel := testutil.RelErr(y.Data, want.Data); rel > 1e-4 || len(y.Shape) != 2 {
			t.Errorf("%s ANN: shape %v, relative error %g", name, y.Shape, rel)
		}
		c, err := npy.ReadFile(snn, false)
		if err != nil {
			t.Fatal(err)
		}
		wantC := testutil.Array(t, name+".snn.npy")
		if d := testutil.Differing(c.Data, wantC.Data); d > 0 {
			t.Errorf("%s SNN: %d counts differ from PyTorch's", name, d)
		}
	}
	// T=8, v_th=1.5, v_reset=0.5 through the flags.
	out := filepath.Join(dir, "t8.npy")
	if _, err := run(t, "infer", testutil.Path("fmnist_w8_folded.onnx"), "--input", testutil.Path("fmnist_w8_folded.x.npy"),
		"--output", out, "--network", "snn", "--timesteps", "8", "--threshold", "1.5", "--reset", "0.5", "--device", device); err != nil {
		t.Fatal(err)
	}
	c, err := npy.ReadFile(out, false)
	if err != nil {
		t.Fatal(err)
	}
	if d := testutil.Differing(c.Data, testutil.Array(t, "fmnist_w8_folded.snn_t8.npy").Data); d > 0 {
		t.Errorf("T=8 SNN: %d counts differ", d)
	}
}

func TestUint8Input(t *testing.T) {
	dir := t.TempDir()
	x := testutil.Array(t, "asym_opset21.x.npy")
	// The same pixels as uint8 (multiples of 1/16 times 240) and as float32 divided by 255 must give the same output.
	raw := make([]byte, len(x.Data))
	for i, v := range x.Data {
		raw[i] = byte(v * 240)
	}
	hdr := "{'descr': '|u1', 'fortran_order': False, 'shape': (6, 1, 12, 12), }"
	hdr += strings.Repeat(" ", 64-(10+len(hdr)+1)%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	b.WriteByte(byte(len(hdr)))
	b.WriteByte(byte(len(hdr) >> 8))
	b.WriteString(hdr)
	b.Write(raw)
	in := filepath.Join(dir, "x.npy")
	if err := os.WriteFile(in, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	scaled := make([]float32, len(raw))
	for i, v := range raw {
		scaled[i] = float32(v) / 255
	}
	fin := filepath.Join(dir, "xf.npy")
	if err := npy.WriteFile(fin, x.Shape, scaled); err != nil {
		t.Fatal(err)
	}
	o1, o2 := filepath.Join(dir, "a.npy"), filepath.Join(dir, "b.npy")
	if _, err := run(t, "infer", testutil.Path("asym_opset21.onnx"), "--input", in, "--scale-uint8", "--output", o1); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "infer", testutil.Path("asym_opset21.onnx"), "--input", fin, "--output", o2); err != nil {
		t.Fatal(err)
	}
	a, _ := npy.ReadFile(o1, false)
	c, _ := npy.ReadFile(o2, false)
	if testutil.Differing(a.Data, c.Data) != 0 {
		t.Error("uint8 input scaled by --scale-uint8 differs from the same input as float32")
	}
	// without the flag, uint8 pixels are refused, not used as 0–255
	o3 := filepath.Join(dir, "c.npy")
	if _, err := run(t, "infer", testutil.Path("asym_opset21.onnx"), "--input", in, "--output", o3); err == nil ||
		!strings.Contains(err.Error(), "--scale-uint8") {
		t.Errorf("uint8 input without --scale-uint8: error %v, want one naming the flag", err)
	}
	if _, err := os.Stat(o3); err == nil {
		t.Error("a refused input wrote its output")
	}
}

// TestBadInputLeavesNoOutput: each failure names the file (and node or
// field) and writes nothing.
func TestBadInputLeavesNoOutput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "y.npy")
	trunc := filepath.Join(dir, "trunc.onnx")
	b := testutil.ReadFile(t, "lenet_opset11.onnx")
	if err := os.WriteFile(trunc, b[:len(b)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	badNpy := filepath.Join(dir, "bad.npy")
	if err := os.WriteFile(badNpy, []byte("\x93NUMPY\x01\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"infer", filepath.Join(dir, "nope.onnx"), "--input", testutil.Path("lenet_opset11.x.npy"), "--output", out}, []string{"nope.onnx"}},
		{[]string{"infer", trunc, "--input", testutil.Path("lenet_opset11.x.npy"), "--output", out}, []string{"trunc.onnx", "not a valid ONNX"}},
		{[]string{"infer", testutil.Path("bad_sigmoid.onnx"), "--input", testutil.Path("lenet_opset11.x.npy"), "--output", out}, []string{"bad_sigmoid.onnx", "/Sigmoid"}},
		{[]string{"infer", testutil.Path("lenet_opset11.onnx"), "--input", testutil.Path("asym_opset21.x.npy"), "--output", out}, []string{"asym_opset21.x.npy", "[6 1 12 12]", "[B 1 28 28]"}},
		{[]string{"infer", testutil.Path("lenet_opset11.onnx"), "--input", badNpy, "--output", out}, []string{"bad.npy", "truncated"}},
		{[]string{"infer", testutil.Path("lenet_opset11.onnx"), "--input", testutil.Path("lenet_opset11.x.npy"), "--output", out, "--network", "cnn"}, []string{"--network"}},
		{[]string{"infer", testutil.Path("lenet_opset11.onnx"), "--input", testutil.Path("lenet_opset11.x.npy"), "--output", out, "--network", "snn", "--timesteps", "0"}, []string{"timesteps"}},
		{[]string{"infer", testutil.Path("lenet_opset11.onnx"), "--input", testutil.Path("lenet_opset11.x.npy"), "--output", filepath.Join(dir, "no", "such", "dir.npy")}, []string{"dir.npy"}},
	}
	for _, c := range cases {
		_, err := run(t, c.args...)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", c.args[1:], err, w)
			}
		}
		if _, statErr := os.Stat(out); statErr == nil {
			t.Fatalf("%v left an output file behind", c.args)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestExitCode runs the real binary (this test binary re-executed as
// proxykit): failures exit non-zero with one line on stderr, no stack trace.
func TestExitCode(t *testing.T) {
	if os.Getenv("PROXYKIT_AS_MAIN") == "1" {
		os.Args = append([]string{"proxykit"}, strings.Fields(os.Getenv("PROXYKIT_ARGS"))...)
		if n, err := strconv.ParseUint(os.Getenv("PROXYKIT_FSIZE"), 10, 64); err == nil {
			// a full disk, as a file size limit: writes beyond it fail
			signal.Ignore(syscall.SIGXFSZ)
			syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n})
		}
		main()
		os.Exit(0)
	}
	cases := []struct {
		args string
		code int
	}{
		{"version", 0},
		{"import " + testutil.Path("lenet_opset11.onnx"), 0},
		{"import " + testutil.Path("bad_sigmoid.onnx"), 1},
		{"import /nonexistent/model.onnx", 1},
		{"infer", 1},
	}
	for _, c := range cases {
		cmd := exec.Command(os.Args[0], "-test.run=^TestExitCode$")
		cmd.Env = append(os.Environ(), "PROXYKIT_AS_MAIN=1", "PROXYKIT_ARGS="+c.args)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code {
			t.Errorf("proxykit %s: exit code %d, want %d (stderr %q)", c.args, code, c.code, stderr.String())
		}
		if strings.Contains(stderr.String(), "goroutine") || strings.Contains(stderr.String(), "panic") {
			t.Errorf("proxykit %s: stack trace on stderr: %s", c.args, stderr.String())
		}
		if c.code != 0 && !strings.HasPrefix(stderr.String(), "proxykit: ") {
			t.Errorf("proxykit %s: stderr %q does not start with 'proxykit: '", c.args, stderr.String())
		}
	}
}

// TestVersionFromBuildInfo builds proxykit as a user does in a checkout
// and checks that version reports the module version and the commit Go
// stamped into the binary.
func TestVersionFromBuildInfo(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD (the tests run in a git checkout): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "proxykit")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "commit " + strings.TrimSpace(string(head))[:12]
	if !strings.HasPrefix(string(out), "proxykit v0.") || !strings.Contains(string(out), want) {
		t.Errorf("version printed %q; want the module version and %q", out, want)
	}
}
