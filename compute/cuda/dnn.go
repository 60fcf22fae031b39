package cuda

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// dnnDevice is a device that offers cuDNN's convolutions (a GPU where
// libcudnn.so.9 loads).
type dnnDevice interface {
	cudnn() *cudnn
}

// convolutions is what the backend asks of cuDNN; *cudnn implements it in
// builds with -tags cuda. A call that returns a *planError ran nothing:
// cuDNN refused the configuration (no algorithm, an unsupported shape or
// layout), and the backend computes that direction another way.
type convolutions interface {
	supports(g compute.ConvGeom) bool
	forward(be *Backend, g compute.ConvGeom, n int, x, w, y devptr) error
	backwardData(be *Backend, g compute.ConvGeom, n int, w, dy, dx devptr) error
	backwardFilter(be *Backend, g compute.ConvGeom, n int, x, dy, dw devptr, accumulate bool) error
	close()
}

var (
	_ convolutions = (*cudnn)(nil)
	_ convolutions = dryDNN{}
)

// dnnSupports reports whether the backend hands g to cuDNN: symmetric
// padding, no groups (grouped convolutions take the im2col path, one GEMM
// per group, until a GPU session verifies cuDNN's group count).
func dnnSupports(g compute.ConvGeom) bool {
	return g.PT == g.PB && g.PL == g.PR && g.Groups() == 1
}

// cuDNN's enums as its legacy API takes them (cudnn.h; the same values in
// cuDNN 8 and 9).
const (
	dnnTensorNCHW         = 0 // CUDNN_TENSOR_NCHW
	dnnTensorNHWC         = 1 // CUDNN_TENSOR_NHWC
	dnnDataFloat          = 0 // CUDNN_DATA_FLOAT
	dnnDataHalf           = 2 // CUDNN_DATA_HALF
	dnnCrossCorrelation   = 1 // CUDNN_CROSS_CORRELATION
	dnnDefaultMath        = 0 // CUDNN_DEFAULT_MATH: TF32 tensor cores for float data
	dnnTensorOpMath       = 1 // CUDNN_TENSOR_OP_MATH: tensor cores for half data, as PyTorch asks
	dnnFMAMath            = 3 // CUDNN_FMA_MATH: FP32 only
	dnnDescriptorIntCount = 26

	// cudnnConvolutionFwdAlgo_t: the implicit-GEMM algorithms sum each
	// output's products in FP32 as a dot product; the others transform
	// the sums (GEMM over an im2col copy, direct, FFT, Winograd).
	dnnFwdImplicitGEMM        = 0 // CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
	dnnFwdImplicitPrecompGEMM = 1 // CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM
	dnnAnyAlgorithm           = ^uint32(0)
)

// dnnTensor is a 4-D tensor descriptor as cudnnSetTensor4dDescriptor takes
// it — format, data type, N, C, H, W — and the strides (of N, C, H, W, in
// elements) that format gives it in cuDNN.
type dnnTensor struct {
	Format, DataType int
	N, C, H, W       int
	Strides          [4]int
}

// dnnFilterDesc is a filter descriptor as cudnnSetFilter4dDescriptor takes it:
// data type, format, K (output channels), C, H, W. With NHWC the filter is
// [K, H, W, C] in memory (KRSC).
type dnnFilterDesc struct {
	DataType, Format int
	K, C, H, W       int
}

// dnnConv is a convolution descriptor as cudnnSetConvolution2dDescriptor
// takes it (padding, stride, dilation, mode, compute type) and the math
// type cudnnSetConvolutionMathType is given.
type dnnConv struct {
	PadH, PadW, StrideH, StrideW, DilationH, DilationW int
	Mode, ComputeType, Math                            int
}

// dnnDescriptors are the descriptors of one convolution at one batch size:
// what the backend hands cuDNN (cudnn.go builds them from this and nothing
// else, so that a test without a GPU sees what a GPU is given).
type dnnDescriptors struct {
	X, Y dnnTensor
	W    dnnFilterDesc
	Conv dnnConv
	// Allowed are the algorithms each direction (forward, backward data,
	// backward filter) may use, a bit per cuDNN algorithm number
	// (dnnAllowed).
	Allowed [3]uint32
}

// descriptorsOf is the descriptors of convolution g (symmetric padding:
// dnnSupports) over n samples: every tensor and the filter in g's layout
// (NHWC: channels-last, so that cuDNN's tensor-core kernels, which compute
// in NHWC, convert nothing), float data (binary16 with g.Elem F16:
// cuDNN's PSEUDO_HALF configuration), cross-correlation in float, and
// TF32 tensor cores unless strict (FP32).
func descriptorsOf(g compute.ConvGeom, n int, strict bool) dnnDescriptors {
	f := dnnTensorNCHW
	if g.Layout.Last() {
		f = dnnTensorNHWC
	}
	m := dnnDefaultMath
	if strict {
		m = dnnFMAMath
	}
	data := dnnDataFloat // tensors and filter; products and sums in float either way (ComputeType)
	if g.Elem == compute.F16 {
		data, m = dnnDataHalf, dnnTensorOpMath // PSEUDO_HALF_CONFIG on FP16 tensor cores (strict FP32 excludes it: Open)
	}
	return dnnDescriptors{
		X:       dnnTensorOf(f, data, n, g.C, g.H, g.W),
		Y:       dnnTensorOf(f, data, n, g.O, g.OutH(), g.OutW()),
		W:       dnnFilterDesc{DataType: data, Format: f, K: g.O, C: g.C / g.Groups(), H: g.KH, W: g.KW},
		Conv:    dnnConv{PadH: g.PT, PadW: g.PL, StrideH: g.SH, StrideW: g.SW, DilationH: g.DH, DilationW: g.DW, Mode: dnnCrossCorrelation, ComputeType: dnnDataFloat, Math: m},
		Allowed: dnnAllowed(strict),
	}
}

