package gpumodel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/gpumodel"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

var update = flag.Bool("update", false, "rewrite testdata/gpu-h200-2026-11-30/launches.json from the dry emulated device")

const launchesFile = "testdata/gpu-h200-2026-11-30/launches.json"

// counted holds the launches of one backend configuration's workloads.
type counted map[gpumodel.Workload][]compute.Launch

// countOn counts, on the dry emulated device configured as the calibration
// run's GPU (512 MB im2col workspace), what bench queued: a steady-state
// proxy step (the third: workspaces and Adam's moments exist) of the
// paper's network at width 128, T = 15, then an inference batch of each
// size in infer. With profile it also counts the profiled workload (the
// step's end from its last BatchNorm backward, the simulator's buffers
// for 100 images, two inference batches of 100).
func countOn(t *testing.T, into counted, math compute.Math, im2col bool, batch int, infer []int, profile bool) {
	t.Helper()
	be, err := cuda.Open(cuda.Options{Emulate: true, DryRun: true, DryRunCuDNN: true, NoCuDNN: im2col,
		StrictFP32: math == compute.MathFP32, WorkspaceBytes: 512 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	be.LogLaunches(true)
	ann, err := nn.Reference(128, 2020)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := spiking.New(ann, spiking.Config{Timesteps: 15, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := train.NewEngine(be, ann, snn, batch, calibrationRules)
	if err != nil {
		t.Fatal(err)
	}
	opt := train.NewAdam(1e-4, 0.8, 0.99, 1e-8, 1e-6)
	x, labels := nn.NewTensor(batch, 1, 28, 28), make([]uint8, batch)
	for range 3 {
		be.ResetTraffic()
		if _, err := eng.Step(x, labels, true); err != nil {
			t.Fatal(err)
		}
		if err := opt.Update(be, ann.Params()); err != nil {
			t.Fatal(err)
		}
	}
	step := be.LaunchLog()
	into[gpumodel.Workload{Pass: gpumodel.Train, Batch: batch, Math: math, Im2col: im2col}] = step
	eng.Free()
	if err := opt.Free(); err != nil {
		t.Fatal(err)
	}
	run := func(n, times int) (setup []compute.Launch, runs [][]compute.Launch) {
		be.ResetTraffic()
		sim, err := spiking.NewSimulator(be, snn, n, calibrationRules)
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Free()
		in, err := be.Alloc(n * 28 * 28)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Free(in)
		setup = be.LaunchLog()
		for range times {
			be.ResetTraffic()
			if _, err := sim.Run(context.Background(), nn.Value{Shape: []int{n, 1, 28, 28}, Buf: in}, false, false); err != nil {
				t.Fatal(err)
			}
			runs = append(runs, be.LaunchLog())
		}
		return setup, runs
	}
	if profile {
		tail := len(step) - 1
		for step[tail].Kernel != "pk_bn_backward_reduce" {
			tail--
		}
		setup, runs := run(100, 2)
		w := append(append(append(append([]compute.Launch(nil), step[tail:]...), setup...), runs[0]...), runs[1]...)
		into[gpumodel.ProfiledWorkload()] = w
		profiledSetup = [2]int{len(step) - tail, len(step) - tail + len(setup)}
	}
	for _, n := range infer {
		_, runs := run(n, 1)
		into[gpumodel.Workload{Pass: gpumodel.Infer, Batch: n, Math: math, Im2col: im2col}] = runs[0]
	}
}

// calibrationRules lowers programs with the rewrite rules of the
// calibration run (BatchNorm fused into IF), not the ones added since.
var calibrationRules = lower.WithRules(lower.FuseBatchNormIF())

// profiledSetup is where the profiled workload's simulator set-up lies
// in today's launches, [start, end).
var profiledSetup [2]int

// calibrated is every workload of the calibration run, counted once for
// the tests that need it (countCalibrated).
var calibrated struct {
	sync.Once
	c counted
}

// countCalibrated counts every workload of the calibration run.
func countCalibrated(t *testing.T) counted {
	calibrated.Do(func() {
		c := counted{}
		countOn(t, c, compute.MathTF32, false, 100, []int{1000}, true)
		countOn(t, c, compute.MathFP32, false, 100, []int{1000}, false)
		countOn(t, c, compute.MathTF32, true, 100, []int{1000}, false)
		countOn(t, c, compute.MathTF32, false, 1000, nil, false)
		calibrated.c = c
	})
	if len(calibrated.c) == 0 {
		t.Fatal("counting the calibration's workloads failed")
	}
	return calibrated.c
}

// TestCalibrationLaunches holds launches.json, the launches the model was
// calibrated on, to what the CUDA backend queues today for each measured
// workload, counted on the dry emulated device (-update rewrites it). At
// the calibration run's commit (ec50eb7) the backend queued the same
// launches (docs/gpu-model.md). When a change of the program changes them
// on purpose, launches.json stays: it is what ran on the H200; the
// comparison takes the change out of the calibrated list instead
// (withoutEvalStatCopies: the program redesign's one change to these
// workloads; withVectorsCounted: the one change to how the backend counts
// their bytes), and leaves out the profiled workload's set-up, whose
// allocations the program's memory plan lays out anew. Never run -update
// again: today's launches are not what ran.
func TestCalibrationLaunches(t *testing.T) {
	got := countCalibrated(t)
	if *update {
		c, err := gpumodel.H200Calibration()
		if err != nil && len(c.Runs) == 0 {
			t.Fatal(err)
		}
		// one launch a line, so that a regeneration's diff reads launch by launch
		var b bytes.Buffer
		line := func(v any) string {
			j, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			return string(j)
		}
		b.WriteString(`{"about": ` + line("The launches of each workload of the H200 run of 2026-11-30, as the CUDA backend "+
			"queues them, counted on the dry emulated device by go test ./gpumodel -run TestCalibrationLaunches -update "+
			"(docs/gpu-model.md).") + ",\n\"workloads\": [")
		for i, w := range append(c.Workloads(), gpumodel.ProfiledWorkload()) {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n{\"workload\": " + line(w) + ", \"launches\": [")
			for j, l := range got[w] {
				if j > 0 {
					b.WriteString(",")
				}
				b.WriteString("\n  " + line(l))
			}
			b.WriteString("]}")
		}
		b.WriteString("\n]}\n")
		if err := os.WriteFile(filepath.FromSlash(launchesFile), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes); the package embeds it: run again without -update to compare", launchesFile, b.Len())
		return
	}
	c, err := gpumodel.H200Calibration()
	if err != nil {
		t.Fatal(err)
	}
	for w, want := range c.Launches {
		want = withVectorsCounted(w, withoutEvalStatCopies(want))
		have := got[w]
		if w == gpumodel.ProfiledWorkload() {
			// the simulator's set-up zeroes the buffers it allocates, which
			// the program's memory plan lays out anew: the training step's
			// end and the two inference batches are compared
			lo, hi := profiledSetup[0], profiledSetup[1]
			if len(want) >= lo+len(have)-hi {
				want = append(want[:lo:lo], want[len(want)-(len(have)-hi):]...)
				have = append(have[:lo:lo], have[hi:]...)
			}
		}
		if !reflect.DeepEqual(have, want) {
			t.Errorf("%s: the backend queues %d launches, %s holds %d others (less the eval-mode statistics' copies, with the vectors counted): the program changed since the calibration",
				w, len(have), launchesFile, len(want))
			for i := 0; i < max(len(want), len(have)); i++ {
				var a, b compute.Launch
				if i < len(want) {
					a = want[i]
				}
				if i < len(have) {
					b = have[i]
				}
				if !reflect.DeepEqual(a, b) {
					t.Logf("%d: %+v / %+v", i, a, b)
				}
			}
		}
	}
}

// withoutEvalStatCopies is a calibrated launch list less the one change
// of the program since the H200 run: a BatchNorm in eval mode no longer
// copies its running mean and variance (128 channels: 512 bytes each)
// into a workspace before computing its scale and shift from them; it
// reads them where they are (the lowering of nn.BatchNorm2d). Training
// steps, which normalise with batch statistics, are unchanged.
func withoutEvalStatCopies(ls []compute.Launch) []compute.Launch {
	var out []compute.Launch
	for i, l := range ls {
		next := func(k int) string {
			if i+k < len(ls) {
				return ls[i+k].Kernel
			}
			return ""
		}
		if l.Kernel == "copy" && l.Read == 512 && l.Written == 512 &&
			(next(1) == "pk_bn_scale_shift" || next(1) == "copy" && next(2) == "pk_bn_scale_shift") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// withVectorsCounted is a calibrated launch list as the backend counts
// its bytes since the three legs of compute/cuda's TestThreeLegs were
// made to agree: the same kernels ran, but three of their records had
// left out small operands they read. BatchNorm's backward kernels now
// count the per-channel mean and variance, and dγ and dβ, which the
// reduction adds into (4 vectors of 128 channels), and the data
// gradient γ, the mean, the variance and the two sums (5); an IF kernel
// applying a BatchNorm with statistics per time step (the training
// step's SNN, where it follows the scale/shift kernel) reads a scale and
// a shift per step, 2·15·128 values, not 2·128. The calibration's
// BatchNorm backward passes are all in training mode.
func withVectorsCounted(w gpumodel.Workload, ls []compute.Launch) []compute.Launch {
	const c, T = 128, 15
	out := slices.Clone(ls)
	for i := range out {
		switch {
		case out[i].Kernel == "pk_bn_backward_reduce":
			out[i].Read += 4 * 4 * c
		case out[i].Kernel == "pk_bn_backward_dx":
			out[i].Read += 4 * 5 * c
		case out[i].Kernel == "pk_if" && w.Pass == gpumodel.Train && i > 0 && out[i-1].Kernel == "pk_bn_scale_shift":
			out[i].Read += 4 * 2 * (T - 1) * c
		}
	}
	return out
}

// TestCalibration holds the model to the H200 run it was calibrated on:
// the fitted runs' times reproduced, the held-out runs (im2col, batch
// 1000) within 20 %, the profiled workload's kernel shares within 5
// points; and the calibration's launches to the run's own FLOP counts.
func TestCalibration(t *testing.T) {
	c, err := gpumodel.H200Calibration()
	if err != nil {
		t.Fatal(err)
	}
	// the launches' library FLOPs are the network's, as bench on the H200
	// counted them per image (training: less the first convolution's input
	// gradient, which bench counts and no one computes)
	gflop := map[string][2]float64{}
	for _, f := range []string{"bench-tf32.log", "bench-fp32.log", "bench-im2col.log", "bench-batch1000.log"} {
		var log struct {
			Result struct {
				Train float64 `json:"train_gflop_per_image"`
				Infer float64 `json:"infer_gflop_per_image"`
			} `json:"result"`
		}
		b, err := os.ReadFile(filepath.Join("testdata/gpu-h200-2026-11-30", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &log); err != nil {
			t.Fatal(err)
		}
		gflop[f] = [2]float64{log.Result.Train, log.Result.Infer}
	}
	for _, r := range c.Runs {
		var flops int64
		for _, l := range c.Launches[r.Workload] {
			flops += l.FLOPs
		}
		want := gflop[r.Source][1] * 1e9 * float64(r.Workload.Batch)
		if r.Workload.Pass == gpumodel.Train {
			want = (gflop[r.Source][0]*1e9 - 2*28*28*128*9) * float64(r.Workload.Batch)
		}
		if math.Abs(float64(flops)-want) > 1e-9*want {
			t.Errorf("%s: the launches hold %d FLOPs, the run counted %.0f", r.Name, flops, want)
		}
	}
	p, rep, err := gpumodel.Fit(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fitted in %d iterations: %+v", rep.Iterations, p)
	t.Logf("the profiled kernels ran %.3f× slower under Nsight Compute than when timed; backward filter at %.3f of the forward rate",
		rep.ProfilerSlowdown, rep.BackwardFilter)
	checkModel(t, gpumodel.Model{GPU: c.GPU, Params: p}, c)
	frozen := gpumodel.H200Params()
	same := func(what string, a, b float64) {
		if math.Abs(a-b) > 1e-3*math.Abs(b) || math.IsNaN(a) {
			t.Errorf("%s: frozen %.4g, the calibration fits %.4g", what, a, b)
		}
	}
	same("launch overhead", frozen.LaunchOverhead, p.LaunchOverhead)
	for _, k := range gpumodel.Kinds() {
		same(string(k)+" bandwidth", frozen.Bandwidth[k], p.Bandwidth[k])
	}
	for _, k := range []string{compute.CallGEMM, compute.CallConvForward, compute.CallConvBackwardData, compute.CallConvBackwardFilter} {
		same(k+" on tensor cores", frozen.TensorCores[k], p.TensorCores[k])
		same(k+" on CUDA cores", frozen.CUDACores[k], p.CUDACores[k])
	}
	if frozen.MinTensorK != p.MinTensorK || len(frozen.Bandwidth) != len(p.Bandwidth) ||
		len(frozen.TensorCores) != len(p.TensorCores) || len(frozen.CUDACores) != len(p.CUDACores) {
		t.Errorf("frozen %+v, fitted %+v", frozen, p)
	}
	m, err := gpumodel.ForGPU("h200")
	if err != nil {
		t.Fatal(err)
	}
	checkModel(t, m, c)
	var b bytes.Buffer
	if err := gpumodel.WriteCalibration(&b, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("the frozen model:\n%s", b.String())
}

// checkModel holds m to c's measurements.
func checkModel(t *testing.T, m gpumodel.Model, c gpumodel.Calibration) {
	t.Helper()
	checks, shares, err := gpumodel.Checks(m, c)
	if err != nil {
		t.Fatal(err)
	}
	fitted, held := 0, 0
	for _, k := range checks {
		limit := 0.2
		if k.Run.Fitted {
			limit = 0.001
			fitted++
		} else {
			held++
		}
		if math.Abs(k.RelativeError()) > limit || math.IsNaN(k.RelativeError()) {
			t.Errorf("%s (%s): modelled %.2f ms, measured %.2f ms (%+.1f %%)", k.Run.Name, k.Run.Workload, 1e3*k.Modelled,
				1e3*k.Run.Seconds, 100*k.RelativeError())
		}
	}
	if fitted != 4 || held != 4 {
		t.Errorf("%d runs fitted, %d held out; want 4 and 4", fitted, held)
	}
	var profiled float64
	calls, modelled := 0, 0
	for _, s := range shares {
		profiled += s.Profiled
		calls += s.Calls
		if s.Kernel != "copy" {
			modelled += s.ModelCalls
		}
		if math.Abs(s.Modelled-s.Profiled) > 0.05 {
			t.Errorf("%s: %.1f %% of the profiled time, %.1f %% modelled", s.Kernel, 100*s.Profiled, 100*s.Modelled)
		}
	}
	// the listing is every kernel of the profiled workload: the model's
	// kernels and three of the first convolution's backward filter that
	// cuDNN adds (split-K reduction, workspace set-up)
	if math.Abs(profiled-0.999) > 1e-9 || calls != 112 || modelled != calls-3 {
		t.Errorf("the profile lists %.1f %% in %d calls; the model has %d kernels besides copies", 100*profiled, calls, modelled)
	}
}

// TestPrediction prints, for the program as the CUDA backend queues it now
// (counted on the dry emulated device), the calibration table and the
// prediction table on every GPU the model knows; and holds the tables to
// the model's own prices.
func TestPrediction(t *testing.T) {
	all := countCalibrated(t)
	c := counted{}
	for _, w := range []gpumodel.Workload{{Pass: gpumodel.Train, Batch: 100, Math: compute.MathTF32},
		{Pass: gpumodel.Infer, Batch: 1000, Math: compute.MathTF32}} {
		c[w] = all[w]
	}
	train := c[gpumodel.Workload{Pass: gpumodel.Train, Batch: 100, Math: compute.MathTF32}]
	infer := c[gpumodel.Workload{Pass: gpumodel.Infer, Batch: 1000, Math: compute.MathTF32}]
	var b bytes.Buffer
	if err := gpumodel.WriteCalibration(&b, c); err != nil {
		t.Fatal(err)
	}
	b.WriteString("\n")
	if err := gpumodel.WritePrediction(&b, gpumodel.Program{Train: train, Infer: infer, TrainBatch: 100, InferBatch: 1000}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("today's program:\n%s", out)
	for _, g := range gpumodel.GPUs() {
		m, err := gpumodel.ForGPU(g.Name)
		if err != nil {
			t.Fatal(err)
		}
		tr, in := price(t, m, train...), price(t, m, infer...)
		row := fmt.Sprintf("| %.2f | %.0f | %d | %.2f | %.0f | %d |", 1e3*tr.Seconds, tr.ImagesPerSecond(100), tr.Kernels,
			1e3*in.Seconds, in.ImagesPerSecond(1000), in.Kernels)
		if !strings.Contains(strings.Join(strings.Fields(out), " "), row) {
			t.Errorf("%s: no row %q in the prediction", g.Name, row)
		}
	}
	if !strings.Contains(out, "h100, predicted (uncalibrated)") || !strings.Contains(out, "(given launches)") {
		t.Errorf("the H100 row must say it is uncalibrated, the calibration which launches it priced:\n%s", out)
	}
}
