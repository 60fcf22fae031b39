package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/testutil"
)

// The third adversarial round (issue 34) at the command line: ranks that
// disagree under a real mpirun, MPI's start bounded, the rendezvous of
// torchrun's variables with strangers on its port, --bn-stats kept by
// --resume. Each failed on 8d3f05f, as its comment says.

// proxyTrain is a short training run of the proxy fixture (40 digits).
func proxyTrain(out string, extra ...string) []string {
	return append([]string{"train", testutil.Path("proxy/net.onnx"), "--data", testutil.Path("proxy"), "--dataset", "mnist", "-o", out,
		"--epochs", "1", "--max-train", "40", "--max-test", "10", "--batch-size", "10", "--dist-timeout", "60s"}, extra...)
}

// mpmdJob is `mpirun -np 1 proxykit ARGS0 : -np 1 proxykit ARGS1`: two
// ranks of one job with their own command lines (env sets each rank's
// PROXYKIT_ARGS); app1 may replace rank 1's command altogether.
func mpmdJob(t *testing.T, args0, args1 []string, app1 ...string) *exec.Cmd {
	t.Helper()
	envPath, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	rank := func(args []string) []string {
		return []string{"-np", "1", envPath, "PROXYKIT_AS_MAIN=1", "PROXYKIT_ARGS=" + strings.Join(args, " "), os.Args[0], "-test.run=^TestExitCode$"}
	}
	cmdArgs := append([]string{"--oversubscribe"}, rank(args0)...)
	if len(app1) > 0 {
		cmdArgs = append(append(cmdArgs, ":", "-np", "1"), app1...)
	} else {
		cmdArgs = append(append(cmdArgs, ":"), rank(args1)...)
	}
	cmd := exec.Command(mpirunPath(t), cmdArgs...)
	cmd.Env = os.Environ()
	if os.Geteuid() == 0 {
		cmd.Env = append(cmd.Env, "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	}
	return cmd
}

// TestMPIRanksThatDisagreeRefuse (F3, F11): two ranks under mpirun whose
// flags differ in one setting that changes the result — or that train
// models of other widths, or resume other checkpoints — refuse before the
// first batch, the message naming the setting; ranks that agree train.
// On 8d3f05f the first five trained together and exited 0, the next four
// failed after a step with MPI_ERR_TRUNCATE, and the last two trained.
func TestMPIRanksThatDisagreeRefuse(t *testing.T) {
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	narrow, wide := out("w4.onnx"), out("w8.onnx")
	for path, w := range map[string]string{narrow: "4", wide: "8"} {
		if o, err := run(t, "init", "--arch", "fmnist", "--width", w, "--input", "1x28x28", "-o", path); err != nil {
			t.Fatalf("init: %v\n%s", err, o)
		}
	}
	// one run checkpointed after epoch 1 and after epoch 2
	first, second := out("first.ckpt"), out("second.ckpt")
	for i, o := range []string{first, second} {
		if o2, err := run(t, proxyTrain(o, "--epochs", fmt.Sprint(i+1))...); err != nil {
			t.Fatalf("%v\n%s", err, o2)
		}
	}
	withModel := func(model string, args []string) []string {
		a := append([]string(nil), args...)
		a[1] = model
		return a
	}
	for _, c := range []struct {
		name       string
		rank0      []string
		rank1      []string
		want       []string
		agreeAfter bool
	}{
		{"--lr", proxyTrain(out("lr.ckpt")), proxyTrain(out("lr.ckpt"), "--lr", "3e-3"), []string{"setting lr: rank 0 has 0.0001, rank 1 has 0.003"}, false},
		{"--seed", proxyTrain(out("s.ckpt")), proxyTrain(out("s.ckpt"), "--seed", "7"), []string{"setting seed: rank 0 has 2020, rank 1 has 7"}, false},
		{"--threshold", proxyTrain(out("t.ckpt")), proxyTrain(out("t.ckpt"), "--threshold", "1.5"), []string{"setting threshold", "rank 1 has 1.5"}, false},
		{"--no-augment", proxyTrain(out("a.ckpt")), proxyTrain(out("a.ckpt"), "--no-augment"), []string{"setting no-augment: rank 0 has false, rank 1 has true"}, false},
		{"--max-test", proxyTrain(out("m.ckpt")), proxyTrain(out("m.ckpt"), "--max-test", "5"), []string{"setting max-test: rank 0 has 10, rank 1 has 5"}, false},
		{"--timesteps", proxyTrain(out("ts.ckpt")), proxyTrain(out("ts.ckpt"), "--timesteps", "7"), []string{"setting timesteps", "rank 1 has 7"}, false},
		{"--batch-size", proxyTrain(out("b.ckpt")), proxyTrain(out("b.ckpt"), "--batch-size", "20"), []string{"setting batch-size: rank 0 has 10, rank 1 has 20"}, false},
		{"--bn-stats", proxyTrain(out("bn.ckpt")), proxyTrain(out("bn.ckpt"), "--bn-stats", "rank"), []string{"setting bn-stats: rank 0 has sync, rank 1 has rank"}, false},
		{"--width", withModel(narrow, proxyTrain(out("w.ckpt"))), withModel(wide, proxyTrain(out("w.ckpt"))),
			[]string{"model layer 0 (static_conv.0): kind, width and shapes", "4×1×3×3", "8×1×3×3"}, false},
		{"--resume", proxyTrain(out("r.ckpt"), "--resume", first, "--epochs", "3"), proxyTrain(out("r.ckpt"), "--resume", second, "--epochs", "3"),
			[]string{"checkpoint position: rank 0 has epoch 1, batch 0", "rank 1 has epoch 2, batch 0"}, false},
		{"agreeing ranks", proxyTrain(out("ok.ckpt")), proxyTrain(out("ok.ckpt")), nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			job := mpmdJob(t, c.rank0, c.rank1)
			o, err := job.CombinedOutput()
			text := string(o)
			if c.agreeAfter {
				if err != nil || !strings.Contains(text, "epoch 1 (BN train)") {
					t.Errorf("ranks that agree: %v\n%s", err, text)
				}
				return
			}
			if err == nil {
				t.Errorf("the job succeeded:\n%s", text)
			}
			if strings.Contains(text, "epoch 1 (BN train)") || strings.Contains(text, "MPI_ERR_TRUNCATE") {
				t.Errorf("the ranks trained before refusing:\n%s", text)
			}
			for _, w := range append([]string{"the ranks disagree on"}, c.want...) {
				if !strings.Contains(text, w) {
					t.Errorf("the job's output does not say %q:\n%s", w, text)
				}
			}
		})
	}
}

// TestMPIStartBounded (F2): a job one of whose ranks never starts MPI
// (here `sleep`) ends after --dist-timeout, rank 0 naming MPI's start-up
// (8d3f05f waited in MPI_Init_thread without end).
func TestMPIStartBounded(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	args := proxyTrain(filepath.Join(t.TempDir(), "x.ckpt"), "--dist-timeout", "3s")
	job := mpmdJob(t, args, nil, sleep, "120")
	var out bytes.Buffer
	job.Stdout, job.Stderr = &out, &out
	start := time.Now()
	if err := job.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- job.Wait() }()
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		job.Process.Kill()
		t.Fatalf("the job still runs after 90 s:\n%s", out.String())
	}
	if err == nil || !strings.Contains(out.String(), "MPI start-up (MPI_Init_thread) did not finish within 3s") {
		t.Errorf("after %s: %v\n%s", time.Since(start), err, out.String())
	}
}