// dnnAllowed is the algorithms each direction may use: any cuDNN's
// heuristics rank, except that in strict FP32 the forward convolution is
// pinned to the implicit-GEMM algorithms. Winograd and FFT algorithms,
// which cuDNN ranks first for many FP32 3×3 convolutions, round the
// transformed sums differently from the CPU's dot products: on an H200
// (2026-11-30) strict FP32 gave 992 of 1000 SNN counts equal to the
// CPU's, below TestGPUFullWidthCountsMatchCPU's 99.5 %. The SNN's counts
// come from the forward pass alone, so the backward directions keep
// every (deterministic) algorithm.
func dnnAllowed(strict bool) [3]uint32 {
	a := [3]uint32{dnnAnyAlgorithm, dnnAnyAlgorithm, dnnAnyAlgorithm}
	if strict {
		a[0] = 1<<dnnFwdImplicitGEMM | 1<<dnnFwdImplicitPrecompGEMM
	}
	return a
}

// dnnTensorOf is a packed float tensor descriptor of format f.
func dnnTensorOf(f, data, n, c, h, w int) dnnTensor {
	t := dnnTensor{Format: f, DataType: data, N: n, C: c, H: h, W: w}
	if f == dnnTensorNHWC {
		t.Strides = [4]int{h * w * c, 1, w * c, c}
	} else {
		t.Strides = [4]int{c * h * w, h * w, w, 1}
	}
	return t
}

// ints is the descriptors as the C side of cudnn.go reads them, in order:
// x (format, data type, n, c, h, w), y (the same), the filter (data type,
// format, k, c, h, w), the convolution (pad h, pad w, stride h, stride w,
// dilation h, dilation w, mode, compute type, math).
func (d dnnDescriptors) ints() [dnnDescriptorIntCount]int {
	return [dnnDescriptorIntCount]int{
		d.X.Format, d.X.DataType, d.X.N, d.X.C, d.X.H, d.X.W,
		d.Y.Format, d.Y.DataType, d.Y.N, d.Y.C, d.Y.H, d.Y.W,
		d.W.DataType, d.W.Format, d.W.K, d.W.C, d.W.H, d.W.W,
		d.Conv.PadH, d.Conv.PadW, d.Conv.StrideH, d.Conv.StrideW, d.Conv.DilationH, d.Conv.DilationW, d.Conv.Mode, d.Conv.ComputeType,
	}
}

// refusal reports whether a cuDNN status says the library refused the
// call's configuration before running anything (bad parameter, not
// supported), in cuDNN major version major: 9 numbers statuses in
// families (2000s, 3000s), 8 and before singly (3, 9).
func refusal(status, major int) bool {
	if major >= 9 {
		return status >= 2000 && status < 4000
	}
	return status == 3 || status == 9
}

// dryDNN stands in for cuDNN in a dry run (Options.DryRunCuDNN): it plans
// every geometry cuDNN is handed and runs nothing, so that the backend
// counts the calls a GPU with cuDNN makes.
type dryDNN struct{}

func (dryDNN) supports(g compute.ConvGeom) bool { return dnnSupports(g) }
func (dryDNN) forward(*Backend, compute.ConvGeom, int, devptr, devptr, devptr) error {
	return nil
}
func (dryDNN) backwardData(*Backend, compute.ConvGeom, int, devptr, devptr, devptr) error {
	return nil
}
func (dryDNN) backwardFilter(*Backend, compute.ConvGeom, int, devptr, devptr, devptr, bool) error {
	return nil
}
func (dryDNN) close() {}

// refusingDNN stands in for cuDNN on the emulated device to test the
// backend's answer to a refusal: it refuses every configuration (NCHW
// ones too, so that those run on im2col and compute real results there)
// as cuDNN refuses one at run time.
type refusingDNN struct{}

func (refusingDNN) supports(g compute.ConvGeom) bool { return dnnSupports(g) }
func (refusingDNN) forward(_ *Backend, g compute.ConvGeom, n int, _, _, _ devptr) error {
	return refused(g, n, "forward")
}
func (refusingDNN) backwardData(_ *Backend, g compute.ConvGeom, n int, _, _, _ devptr) error {
	return refused(g, n, "backward data")
}
func (refusingDNN) backwardFilter(_ *Backend, g compute.ConvGeom, n int, _, _, _ devptr, _ bool) error {
	return refused(g, n, "backward filter")
}
func (refusingDNN) close() {}

func refused(g compute.ConvGeom, n int, dir string) error {
	return &planError{fmt.Sprintf("CUDNN_STATUS_NOT_SUPPORTED (a stand-in's refusal: %s, %s, batch %d)", dir, g.Layout, n)}
}

// planError says that cuDNN could not plan a convolution (no algorithm, an
// unsupported shape): nothing ran, and the backend falls back to im2col.
type planError struct{ msg string }

func (e *planError) Error() string { return e.msg }
