package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/npy"
)

// TestResumeAlone: train --resume CKPT continues a run as the messages
// say — the model comes from the checkpoint, -o defaults to it and is
// replaced in place, and the checkpoint given as MODEL and as -o too is
// fine — while every refusal of a flag that would change the run stays.
func TestResumeAlone(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "run.ckpt")
	data := testutil.Path("proxy")
	base := []string{"--data", data, "--dataset", "mnist", "--batch-size", "50", "--max-train", "100", "--max-test", "50"}
	if out, err := run(t, append([]string{"train", testutil.Path("proxy/net.onnx"), "-o", ck, "--epochs", "1"}, base...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	epochs := func(path string) int {
		t.Helper()
		c, err := checkpoint.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return c.Progress.Epoch
	}
	for i, c := range []struct {
		args []string
		out  string // the checkpoint it writes
	}{
		{[]string{"train", "--resume", ck, "--data", data, "--epochs", "2"}, ck},                                  // alone
		{[]string{"train", ck, "--resume", ck, "-o", ck, "--data", data, "--epochs", "3"}, ck},                    // as MODEL and -o too
		{[]string{"train", testutil.Path("proxy/net.onnx"), "--resume", ck, "--data", data, "--epochs", "4"}, ck}, // another MODEL file of the architecture: -o is still the checkpoint
		{[]string{"train", "--resume", ck, "-o", filepath.Join(dir, "branch.ckpt"), "--data", data, "--epochs", "5"}, filepath.Join(dir, "branch.ckpt")},
	} {
		out, err := run(t, c.args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, out)
		}
		want := i + 2
		if got := epochs(c.out); got != want {
			t.Errorf("%v: %s holds %d epochs, want %d", c.args, c.out, got, want)
		}
		if !strings.Contains(out, fmt.Sprintf("epoch %d (BN eval)", want)) || !strings.HasSuffix(out, "done: checkpoint "+c.out+"\n") {
			t.Errorf("%v printed:\n%s", c.args, out)
		}
	}
	if got := epochs(ck); got != 4 {
		t.Errorf("-o elsewhere changed the checkpoint resumed: %d epochs", got)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "run.ckpt" && e.Name() != "branch.ckpt" {
			t.Errorf("%s left beside the checkpoints", e.Name())
		}
	}
	// what stays refused
	before, _ := os.ReadFile(ck)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--data", data}, "give the model to train (MODEL), or --resume CKPT"},
		{[]string{"train", testutil.Path("proxy/net.onnx"), "--data", data}, "-o is required"},
		{[]string{"train", "--resume", ck, "--data", data, "--epochs", "9", "--lr", "0.5"}, "--lr 0.5 differs from the checkpoint's"},
		{[]string{"train", "--resume", ck, "--data", data, "--epochs", "9", "--timesteps", "4"}, "--timesteps 4 differs"},
		{[]string{"train", "--resume", ck, "--data", data, "--epochs", "9", "--clip-twin", "saturate"}, "--clip-twin saturate differs from the checkpoint's relu"},
		{[]string{"train", "--resume", ck, "--data", data, "--epochs", "9", "--initial-charge", "0.5"}, "--initial-charge 0.5 differs from the checkpoint's 0"},
		{[]string{"train", "--resume", ck, "--data", data, "--epochs", "9", "--dataset", "fashion-mnist"}, "--dataset fashion-mnist differs"},
		{[]string{"train", "--resume", ck, "--data", data}, "nothing to train: --epochs 4"},
		{[]string{"train", ck, "-o", ck, "--data", data, "--epochs", "9"}, "is the input file"}, // no --resume: a new run may not overwrite its model
		{[]string{"train", testutil.Path("proxy/net.onnx"), "--resume", ck, "-o", testutil.Path("proxy/net.onnx"), "--data", data, "--epochs", "9"}, "is the input file"},
		{[]string{"train", "--resume", filepath.Join(dir, "nope.ckpt"), "--data", data, "--epochs", "9"}, "nope.ckpt"},
	} {
		if out, err := run(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one with %q\n%s", c.args, err, c.want, out)
		}
	}
	if after, _ := os.ReadFile(ck); !bytes.Equal(before, after) {
		t.Error("a refused run changed the checkpoint")
	}
}

