package compute

// Buffer is an array of float32 values in a Backend's memory: host memory
// for the CPU backend, device memory for CUDA. Buffers come from their
// backend's Alloc or Adopt and are passed back to that backend's kernels;
// a kernel never mixes buffers of two backends.
type Buffer interface {
	// Len is the number of float32 values.
	Len() int
	// Slice is the view of values [lo, hi); it shares the buffer's memory.
	Slice(lo, hi int) Buffer
}

// Addressed is a buffer that knows its address in its backend's memory
// (the CUDA backend's): what a captured graph's arguments hold.
type Addressed interface {
	Address() uintptr
}

// Backend is where proxykit's arithmetic runs: it owns the memory of
// activations, parameters and optimizer state, and it runs every kernel the
// ANN and the SNN use. The CPU backend (CPU) is pure Go; compute/cuda holds
// the CUDA backend and its emulated device. Package conformance holds any
// backend to PyTorch's results and to the CPU backend.
//
// Kernels are queued in order and may run asynchronously; they report
// failures through Err. Shapes are the caller's responsibility: kernels
// trust the sizes they are given (nn and spiking check shapes once, when
// they plan a network's buffers).
//
// Host and backend memory meet in few, named places: Adopt, Upload and
// Download (staging a batch, reading [B, K] outputs, syncing parameters for
// a checkpoint or an export), and Sum.
type Backend interface {
	// Name is the backend's name as --device spells it, e.g. "cpu".
	Name() string
	// StepsAtOnce is how many of an SNN's T time steps the simulation
	// hands to each kernel: 1 on the CPU (its kernels skip absent spikes
	// step by step), T on CUDA (each layer over all T·B rows at once).
	StepsAtOnce(timesteps int) int

	// Alloc returns a zeroed buffer of n values.
	Alloc(n int) (Buffer, error)
	// Adopt returns a buffer holding host's values: host's own memory on a
	// backend that computes in host memory, a copy elsewhere. After changing
	// host, call Upload(buffer, host) so that the backend sees the change.
	Adopt(host []float32) (Buffer, error)
	// Free gives a buffer back; it must not be used afterwards.
	Free(b Buffer)
	// Upload copies host values into dst (len(src) == dst.Len()).
	Upload(dst Buffer, src []float32)
	// Download copies src into host memory, waiting for queued work.
	Download(dst []float32, src Buffer) error
	// Copy copies src into dst, of equal length.
	Copy(dst, src Buffer)
	// Fill sets every value of dst to v.
	Fill(dst Buffer, v float32)
	// AddTo adds src into dst, of equal length: dst[i] += src[i] (the join
	// of residual branches, and gradients summed where a value fans out).
	AddTo(dst, src Buffer)
	// Transpose writes each of n matrices of rows×cols values of x
	// transposed into y: y[s, j, i] = x[s, i, j]. An activation's [C, H·W]
	// planes become channels-last [H·W, C] (rows c, cols hw) and back
	// (rows hw, cols c); a convolution's weight [O][C/G, KH·KW] becomes
	// [O][KH·KW, C/G] (n O, rows C/G, cols KH·KW).
	Transpose(n, rows, cols int, x, y Buffer)
	// CopyChannels copies, for each of n samples, the c channels of hw
	// values starting at channel srcOff of src (srcC channels a sample)
	// to channel dstOff of dst (dstC channels a sample): concatenation
	// along channels and its backward pass.
	CopyChannels(n, c, hw int, src Buffer, srcC, srcOff int, dst Buffer, dstC, dstOff int)
	// Sum is the sum of x's values, computed in float64, waiting for
	// queued work.
	Sum(x Buffer) (float64, error)
	// Err waits for queued work and returns the first error since the last
	// call, if any.
	Err() error
	// Close releases the backend's resources.
	Close() error

	// Conv2dForward computes
	// y[s,o,p] = bias[o] + Σ_{c,kh,kw} w[o,c,kh,kw]·x[s,c,pixel(p,kh,kw)]
	// for n samples; bias may be nil. With g.Layout NHWC, x, y, w (and in
	// the backward pass their gradients) are channels-last (ConvGeom).
	Conv2dForward(g ConvGeom, n int, x, w, bias, y Buffer)
	// Conv2dBackward computes dx (overwritten; nil to skip) and, with
	// accumulate, adds into dw and db (nil to skip) the gradients of
	// Conv2dForward given dy; without, writes them (as if they were zeroed
	// first).
	Conv2dBackward(g ConvGeom, n int, x, w, dy, dx, dw, db Buffer, accumulate bool)
	// LinearForward computes y[b,o] = bias[o] + Σ_i x[b,i]·w[o,i] (w is
	// [out, in], bias may be nil). spikes says that x is mostly zeros; a
	// backend may pick another kernel for it, computing the same function.
	LinearForward(n, in, out int, x, w, bias, y Buffer, spikes bool)
	// LinearBackward computes dx = dy·W (overwritten; nil to skip) and,
	// with accumulate, adds dyᵀ·x into dw and Σ_b dy into db (nil to skip);
	// without, writes them (as if they were zeroed first).
	LinearBackward(n, in, out int, x, w, dy, dx, dw, db Buffer, accumulate bool)
	// ReLUForward writes y = max(x, 0); y may be x.
	ReLUForward(x, y Buffer)
	// ReLUBackward writes dx = dy where y > 0, else 0.
	ReLUBackward(y, dy, dx Buffer)
	// ClipForward writes y = min(max(x, 0), ceiling) (ReLU6: ceiling 6;
	// a NaN gives 0, as in ReLUForward); y may be x.
	ClipForward(ceiling float32, x, y Buffer)
	// ClipBackward writes dx = dy where 0 < y < ceiling, else 0 (PyTorch's
	// hardtanh_backward: no gradient at either bound).
	ClipBackward(ceiling float32, y, dy, dx Buffer)
	// ChannelShuffle writes, for each of n samples of c channels of hw
	// values, output channel j = input channel (j mod groups)·(c/groups) +
	// ⌊j/groups⌋: ShuffleNet's channel shuffle, a transpose of the
	// channels seen as [groups, c/groups] (groups divides c). Its inverse,
	// the backward pass, is the shuffle with c/groups groups.
	ChannelShuffle(n, groups, c, hw int, x, y Buffer)
	// MaxPool2dForward writes each window's maximum (padding never wins).
	MaxPool2dForward(g PoolGeom, n int, x, y Buffer)
	// MaxPool2dBackward writes dx: each window's gradient goes to the first
	// maximum of its window in x, as PyTorch routes it.
	// With relu, x is a ReLU's output and dx is then taken through that
	// ReLU as ReLUBackward(x, dx, dx) would (0 where x ≤ 0): the ReLU's
	// gradient fused into the pooling's.
	MaxPool2dBackward(g PoolGeom, n int, x, dy, dx Buffer, relu bool)
	// AvgPool2dForward writes each window's mean; with countPad the divisor
	// counts padded positions (PyTorch's count_include_pad).
	AvgPool2dForward(g PoolGeom, n int, countPad bool, x, y Buffer)
	// AvgPool2dBackward writes dx, each gradient spread over its window.
	AvgPool2dBackward(g PoolGeom, n int, countPad bool, dy, dx Buffer)
	// GlobalAvgPoolForward averages each of nc planes of hw values.
	GlobalAvgPoolForward(nc, hw int, x, y Buffer)
	// GlobalAvgPoolBackward writes dx[i, :] = dy[i]/hw.
	GlobalAvgPoolBackward(nc, hw int, dy, dx Buffer)
	// Pad2dForward pads each of nc planes by g's border, filled with g.Value.
	Pad2dForward(g PadGeom, nc int, x, y Buffer)
	// Pad2dBackward writes dx, the gradient of the unpadded interior.
	Pad2dBackward(g PadGeom, nc int, dy, dx Buffer)
	// SoftmaxForward applies softmax (log-softmax with log) to n rows of k.
	SoftmaxForward(n, k int, log bool, x, y Buffer)
	// SoftmaxBackward writes dx from the forward output y and dy.
	SoftmaxBackward(n, k int, log bool, y, dy, dx Buffer)

	// BatchNormStats computes, for each of groups groups of n samples
	// (x is [groups·n, c, hw], or [groups·n, hw, c] with layout NHWC),
	// each channel's mean and biased variance into mean and variance,
	// each [groups, c].
	BatchNormStats(groups, n, c, hw int, layout Layout, x, mean, variance Buffer)
	// BatchNormUpdateRunning folds groups batch statistics into the running
	// ones, one group after the other: r = (1−momentum)·r + momentum·batch,
	// the variance unbiased with count/(count−1), as PyTorch does.
	BatchNormUpdateRunning(groups, c, count int, momentum float32, mean, variance, runMean, runVar Buffer)
	// BatchNormScaleShift writes the per-channel affine map that normalises
	// with (mean, variance): scale = γ/√(var+eps), shift = β − mean·scale,
	// for groups rows of c channels.
	BatchNormScaleShift(groups, c int, eps float32, gamma, beta, mean, variance, scale, shift Buffer)
	// ChannelAffine writes y = x·scale[g,c] + shift[g,c] for groups groups of
	// n samples of c channels × hw (laid out as layout says), each operation
	// rounded; scale nil is 1 (a bias, y = x + shift); with relu, y is then
	// max(y, 0) as ReLUForward computes it (a ReLU fused into the map). y
	// may be x.
	ChannelAffine(groups, n, c, hw int, layout Layout, x, scale, shift, y Buffer, relu bool)
	// BatchNormBackward computes dx (overwritten; nil to skip) and adds
	// dγ and dβ (with accumulate; without, writes them), for the
	// statistics (mean, variance) the forward pass normalised with;
	// batchStats says they were x's own batch statistics. x, dy and dx are
	// laid out as layout says.
	BatchNormBackward(n, c, hw int, layout Layout, batchStats bool, eps float32, gamma, mean, variance, x, dy, dx, dgamma, dbeta Buffer, accumulate bool)

	// IF advances integrate-and-fire neurons over a.Steps time steps.
	IF(a IFArgs)
	// IFRecord is IF keeping what backpropagation through time needs: h
	// receives each step's potential before the spike and the reset,
	// [Steps, N]. It takes no Pool and no Start.
	IFRecord(a IFArgs, h Buffer)
	// IFSurrogateGrad is the IF recurrence's backward pass through time,
	// with a surrogate gradient for the spike (IFGradArgs).
	IFSurrogateGrad(a IFGradArgs)
	// ProxyLossGrad writes the gradient of the proxy loss mean((counts −
	// onehot(labels))²) over n×k: dy = 2(counts − onehot)/(n·k). labels
	// holds class indices as floats.
	ProxyLossGrad(n, k int, counts, labels, dy Buffer)
	// Adam applies one step of PyTorch's Adam with L2 weight decay to p.
	Adam(a AdamArgs, p, grad, m, v Buffer)
}

