package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/results"
)

func TestInitWritesReadableModel(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "net.onnx")
	out, err := run(t, "init", "--arch", "fmnist", "--width", "8", "--seed", "7", "-o", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "width 8") {
		t.Errorf("init says %q", out)
	}
	table, err := run(t, "import", p)
	if err != nil {
		t.Fatal(err)
	}
	// 8·9 + 2·8·8·9 conv weights, 3·2·8 BN, 392·160 + 160·72 + 72·16 + 16·10 linear
	want := 8*9 + 2*8*8*9 + 3*2*8 + 392*160 + 160*72 + 72*16 + 16*10
	if !strings.Contains(table, "19 layers, "+strconv.Itoa(want)+" parameters") {
		t.Errorf("import of the init'ed model:\n%s\nwant %d parameters", table, want)
	}
	if _, err := run(t, "init", "--arch", "vgg", "-o", p); err == nil {
		t.Error("unknown --arch accepted")
	}
	// a ResNet-8 for 28x28 digits: it branches, trains and evaluates
	r := filepath.Join(dir, "resnet.onnx")
	if out, err = run(t, "init", "--arch", "resnet", "--input", "1x28x28", "-o", r); err != nil || !strings.Contains(out, "ResNet-8, width 16") {
		t.Fatalf("init --arch resnet: %v\n%s", err, out)
	}
	table, err = run(t, "import", r)
	if err != nil || strings.Count(table, "Add (each step)") != 3 || !strings.Contains(table, "reads") {
		t.Errorf("import of the ResNet (%v):\n%s", err, table)
	}
	ck := filepath.Join(dir, "resnet.ckpt")
	if out, err := run(t, "train", r, "--data", testutil.Path("proxy"), "--dataset", "mnist", "-o", ck, "--epochs", "1",
		"--batch-size", "50", "--max-train", "100"); err != nil {
		t.Fatalf("training the ResNet: %v\n%s", err, out)
	}
	if out, err := run(t, "eval", ck, "--data", testutil.Path("proxy"), "--timesteps", "1,4"); err != nil {
		t.Errorf("eval of the ResNet: %v\n%s", err, out)
	}
	if _, err := run(t, "init", "--arch", "resnet", "--input", "3x32", "-o", r); err == nil {
		t.Error("--input 3x32 accepted")
	}
}

// TestTrainEvalInferResume runs the commands end to end on the small IDX
// set of testdata/proxy.
func TestTrainEvalInferResume(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "run.ckpt")
	dataDir := testutil.Path("proxy")
	model := testutil.Path("proxy/net.onnx")
	out, err := run(t, "train", model, "--data", dataDir, "--dataset", "mnist", "-o", ck, "--epochs", "1",
		"--batch-size", "50", "--lr", "1e-3", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st results.EpochStats
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &st); err != nil {
		t.Fatalf("--json printed %q: %v", out, err)
	}
	if st.Epoch != 0 || st.BNMode != "train" || st.Test.N != 100 || st.ImagesPerSec <= 0 {
		t.Errorf("epoch record %+v", st)
	}
	// resume to 2 epochs; the second runs with BN in eval mode
	out, err = run(t, "train", model, "--data", dataDir, "--dataset", "mnist", "-o", ck, "--resume", ck, "--epochs", "2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "epoch 2 (BN eval)") || strings.Contains(out, "epoch 1 (") {
		t.Errorf("resumed run printed:\n%s", out)
	}
	out, err = run(t, "eval", ck, "--data", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"mnist test (100 images)", "T=15", "ANN", "SNN strict", "ties", "tied predictions"} {
		if !strings.Contains(out, w) {
			t.Errorf("eval output lacks %q:\n%s", w, out)
		}
	}
	y := filepath.Join(dir, "counts.npy")
	if _, err := run(t, "infer", ck, "--input", testutil.Path("proxy/x.npy"), "--output", y, "--network", "snn"); err != nil {
		t.Fatal(err)
	}
	table, err := run(t, "import", ck)
	if err != nil || !strings.Contains(table, "proxykit checkpoint after 2 epochs") {
		t.Errorf("import of a checkpoint: %v\n%s", err, table)
	}
}