// torchrunRank starts rank r of 2 as torchrun would (its variables, no
// MPI) on the emulated CUDA device, rank 0 serving the rendezvous at port.
func torchrunRank(r int, port string, args []string) (*exec.Cmd, *bytes.Buffer) {
	return proxykitProcess(append(args, "--device", "cuda-emu"), "RANK="+fmt.Sprint(r), "WORLD_SIZE=2", "LOCAL_RANK="+fmt.Sprint(r),
		"LOCAL_WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+port)
}

// TestTorchrunRendezvousStrangers (F9, F12): five silent connections on
// rank 0's rendezvous port do not keep the ranks from meeting (8d3f05f
// waited for each in turn, 2 s each of an 8 s timeout, and both ranks
// gave up at the rendezvous); a rank whose
// MASTER_PORT reaches another server says what it is (8d3f05f: "a
// rendezvous message of 1213486160 bytes"), and rank 0 whose port is
// taken says so.
func TestTorchrunRendezvousStrangers(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	args := proxyTrain(filepath.Join(dir, "ok.ckpt"), "--dist-timeout", "8s")
	r0, out0 := torchrunRank(0, port, args)
	if err := r0.Start(); err != nil {
		t.Fatal(err)
	}
	var silent []net.Conn
	for i := 0; len(silent) < 5 && i < 600; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			silent = append(silent, c)
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	r1, out1 := torchrunRank(1, port, args)
	r1.Run()
	r0.Wait()
	// both ranks met at the rendezvous and went on to join the device's
	// collectives, where the emulated device (NCCL's stand-in, which
	// reaches only ranks of one process without MPI) stops them: the next
	// stage's known limit, proof that the rendezvous was passed
	both := out0.String() + out1.String()
	if len(silent) < 5 || strings.Contains(both, "rendezvous") || !strings.Contains(out1.String(), "the emulated device's collectives without MPI reach only ranks of this process") {
		t.Errorf("behind %d silent connections the ranks did not meet:\n%s\n%s", len(silent), out0, out1)
	}

	// another server on MASTER_PORT: an HTTP server
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				c.Read(make([]byte, 64))
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
				c.Close()
			}()
		}
	}()
	_, port, _ = net.SplitHostPort(srv.Addr().String())
	r1, out1 = torchrunRank(1, port, proxyTrain(filepath.Join(dir, "x.ckpt"), "--dist-timeout", "8s"))
	if err := r1.Run(); err == nil || !strings.Contains(out1.String(), "the server there is not a proxykit rank 0: it is an HTTP server") {
		t.Errorf("rank 1 at an HTTP server: %v\n%s", err, out1)
	}
	r0, out0 = torchrunRank(0, port, proxyTrain(filepath.Join(dir, "y.ckpt"), "--dist-timeout", "8s"))
	if err := r0.Run(); err == nil || !strings.Contains(out0.String(), "cannot serve the rendezvous on port "+port+" (MASTER_PORT)") {
		t.Errorf("rank 0 at a taken port: %v\n%s", err, out0)
	}
}