// PadGeom is a constant 2-D padding of h×w planes.
type PadGeom struct {
	H, W           int
	PT, PL, PB, PR int
	Value          float32
}

// OutH is the padded height.
func (g PadGeom) OutH() int { return g.H + g.PT + g.PB }

// OutW is the padded width.
func (g PadGeom) OutW() int { return g.W + g.PL + g.PR }

// IFArgs describe one IF kernel call: N neurons over Steps time steps
// (dt = 1). At each step v += u; a neuron spikes (1) where v >= Threshold
// and its potential is then set to Reset (hard reset); else its spike is 0.
type IFArgs struct {
	Steps, N int
	// In is the input current, [Steps, N]; with Constant, [N] and the same
	// at every step (the static input layer's output).
	In       Buffer
	Constant bool
	// Scale and Shift, if not nil, map the input first: u = in·Scale[g,c] +
	// Shift[g,c] (a BatchNorm fused into the IF layer), where c = (j/HW) mod
	// C for neuron j (j mod C with Layout NHWC) and g is the step with
	// PerStep, else 0. Shift without Scale adds a bias, u = in + Shift[g,c]
	// (the producing layer's bias fused into the IF layer); Scale needs
	// Shift.
	Scale, Shift Buffer
	PerStep      bool
	C, HW        int
	// Layout is how each sample's neurons are laid out as C channels of
	// HW: NCHW (or "") or NHWC. It places a neuron's channel and, with
	// Pool, its window (Pool's own Layout is not read).
	Layout Layout
	// V is the membrane potential, [N], carried from call to call.
	V Buffer
	// Spikes receives the spikes, [Steps, N].
	Spikes Buffer
	// Counts, if not nil, accumulates each neuron's spikes, [N].
	Counts Buffer
	// Threshold and Reset are v_th and v_reset.
	Threshold, Reset float32
	// Start says the potentials start at Reset and the counts at 0: V's
	// and Counts' contents are not read (a simulation's first chunk of
	// steps), as if they had been filled so.
	Start bool
	// Pool, if not nil, max-pools the spikes (their OR) over windows that
	// tile each of the N/(C·H·W) samples' C planes of H×W neurons exactly
	// (PoolFits): Spikes then receives only the pooled spikes, [Steps,
	// N/(KH·KW)], what MaxPool2dForward of the spikes would write, in
	// Layout.
	Pool *PoolGeom
}

