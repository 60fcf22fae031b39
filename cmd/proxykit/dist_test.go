package main

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
)

// mpirunPath is Open MPI's launcher; without it the test is skipped, or
// fails in CI (scripts/setup.sh installs openmpi-bin).
func mpirunPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("mpirun")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mpirun not found in CI (CI=true): scripts/setup.sh installs Debian's openmpi-bin")
		}
		t.Skip("mpirun not found: apt-get install openmpi-bin")
	}
	return p
}

// mpiJob is `mpirun --oversubscribe -np n proxykit ARGS` with this test
// binary as proxykit (TestExitCode's hook); every rank carries the job's
// marker in its environment, so that a test can find its processes.
func mpiJob(t *testing.T, n int, args ...string) (*exec.Cmd, string) {
	t.Helper()
	marker := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.Command(mpirunPath(t), "--oversubscribe", "-np", strconv.Itoa(n), "-x", "PROXYKIT_AS_MAIN", "-x", "PROXYKIT_ARGS",
		"-x", "PROXYKIT_TEST_JOB", os.Args[0], "-test.run=^TestExitCode$")
	cmd.Env = append(os.Environ(), "PROXYKIT_AS_MAIN=1", "PROXYKIT_ARGS="+strings.Join(args, " "), "PROXYKIT_TEST_JOB="+marker)
	if os.Geteuid() == 0 { // containers run tests as root; Open MPI refuses root unless told
		cmd.Env = append(cmd.Env, "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	}
	return cmd, marker
}

// rankPID finds the process of rank r of the job with marker.
func rankPID(t *testing.T, marker string, r int) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		vars := strings.Split(string(env), "\x00")
		var mine, rank bool
		for _, v := range vars {
			mine = mine || v == "PROXYKIT_TEST_JOB="+marker
			rank = rank || v == "OMPI_COMM_WORLD_RANK="+strconv.Itoa(r)
		}
		if mine && rank {
			return pid
		}
	}
	t.Fatalf("no process of rank %d found", r)
	return 0
}

// trainArgs are a training run of the tiny network on real MNIST digits.
func trainArgs(t *testing.T, model, out string, extra ...string) []string {
	return append([]string{"train", model, "--dataset", "mnist", "--data", testutil.MNISTDir(t), "--epochs", "1", "--lr", "3e-3", "-o", out}, extra...)
}

// checkpointValues are a checkpoint's weights, then its Adam moments and
// both networks' BatchNorm statistics, in a fixed order, and the number
// of weights.
func checkpointValues(t *testing.T, path string) (vals []float32, weights int) {
	t.Helper()
	c, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range c.Arch.Layers {
		names = append(names, l.Params...)
	}
	for _, name := range names {
		vals = append(vals, c.Params[name].Data...)
	}
	weights = len(vals)
	for _, name := range names {
		vals = append(append(vals, c.Adam.M[name]...), c.Adam.V[name]...)
	}
	for _, state := range []map[string]checkpoint.LayerState{c.ANNState, c.SNNState} {
		for _, name := range slices.Sorted(maps.Keys(state)) {
			vals = append(append(vals, state[name]["running_mean"]...), state[name]["running_var"]...)
		}
	}
	return vals, weights
}

// modelWeights are a model file's weights, in checkpointValues' order.
func modelWeights(t *testing.T, path string) []float32 {
	t.Helper()
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []float32
	for _, p := range m.ANN.Params() {
		out = append(out, p.Data...)
	}
	return out
}

// TestMPITrainMatchesOneProcess: `mpirun -np 2 proxykit train` (Open MPI,
// two processes, the CPU backend, synchronised BatchNorm statistics) on
// 2,000 real MNIST digits, one epoch with BatchNorm in training mode,
// writes the checkpoint one process writes: the same bits in every weight,
// Adam moment and BatchNorm statistic; only rank 0 writes. On the emulated
// CUDA device, whose batch sums are not split along the batch tree, the
// run lands within 1 % of the training's effect (see the test for why).
func TestMPITrainMatchesOneProcess(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.onnx")
	if out, err := run(t, "init", "--arch", "tiny", "-o", model); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, c := range []struct {
		device         string
		train, test    string
		bitwise        bool
		tolerance      float64
		extra          []string
		wantCollective string
	}{
		{"cpu", "2000", "500", false, 1e-3, nil, "MPI (Open MPI"},
		{"cuda-emu", "300", "100", false, 1e-3, []string{"--bucket-mb", "1"}, "NCCL emulated on host memory over the host communicator"},
	} {
		args := []string{"--device", c.device, "--max-train", c.train, "--max-test", c.test}
		args = append(args, c.extra...)
		one := filepath.Join(dir, c.device+"-one.ckpt")
		if out, err := run(t, trainArgs(t, model, one, args...)...); err != nil {
			t.Fatalf("%s, one process: %v\n%s", c.device, err, out)
		}
		two := filepath.Join(dir, c.device+"-two.ckpt")
		job, _ := mpiJob(t, 2, trainArgs(t, model, two, args...)...)
		out, err := job.CombinedOutput()
		if err != nil {
			t.Fatalf("%s, mpirun -np 2: %v\n%s", c.device, err, out)
		}
		if !strings.Contains(string(out), "data-parallel: 2 ranks: "+c.wantCollective) || strings.Count(string(out), "epoch 1 (BN train)") != 1 {
			t.Errorf("%s: rank 0 alone should print, naming the collectives:\n%s", c.device, out)
		}
		want, nw := checkpointValues(t, one)
		got, _ := checkpointValues(t, two)
		if c.bitwise {
			if d := testutil.Differing(got, want); d != 0 {
				t.Errorf("%s: %d of %d values of the 2-rank checkpoint differ from one process's", c.device, d, len(want))
			}
		} else {
			// the distance to one process's weights, as a share of how far
			// training moved them
			effect := testutil.Dist(want[:nw], modelWeights(t, model))
			rel := testutil.Dist(got[:nw], want[:nw]) / effect
			t.Logf("%s: 2 ranks land %.2g of the training's effect from one process (%d of %d values differ)", c.device, rel, testutil.Differing(got, want), len(want))
			if rel > c.tolerance {
				t.Errorf("%s: 2 ranks land %.3g of the training's effect from one process, more than %g", c.device, rel, c.tolerance)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, c.device+"-two.ckpt")); err != nil {
			t.Errorf("%s: no checkpoint: %v", c.device, err)
		}
	}
}

