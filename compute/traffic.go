package compute

import "maps"

// Traffic is what a backend queued: launches of its own kernels with the
// bytes each reads and writes (from the launch's arguments: the data a
// kernel must touch, counted once; device-to-device copies as the kernel
// "copy"), library calls by kind, and the GEMMs' arithmetic. It is the
// sum of the backend's Launch records (Add).
type Traffic struct {
	Launches map[string]int64 `json:"launches"`
	Read     map[string]int64 `json:"read_bytes"`
	Written  map[string]int64 `json:"written_bytes"`
	// Calls counts library calls: "cublas gemm", "cudnn forward",
	// "cudnn backward data", "cudnn backward filter".
	Calls     map[string]int64 `json:"library_calls"`
	GemmFLOPs int64            `json:"gemm_flops"` // 2·m·n·k per cuBLAS GEMM
}

// NewTraffic is an empty count.
func NewTraffic() Traffic {
	return Traffic{Launches: map[string]int64{}, Read: map[string]int64{}, Written: map[string]int64{}, Calls: map[string]int64{}}
}

// TrafficOf is the count of a list of launches.
func TrafficOf(launches []Launch) Traffic {
	t := NewTraffic()
	for _, l := range launches {
		t.Add(l)
	}
	return t
}

// Add counts one launch: a library call in Calls (a cuBLAS GEMM's FLOPs
// in GemmFLOPs too), a kernel or a copy in Launches with its bytes. A
// zero Traffic counts too.
func (t *Traffic) Add(l Launch) {
	for _, m := range []*map[string]int64{&t.Launches, &t.Read, &t.Written, &t.Calls} {
		if *m == nil {
			*m = map[string]int64{}
		}
	}
	if l.Library {
		t.Calls[l.Kernel]++
		if l.Kernel == CallGEMM {
			t.GemmFLOPs += l.FLOPs
		}
		return
	}
	t.Launches[l.Kernel]++
	t.Read[l.Kernel] += l.Read
	t.Written[l.Kernel] += l.Written
}

// Clone is a copy that later counting leaves as it is.
func (t Traffic) Clone() Traffic {
	return Traffic{Launches: maps.Clone(t.Launches), Read: maps.Clone(t.Read), Written: maps.Clone(t.Written),
		Calls: maps.Clone(t.Calls), GemmFLOPs: t.GemmFLOPs}
}

// Glue is the launches and bytes of the backend's own kernels, leaving
// out those skip names (nil: none).
func (t Traffic) Glue(skip func(kernel string) bool) (launches, bytes int64) {
	for k, n := range t.Launches {
		if skip == nil || !skip(k) {
			launches += n
			bytes += t.Read[k] + t.Written[k]
		}
	}
	return launches, bytes
}

// Counting is a backend that counts its traffic (the CUDA backend, on a
// GPU and on its emulated device).
type Counting interface {
	// Traffic is what was queued since the backend opened or ResetTraffic.
	Traffic() Traffic
	// ResetTraffic starts counting anew.
	ResetTraffic()
}

// LaunchLogger is a counting backend that can also keep each launch, in
// the order queued: the input of a time model (package gpumodel). The log
// is off until asked for, since a long run would grow it without bound.
type LaunchLogger interface {
	Counting
	// LogLaunches starts (true) or stops keeping each launch.
	LogLaunches(on bool)
	// LaunchLog is a copy of the launches kept since ResetTraffic (or
	// since the log was started).
	LaunchLog() []Launch
}

// The library calls a Launch names (its Kernel, with Library set).
const (
	CallGEMM               = "cublas gemm"
	CallConvForward        = "cudnn forward"
	CallConvBackwardData   = "cudnn backward data"
	CallConvBackwardFilter = "cudnn backward filter"
)

// Launch is one piece of work a backend queued on its device: a launch of
// one of its own kernels, a device-to-device copy, or one library call.
// It holds what a time model needs to price it, and nothing of the
// arguments: a cost function that knows only an op's geometry makes the
// same record.
type Launch struct {
	// Kernel names it: the backend's kernel ("pk_if"), "copy", or a
	// library call (CallGEMM, CallConvForward, …).
	Kernel string `json:"kernel"`
	// Library is set for a library call (cuBLAS, cuDNN), whose kernels
	// the library chooses.
	Library bool `json:"library,omitempty"`
	// Read and Written are the bytes the launch must read and write, each
	// value once: for a kernel every operand it reads, small ones
	// (per-channel statistics, scales) and a result it adds into
	// included; for a library call its operands (a convolution's input
	// and filter, or their gradients) and its result, leaving out a result
	// it adds into.
	Read    int64 `json:"read_bytes"`
	Written int64 `json:"written_bytes"`
	// FLOPs is a library call's arithmetic: 2 per multiply-add of the
	// matrix product or convolution (the same in a convolution's three
	// directions). 0 for the backend's kernels and copies.
	FLOPs int64 `json:"flops,omitempty"`
	// M, N, K are the shape of a library call's matrix product: C[M, N]
	// = A[M, K]·B[K, N]; for a convolution the implicit one: forward M =
	// n·OH·OW, N = O, K = C·KH·KW; backward data M = n·H·W, N = C, K =
	// O·KH·KW; backward filter M = O, N = C·KH·KW, K = n·OH·OW.
	M int64 `json:"m,omitempty"`
	N int64 `json:"n,omitempty"`
	K int64 `json:"k,omitempty"`
	// Math is the arithmetic a library call was asked for (an emulated
	// device computes FP32 whatever it says).
	Math Math `json:"math,omitempty"`
	// Layout is the memory layout of the activation tensors handed to a
	// convolution call.
	Layout Layout `json:"layout,omitempty"`
}

// Math is the arithmetic of a library call's products.
type Math string

// The arithmetic of a library call: FP32 on CUDA cores, TF32 tensor cores
// on FP32 data, FP16 or BF16 tensor cores (FP32 accumulation).
const (
	MathFP32 Math = "fp32"
	MathTF32 Math = "tf32"
	MathFP16 Math = "fp16"
	MathBF16 Math = "bf16"
)

// Layout is the memory layout of [C H W] values: of a convolution's
// activations in a launch's record, of a slot in a program, of the
// activations a kernel is handed (ConvGeom.Layout, PoolGeom.Layout, the
// BatchNorm kernels' layout argument, IFArgs.Layout). The zero value ""
// reads as NCHW.
type Layout string

// Batch, channels, height, width from slowest to fastest; or channels
// last: a sample's values pixel by pixel, each pixel's C channels
// together.
const (
	NCHW Layout = "nchw"
	NHWC Layout = "nhwc"
)

// Last reports whether l is channels-last (NHWC); anything else is NCHW.
func (l Layout) Last() bool { return l == NHWC }

// String names the layout in capitals: NCHW (also for "") or NHWC.
func (l Layout) String() string {
	if l.Last() {
		return "NHWC"
	}
	return "NCHW"
}

// Valid reports whether l is a layout: "", NCHW or NHWC.
func (l Layout) Valid() bool { return l == "" || l == NCHW || l == NHWC }