// PoolFits reports whether a max-pooling can be computed inside the IF
// kernel (IFArgs.Pool): windows that tile the planes exactly — as large as
// their stride, no padding, no ceil mode, H and W multiples of the window —
// of at most 16 neurons.
func PoolFits(g PoolGeom) bool {
	return g.KH == g.SH && g.KW == g.SW && g.PT == 0 && g.PL == 0 && g.PB == 0 && g.PR == 0 && !g.Ceil &&
		g.KH > 0 && g.KW > 0 && g.KH <= 16 && g.KW <= 16 && g.H%g.KH == 0 && g.W%g.KW == 0 && g.KH*g.KW <= 16
}

// AdamArgs are one Adam step's settings. Step counts from 1.
type AdamArgs struct {
	Step                               int
	LR, Beta1, Beta2, Eps, WeightDecay float64
}

// Elem is how a buffer stores its values.
type Elem uint8

const (
	// F32 is float32: every buffer's type unless a backend says otherwise.
	F32 Elem = iota
	// F16 is IEEE binary16 (exact for spikes, 0 and 1): values are rounded
	// to nearest, ties to even, when stored, and read back as float32.
	F16
	// BF16 is bfloat16, which the time model prices; no backend stores it
	// yet.
	BF16
)

// Bytes is the size of one element.
func (e Elem) Bytes() int64 {
	if e == F32 {
		return 4
	}
	return 2
}