func TestTrainBadInput(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "run.ckpt")
	sentinel := []byte("do not overwrite")
	if err := os.WriteFile(ck, sentinel, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.onnx")
	if _, err := run(t, "init", "--arch", "tiny", "-o", other); err != nil {
		t.Fatal(err)
	}
	otherCk := filepath.Join(dir, "other.ckpt")
	if _, err := run(t, "train", other, "--data", testutil.Path("proxy"), "--dataset", "mnist", "-o", otherCk,
		"--epochs", "1", "--max-train", "50", "--max-test", "10", "--batch-size", "50"); err != nil {
		t.Fatal(err)
	}
	model := testutil.Path("proxy/net.onnx")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--data", filepath.Join(dir, "nope"), "--dataset", "mnist"}, "nope"},
		{[]string{"--data", testutil.Path("proxy"), "--dataset", "cifar10"}, "data_batch_1.bin"},
		{[]string{"--data", testutil.Path("proxy"), "--dataset", "mnist", "--resume", otherCk}, "different architecture"},
		{[]string{"--data", testutil.Path("proxy"), "--dataset", "mnist", "--resume", model}, "--resume"},
		{[]string{"--data", testutil.Path("proxy"), "--dataset", "mnist", "--device", "cuda"}, "-tags cuda"},
		{[]string{"--data", testutil.Path("proxy"), "--dataset", "mnist", "--device", "tpu"}, "cpu, cuda or cuda-emu"},
		{[]string{"--data", testutil.Path("proxy"), "--dataset", "mnist", "--betas", "0.9"}, "--betas"},
		{[]string{"--data", testutil.Path("proxy"), "--dataset", "mnist", "--timesteps", "0"}, "timesteps"},
	}
	for _, c := range cases {
		args := append([]string{"train", model, "-o", ck}, c.args...)
		_, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one mentioning %q", c.args, err, c.want)
		}
		if b, _ := os.ReadFile(ck); !bytes.Equal(b, sentinel) {
			t.Fatalf("%v overwrote the output checkpoint", c.args)
		}
	}
	// an input shape that does not fit the model: a 12x12 model with 28x28 data
	if _, err := run(t, "train", testutil.Path("asym_opset21.onnx"), "--data", testutil.Path("proxy"), "--dataset", "mnist", "-o", ck); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("mismatched input shape: %v", err)
	}
}

// TestCtrlCWritesCheckpoint sends SIGINT to a training run: it must write a
// checkpoint mid-epoch, print a command that continues the run, and exit
// with status 130. The command, run as printed, continues from the
// checkpoint (and is interrupted in turn).
func TestCtrlCWritesCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "run.ckpt")
	stdout, stderr := interruptAfterAnEpoch(t, "train "+testutil.Path("proxy/net.onnx")+
		" --data "+testutil.Path("proxy")+" --dataset mnist -o "+ck+" --epochs 1000 --batch-size 10")
	if !regexp.MustCompile(`interrupted (in epoch \d+/1000 after batch \d+/20|after epoch \d+/1000); checkpoint written to `).MatchString(stderr) {
		t.Errorf("stderr does not say where the run stopped:\n%s", stderr)
	}
	c, err := checkpoint.Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	if c.Progress.Epoch == 0 && c.Progress.Batch == 0 {
		t.Error("the checkpoint records no progress")
	}
	// the command it printed, as printed: proxykit train --resume run.ckpt --data DIR
	_, line, ok := strings.Cut(stderr, "continue with:\n  ")
	line, _, _ = strings.Cut(line, "\n")
	want := "proxykit train --resume " + ck + " --data " + testutil.Path("proxy")
	if !ok || line != want {
		t.Fatalf("the run printed the command %q, want %q; stdout:\n%s\nstderr:\n%s", line, want, stdout, stderr)
	}
	stdout, stderr = interruptAfterAnEpoch(t, strings.TrimPrefix(line, "proxykit "))
	// it continued the run: the model is the checkpoint, the epochs go on
	wantHeader := fmt.Sprintf("proxy learning: %s on mnist (200 train, 100 test images), epochs %d to 1000", ck, c.Progress.Epoch+1)
	if !strings.HasPrefix(stdout, wantHeader) || !strings.Contains(stdout, fmt.Sprintf("\nepoch %d (BN eval)", c.Progress.Epoch+1)) {
		t.Errorf("the printed command did not continue the run from epoch %d; stdout:\n%s\nstderr:\n%s", c.Progress.Epoch+1, stdout, stderr)
	}
	if c2, err := checkpoint.Load(ck); err != nil || c2.Progress.Epoch <= c.Progress.Epoch {
		t.Errorf("the continued run's checkpoint: %v", err)
	}
}