// TestResumeKeepsBNStats (F4): --bn-stats is recorded in the checkpoint;
// --resume keeps it and refuses another value, as every setting (8d3f05f
// did not record it: a rank run resumed as sync, silently).
func TestResumeKeepsBNStats(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "rank.ckpt")
	if o, err := run(t, proxyTrain(ck, "--bn-stats", "rank")...); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	o, err := run(t, proxyTrain(ck, "--resume", ck, "--epochs", "2", "--bn-stats", "sync")...)
	if err == nil || !strings.Contains(err.Error(), "--bn-stats sync differs from the checkpoint's rank") {
		t.Errorf("--resume of a rank run with --bn-stats sync: %v\n%s", err, o)
	}
	if o, err := run(t, proxyTrain(ck, "--resume", ck, "--epochs", "2")...); err != nil {
		t.Fatalf("--resume: %v\n%s", err, o)
	}
	c, err := checkpoint.Load(ck)
	if err != nil || c.Settings.BNStats != "rank" || c.Progress.Epoch != 2 {
		t.Errorf("the resumed run's checkpoint: %+v, %v", c.Settings, err)
	}
	// a checkpoint from before the setting was recorded resumes as sync,
	// saying so
	old := filepath.Join(dir, "old.ckpt")
	withoutBNStats(t, ck, old)
	o, err = run(t, proxyTrain(old, "--resume", old, "--epochs", "3")...)
	if err != nil || !strings.Contains(o, "note: --resume: the checkpoint does not record where a data-parallel run takes BatchNorm's statistics") {
		t.Errorf("--resume of an older checkpoint: %v\n%s", err, o)
	}
	if c, err := checkpoint.Load(old); err != nil || c.Settings.BNStats != "sync" || len(c.Notices) != 0 {
		t.Errorf("the resumed older checkpoint: %+v, %v, notices %q", c.Settings, err, c.Notices)
	}
}

// withoutBNStats copies the checkpoint from to to without the bn_stats
// setting, as a checkpoint of 8d3f05f: its safetensors header rewritten.
func withoutBNStats(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var head map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &head); err != nil {
		t.Fatal(err)
	}
	var meta map[string]string
	json.Unmarshal(head["__metadata__"], &meta)
	var settings map[string]any
	json.Unmarshal([]byte(meta["settings"]), &settings)
	if _, ok := settings["bn_stats"]; !ok {
		t.Fatalf("the checkpoint does not record bn_stats: %s", meta["settings"])
	}
	delete(settings, "bn_stats")
	s, _ := json.Marshal(settings)
	meta["settings"] = string(s)
	head["__metadata__"], _ = json.Marshal(meta)
	h, _ := json.Marshal(head)
	h = append(h, bytes.Repeat([]byte(" "), (8-len(h)%8)%8)...)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(out, h...), b[8+n:]...)
	if err := os.WriteFile(to, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBucketMBBounded (F13): --bucket-mb is bounded before it becomes
// bytes (on 8d3f05f 2^44 MB shifted to 0 bytes, then the 25 MB default,
// silently; 2^43 MB to a negative size).
func TestBucketMBBounded(t *testing.T) {
	for _, mb := range []string{"17592186044416", "8796093022208", "0"} {
		o, err := run(t, proxyTrain(filepath.Join(t.TempDir(), "b.ckpt"), "--bucket-mb", mb)...)
		if err == nil || !strings.Contains(err.Error(), "--bucket-mb: gradient buckets of "+mb+" MB: want 1 to 1048576 MB") {
			t.Errorf("--bucket-mb %s: %v\n%s", mb, err, o)
		}
	}
}