// TestMPIRankLost: a rank killed in the middle of training ends the job
// within seconds, the launcher naming it; a rank that stops answering
// (SIGSTOP) makes the others give up after --dist-timeout, naming it, and
// the job ends; a rank interrupted (SIGINT) stops every rank and rank 0
// writes the checkpoint.
func TestMPIRankLost(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny.onnx")
	if out, err := run(t, "init", "--arch", "tiny", "-o", model); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, c := range []struct {
		what   string
		signal syscall.Signal
		want   []string
	}{
		{"killed", syscall.SIGKILL, []string{"process rank 1 with PID", "on signal 9"}},
		{"stopped", syscall.SIGSTOP, []string{"proxykit: rank 0 of 2: rank 0 got no answer from rank 1 within 3s", "stopping every rank"}},
		// Ctrl-C on one rank: every rank stops after the same batch, and the
		// others wait until rank 0 has written the checkpoint
		{"interrupted", syscall.SIGINT, []string{"proxykit: interrupted ", "checkpoint written to"}},
	} {
		job, marker := mpiJob(t, 2, trainArgs(t, model, filepath.Join(dir, c.what+".ckpt"), "--max-train", "20000", "--dist-timeout", "3s")...)
		stdout, err := job.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		job.Stderr = &stderr
		if err := job.Start(); err != nil {
			t.Fatal(err)
		}
		// wait until rank 0 trains: both ranks have joined
		var out bytes.Buffer
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "data-parallel:") {
				break
			}
		}
		pid := rankPID(t, marker, 1)
		start := time.Now()
		syscall.Kill(pid, c.signal)
		go func() {
			for sc.Scan() {
				out.WriteString(sc.Text() + "\n")
			}
		}()
		done := make(chan error, 1)
		go func() { done <- job.Wait() }()
		select {
		case err = <-done:
		case <-time.After(60 * time.Second):
			job.Process.Kill()
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("%s rank 1: the job still runs after 60 s\n%s%s", c.what, out.String(), stderr.String())
		}
		el := time.Since(start)
		syscall.Kill(pid, syscall.SIGKILL) // a stopped rank may survive the launcher
		all := out.String() + stderr.String()
		if err == nil {
			t.Errorf("%s rank 1: the job succeeded", c.what)
		}
		for _, w := range c.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s rank 1: the job's output does not say %q:\n%s", c.what, w, all)
			}
		}
		if c.signal == syscall.SIGINT {
			if _, err := checkpoint.Load(filepath.Join(dir, c.what+".ckpt")); err != nil {
				t.Errorf("interrupted rank 1: rank 0's checkpoint: %v", err)
			}
		}
		t.Logf("%s rank 1: the job ended %.1f s later", c.what, el.Seconds())
		if el > 30*time.Second {
			t.Errorf("%s rank 1: the job took %s to end", c.what, el)
		}
	}
}

// TestOnlyTheLeadChecksOutputs: under a launcher, ranks other than 0 write
// nothing, so they do not check -o's folder (on another node it may not
// exist); rank 0 and a process alone do.
func TestOnlyTheLeadChecksOutputs(t *testing.T) {
	outs := outputs{{Name: "-o", Path: filepath.Join(t.TempDir(), "not-here", "run.ckpt")}}
	f := distFlags{launcher: "auto"}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	t.Setenv("OMPI_COMM_WORLD_RANK", "1")
	if err := f.check(outs); err != nil {
		t.Errorf("rank 1 of 2 checks -o: %v", err)
	}
	t.Setenv("OMPI_COMM_WORLD_RANK", "0")
	if err := f.check(outs); err == nil || !strings.Contains(err.Error(), "not-here") {
		t.Errorf("rank 0 of 2: %v, want -o's missing folder refused", err)
	}
	t.Setenv("OMPI_COMM_WORLD_RANK", "1")
	if err := (&distFlags{launcher: "none"}).check(outs); err == nil {
		t.Error("--launcher none does not check -o")
	}
	t.Setenv("OMPI_COMM_WORLD_RANK", "x")
	if err := f.check(outs); err == nil {
		t.Error("an unreadable launch does not check -o")
	}
}
