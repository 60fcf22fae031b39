package gpumodel

import (
	"bufio"
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/proxykit/proxykit/compute"
)

// run is the H200 run the model is calibrated on, and the launches of the
// program that ran (testdata/gpu-h200-2026-11-30/README.md).
//
//go:embed testdata/gpu-h200-2026-11-30/*.log testdata/gpu-h200-2026-11-30/*.txt testdata/gpu-h200-2026-11-30/launches.json
var run embed.FS

const runDir = "testdata/gpu-h200-2026-11-30/"

// Pass is what a workload runs.
type Pass string

// The passes of a workload.
const (
	// Train is one proxy-learning step (BatchNorm in training mode) and
	// its Adam update, as bench times it.
	Train Pass = "train"
	// Infer is one SNN inference batch (BatchNorm in eval mode).
	Infer Pass = "infer"
	// Profiled is what Nsight Compute profiled (ProfiledWorkload).
	Profiled Pass = "profiled"
)

// Workload is what a list of launches does: the paper's network at width
// 128, T = 15, on the CUDA backend.
type Workload struct {
	Pass  Pass         `json:"pass"`
	Batch int          `json:"batch"`
	Math  compute.Math `json:"math"` // of the library calls
	// Im2col: convolutions by the backend's im2col kernels and cuBLAS
	// (--no-cudnn) instead of cuDNN.
	Im2col bool `json:"im2col,omitempty"`
}

// String names a workload: "train, batch 100, tf32, cudnn".
func (w Workload) String() string {
	convs := "cudnn"
	if w.Im2col {
		convs = "im2col"
	}
	return fmt.Sprintf("%s, batch %d, %s, %s", w.Pass, w.Batch, w.Math, convs)
}

// ProfiledWorkload is what Nsight Compute profiled in the calibration run:
// the profiler skipped 400 launches of `bench --seconds 0.2
// --infer-batch-size 100` and took the rest, which were the end of a
// training step at batch 100 (from the first BatchNorm's backward pass on:
// its two kernels, the first convolution's backward filter, Adam), the
// simulator's buffers for batch 100 (22 fills) and two SNN inference
// batches of 100 (docs/gpu-model.md).
func ProfiledWorkload() Workload { return Workload{Pass: Profiled, Batch: 100, Math: compute.MathTF32} }

// Measured is one time measured in the calibration run.
type Measured struct {
	Name     string
	Workload Workload
	// Seconds per training step or per inference batch.
	Seconds float64
	// Fitted: the parameters were fitted on it; else it is held out, a
	// check of the model.
	Fitted bool
	// Source is the file it was read from.
	Source string
}

// ProfileRow is one line of the Nsight Compute listing.
type ProfileRow struct {
	Kernel   string  // as listed (cut at 100 characters)
	Fraction float64 // of the profiled kernels' time
	Calls    int
	// Model is the model's kernel it is (gpumodel.Kernel.Name): a
	// library's internal kernels count as their call.
	Model string
}

// Calibration is the data the model was calibrated on: one run's
// measured times, its kernel profile, and the launches of each workload
// as the program that ran queued them.
type Calibration struct {
	Name string
	GPU  GPU
	Runs []Measured
	// Profile is Nsight Compute's listing of the profiled workload's
	// kernels; ProfileSeconds their total time under the profiler.
	Profile        []ProfileRow
	ProfileSeconds float64
	// Launches are each workload's launches (counted on the dry emulated
	// device for the program that ran: launches.json).
	Launches map[Workload][]compute.Launch
	// Torch is compiled PyTorch's images/s in the same run, training
	// (batch 100) and inference (batch 1000), for comparison.
	TorchTrain, TorchInfer float64
}

