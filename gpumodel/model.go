// Package gpumodel predicts how long a step takes on a GPU from the list
// of its launches (compute.Launch: what the CUDA backend queues, or what a
// program's cost function says it would queue), without the GPU. It was
// calibrated once, on one H200 run (Calibration, docs/gpu-model.md), and
// is the estimator a change is judged by until a device measures it: its
// parameters are frozen (H200Params) and never re-fitted to flatter a
// change.
//
// # The model
//
// A GPU has a memory bandwidth BW and dense peaks P[m] for each arithmetic
// m (FP32 on CUDA cores; TF32, FP16 and BF16 on tensor cores). Params say
// what fraction of them each kind of work achieves, and τ, the time each
// GPU kernel adds beyond its work (the host's launch through cgo and the
// driver, the gap between kernels). Each launch is priced alone and the
// step's time is the sum:
//
//   - a kernel of the backend, or a device copy, of kind k (KindOf) moving
//     b = Read + Written bytes: t = τ + b / (β[k]·BW);
//   - a library call of F FLOPs moving b bytes runs on tensor cores when
//     its Math is TF32, FP16 or BF16 and, for a convolution, its implicit
//     GEMM's K is at least MinTensorK; then t = τ + max(F / (εTC[c]·P[Math]),
//     b / (β[Elementwise]·BW)) for call kind c (cuBLAS GEMM, cuDNN forward,
//     backward data, backward filter). Otherwise it runs on CUDA cores:
//     t = τ + max(F / (εCUDA[c]·P[FP32]), b / (β[Elementwise]·BW));
//   - a cuDNN call on tensor cores handed NCHW tensors (Layout NCHW) also
//     runs cuDNN's layout conversions, as their own kernels: two
//     nchwToNhwc over its operands (together reading and writing Read
//     bytes each way) and one nhwcToNchw over its result (Written bytes
//     each way), each τ + bytes / (β[Layout]·BW). Handed NHWC tensors it
//     converts nothing.
//
// A kernel without calibration data of its own is priced by the bandwidth
// the profiled kernel of its kind achieved (pk_if for elementwise passes),
// never by a factor of its own.
package gpumodel

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/proxykit/proxykit/compute"
)

// Kind is how a kernel of the backend uses memory, which sets the share of
// the bandwidth it achieves.
type Kind string

// The kinds of kernel, each priced by the bandwidth its profiled reference
// kernel achieved.
const (
	// Elementwise kernels stream their operands with little index
	// arithmetic (reference: pk_if).
	Elementwise Kind = "elementwise"
	// Indexed kernels compute a channel or a source position per element
	// with 64-bit divisions (reference: pk_channel_affine).
	Indexed Kind = "indexed"
	// Pooling kernels gather a window per output (reference: pk_maxpool).
	Pooling Kind = "pooling"
	// Reduction kernels sum a channel or a row per block or thread
	// (reference: pk_bn_backward_reduce).
	Reduction Kind = "reduction"
	// Layout is cuDNN's own NCHW↔NHWC conversions, and proxykit's
	// transposes between the layouts (pk_transpose: the same work).
	Layout Kind = "layout"
)

// Kinds lists every kind.
func Kinds() []Kind { return []Kind{Elementwise, Indexed, Pooling, Reduction, Layout} }

// KindOf is the kind of a kernel of the CUDA backend ("copy" for a device
// copy); false for a name it does not know (a new kernel must be given the
// kind whose bandwidth it is priced by, here).
func KindOf(kernel string) (Kind, bool) {
	switch kernel {
	case "pk_if", "pk_fill", "pk_add_to", "pk_relu", "pk_relu_backward", "pk_clip", "pk_clip_backward", "pk_adam",
		"pk_softmax", "pk_softmax_backward", "pk_bn_divide", "pk_bn_update_running", "copy", "pk_if_record", "pk_if_surrogate_grad",
		"pk_convert":
		return Elementwise, true
	case "pk_channel_affine", "pk_bn_backward_dx", "pk_bn_scale_shift", "pk_add_bias", "pk_copy_channels", "pk_im2col",
		"pk_col2im", "pk_ocp_to_nchw", "pk_nchw_to_ocp", "pk_pad", "pk_pad_backward", "pk_gap_backward",
		"pk_proxy_loss_grad", "pk_channel_shuffle":
		return Indexed, true
	case "pk_maxpool", "pk_maxpool_backward", "pk_avgpool", "pk_avgpool_backward",
		"pk_if_pool": // IF and max-pooling in one pass: it gathers windows as pk_maxpool does
		return Pooling, true
	case "pk_bn_backward_reduce", "pk_bn_stats", "pk_bn_sums", "pk_conv_bias_grad", "pk_col_sum", "pk_sum", "pk_gap":
		return Reduction, true
	case "pk_transpose": // a layout change, as cuDNN's nchwToNhwc
		return Layout, true
	}
	return "", false
}

// The kernels cuDNN adds around a tensor-core convolution handed NCHW
// tensors, and the name of a library call that runs on CUDA cores.
const (
	ToNHWC = "cudnn nchwToNhwc"
	ToNCHW = "cudnn nhwcToNchw"
	// OnCUDACores is appended to a library call's name when it runs on
	// CUDA cores.
	OnCUDACores = " (cuda cores)"
)

// GPU is a device's peaks.
type GPU struct {
	Name string
	// Bandwidth is the memory bandwidth, bytes per second.
	Bandwidth float64
	// Peak is the dense arithmetic rate, FLOP/s, by arithmetic: FP32 on
	// CUDA cores, TF32, FP16 and BF16 on tensor cores.
	Peak map[compute.Math]float64
}