// interruptAfterAnEpoch runs proxykit with args (split at spaces) as a
// process, sends it SIGINT once it has printed an epoch's line and checks
// that it exits with status 130; it returns what the run printed.
func interruptAfterAnEpoch(t *testing.T, args string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestExitCode$")
	cmd.Env = append(os.Environ(), "PROXYKIT_AS_MAIN=1", "PROXYKIT_ARGS="+args)
	pipe, _ := cmd.StdoutPipe()
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// interrupt once the first epoch is reported: training is under way
	lines := bufio.NewScanner(pipe)
	timer := time.AfterFunc(120*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var out strings.Builder
	signalled := false
	for lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		if !signalled && strings.HasPrefix(lines.Text(), "epoch ") {
			cmd.Process.Signal(syscall.SIGINT)
			signalled = true
		}
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("proxykit %s: exit %v, want status 130; stdout:\n%s\nstderr:\n%s", args, err, out.String(), errBuf.String())
	}
	return out.String(), errBuf.String()
}

func TestExportCommand(t *testing.T) {
	dir := t.TempDir()
	ann, snn, nir := filepath.Join(dir, "a.onnx"), filepath.Join(dir, "s.onnx"), filepath.Join(dir, "s.nir")
	out, err := run(t, "export", testutil.Path("fmnist_w8_bn.onnx"), "--ann", ann, "--snn", snn, "--nir", nir, "--timesteps", "4")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ann, snn, nir} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", p, err)
		}
	}
	if !strings.Contains(out, "T=4") {
		t.Errorf("export printed %q", out)
	}
	// viewnet pads with Pad2d: NIR cannot express it, and then nothing is written
	a2 := filepath.Join(dir, "v.onnx")
	_, err = run(t, "export", testutil.Path("viewnet.onnx"), "--ann", a2, "--nir", filepath.Join(dir, "v.nir"))
	if err == nil || !strings.Contains(err.Error(), "pad (Pad2d)") {
		t.Errorf("viewnet to NIR: %v", err)
	}
	if _, err := os.Stat(a2); err == nil {
		t.Error("the ANN was written although the NIR export failed")
	}
	if _, err := run(t, "export", testutil.Path("viewnet.onnx")); err == nil {
		t.Error("export with no output accepted")
	}
	if _, err := run(t, "export", testutil.Path("viewnet.onnx"), "--ann", filepath.Join(dir, "nope", "x.onnx")); err == nil {
		t.Error("unwritable output accepted")
	}
	if _, err := run(t, "export", testutil.Path("viewnet.onnx"), "--ann", a2, "--opset", "9"); err == nil || !strings.Contains(err.Error(), "opset 9") {
		t.Errorf("opset 9: %v", err)
	}
}