// TestFlagsCheckedBeforeTheModel: a bad flag is refused before the model
// file is read (a full-width model takes seconds to load): with a model
// file that does not exist, the error names the flag, not the file.
func TestFlagsCheckedBeforeTheModel(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.onnx")
	out, x := filepath.Join(dir, "out"), testutil.Path("proxy/x.npy")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"train", missing, "-o", out, "--device", "tpu"}, "--device \"tpu\""},
		{[]string{"train", missing, "-o", out, "--dataset", "cifar100"}, "--dataset must be"},
		{[]string{"train", missing, "-o", out, "--betas", "0.9"}, "--betas"},
		{[]string{"train", missing, "-o", out, "--lr", "-1"}, "learning rate"},
		{[]string{"train", missing, "-o", out, "--batch-size", "0"}, "--batch-size"},
		{[]string{"train", missing, "-o", out, "--timesteps", "0"}, "timesteps"},
		{[]string{"train", missing, "-o", out, "--threshold", "NaN"}, "--threshold NaN"},
		{[]string{"train", "--resume", missing, "--max-test", "-1"}, "--max-test"},
		{[]string{"train", missing, "-o", out, "--bn-stats", "both"}, "BatchNorm statistics \"both\""},
		{[]string{"eval", missing, "--timesteps", "1,x"}, `timesteps "1,x"`},
		{[]string{"eval", missing, "--dataset", "imagenet"}, "--dataset must be"},
		{[]string{"eval", missing, "--device", "tpu"}, "--device \"tpu\""},
		{[]string{"eval", missing, "--threshold", "1", "--reset", "2"}, "threshold (1) must be above the reset potential (2)"},
		{[]string{"eval", missing, "--clip-twin", "half"}, `--clip-twin "half"`},
		{[]string{"eval", missing, "--initial-charge", "1"}, "--initial-charge 1: want a fraction"},
		{[]string{"convert-snn", missing, "-o", out, "--initial-charge", "-0.5"}, "--initial-charge -0.5: want a fraction"},
		{[]string{"convert-snn", missing, "-o", out, "--threshold", "NaN"}, "threshold (NaN) and reset (0) must be finite"},
		{[]string{"infer", missing, "--input", x, "--output", out, "--device", "tpu"}, "--device \"tpu\""},
		{[]string{"infer", missing, "--input", x, "--output", out, "--timesteps", "-3"}, "timesteps"},
		{[]string{"export", missing, "--ann", out, "--opset", "99"}, "opset 99"},
		{[]string{"export", missing, "--nir", out, "--timesteps", "0"}, "timesteps"},
		{[]string{"convert", missing, "-o", out, "--opset", "12"}, "opset 12"},
		{[]string{"convert-snn", missing, "-o", out, "--percentile", "0"}, "percentile"},
		{[]string{"convert-snn", missing, "-o", out, "--dataset", "svhn"}, "--dataset must be"},
		{[]string{"convert-snn", missing, "-o", out, "--device", "tpu"}, "--device \"tpu\""},
		{[]string{"plan", missing, "--device", "tpu"}, "--device \"tpu\""},
		{[]string{"plan", missing, "--timesteps", "0"}, "timesteps"},
		{[]string{"bench", "--arch", "nosuch", "--device", "tpu"}, "--device \"tpu\""}, // before the network is built
		{[]string{"bench", "--arch", "nosuch", "--dataset", "svhn"}, "--dataset must be"},
	}
	if err := device.Check("cuda"); err != nil { // a build without -tags cuda, or no GPU here: refused before the model
		for _, cmd := range [][]string{{"train", missing, "-o", out}, {"eval", missing}, {"infer", missing, "--input", x, "--output", out}, {"convert-snn", missing, "-o", out}} {
			cases = append(cases, struct {
				args []string
				want string
			}{append(cmd, "--device", "cuda"), "--device cuda"})
		}
	} else {
		t.Log("this build opens --device cuda here: its refusal is not tried")
	}
	for _, c := range cases {
		_, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "missing.onnx") {
			t.Errorf("%v: error %v, want one with %q (about the flag, before the model file)", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused command wrote its output")
	}
}

// TestOneDefaultPerFlag: every flag's help shows one default, in words
// where it depends on the model file (docs/cli.md showed two for --dataset
// and --timesteps).
func TestOneDefaultPerFlag(t *testing.T) {
	for _, cmd := range newRootCmd().Commands() {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			fs := pflag.NewFlagSet("", pflag.ContinueOnError)
			fs.AddFlag(f)
			if n := strings.Count(fs.FlagUsages(), "(default"); n > 1 {
				t.Errorf("%s --%s shows %d defaults: %s", cmd.Name(), f.Name, n, strings.TrimSpace(fs.FlagUsages()))
			}
		})
	}
}

