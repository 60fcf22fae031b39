package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/npy"
)

// trainedCheckpoint makes a one-epoch checkpoint on the small IDX set.
func trainedCheckpoint(t *testing.T, dir string) string {
	t.Helper()
	ck := filepath.Join(dir, "run.ckpt")
	if out, err := run(t, "train", testutil.Path("proxy/net.onnx"), "--data", testutil.Path("proxy"), "--dataset", "mnist",
		"-o", ck, "--epochs", "1", "--batch-size", "50"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return ck
}

// edit rewrites a checkpoint after change.
func edit(t *testing.T, src, dst string, change func(c *checkpoint.Checkpoint)) string {
	t.Helper()
	c, err := checkpoint.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	change(c)
	if err := c.Save(dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestHostileCommandLines runs what a hostile or careless user tried (issue
// 15): every run must fail before doing work, with an error that names the
// flag, file or field, and leave no output behind.
func TestHostileCommandLines(t *testing.T) {
	dir := t.TempDir()
	dataDir := testutil.Path("proxy")
	model := testutil.Path("proxy/net.onnx")
	ck := trainedCheckpoint(t, dir)
	out := filepath.Join(dir, "out.ckpt")
	nanInput := filepath.Join(dir, "nan.npy")
	x := testutil.Array(t, "fmnist_w8_bn.x.npy")
	x.Data[5] = float32(nanValue())
	if err := npy.WriteFile(nanInput, x.Shape, x.Data); err != nil {
		t.Fatal(err)
	}
	emptyTest := filepath.Join(dir, "emptytest")
	os.Mkdir(emptyTest, 0o755)
	for _, f := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"} {
		b, _ := os.ReadFile(filepath.Join(dataDir, f))
		os.WriteFile(filepath.Join(emptyTest, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(emptyTest, "t10k-images-idx3-ubyte"), []byte{0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28}, 0o644)
	os.WriteFile(filepath.Join(emptyTest, "t10k-labels-idx1-ubyte"), []byte{0, 0, 8, 1, 0, 0, 0, 0}, 0o644)
	noLayers := edit(t, ck, filepath.Join(dir, "nolayers.ckpt"), func(c *checkpoint.Checkpoint) { c.Arch.Layers = nil })
	shortAdam := edit(t, ck, filepath.Join(dir, "shortadam.ckpt"), func(c *checkpoint.Checkpoint) {
		for k := range c.Adam.M {
			c.Adam.M[k] = c.Adam.M[k][:1]
		}
	})
	noAdam := edit(t, ck, filepath.Join(dir, "noadam.ckpt"), func(c *checkpoint.Checkpoint) { c.Adam = nil })
	negBatch := edit(t, ck, filepath.Join(dir, "negbatch.ckpt"), func(c *checkpoint.Checkpoint) { c.Progress.Batch = -3 })
	hugeT := edit(t, ck, filepath.Join(dir, "hugeT.ckpt"), func(c *checkpoint.Checkpoint) { c.Settings.Timesteps = 1 << 40 })
	tr := func(extra ...string) []string {
		return append([]string{"train", model, "--data", dataDir, "--dataset", "mnist", "-o", out}, extra...)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", model, "--data", dataDir, "--dataset", "mnist", "--batch-size", "-7"}, "--batch-size must lie between 1"},
		{[]string{"eval", model, "--data", dataDir, "--dataset", "mnist", "--batch-size", "0"}, "--batch-size must lie between 1"},
		{[]string{"bench", "--width", "100000", "--seconds", "0.1"}, "width 100000"},
		{[]string{"bench", "--batch-size", "100000000"}, "--batch-size must lie between 1"},
		{[]string{"bench", "--seconds", "NaN"}, "--seconds must lie between 0"},
		{[]string{"bench", "--seconds", "-1"}, "--seconds must lie between 0"},
		{[]string{"eval", model, "--data", dataDir, "--dataset", "mnist", "--max-test", "-5"}, "--max-test must not be negative"},
		{[]string{"convert-snn", model, "--data", dataDir, "--dataset", "mnist", "-o", out, "--calib-images", "-1"}, "--calib-images must not be negative"},
		{[]string{"init", "--width", "1000000", "-o", filepath.Join(dir, "big.onnx")}, "width 1000000"},
		{[]string{"import", "/dev/zero"}, "/dev/zero is a device"},
		{[]string{"import", dir}, "is a folder"},
		{[]string{"import", noLayers}, "no layers"},
		{[]string{"eval", hugeT, "--data", dataDir}, "timesteps must lie between 1 and 1048576"},
		{[]string{"infer", model, "--input", testutil.Path("fmnist_w8_bn.x.npy"), "--output", filepath.Join(dir, "y.npy"), "--network", "snn", "--timesteps", "2000000000"}, "timesteps must lie between"},
		{[]string{"infer", model, "--input", nanInput, "--output", filepath.Join(dir, "y.npy")}, "nan.npy holds NaN at index 5"},
		{[]string{"export", model, "--snn", filepath.Join(dir, "s.onnx"), "--timesteps", "100000000"}, "timesteps must lie between"},
		{[]string{"export", model, "--snn", filepath.Join(dir, "s.onnx"), "--timesteps", "5000"}, "at most 4096 steps"},
		{tr("--lr", "NaN"), "learning rate must be positive and finite"},
		{tr("--eps", "NaN"), "eps must be finite"},
		{tr("--weight-decay", "NaN"), "weight decay must be finite"},
		{tr("--betas", "NaN,0.9"), "betas must lie in [0, 1)"},
		{tr("--threshold", "Inf"), "must be finite"},
		{tr("--epochs", "0"), "nothing to train"},
		{[]string{"train", model, "--data", dataDir, "--dataset", "mnist", "-o", filepath.Join(dir, "missing", "x.ckpt")}, "missing"},
		{[]string{"train", model, "--data", emptyTest, "--dataset", "mnist", "-o", out}, "test set mnist holds no images"},
		// outputs are checked before any work: the missing data folder
		// would fail later
		{[]string{"convert-snn", model, "--data", filepath.Join(dir, "nodata"), "--dataset", "mnist", "-o", filepath.Join(dir, "missing", "x.ckpt")}, "cannot write"},
		{[]string{"convert", model, "-o", filepath.Join(dir, "missing", "x.onnx")}, "cannot write"},
		{[]string{"init", "-o", filepath.Join(dir, "missing", "x.onnx")}, "cannot write"},
		{[]string{"train", ck, "--data", dataDir, "-o", ck, "--epochs", "2"}, "is the input file"},
		{[]string{"train", model, "--data", dataDir, "-o", out, "--resume", ck, "--epochs", "2", "--lr", "0.5"}, "--lr 0.5 differs from the checkpoint's"},
		{[]string{"train", model, "--data", dataDir, "-o", out, "--resume", ck, "--epochs", "2", "--timesteps", "4"}, "--timesteps 4 differs"},
		{[]string{"train", model, "--data", dataDir, "-o", out, "--resume", shortAdam, "--epochs", "2"}, "optimizer state for"},
		{[]string{"train", model, "--data", dataDir, "-o", out, "--resume", noAdam, "--epochs", "2"}, "no optimizer state"},
		{[]string{"train", model, "--data", dataDir, "-o", out, "--resume", negBatch, "--epochs", "2"}, "batch -3"},
		{[]string{"train", model, "--data", dataDir, "-o", out, "--resume", ck, "--epochs", "1"}, "nothing to train"},
	} {
		got, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v:\nerror %v\nwant one with %q\n%s", c.args, err, c.want, got)
		}
	}
	for _, f := range []string{"out.ckpt", "y.npy", "s.onnx", "big.onnx"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("a refused command wrote %s", f)
		}
	}
	// a run that diverges stops with a message and leaves the last good
	// checkpoint as it was
	before, _ := os.ReadFile(ck)
	if got, err := run(t, "train", model, "--data", dataDir, "--dataset", "mnist", "-o", ck, "--epochs", "2", "--lr", "1e30", "--batch-size", "50"); err == nil || !strings.Contains(err.Error(), "training diverged") {
		t.Errorf("--lr 1e30: %v\n%s", err, got)
	}
	if after, _ := os.ReadFile(ck); string(after) != string(before) {
		t.Error("the diverged run changed the checkpoint")
	}
	// a flag repeating the checkpoint's value is honoured
	if got, err := run(t, "train", model, "--data", dataDir, "-o", out, "--resume", ck, "--epochs", "2", "--batch-size", "50", "--dataset", "mnist"); err != nil {
		t.Errorf("resume with the checkpoint's own --batch-size: %v\n%s", err, got)
	}
}

func nanValue() float64 {
	var z float64
	return z / z
}

// TestOutputsAreSafe checks what train, infer and export do to their
// outputs: special files and symbolic links are never replaced, export
// writes all of its files or none, and a long but valid name works.
func TestOutputsAreSafe(t *testing.T) {
	dir := t.TempDir()
	model := testutil.Path("fmnist_w8_bn.onnx")
	x := testutil.Path("fmnist_w8_bn.x.npy")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target.npy")
	os.WriteFile(target, []byte("keep"), 0o644)
	link := filepath.Join(dir, "link.npy")
	os.Symlink(target, link)
	for _, o := range []string{fifo, link, "/dev/null"} {
		if _, err := run(t, "infer", model, "--input", x, "--output", o); err == nil || !strings.Contains(err.Error(), "proxykit replaces only regular files") {
			t.Errorf("infer --output %s: %v", o, err)
		}
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the named pipe was replaced")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the link's target was overwritten")
	}
	// all or nothing: the NIR target is a folder, so the ONNX files must not appear either
	ann, snn := filepath.Join(dir, "a.onnx"), filepath.Join(dir, "s.onnx")
	nirDir := filepath.Join(dir, "x.nir")
	os.Mkdir(nirDir, 0o755)
	if _, err := run(t, "export", model, "--ann", ann, "--snn", snn, "--nir", nirDir); err == nil {
		t.Errorf("export to a folder succeeded")
	}
	for _, f := range []string{ann, snn} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("a failed export left %s", f)
		}
	}
	// a read-only folder for one target
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o555)
	if os.Geteuid() != 0 { // root writes anyway
		if _, err := run(t, "export", model, "--ann", ann, "--snn", filepath.Join(ro, "s.onnx")); err == nil {
			t.Errorf("export into a read-only folder succeeded")
		}
		if _, err := os.Stat(ann); err == nil {
			t.Errorf("a failed export left %s", ann)
		}
	}
	long := filepath.Join(dir, strings.Repeat("n", 245)+".npy")
	if _, err := run(t, "infer", model, "--input", x, "--output", long); err != nil {
		t.Errorf("a 249-character output name: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
