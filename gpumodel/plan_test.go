package gpumodel_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/gpumodel"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// TestPlanPrograms prices the paper's network from its programs alone
// (gpumodel.PlanPrograms, what proxykit plan --gpu prints): the training
// step at batch 100 in TF32, FP32 and on im2col, and SNN inference at
// batch 1000 with cuDNN, each the launches the dry emulated device counts
// for the same workload (countCalibrated), priced as the model prices
// those; and the plan's printed and JSON forms say what it holds.
func TestPlanPrograms(t *testing.T) {
	all := countCalibrated(t)
	ann, err := nn.Reference(128, 2020)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := spiking.New(ann, spiking.Config{Timesteps: 15, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := ann.Body()
	step := func(batchStats bool, n int) lower.SNNOptions {
		o := lower.SNNOptions{Options: lower.Options{Capacity: n, BatchStats: batchStats}, Steps: 15}
		o.Apply([]lower.Setting{calibrationRules}) // the workloads counted as the calibration run ran them
		return o
	}
	train, update, err := lower.StepPrograms(body, snn.Lowering(), step(true, 100))
	if err != nil {
		t.Fatal(err)
	}
	infer, err := lower.Simulation(snn.Lowering(), step(false, 1000))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		w        gpumodel.Workload
		opt      cuda.Options
		programs []*lower.Lowered
	}{
		{gpumodel.Workload{Pass: gpumodel.Train, Batch: 100, Math: compute.MathTF32}, cuda.Options{}, []*lower.Lowered{train, update}},
		{gpumodel.Workload{Pass: gpumodel.Train, Batch: 100, Math: compute.MathFP32}, cuda.Options{StrictFP32: true}, []*lower.Lowered{train, update}},
		{gpumodel.Workload{Pass: gpumodel.Train, Batch: 100, Math: compute.MathTF32, Im2col: true}, cuda.Options{NoCuDNN: true}, []*lower.Lowered{train, update}},
		{gpumodel.Workload{Pass: gpumodel.Infer, Batch: 1000, Math: compute.MathTF32}, cuda.Options{}, []*lower.Lowered{infer}},
		{gpumodel.Workload{Pass: gpumodel.Infer, Batch: 1000, Math: compute.MathFP32}, cuda.Options{StrictFP32: true}, []*lower.Lowered{infer}},
	} {
		p, err := gpumodel.PlanPrograms("h200", c.opt, c.w.Batch, c.programs...)
		if err != nil {
			t.Fatal(err)
		}
		counted := all[c.w]
		if !reflect.DeepEqual(p.Launches, counted) {
			t.Errorf("%s: the programs say %d launches, the dry device counted %d", c.w, len(p.Launches), len(counted))
			continue
		}
		m, err := gpumodel.ForGPU("h200")
		if err != nil {
			t.Fatal(err)
		}
		e := price(t, m, counted...)
		if p.Seconds != e.Seconds || p.GPUKernels != e.Kernels || p.ImagesPerSecond != e.ImagesPerSecond(c.w.Batch) ||
			!reflect.DeepEqual(p.Traffic, compute.TrafficOf(counted)) || p.Calibrated == "" {
			t.Errorf("%s: plan %.6f s, %d kernels, %.1f images/s; the model prices the counted launches at %.6f s, %d kernels",
				c.w, p.Seconds, p.GPUKernels, p.ImagesPerSecond, e.Seconds, e.Kernels)
		}
		var b bytes.Buffer
		if err := gpumodel.WritePlan(&b, p, 5); err != nil {
			t.Fatal(err)
		}
		glue, moved := p.Traffic.Glue(nil)
		for _, want := range []string{fmt.Sprintf("%.3f ms for a batch of %d, %.0f images/s, %d GPU kernels", 1e3*p.Seconds, c.w.Batch,
			p.ImagesPerSecond, p.GPUKernels), fmt.Sprintf("%d of proxykit's kernels and copies moving %.1f MB", glue, float64(moved)/1e6),
			"calibrated on H200", "| " + p.Shares[0].Name} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("%s: no %q in\n%s", c.w, want, b.String())
			}
		}
		if c.w.Pass == gpumodel.Train && c.w.Math == compute.MathTF32 && !c.w.Im2col {
			t.Logf("the paper's training step from its programs:\n%s", b.String())
		}
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back gpumodel.Plan
		if err := json.Unmarshal(j, &back); err != nil {
			t.Fatal(err)
		}
		back.Estimate = p.Estimate
		if !reflect.DeepEqual(back, p) {
			t.Errorf("%s: the plan's JSON does not read back as the plan", c.w)
		}
	}
	// the H100: the same launches, uncalibrated, slower memory
	h200, err := gpumodel.PlanPrograms("h200", cuda.Options{}, 100, train, update)
	if err != nil {
		t.Fatal(err)
	}
	h100, err := gpumodel.PlanPrograms("H100", cuda.Options{}, 100, train, update)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := gpumodel.WritePlan(&b, h100, 0); err != nil {
		t.Fatal(err)
	}
	if h100.Calibrated != "" || !strings.Contains(b.String(), "uncalibrated") || !(h100.Seconds > h200.Seconds) ||
		!reflect.DeepEqual(h100.Launches, h200.Launches) {
		t.Errorf("the H100's plan: %.6f s (the H200's %.6f s), calibrated %q:\n%s", h100.Seconds, h200.Seconds, h100.Calibrated, b.String())
	}
	if _, err := gpumodel.PlanPrograms("a100", cuda.Options{}, 100, train); err == nil || !strings.Contains(err.Error(), "h200") {
		t.Errorf("a GPU the model does not know: %v", err)
	}
	if _, err := gpumodel.PlanPrograms("h200", cuda.Options{}, 0, train); err == nil {
		t.Errorf("a batch of 0 was priced")
	}
}