// benchRuns says which workloads each bench log measured: training at
// its batch_size, inference at its infer_batch.
var benchRuns = []struct {
	file      string
	train     Workload
	trainFit  bool
	inferFit  bool
	describes []string // in device_description
}{
	{"bench-tf32.log", Workload{Train, 100, compute.MathTF32, false}, true, true, []string{"TF32 matrix products", "by cuDNN"}},
	{"bench-fp32.log", Workload{Train, 100, compute.MathFP32, false}, true, true, []string{"FP32 matrix products", "by cuDNN"}},
	{"bench-im2col.log", Workload{Train, 100, compute.MathTF32, true}, false, false, []string{"TF32 matrix products", "by im2col"}},
	{"bench-batch1000.log", Workload{Train, 1000, compute.MathTF32, false}, false, false, []string{"TF32 matrix products", "by cuDNN"}},
}

// profileKernels maps the profiled kernels, by the start of their names,
// to the model's kernels.
var profileKernels = []struct{ prefix, model string }{
	{"sm90_xmma_fprop_implicit_gemm_f32f32_tf32f32", compute.CallConvForward},
	{"sm80_xmma_fprop_implicit_gemm_f32f32_f32f32", compute.CallConvForward + OnCUDACores},
	{"void cudnn::nchwToNhwcKernel", ToNHWC},
	{"void cudnn::nhwcToNchwKernel", ToNCHW},
	{"sm90_xmma_gemm_f32f32_tf32f32", compute.CallGEMM},
	{"sm80_xmma_gemm_f32f32_tf32f32", compute.CallGEMM},
	// the first convolution's backward filter: CUTLASS with split K
	{"void cutlass__5x_cudnn::Kernel<conv::ImplicitGemmConvolution", compute.CallConvBackwardFilter},
	{"void cutlass__5x_cudnn::Kernel<reduction::ReduceSplitK", compute.CallConvBackwardFilter},
	{"void cask_plugin__5x_cudnn::init_device_workspace_kernel", compute.CallConvBackwardFilter},
}

// H200Calibration is the 2026-11-30 H200 run (docs/gpu-model.md).
func H200Calibration() (Calibration, error) {
	c := Calibration{Name: "H200, 2026-11-30 (proxykit ec50eb7)", GPU: H200(), Launches: map[Workload][]compute.Launch{}}
	for _, b := range benchRuns {
		var log struct {
			Batch  int    `json:"batch_size"`
			Device string `json:"device_description"`
			Result struct {
				Step       float64 `json:"train_step_seconds"`
				InferRate  float64 `json:"infer_images_per_sec"`
				InferBatch int     `json:"infer_batch"`
			} `json:"result"`
		}
		if err := readJSON(b.file, &log); err != nil {
			return c, err
		}
		for _, s := range b.describes {
			if !strings.Contains(log.Device, s) {
				return c, fmt.Errorf("%s: the device description %q does not say %q", b.file, log.Device, s)
			}
		}
		if log.Batch != b.train.Batch || !(log.Result.Step > 0) || !(log.Result.InferRate > 0) || log.Result.InferBatch < 1 {
			return c, fmt.Errorf("%s: batch %d, step %g s, inference %g images/s of %d: not the run described", b.file,
				log.Batch, log.Result.Step, log.Result.InferRate, log.Result.InferBatch)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(b.file, "bench-"), ".log")
		infer := b.train
		infer.Pass, infer.Batch = Infer, log.Result.InferBatch
		c.Runs = append(c.Runs,
			Measured{name + " train", b.train, log.Result.Step, b.trainFit, b.file},
			Measured{name + " infer", infer, float64(infer.Batch) / log.Result.InferRate, b.inferFit, b.file})
	}
	var err error
	if c.Profile, c.ProfileSeconds, err = readProfile("ncu-step-breakdown.txt"); err != nil {
		return c, err
	}
	if c.TorchTrain, c.TorchInfer, err = readTorch("torch.log", "compiled"); err != nil {
		return c, err
	}
	var frozen launchFile
	if err := readJSON("launches.json", &frozen); err != nil {
		return c, err
	}
	for _, w := range frozen.Workloads {
		c.Launches[w.Workload] = w.Launches
	}
	for _, w := range append(c.Workloads(), ProfiledWorkload()) {
		if len(c.Launches[w]) == 0 {
			return c, fmt.Errorf("launches.json: no launches for %s", w)
		}
	}
	return c, nil
}