// String names the type: f32, f16 or bf16.
func (e Elem) String() string {
	switch e {
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	}
	return "f32"
}

// Typed is a buffer that says how it stores its values; a buffer that is
// not Typed stores float32.
type Typed interface {
	Elem() Elem
}

// ElemOf is b's element type: F32 unless b says otherwise (nil is F32).
func ElemOf(b Buffer) Elem {
	if t, ok := b.(Typed); ok {
		return t.Elem()
	}
	return F32
}

// HalfStore is a backend that can store values in 16 bits (the CUDA
// backend and its emulated device). Its kernels take the element type of
// each operand from the operand's buffer (ElemOf): the IF kernels read
// F16 currents and write F16 spikes, Conv2dForward takes x, w and y in
// F16 together (FP32 products and sums, y rounded once, as cuDNN's
// PSEUDO_HALF configuration computes), BatchNormStats (and Sharded's
// BatchNormSums) read F16 values. Any other kernel panics on an F16
// operand: a program's lowering hands F16 operands to these kernels only.
type HalfStore interface {
	// AsElem is b's memory seen as values of type e: 4·b.Len()/e.Bytes()
	// of them (b must be a float32 buffer).
	AsElem(b Buffer, e Elem) Buffer
	// Convert writes x's values into y, each rounded to y's type (float32
	// to F16 rounds to nearest, ties to even; F16 to float32 is exact).
	// x and y have the same length.
	Convert(x, y Buffer)
}