// Params is a calibration: the share of a GPU's peaks each kind of work
// achieves, and the cost of a launch.
type Params struct {
	// LaunchOverhead is τ, seconds each GPU kernel adds beyond its work.
	LaunchOverhead float64
	// Bandwidth is β: the share of the memory bandwidth each kind of
	// kernel achieves on the bytes it must read and write.
	Bandwidth map[Kind]float64
	// TensorCores is εTC: the share of the tensor-core peak (of the call's
	// Math) each library call kind reaches (compute.CallGEMM,
	// compute.CallConvForward, …).
	TensorCores map[string]float64
	// CUDACores is εCUDA: the share of the FP32 peak each library call
	// kind reaches on CUDA cores. Above 1 where cuDNN's FP32 algorithms
	// do fewer multiplications than a dense convolution (Winograd).
	CUDACores map[string]float64
	// MinTensorK is the smallest implicit-GEMM K (C·KH·KW forward) of a
	// convolution that cuDNN runs on tensor cores.
	MinTensorK int64
}

// Model prices launches on one GPU.
type Model struct {
	GPU    GPU
	Params Params
	// Calibrated names the run the parameters were fitted on when it ran
	// on this GPU; empty when they are another GPU's applied to this
	// one's peaks (a prediction to take as uncalibrated).
	Calibrated string
}

// Kernel is one GPU kernel, or several alike, of a priced launch.
type Kernel struct {
	Name    string
	Count   int // GPU kernels
	Seconds float64
}

// Priced is a launch and its modelled time.
type Priced struct {
	Launch compute.Launch
	// Kernels are the GPU kernels it runs: its own, and a cuDNN call's
	// layout conversions.
	Kernels []Kernel
	Seconds float64
}

// Estimate is the modelled time of a list of launches.
type Estimate struct {
	Model    Model
	Launches []Priced
	Seconds  float64
	Kernels  int // GPU kernels in all
}

// Share is the time of the kernels of one name in an Estimate.
type Share struct {
	Name     string  `json:"kernel"`
	Count    int     `json:"kernels"`
	Seconds  float64 `json:"seconds"`
	Fraction float64 `json:"fraction"` // of the estimate's time
}

// Price models the time of launches, in order.
func (m Model) Price(launches []compute.Launch) (Estimate, error) {
	e := Estimate{Model: m, Launches: make([]Priced, 0, len(launches))}
	for i, l := range launches {
		ks, err := m.kernels(l)
		if err != nil {
			return Estimate{}, fmt.Errorf("launch %d: %w", i, err)
		}
		p := Priced{Launch: l, Kernels: ks}
		for _, k := range ks {
			p.Seconds += k.Seconds
			e.Kernels += k.Count
		}
		e.Seconds += p.Seconds
		e.Launches = append(e.Launches, p)
	}
	return e, nil
}

// kernels prices one launch as the GPU kernels it runs.
func (m Model) kernels(l compute.Launch) ([]Kernel, error) {
	g, p := m.GPU, m.Params
	tau := p.LaunchOverhead
	stream := func(bytes int64, k Kind) (float64, error) {
		b := p.Bandwidth[k]
		if !(b > 0) || !(g.Bandwidth > 0) {
			return 0, fmt.Errorf("%s: no bandwidth for %s kernels on %s", l.Kernel, k, g.Name)
		}
		return float64(bytes) / (b * g.Bandwidth), nil
	}
	bytes := l.Read + l.Written
	if !l.Library {
		k, ok := KindOf(l.Kernel)
		if !ok {
			return nil, fmt.Errorf("kernel %s has no kind (gpumodel.KindOf): say which kernel's bandwidth prices it", l.Kernel)
		}
		t, err := stream(bytes, k)
		return []Kernel{{l.Kernel, 1, tau + t}}, err
	}
	conv := l.Kernel != compute.CallGEMM
	tensor := l.Math != compute.MathFP32 && (!conv || l.K >= p.MinTensorK)
	math, eff, name := l.Math, p.TensorCores[l.Kernel], l.Kernel
	if !tensor {
		math, eff, name = compute.MathFP32, p.CUDACores[l.Kernel], l.Kernel+OnCUDACores
	}
	peak := g.Peak[math]
	if !(eff > 0) || !(peak > 0) {
		return nil, fmt.Errorf("%s in %s: no rate on %s", l.Kernel, l.Math, g.Name)
	}
	mem, err := stream(bytes, Elementwise)
	if err != nil {
		return nil, err
	}
	ks := []Kernel{{name, 1, tau + max(float64(l.FLOPs)/(eff*peak), mem)}}
	if conv && tensor && l.Layout == compute.NCHW {
		in, err := stream(2*l.Read, Layout)
		if err != nil {
			return nil, err
		}
		out, err := stream(2*l.Written, Layout)
		if err != nil {
			return nil, err
		}
		ks = append(ks, Kernel{ToNHWC, 2, 2*tau + in}, Kernel{ToNCHW, 1, tau + out})
	}
	return ks, nil
}

// Shares is the estimate's time by kernel name, largest first.
func (e Estimate) Shares() []Share {
	by := map[string]*Share{}
	for _, p := range e.Launches {
		for _, k := range p.Kernels {
			s := by[k.Name]
			if s == nil {
				s = &Share{Name: k.Name}
				by[k.Name] = s
			}
			s.Count += k.Count
			s.Seconds += k.Seconds
		}
	}
	out := make([]Share, 0, len(by))
	for _, name := range slices.Sorted(maps.Keys(by)) {
		s := *by[name]
		if e.Seconds > 0 {
			s.Fraction = s.Seconds / e.Seconds
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seconds > out[j].Seconds })
	return out
}

// ImagesPerSecond is batch images over the estimate's time.
func (e Estimate) ImagesPerSecond(batch int) float64 {
	if e.Seconds <= 0 {
		return 0
	}
	return float64(batch) / e.Seconds
}