// TestUsageShowsOptionalFlagsAsOptional: a flag a Usage line shows outside
// brackets is one the command cannot run without: left out (MODEL a file
// that does not exist, the other flags of the line given), the command's
// error names it.
func TestUsageShowsOptionalFlagsAsOptional(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.onnx")
	flag := regexp.MustCompile(`^--?[a-z-]+$`)
	var tried []string
	for _, cmd := range newRootCmd().Commands() {
		fields := strings.Fields(strings.TrimPrefix(cmd.Use, cmd.Name()))
		// the words outside [optional] and (alternatives)
		var words []string
		depth := 0
		for _, w := range fields {
			if strings.HasPrefix(w, "[") || strings.HasPrefix(w, "(") {
				depth++
			}
			if depth == 0 {
				words = append(words, w)
			}
			if strings.HasSuffix(w, "]") || strings.HasSuffix(w, ")") {
				depth--
			}
		}
		for i, w := range words {
			if !flag.MatchString(w) {
				continue
			}
			// the command line of the Usage without w and its value
			var args []string
			for j := 0; j < len(words); j++ {
				switch {
				case j == i:
					j++ // its value
				case !flag.MatchString(words[j]) && (j == 0 || !flag.MatchString(words[j-1])):
					args = append(args, missing) // a positional argument: MODEL, FILE...
				case flag.MatchString(words[j]):
					args = append(args, words[j])
				default:
					args = append(args, filepath.Join(dir, filepath.Base(words[j])))
				}
			}
			tried = append(tried, cmd.Name()+" "+w)
			_, err := run(t, append([]string{cmd.Name()}, args...)...)
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q shows %s as required, but proxykit %s without it answers %v", cmd.Use, w, strings.Join(args, " "), err)
			}
		}
	}
	// the required flags of the Usage lines: init's, convert's, convert-snn's and plot's -o, infer's two
	if want := "convert -o, convert-snn -o, infer --input, infer --output, init -o, plot -o"; strings.Join(tried, ", ") != want {
		t.Errorf("tried %q, want %q", strings.Join(tried, ", "), want)
	}
}

// TestHelpExplainsTheReadings: eval's help explains the three readings of
// the counts — the membrane tie-break among them — and the line beside the
// paper; train's names them.
func TestHelpExplainsTheReadings(t *testing.T) {
	help := func(name string) string {
		for _, c := range newRootCmd().Commands() {
			if c.Name() == name {
				return c.Long
			}
		}
		t.Fatalf("no command %s", name)
		return ""
	}
	eval := strings.Join(strings.Fields(help("eval")), " ")
	for _, w := range []string{"strict", "ties", "membrane", "ties broken by the output neurons' membrane potential after the last step",
		"silent SNN scores 100 %", "beside the paper's 94.56 %", "93.37 %", "not comparable with the paper's", "silent_share"} {
		if !strings.Contains(eval, w) {
			t.Errorf("eval --help does not say %q:\n%s", w, help("eval"))
		}
	}
	train := strings.Join(strings.Fields(help("train")), " ")
	for _, w := range []string{"membrane", "beside the paper", "counted from 1", "train --resume CKPT continues the run"} {
		if !strings.Contains(train, w) {
			t.Errorf("train --help does not say %q", w)
		}
	}
}

// TestShellQuote: the continuing command's words read back as they were
// by a POSIX shell (sh -c 'printf %s\\n WORDS').
func TestShellQuote(t *testing.T) {
	words := []string{"run.ckpt", "/data/fashion mnist", "it's", "", "$HOME", "a;b", "--plot=x.png", "ü"}
	var line []string
	for _, w := range words {
		line = append(line, shellQuote(w))
	}
	out, err := exec.Command("sh", "-c", "printf '%s\\n' "+strings.Join(line, " ")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); strings.Join(got, "|") != strings.Join(words, "|") {
		t.Errorf("the shell read %q back as %q", words, got)
	}
	if shellQuote("run.ckpt") != "run.ckpt" {
		t.Errorf("a plain name is quoted: %s", shellQuote("run.ckpt"))
	}
}

// TestFlattenFirstMLP: the MLP of a first MNIST tutorial, pickled whole
// with its Flatten first (testdata/zoo/mlp_flatten.pt, from
// scripts/make_zoo_fixtures.py), says nothing of its images' [1 28 28]:
// it imports taking [784], and eval, a training epoch and conversion read
// the 28x28 data set as 784 values each, and infer [2 1 28 28] images, in
// torch's Flatten order: torch's outputs (nn's TestCheckInput holds the
// shapes refused).
func TestFlattenFirstMLP(t *testing.T) {
	net, data := testutil.Path("zoo/mlp_flatten.pt"), testutil.Path("proxy")
	if out, err := run(t, "eval", net, "--data", data, "--timesteps", "3", "--max-test", "20"); err != nil {
		t.Fatalf("eval: %v\n%s", err, out)
	}
	dir := t.TempDir()
	ck := filepath.Join(dir, "mlp.ckpt")
	if out, err := run(t, "train", net, "-o", ck, "--data", data, "--epochs", "1", "--max-train", "40", "--max-test", "20",
		"--batch-size", "20", "--timesteps", "3"); err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	y := filepath.Join(dir, "y.npy")
	if out, err := run(t, "infer", net, "--input", testutil.Path("zoo/mlp_flatten.x.npy"), "--output", y); err != nil {
		t.Fatalf("infer: %v\n%s", err, out)
	}
	got, err := npy.ReadFile(y, false)
	if err != nil {
		t.Fatal(err)
	}
	if rel := testutil.RelErr(got.Data, testutil.Array(t, "zoo/mlp_flatten.ann.npy").Data); rel > 1e-5 {
		t.Errorf("infer on [2 1 28 28] images: relative error %.3g against torch", rel)
	}
	if out, err := run(t, "convert-snn", net, "--data", data, "-o", filepath.Join(dir, "conv.ckpt")); err != nil {
		t.Fatalf("convert-snn: %v\n%s", err, out)
	}
}