// TestPyTorchCheckpoints: the reference's files work wherever a model does.
func TestPyTorchCheckpoints(t *testing.T) {
	dir := t.TempDir()
	pt := testutil.Path("pt")
	// convert, then run the ONNX file in onnxruntime against torch's outputs
	onnxPath := filepath.Join(dir, "ann.onnx")
	if _, err := run(t, "convert", filepath.Join(pt, "ANN_Params.pt"), "-o", onnxPath); err != nil {
		t.Fatal(err)
	}
	ortOut := filepath.Join(dir, "ort.npy")
	script := filepath.Join(testutil.Dir(), "..", "scripts", "ort", "run_onnx.js")
	if b, err := exec.Command("node", script, onnxPath, filepath.Join(pt, "x.npy"), ortOut).CombinedOutput(); err != nil {
		t.Fatalf("onnxruntime: %v\n%s", err, b)
	}
	got, err := npy.ReadFile(ortOut, false)
	if err != nil {
		t.Fatal(err)
	}
	if rel := testutil.RelErr(got.Data, testutil.Array(t, "pt/ann.npy").Data); rel > 1e-4 {
		t.Errorf("converted ANN in onnxruntime: relative error %g against torch", rel)
	}
	// infer on the SNN file takes T, v_th and v_reset from it
	counts := filepath.Join(dir, "counts.npy")
	if _, err := run(t, "infer", filepath.Join(pt, "SNN_Params.pt"), "--input", filepath.Join(pt, "x.npy"), "--output", counts, "--network", "snn"); err != nil {
		t.Fatal(err)
	}
	c, err := npy.ReadFile(counts, false)
	if err != nil {
		t.Fatal(err)
	}
	if d := testutil.Differing(c.Data, testutil.Array(t, "pt/snn.npy").Data); d > 0 {
		t.Errorf("SNN_Params.pt through infer: %d counts differ from torch's", d)
	}
	// a state dict needs its structure
	if _, err := run(t, "import", filepath.Join(pt, "ANN_state.pt")); err == nil || !strings.Contains(err.Error(), "--arch") {
		t.Errorf("state dict without --arch: %v", err)
	}
	if out, err := run(t, "import", filepath.Join(pt, "ANN_state.pt"), "--arch", "fmnist"); err != nil || !strings.Contains(out, "76824 parameters") {
		t.Errorf("state dict with --arch fmnist: %v\n%s", err, out)
	}
	// fine-tune the pretrained network
	ck := filepath.Join(dir, "ft.ckpt")
	if _, err := run(t, "train", filepath.Join(pt, "ANN_Params.pt"), "--data", testutil.Path("proxy"), "--dataset", "mnist",
		"-o", ck, "--epochs", "1", "--max-train", "100", "--max-test", "20"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "import", filepath.Join(pt, "evil.pt")); err == nil || !strings.Contains(err.Error(), "posix.system") {
		t.Errorf("malicious pickle: %v", err)
	}
}

func TestBenchCommand(t *testing.T) {
	out, err := run(t, "bench", "--arch", "tiny", "--batch-size", "20", "--infer-batch-size", "20", "--timesteps", "4", "--seconds", "0", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Result results.BenchResult `json:"result"`
		Peak   float64             `json:"peak_memory_mb"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Result.TrainImagesPerSec <= 0 || r.Result.InferImagesPerSec <= 0 || r.Peak <= 0 {
		t.Errorf("bench reported %+v", r)
	}
	// the SNN's firing rates and what the CPU's event-driven kernels skipped
	if len(r.Result.IFLayers) == 0 || len(r.Result.FiringRates) != len(r.Result.IFLayers) {
		t.Errorf("bench's firing rates: %v for %v", r.Result.FiringRates, r.Result.IFLayers)
	}
	kinds := map[string]bool{}
	for _, w := range r.Result.InferWork {
		kinds[w.Kernel] = true
		if w.MACs > w.DenseMACs || w.ActiveInputs > w.Inputs || w.EventSamples > w.Samples || w.Samples == 0 {
			t.Errorf("bench's kernel work: %+v", w)
		}
	}
	if !kinds["conv forward"] || !kinds["linear forward (spikes)"] {
		t.Errorf("bench's kernel work names %v; want the convolution and the spiking linear layer", kinds)
	}
	text, err := run(t, "bench", "--arch", "tiny", "--batch-size", "20", "--infer-batch-size", "20", "--timesteps", "4", "--seconds", "0")
	if err != nil || !strings.Contains(text, "firing rates: ") || !strings.Contains(text, "GFLOP skipped") {
		t.Errorf("bench's report (%v):\n%s", err, text)
	}
	if _, err := run(t, "bench", "--device", "cuda"); err == nil || !strings.Contains(err.Error(), "-tags cuda") {
		t.Errorf("--device cuda: %v", err)
	}
}

// TestTrainGroupedConvolutions proxy-trains a network with grouped and
// depthwise convolutions for an epoch and evaluates its checkpoint, whose
// architecture must keep the groups.
func TestTrainGroupedConvolutions(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "g.ckpt")
	dataDir := testutil.Path("proxy")
	if out, err := run(t, "train", testutil.Path("groupnet_opset13.onnx"), "--data", dataDir, "--dataset", "mnist", "-o", ck,
		"--epochs", "1", "--batch-size", "50", "--lr", "1e-3"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := run(t, "import", ck)
	if err != nil || strings.Count(out, "groups ") != 3 {
		t.Errorf("the checkpoint's layers (%v):\n%s", err, out)
	}
	if out, err := run(t, "eval", ck, "--data", dataDir); err != nil {
		t.Errorf("eval: %v\n%s", err, out)
	}
}