// launchFile is launches.json: each workload's launches.
type launchFile struct {
	About     string `json:"about"`
	Workloads []struct {
		Workload Workload         `json:"workload"`
		Launches []compute.Launch `json:"launches"`
	} `json:"workloads"`
}

// Workloads are the measured workloads, each once, in the runs' order.
func (c Calibration) Workloads() []Workload {
	var out []Workload
	seen := map[Workload]bool{}
	for _, r := range c.Runs {
		if !seen[r.Workload] {
			seen[r.Workload] = true
			out = append(out, r.Workload)
		}
	}
	return out
}

func readJSON(name string, v any) error {
	b, err := run.ReadFile(runDir + name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

var (
	profileTotal = regexp.MustCompile(`total (\d+)$`)
	profileLine  = regexp.MustCompile(`^\s*([0-9.]+)%\s+(\d+) calls\s+(.+)$`)
)

// readProfile reads the Nsight Compute listing: its total (ns) and rows.
func readProfile(name string) ([]ProfileRow, float64, error) {
	b, err := run.ReadFile(runDir + name)
	if err != nil {
		return nil, 0, err
	}
	var rows []ProfileRow
	var total float64
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 {
			m := profileTotal.FindStringSubmatch(line)
			if m == nil || !strings.Contains(line, "duration unit {'ns'}") {
				return nil, 0, fmt.Errorf("%s:1: no total in ns", name)
			}
			ns, _ := strconv.ParseFloat(m[1], 64)
			total = ns * 1e-9
			continue
		}
		m := profileLine.FindStringSubmatch(line)
		if m == nil {
			return nil, 0, fmt.Errorf("%s:%d: not a kernel's share and calls: %q", name, n, line)
		}
		share, err1 := strconv.ParseFloat(m[1], 64)
		calls, err2 := strconv.Atoi(m[2])
		if err1 != nil || err2 != nil {
			return nil, 0, fmt.Errorf("%s:%d: %q", name, n, line)
		}
		r := ProfileRow{Kernel: m[3], Fraction: share / 100, Calls: calls}
		if strings.HasPrefix(r.Kernel, "pk_") {
			r.Model = r.Kernel
		}
		for _, k := range profileKernels {
			if strings.HasPrefix(r.Kernel, k.prefix) {
				r.Model = k.model
			}
		}
		if r.Model == "" {
			return nil, 0, fmt.Errorf("%s:%d: kernel %q is none the model knows", name, n, r.Kernel)
		}
		rows = append(rows, r)
	}
	return rows, total, sc.Err()
}

// readTorch reads one variant's training and inference images/s.
func readTorch(name, variant string) (train, infer float64, err error) {
	b, err := run.ReadFile(runDir + name)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var r struct {
			Variant string  `json:"variant"`
			Train   float64 `json:"train_images_per_sec"`
			Infer   float64 `json:"infer_images_per_sec"`
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Variant == variant {
			return r.Train, r.Infer, nil
		}
	}
	return 0, 0, fmt.Errorf("%s: no %s variant", name, variant)
}

// profileTime is the profiled time of the model's kernel name.
func (c Calibration) profileTime(model string) float64 {
	var f float64
	for _, r := range c.Profile {
		if r.Model == model {
			f += r.Fraction
		}
	}
	return f * c.ProfileSeconds
}

// Fixed inputs of the fit, from measurements outside the calibration run.
const (
	// sgemmFP32 is cuBLAS's SGEMM in FP32 on an H100 (docs/design.md
	// §4): the H200's SMs and clocks are the H100's, and the run has no
	// profile of an FP32 matrix product.
	sgemmFP32 = 51.6e12
	// minTensorK: the profile shows cuDNN's forward convolution of K = 9
	// (1 channel, 3×3) on an FP32 CUDA-core kernel in TF32 mode, and of
	// K = 1152 on tensor cores; the threshold is two TF32 MMA k-steps.
	minTensorK = 16
)

// FitReport says how a calibration came out.
type FitReport struct {
	// ProfilerSlowdown is how much slower the profiled kernels ran under
	// Nsight Compute (base clocks, flushed caches) than in the timed runs.
	ProfilerSlowdown float64
	// BackwardFilter is cuDNN's backward-filter rate over its forward rate.
	BackwardFilter float64
	// Profiled are, under the profiler, each kind's bandwidth (bytes/s)
	// and the tensor-core rates (FLOP/s) of cuDNN's forward convolution
	// and of cuBLAS's GEMM.
	ProfiledBandwidth             map[Kind]float64
	ProfiledForward, ProfiledGEMM float64
	Iterations                    int
}

// reference is the profiled kernel each kind's bandwidth is taken from.
var reference = map[Kind]string{Elementwise: "pk_if", Indexed: "pk_channel_affine", Pooling: "pk_maxpool",
	Reduction: "pk_bn_backward_reduce"}

// Fit calibrates the model on c. From the profile: each kind's bandwidth
// (its reference kernel's bytes over its time; Layout: cuDNN's conversions
// around the profiled tensor-core convolutions) and the tensor-core rates
// of cuDNN's forward convolution and of cuBLAS's GEMMs, all under the
// profiler. From the fitted runs' times, four unknowns: the profiler's
// slowdown s (every profiled rate is s times the timed run's), τ, the
// backward filter's share of the forward rate (on tensor cores and on
// CUDA cores alike), and cuDNN's FP32 convolution rate. Backward data is
// taken at the forward rate; FP32 GEMMs at sgemmFP32.
func Fit(c Calibration) (Params, FitReport, error) {
	g := c.GPU
	rep := FitReport{ProfiledBandwidth: map[Kind]float64{}}
	prof := c.Launches[ProfiledWorkload()]
	sum := func(f func(l compute.Launch) int64) float64 {
		var s int64
		for _, l := range prof {
			s += f(l)
		}
		return float64(s)
	}
	tensorConv := func(l compute.Launch, kind string) bool {
		return l.Kernel == kind && l.Math != compute.MathFP32 && l.K >= minTensorK
	}
	for k, ref := range reference {
		rep.ProfiledBandwidth[k] = sum(func(l compute.Launch) int64 {
			if l.Kernel == ref && !l.Library {
				return l.Read + l.Written
			}
			return 0
		}) / c.profileTime(ref)
	}
	rep.ProfiledBandwidth[Layout] = sum(func(l compute.Launch) int64 {
		if l.Library && l.Kernel != compute.CallGEMM && l.Layout == compute.NCHW && (tensorConv(l, l.Kernel)) {
			return 2 * (l.Read + l.Written)
		}
		return 0
	}) / (c.profileTime(ToNHWC) + c.profileTime(ToNCHW))
	rep.ProfiledForward = sum(func(l compute.Launch) int64 {
		if tensorConv(l, compute.CallConvForward) {
			return l.FLOPs
		}
		return 0
	}) / c.profileTime(compute.CallConvForward)
	rep.ProfiledGEMM = sum(func(l compute.Launch) int64 {
		if l.Kernel == compute.CallGEMM {
			return l.FLOPs
		}
		return 0
	}) / c.profileTime(compute.CallGEMM)
	for k, b := range rep.ProfiledBandwidth {
		if !(b > 0) || math.IsInf(b, 0) {
			return Params{}, rep, fmt.Errorf("no profiled bandwidth for %s kernels", k)
		}
	}
	if !(rep.ProfiledForward > 0) || !(rep.ProfiledGEMM > 0) || math.IsInf(rep.ProfiledForward+rep.ProfiledGEMM, 0) {
		return Params{}, rep, fmt.Errorf("no profiled tensor-core rate")
	}
	params := func(x []float64) Params { // x: slowdown, τ, backward filter share, FP32 convolution share
		s, tau, filter, fma := x[0], x[1], x[2], x[3]
		p := Params{LaunchOverhead: tau, Bandwidth: map[Kind]float64{}, MinTensorK: minTensorK}
		for k, b := range rep.ProfiledBandwidth {
			p.Bandwidth[k] = s * b / g.Bandwidth
		}
		fwd := s * rep.ProfiledForward / g.Peak[compute.MathTF32]
		p.TensorCores = map[string]float64{compute.CallGEMM: s * rep.ProfiledGEMM / g.Peak[compute.MathTF32],
			compute.CallConvForward: fwd, compute.CallConvBackwardData: fwd, compute.CallConvBackwardFilter: filter * fwd}
		p.CUDACores = map[string]float64{compute.CallGEMM: sgemmFP32 / g.Peak[compute.MathFP32],
			compute.CallConvForward: fma, compute.CallConvBackwardData: fma, compute.CallConvBackwardFilter: filter * fma}
		return p
	}
	var fitted []Measured
	for _, r := range c.Runs {
		if r.Fitted {
			fitted = append(fitted, r)
		}
	}
	resid := func(x []float64) ([]float64, error) {
		m := Model{GPU: g, Params: params(x)}
		out := make([]float64, len(fitted))
		for i, r := range fitted {
			e, err := m.Price(c.Launches[r.Workload])
			if err != nil {
				return nil, err
			}
			out[i] = math.Log(e.Seconds / r.Seconds)
		}
		return out, nil
	}
	x, it, err := solve(resid, []float64{1, 5e-6, 0.5, 1})
	rep.Iterations = it
	if err != nil {
		return Params{}, rep, fmt.Errorf("fitting %d runs: %w", len(fitted), err)
	}
	rep.ProfilerSlowdown, rep.BackwardFilter = x[0], x[2]
	return params(x), rep, nil
}

// solve finds positive x with f(x) = 0 (as many equations as unknowns) by
// Newton's method on log x with a numerical Jacobian.
func solve(f func([]float64) ([]float64, error), x0 []float64) ([]float64, int, error) {
	n := len(x0)
	x := append([]float64(nil), x0...)
	for it := 1; it <= 200; it++ {
		r, err := f(x)
		if err != nil {
			return nil, it, err
		}
		if len(r) != n {
			return nil, it, fmt.Errorf("%d equations for %d unknowns", len(r), n)
		}
		worst := 0.0
		for _, v := range r {
			worst = max(worst, math.Abs(v))
		}
		if worst < 1e-12 {
			return x, it, nil
		}
		// J[i][j] = ∂r_i/∂log x_j
		J := make([][]float64, n)
		for i := range J {
			J[i] = make([]float64, n+1)
			J[i][n] = -r[i]
		}
		for j := range n {
			const h = 1e-6
			xj := append([]float64(nil), x...)
			xj[j] *= math.Exp(h)
			rj, err := f(xj)
			if err != nil {
				return nil, it, err
			}
			for i := range n {
				J[i][j] = (rj[i] - r[i]) / h
			}
		}
		d, err := gauss(J)
		if err != nil {
			return nil, it, err
		}
		for j := range n {
			x[j] *= math.Exp(max(-1, min(1, d[j]))) // at most a factor e a step
		}
	}
	return nil, 200, fmt.Errorf("no convergence")
}

// gauss solves the n×(n+1) augmented system a by elimination with
// partial pivoting.
func gauss(a [][]float64) ([]float64, error) {
	n := len(a)
	for c := range n {
		p := c
		for i := c + 1; i < n; i++ {
			if math.Abs(a[i][c]) > math.Abs(a[p][c]) {
				p = i
			}
		}
		if a[p][c] == 0 {
			return nil, fmt.Errorf("unknown %d is not determined by the runs", c)
		}
		a[c], a[p] = a[p], a[c]
		for i := range n {
			if i != c {
				f := a[i][c] / a[c][c]
				for j := c; j <= n; j++ {
					a[i][j] -= f * a[c][j]
				}
			}
		}
	}
	x := make([]float64, n)
	for i := range n {
		x[i] = a[i][n] / a[i][i]
	}
	return x, nil
}
