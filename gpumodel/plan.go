package gpumodel

import (
	"fmt"
	"io"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/lower"
)

// Plan is lowered programs priced on a GPU without running them: the
// launches the CUDA backend would queue for one run of each, in order
// (cuda.RunLaunches over lower.Lowered.Runs), what they count, and the
// model's time.
type Plan struct {
	// GPU names the GPU; Calibrated the run the model was calibrated on
	// when it ran on this GPU (empty: the prediction is uncalibrated).
	GPU        string `json:"gpu"`
	Calibrated string `json:"calibrated,omitempty"`
	// Batch is the images one run processes.
	Batch int `json:"batch"`
	// Seconds is the modelled time of one run; ImagesPerSecond the batch
	// over it; GPUKernels the kernels it runs on the GPU (cuDNN's layout
	// conversions included).
	Seconds         float64 `json:"seconds"`
	ImagesPerSecond float64 `json:"images_per_second"`
	GPUKernels      int     `json:"gpu_kernels"`
	// Traffic is the launches counted as the backend counts them:
	// proxykit's kernels and copies with their bytes, library calls by
	// kind, the GEMMs' FLOPs. ConvFLOPs are the cuDNN calls' FLOPs.
	Traffic   compute.Traffic `json:"traffic"`
	ConvFLOPs int64           `json:"cudnn_flops"`
	// Shares is the modelled time by GPU kernel, largest first.
	Shares []Share `json:"shares"`
	// Launches are the launches in order.
	Launches []compute.Launch `json:"launches"`
	// Estimate is the model's pricing of each launch.
	Estimate Estimate `json:"-"`
}

// PlanPrograms prices one run of each of programs, in order, for a batch
// of n on the CUDA backend configured as opt (its arithmetic, cuDNN or
// im2col, the im2col workspace: cuda.Launches; leave Emulate and DryRun
// unset for a GPU) on the GPU named gpu (ForGPU). A training step is the
// step's program and the optimizer's (lower.StepPrograms), lowered with
// all T steps at once, as the CUDA backend runs them.
func PlanPrograms(gpu string, opt cuda.Options, n int, programs ...*lower.Lowered) (Plan, error) {
	m, err := ForGPU(gpu)
	if err != nil {
		return Plan{}, err
	}
	if n < 1 {
		return Plan{}, fmt.Errorf("batch of %d: price a batch of at least 1", n)
	}
	var launches []compute.Launch
	for i, l := range programs {
		ls, err := cuda.RunLaunches(l.Program, l.Runs(n), opt)
		if err != nil {
			return Plan{}, fmt.Errorf("program %d: %w", i+1, err)
		}
		launches = append(launches, ls...)
	}
	e, err := m.Price(launches)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{GPU: m.GPU.Name, Calibrated: m.Calibrated, Batch: n, Seconds: e.Seconds, ImagesPerSecond: e.ImagesPerSecond(n),
		GPUKernels: e.Kernels, Traffic: compute.TrafficOf(launches), Shares: e.Shares(), Launches: launches, Estimate: e}
	for _, l := range launches {
		if l.Library && l.Kernel != compute.CallGEMM {
			p.ConvFLOPs += l.FLOPs
		}
	}
	return p, nil
}

// WritePlan writes a plan's prediction and counts as text, and its time
// by kernel (top rows at most, 0: all) as a Markdown table (WriteShares).
func WritePlan(w io.Writer, p Plan, top int) error {
	cal := "calibrated on " + p.Calibrated
	if p.Calibrated == "" {
		cal = "uncalibrated: the H200's parameters on this GPU's peaks"
	}
	t := p.Traffic
	launches, bytes := t.Glue(nil)
	var dnn int64
	for k, c := range t.Calls {
		if k != compute.CallGEMM {
			dnn += c
		}
	}
	_, err := fmt.Fprintf(w, "%s, predicted (%s): %.3f ms for a batch of %d, %.0f images/s, %d GPU kernels\n"+
		"launches: %d of proxykit's kernels and copies moving %.1f MB; %d cuBLAS GEMMs, %.2f GFLOP; %d cuDNN calls, %.2f GFLOP\n\n",
		p.GPU, cal, 1e3*p.Seconds, p.Batch, p.ImagesPerSecond, p.GPUKernels,
		launches, float64(bytes)/1e6, t.Calls[compute.CallGEMM], float64(t.GemmFLOPs)/1e9, dnn, float64(p.ConvFLOPs)/1e9)
	if err != nil {
		return err
	}
	return WriteShares(w, p.Estimate, top)
}
