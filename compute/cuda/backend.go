package cuda

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"

	"github.com/proxykit/proxykit/compute"
)

// Options configure the CUDA backend.
type Options struct {
	// Emulate runs the kernels on the emulated device (the host CPU)
	// instead of a GPU.
	Emulate bool
	// StrictFP32 computes matrix products (cuBLAS GEMMs and cuDNN
	// convolutions) in full FP32. By default the GPU uses TF32 tensor
	// cores for both (PyTorch ≥ 1.12 uses TF32 for cuDNN convolutions
	// only, FP32 for matrix products); the emulator always computes in FP32.
	StrictFP32 bool
	// NoCuDNN uses proxykit's own im2col + cuBLAS convolutions even where
	// cuDNN is present.
	NoCuDNN bool
	// Graphs captures each repeated piece of work the runners hand the
	// backend (program.Capturer: a training step, an inference batch) as a
	// CUDA graph the second time it runs, and replays the graph from the
	// third on; on the GPU all work then goes to a stream of the device's
	// own. Without it every kernel is launched one by one.
	Graphs bool
	// WorkspaceBytes caps the im2col workspace of a convolution (the
	// samples of a batch are processed in chunks that fit). 0 means 512 MB
	// on a GPU and 1 MB on the emulator, whose tests should see chunking.
	WorkspaceBytes int64
	// DNNWorkspaceBytes caps the workspace of a cuDNN convolution. 0 means
	// three quarters of the device memory free when the algorithm is
	// chosen (at least 512 MB): on an H100 cuDNN's fast tensor-core
	// kernels for the SNN's convolutions over T·B rows need more than a
	// fixed 512 MB, and with 512 MB it picked a kernel 60 times slower.
	DNNWorkspaceBytes int64
	// Device is the GPU's ordinal.
	Device int
	// DryRun (emulated device only) counts every launch, library call and
	// copy (Counters) without running any: the traffic of a network too
	// large to emulate quickly, in an instant. Results are meaningless.
	DryRun bool
	// DryRunCuDNN (with DryRun) counts convolutions as the cuDNN calls a
	// GPU with cuDNN makes instead of the emulator's im2col kernels (unless
	// NoCuDNN): the launches of the GPU's step, for a time model.
	DryRunCuDNN bool
	// ChannelsLast asks the runners for programs whose values around
	// convolutions are channels-last (lower.LayoutPreferrer), so that
	// cuDNN, handed NHWC tensors and filters, converts nothing. Off by
	// default until a GPU run confirms it; the emulated device computes
	// the NCHW program's bits either way.
	ChannelsLast bool
	// HalfSpikes asks the runners for programs whose SNN convolutions and
	// linear layers read 16-bit spikes and write 16-bit currents
	// (lower.HalfPreferrer): FP16 tensor cores, half the bytes around
	// them, weights and currents rounded to binary16 (a change of results;
	// Precision says so). Not with StrictFP32.
	HalfSpikes bool
	// Notices receives the one-line notices of what the backend changed
	// on its own (a convolution cuDNN refused channels-last, run in NCHW
	// instead); nil: standard error.
	Notices io.Writer
}

// Backend is the CUDA implementation of compute.Backend. Its kernels are
// queued on the device's default stream in order; errors surface at the
// next Download, Sum or Err. A Backend is used by one goroutine at a time.
//
// Open makes one. A nil or zero Backend has no device: its methods that
// return an error refuse it, its descriptions say so, and its kernels,
// Free, Upload and Copy must not be called on it. Like every
// compute.Backend's, its kernels trust the sizes they are given (the
// caller checks them: nn and program plan them once) and the buffers must
// be its own; unlike the CPU backend's, they do not check them.
type Backend struct {
	dev     device
	opt     Options
	name    string
	kernels map[string]int
	err     error
	pool    map[int64][]devptr // freed allocations by size, for reuse
	inUse   int64
	peak    int64
	work    map[string]*buffer // workspaces by use, grown on demand
	sumOut  *buffer
	dnn     convolutions // cuDNN (or a dry run's stand-in); nil: im2col
	// noDNN are the convolution geometries and directions cuDNN could not
	// plan (they run on im2col), with the reason, reported by Describe.
	noDNN map[dnnKey]string
	count compute.Traffic
	// log keeps each launch while logging is set (LogLaunches)
	log     []compute.Launch
	logging bool
	lib     ncclLib // NCCL, once loaded (nccl.go)
	// graphs are the captured pieces of work by key (Replay); nil: seen
	// once, not captured yet. capture collects what a capture records.
	graphs  map[any]*captured
	capture *[]compute.Launch
	// noticed are the notices given (each once)
	noticed map[string]bool
}

// captured is a piece of work captured as a graph, with the launches it
// records (counted at every replay).
type captured struct {
	g        graph
	launches []compute.Launch
	direct   bool // it cannot be captured: it runs directly
	why      string
}

// Traffic implements compute.Counting.
func (be *Backend) Traffic() compute.Traffic { return be.count.Clone() }

// ResetTraffic implements compute.Counting; it empties the launch log.
func (be *Backend) ResetTraffic() {
	be.count = compute.NewTraffic()
	be.log = nil
}

// LogLaunches implements compute.LaunchLogger.
func (be *Backend) LogLaunches(on bool) { be.logging = on }

// LaunchLog implements compute.LaunchLogger.
func (be *Backend) LaunchLog() []compute.Launch { return slices.Clone(be.log) }

// record counts one launch, and logs it while logging; while capturing,
// the capture keeps it, counted at each replay.
func (be *Backend) record(l compute.Launch) {
	if be.capture != nil {
		*be.capture = append(*be.capture, l)
		return
	}
	be.count.Add(l)
	if be.logging {
		be.log = append(be.log, l)
	}
}

// math is the arithmetic the backend asks of cuBLAS and cuDNN.
func (be *Backend) math() compute.Math { return be.opt.math() }

// math is the arithmetic a backend opened with opt asks of cuBLAS and
// cuDNN.
func (opt Options) math() compute.Math {
	if opt.StrictFP32 {
		return compute.MathFP32
	}
	return compute.MathTF32
}

// im2colWorkspace is the cap of the im2col workspace of a backend opened
// with opt (Options.WorkspaceBytes: 512 MB on a GPU and 1 MB on the
// emulated device unless set).
func (opt Options) im2colWorkspace() int64 {
	switch {
	case opt.WorkspaceBytes != 0:
		return opt.WorkspaceBytes
	case opt.Emulate:
		return 1 << 20
	}
	return 512 << 20
}

// ConvKernels names the kernels that implement convolutions where cuDNN
// does not (the emulated device, asymmetric padding): on a GPU with cuDNN
// that traffic is the library's.
func ConvKernels(name string) bool {
	switch name {
	case "pk_im2col", "pk_col2im", "pk_ocp_to_nchw", "pk_nchw_to_ocp":
		return true
	}
	return false
}

// traffic is what one launch reads and writes, in bytes.
type traffic struct{ read, written int64 }

// rw is a launch's traffic: r float32 values read, w written.
func rw(r, w int64) traffic { return traffic{4 * r, 4 * w} }

// counted records a launch of kernel name (or a copy) with its traffic.
func (be *Backend) counted(name string, t traffic) {
	be.record(compute.Launch{Kernel: name, Read: t.read, Written: t.written})
}

// gemm queues a GEMM (the contract of compute.Sgemm), counted.
func (be *Backend) gemm(transA, transB bool, m, n, k int, alpha float32, a devptr, lda int, b devptr, ldb int, beta float32, c devptr, ldc int) {
	be.record(gemmLaunch(m, n, k, be.math(), compute.F32))
	be.fail(be.dev.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
}

// gemmHalf queues a GEMM of binary16 matrices (the device's gemmHalf),
// counted.
func (be *Backend) gemmHalf(transA, transB bool, m, n, k int, a devptr, lda int, b devptr, ldb int, c devptr, ldc int) {
	be.record(gemmLaunch(m, n, k, compute.MathFP16, compute.F16))
	be.fail(be.dev.gemmHalf(transA, transB, m, n, k, a, lda, b, ldb, c, ldc))
}

// gemmLaunch is the record of a cuBLAS GEMM C[m, n] = A[m, k]·B[k, n] of
// values of type e: its operands read, its result written (a result it
// adds into is not read again), its multiply-adds.
func gemmLaunch(m, n, k int, math compute.Math, e compute.Elem) compute.Launch {
	M, N, K, b := int64(m), int64(n), int64(k), e.Bytes()
	return compute.Launch{Kernel: compute.CallGEMM, Library: true, Read: b * (M*K + K*N), Written: b * M * N,
		FLOPs: 2 * M * N * K, M: M, N: N, K: K, Math: math}
}

// kernelNames are every kernel of kernels.cu that the backend launches.
var kernelNames = []string{"pk_fill", "pk_add_to", "pk_convert", "pk_copy_channels", "pk_sum", "pk_im2col", "pk_col2im", "pk_ocp_to_nchw", "pk_nchw_to_ocp",
	"pk_conv_bias_grad", "pk_add_bias", "pk_col_sum", "pk_relu", "pk_relu_backward", "pk_clip",
	"pk_clip_backward", "pk_channel_shuffle", "pk_maxpool",
	"pk_maxpool_backward", "pk_avgpool", "pk_avgpool_backward", "pk_gap", "pk_gap_backward", "pk_pad",
	"pk_pad_backward", "pk_softmax", "pk_softmax_backward", "pk_bn_stats", "pk_bn_sums", "pk_bn_divide", "pk_bn_update_running",
	"pk_bn_scale_shift", "pk_channel_affine", "pk_bn_backward_reduce", "pk_bn_backward_dx", "pk_if", "pk_if_pool",
	"pk_proxy_loss_grad", "pk_adam", "pk_transpose",
	"pk_if_record", "pk_if_surrogate_grad"} // surrogate.go

// Open starts the CUDA backend on a GPU (a binary built with -tags cuda) or
// on the emulated device.
func Open(opt Options) (*Backend, error) {
	var dev device
	name := "cuda"
	if opt.DryRun && !opt.Emulate {
		return nil, fmt.Errorf("a dry run (counting only) is for the emulated device")
	}
	if opt.HalfSpikes && opt.StrictFP32 {
		return nil, fmt.Errorf("16-bit spikes and currents and strict FP32 arithmetic exclude each other: choose one precision")
	}
	if opt.Emulate {
		dev, name = emuDevice{dry: opt.DryRun, rec: &emuRecording{}}, "cuda-emu"
	} else {
		d, err := openGPU(opt)
		if err != nil {
			return nil, err
		}
		dev = d
	}
	opt.WorkspaceBytes = opt.im2colWorkspace()
	if opt.DryRunCuDNN && !opt.DryRun {
		return nil, fmt.Errorf("counting cuDNN's calls without running them is for a dry run")
	}
	be := &Backend{dev: dev, opt: opt, name: name, kernels: map[string]int{}, pool: map[int64][]devptr{},
		work: map[string]*buffer{}, noDNN: map[dnnKey]string{}, noticed: map[string]bool{}}
	be.ResetTraffic()
	for _, k := range kernelNames {
		i, err := dev.kernelIndex(k)
		if err != nil {
			dev.close()
			return nil, err
		}
		be.kernels[k] = i
	}
	out, err := be.Alloc(2)
	if err != nil {
		dev.close()
		return nil, err
	}
	be.sumOut = out.(*buffer)
	if g, ok := dev.(dnnDevice); ok && !opt.NoCuDNN {
		if d := g.cudnn(); d != nil {
			be.dnn = d
		}
	}
	if opt.DryRunCuDNN && !opt.NoCuDNN {
		be.dnn = dryDNN{}
	}
	return be, nil
}

// VisibleGPUs counts the GPUs this process may use (the driver's count,
// after CUDA_VISIBLE_DEVICES); a build without -tags cuda says it has none.
func VisibleGPUs() (int, error) { return visibleGPUs() }

// errNoDevice is the error of a nil or zero Backend's methods.
var errNoDevice = errors.New("cuda: a backend without a device (nil or zero: make one with Open)")

// ready refuses a nil or zero Backend.
func (be *Backend) ready() error {
	if be == nil || be.dev == nil {
		return errNoDevice
	}
	return nil
}

// Describe names the device and how it computes, for logs.
func (be *Backend) Describe() string {
	if be.dev == nil {
		return errNoDevice.Error()
	}
	s := be.dev.name()
	if !be.opt.Emulate {
		s += ", " + be.products()
		if st, ok := be.dev.(interface{ cudnnStatus() string }); ok && be.dnn != nil {
			s += ", convolutions by " + st.cudnnStatus()
			for k, why := range be.noDNN {
				other := "im2col"
				if k.g.Layout.Last() {
					other = "NCHW"
				}
				s += fmt.Sprintf(" (%s for %dx%d→%d %s: %s)", other, k.g.H, k.g.W, k.g.O, dnnDirection(k.kind), why)
			}
		} else {
			s += ", convolutions by im2col and cuBLAS"
			if ok && !be.opt.NoCuDNN {
				s += " (" + st.cudnnStatus() + ")"
			}
		}
	}
	return s
}

// products names the arithmetic of matrix products: TF32 or FP32.
func (be *Backend) products() string {
	if be.opt.StrictFP32 {
		return "FP32 matrix products"
	}
	return "TF32 matrix products"
}

// Precision names what of the backend's arithmetic changes results: the
// matrix products' (TF32 or FP32), the convolutions' (cuDNN or im2col)
// and their layout (channels-last: cuDNN's algorithms differ); the
// emulated device computes in FP32 on the host, the same bits in either
// layout. Ranks of a data-parallel run must compute alike.
func (be *Backend) Precision() string {
	if be.opt.Emulate {
		if be.opt.HalfSpikes {
			return "emulated device, 16-bit spikes and currents"
		}
		return "emulated device"
	}
	last := ""
	if be.opt.ChannelsLast {
		last = ", channels-last"
	}
	if be.opt.HalfSpikes {
		last += ", 16-bit spikes and currents"
	}
	if be.dnn != nil {
		return be.products() + ", cuDNN convolutions" + last
	}
	return be.products() + ", im2col convolutions" + last
}

// buffer is device memory: an allocation or a view of one, of float32
// values or, seen through AsElem, of binary16 ones.
type buffer struct {
	ptr  devptr
	n    int
	root *allocation
	elem compute.Elem
}

type allocation struct {
	ptr   devptr
	bytes int64
	freed bool
}

// Len implements compute.Buffer.
func (b *buffer) Len() int { return b.n }

// Slice implements compute.Buffer.
func (b *buffer) Slice(lo, hi int) compute.Buffer {
	if lo < 0 || hi > b.n || lo > hi {
		panic(fmt.Sprintf("cuda: slice [%d:%d] of a buffer of %d", lo, hi, b.n))
	}
	return &buffer{ptr: b.ptr + devptr(int64(lo)*b.elem.Bytes()), n: hi - lo, root: b.root, elem: b.elem}
}

// Elem implements compute.Typed.
func (b *buffer) Elem() compute.Elem { return b.elem }

// AsElem implements compute.HalfStore: b's memory as binary16 values (F16;
// F32 gives b). Other types, and a buffer that is not a float32 one of
// this backend's, panic: a program's lowering asks for F16 only.
func (be *Backend) AsElem(b compute.Buffer, e compute.Elem) compute.Buffer {
	db, ok := b.(*buffer)
	if !ok || db.elem != compute.F32 || (e != compute.F32 && e != compute.F16) {
		panic(fmt.Sprintf("cuda: %s values of a %T buffer of %s", e, b, compute.ElemOf(b)))
	}
	if e == compute.F32 {
		return db
	}
	return &buffer{ptr: db.ptr, n: 2 * db.n, root: db.root, elem: e}
}

// Convert implements compute.HalfStore: pk_convert.
func (be *Backend) Convert(x, y compute.Buffer) {
	if x.Len() != y.Len() {
		panic(fmt.Sprintf("cuda: converting %d values into %d", x.Len(), y.Len()))
	}
	ex, ey := compute.ElemOf(x), compute.ElemOf(y)
	n := int64(x.Len())
	be.launch1d("pk_convert", n, traffic{n * ex.Bytes(), n * ey.Bytes()}, anyPtr(x), half(ex), anyPtr(y), half(ey), n)
}

// half is a kernel's flag for an operand of type e: 1 for F16.
func half(e compute.Elem) int32 { return b2i(e == compute.F16) }

// ptr is a float32 buffer's device address (0 for nil): an F16 buffer
// handed to a kernel that takes float32 only panics (a program's lowering
// gives F16 operands only to the kernels that take them, which read them
// through anyPtr).
func ptr(b compute.Buffer) devptr {
	if compute.ElemOf(b) != compute.F32 {
		panic(fmt.Sprintf("cuda: an %s buffer passed to a kernel that takes float32 only", compute.ElemOf(b)))
	}
	return anyPtr(b)
}

// anyPtr is a buffer's device address (0 for nil), whatever its type.
func anyPtr(b compute.Buffer) devptr {
	if b == nil {
		return 0
	}
	db, ok := b.(*buffer)
	if !ok {
		panic(fmt.Sprintf("cuda: a %T buffer passed to the CUDA backend", b))
	}
	if db.root.freed {
		panic("cuda: a freed buffer passed to the CUDA backend")
	}
	return db.ptr
}

func (be *Backend) fail(err error) {
	if err != nil && be.err == nil {
		be.err = err
	}
}

// Name implements compute.Backend: "cuda" or "cuda-emu".
func (be *Backend) Name() string { return be.name }

// StepsAtOnce implements compute.Backend: all T steps in each kernel.
func (be *Backend) StepsAtOnce(timesteps int) int { return timesteps }

// Alloc implements compute.Backend.
func (be *Backend) Alloc(n int) (compute.Buffer, error) {
	if err := be.ready(); err != nil {
		return nil, err
	}
	if n < 0 || n > compute.MaxValues {
		return nil, fmt.Errorf("%s: cannot allocate %d values", be.name, n)
	}
	bytes := int64(max(n, 1)) * 4
	var p devptr
	if free := be.pool[bytes]; len(free) > 0 {
		p = free[len(free)-1]
		be.pool[bytes] = free[:len(free)-1]
	} else {
		var err error
		if p, err = be.dev.alloc(bytes); err != nil {
			// give the cached blocks back and try once more
			be.releasePool()
			if p, err = be.dev.alloc(bytes); err != nil {
				return nil, be.outOfMemory(bytes, err)
			}
		}
	}
	b := &buffer{ptr: p, n: n, root: &allocation{ptr: p, bytes: bytes}}
	be.inUse += bytes
	be.peak = max(be.peak, be.inUse)
	be.Fill(b, 0)
	return b, nil
}

func (be *Backend) outOfMemory(bytes int64, err error) error {
	free, total := be.dev.memInfo()
	if total > 0 {
		return fmt.Errorf("%s: out of GPU memory: %d MB asked for, %d MB free of %d MB, %d MB held by proxykit (a smaller batch needs less): %w",
			be.name, bytes>>20, free>>20, total>>20, be.inUse>>20, err)
	}
	return err
}

func (be *Backend) releasePool() {
	for size, ps := range be.pool {
		for _, p := range ps {
			be.dev.free(p)
		}
		delete(be.pool, size)
	}
}

// Adopt implements compute.Backend: a device copy of host.
func (be *Backend) Adopt(host []float32) (compute.Buffer, error) {
	if err := be.ready(); err != nil {
		return nil, err
	}
	b, err := be.Alloc(len(host))
	if err != nil {
		return nil, err
	}
	be.Upload(b, host)
	return b, nil
}

// Free implements compute.Backend. The memory goes back to the backend's
// pool, for the next allocation of its size.
func (be *Backend) Free(b compute.Buffer) {
	db, ok := b.(*buffer)
	if !ok || db.root.freed || db.ptr != db.root.ptr {
		return
	}
	be.dropGraphs() // they may hold the address, which the pool reuses
	db.root.freed = true
	be.inUse -= db.root.bytes
	be.pool[db.root.bytes] = append(be.pool[db.root.bytes], db.root.ptr)
}

// Upload implements compute.Backend.
func (be *Backend) Upload(dst compute.Buffer, src []float32) {
	if len(src) != dst.Len() {
		panic(fmt.Sprintf("cuda: uploading %d values into a buffer of %d", len(src), dst.Len()))
	}
	if len(src) > 0 {
		be.fail(be.dev.htod(ptr(dst), src))
	}
}

// Download implements compute.Backend.
func (be *Backend) Download(dst []float32, src compute.Buffer) error {
	if err := be.ready(); err != nil {
		return err
	}
	if src == nil {
		return fmt.Errorf("cuda: downloading no buffer (nil)")
	}
	if len(dst) != src.Len() {
		panic(fmt.Sprintf("cuda: downloading a buffer of %d into %d values", src.Len(), len(dst)))
	}
	if len(dst) > 0 {
		be.fail(be.dev.dtoh(dst, ptr(src)))
	}
	return be.Err()
}

// Copy implements compute.Backend.
func (be *Backend) Copy(dst, src compute.Buffer) {
	if dst.Len() != src.Len() {
		panic(fmt.Sprintf("cuda: copying %d values into %d", src.Len(), dst.Len()))
	}
	if dst.Len() > 0 {
		be.counted("copy", rw(int64(dst.Len()), int64(dst.Len())))
		be.fail(be.dev.dtod(ptr(dst), ptr(src), int64(dst.Len())*4))
	}
}

// AddTo implements compute.Backend.
func (be *Backend) AddTo(dst, src compute.Buffer) {
	if dst.Len() != src.Len() {
		panic(fmt.Sprintf("cuda: adding %d values into %d", src.Len(), dst.Len()))
	}
	be.launch1d("pk_add_to", int64(dst.Len()), rw(2*int64(dst.Len()), int64(dst.Len())), ptr(dst), ptr(src), int64(dst.Len()))
}

// CopyChannels implements compute.Backend.
func (be *Backend) CopyChannels(n, c, hw int, src compute.Buffer, srcC, srcOff int, dst compute.Buffer, dstC, dstOff int) {
	be.launch1d("pk_copy_channels", int64(n)*int64(c)*int64(hw), rw(int64(n)*int64(c)*int64(hw), int64(n)*int64(c)*int64(hw)), ptr(src), ptr(dst), int64(n), int32(c), int64(hw),
		int32(srcC), int32(srcOff), int32(dstC), int32(dstOff))
}

// Fill implements compute.Backend.
func (be *Backend) Fill(dst compute.Buffer, v float32) {
	be.launch1d("pk_fill", int64(dst.Len()), rw(0, int64(dst.Len())), ptr(dst), int64(dst.Len()), v)
}

// Sum implements compute.Backend.
func (be *Backend) Sum(x compute.Buffer) (float64, error) {
	if err := be.ready(); err != nil {
		return 0, err
	}
	if x == nil {
		return 0, fmt.Errorf("cuda: the sum of no buffer (nil)")
	}
	be.launchBlocks("pk_sum", 1, rw(int64(x.Len()), 2), ptr(x), int64(x.Len()), be.sumOut.ptr)
	var out [2]float32
	if err := be.Download(out[:], be.sumOut); err != nil {
		return 0, err
	}
	return float64(out[0]) + float64(out[1]), nil
}

// Err implements compute.Backend.
func (be *Backend) Err() error {
	if err := be.ready(); err != nil {
		return err
	}
	be.fail(be.dev.sync())
	err := be.err
	be.err = nil
	return err
}

// Close implements compute.Backend.
func (be *Backend) Close() error {
	if err := be.ready(); err != nil {
		return err
	}
	err := be.Err()
	be.releasePool()
	be.dropGraphs()
	if be.dnn != nil {
		be.dnn.close()
	}
	if cerr := be.dev.close(); err == nil {
		err = cerr
	}
	return err
}

// DeviceMemory reports the device memory proxykit holds now and at most,
// and the device's total (0 on the emulator).
func (be *Backend) DeviceMemory() (inUse, peak, total int64) {
	if be.dev == nil {
		return 0, 0, 0
	}
	_, total = be.dev.memInfo()
	return be.inUse, be.peak, total
}

// ResetPeak starts measuring the peak of DeviceMemory anew, from now.
func (be *Backend) ResetPeak() { be.peak = be.inUse }

// Threads per block of the elementwise kernels, and the most blocks they
// launch (grid-stride loops cover the rest).
const (
	blockSize     = 256
	maxBlocks     = 8192
	reduceThreads = 256 // REDUCE_THREADS in kernels.cu
)

// launch1d queues an elementwise kernel over n items, with its traffic.
func (be *Backend) launch1d(name string, n int64, t traffic, args ...any) {
	if n <= 0 {
		return
	}
	be.counted(name, t)
	blocks := min((n+blockSize-1)/blockSize, maxBlocks)
	be.fail(be.dev.launch(be.kernels[name], dim3{uint32(blocks), 1, 1}, dim3{blockSize, 1, 1}, argsOf(args...)))
}

// launchBlocks queues a reduction kernel: one block of reduceThreads per
// item, with its traffic.
func (be *Backend) launchBlocks(name string, blocks int, t traffic, args ...any) {
	if blocks <= 0 {
		return
	}
	be.counted(name, t)
	be.fail(be.dev.launch(be.kernels[name], dim3{uint32(blocks), 1, 1}, dim3{reduceThreads, 1, 1}, argsOf(args...)))
}

// workspace returns a device buffer of at least n values kept for a use.
func (be *Backend) workspace(use string, n int) (*buffer, error) {
	if w := be.work[use]; w != nil && w.n >= n {
		return w, nil
	}
	if w := be.work[use]; w != nil {
		be.Free(w)
	}
	b, err := be.Alloc(n)
	if err != nil {
		return nil, fmt.Errorf("%s workspace: %w", use, err)
	}
	be.work[use] = b.(*buffer)
	return be.work[use], nil
}

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// --- convolution ---

// convChunk is how many samples of a convolution one im2col pass takes
// with a workspace of at most workspace bytes.
func convChunk(g compute.ConvGeom, n int, workspace int64) int {
	per := int64(g.PatchLen()) * int64(g.OutH()*g.OutW()) * 4
	return int(max(1, min(int64(n), workspace/max(per, 1))))
}

// convWorkspaces returns the samples per im2col pass and the two
// workspaces of an im2col convolution: the patches [K, chunk·P] and the
// GEMM side [O, chunk·P]. On failure it records the error and returns false.
func (be *Backend) convWorkspaces(g compute.ConvGeom, n int) (ns int, col, gemm *buffer, ok bool) {
	P := g.OutH() * g.OutW()
	ns = convChunk(g, n, be.opt.WorkspaceBytes)
	col, err := be.workspace("im2col", g.PatchLen()*ns*P)
	if err == nil {
		gemm, err = be.workspace("gemm", g.O*ns*P)
	}
	if err != nil {
		be.fail(err)
		return 0, nil, nil, false
	}
	return ns, col, gemm, true
}

func (be *Backend) im2col(g compute.ConvGeom, x devptr, col *buffer, ns int) {
	v := int64(g.PatchLen()) * int64(ns) * int64(g.OutH()*g.OutW())
	be.launch1d("pk_im2col", v, traffic{v * g.Elem.Bytes(), 4 * v}, x, half(g.Elem), col.ptr,
		int32(g.C), int32(g.H), int32(g.W), int32(g.KH), int32(g.KW), int32(g.SH), int32(g.SW), int32(g.PT), int32(g.PL),
		int32(g.DH), int32(g.DW), int32(g.OutH()), int32(g.OutW()), int64(ns), b2i(g.Layout.Last()))
}

// Conv2dForward implements compute.Backend: cuDNN where it is loaded and
// the padding symmetric, else im2col, a GEMM per chunk of samples
// ([O, K]·[K, chunk·P]) and a layout change back to NCHW (or NHWC) with
// the bias. A channels-last convolution cuDNN refused runs in NCHW,
// transposed around (convForwardNCHW); on im2col its weight is transposed
// to [O, C/G, KH, KW] first, so that the GEMMs sum as in NCHW.
//
// With g.Elem F16 (x, w and y binary16), cuDNN runs it with FP32 products
// and sums (PSEUDO_HALF); im2col reads x's binary16 values into float32
// columns, multiplies them by a float32 copy of w and rounds y once.
func (be *Backend) Conv2dForward(g compute.ConvGeom, n int, x, w, bias, y compute.Buffer) {
	e := g.Elem
	for _, b := range []compute.Buffer{x, w, y} {
		if compute.ElemOf(b) != e {
			be.fail(fmt.Errorf("cuda: convolution %s of %s values got an operand of %s", convName(g), e, compute.ElemOf(b)))
			return
		}
	}
	if e != compute.F32 && (e != compute.F16 || bias != nil) {
		be.fail(fmt.Errorf("cuda: convolution %s of %s values (with a bias: %v): the backend takes f32, and f16 without a bias", convName(g), e, bias != nil))
		return
	}
	if be.useDNN(g, dnnForward) && be.dnnRan(g, n, dnnForward, be.dnn.forward(be, g, n, anyPtr(x), anyPtr(w), anyPtr(y))) {
		if bias != nil {
			be.addConvBias(g, n, y, bias)
		}
		return
	}
	if e == compute.F32 && be.refusedLast(g, dnnForward) {
		be.convForwardNCHW(g, n, x, w, bias, y)
		return
	}
	P, O := g.OutH()*g.OutW(), g.O
	ns, col, tmp, ok := be.convWorkspaces(g, n)
	if !ok {
		return
	}
	if e == compute.F16 { // a float32 copy of the weight for the GEMMs
		wf, err := be.workspace("f16 weight", w.Len())
		if err != nil {
			be.fail(err)
			return
		}
		w32 := wf.Slice(0, w.Len())
		be.Convert(w, w32)
		w = w32
	}
	wt, ok := be.weightNCHW(g, w)
	if !ok {
		return
	}
	wp := ptr(wt)
	in, out := int64(g.C*g.H*g.W), int64(O*P)
	var biasLen int64 // the bias, added per output channel
	if bias != nil {
		biasLen = int64(O)
	}
	for s0 := 0; s0 < n; s0 += ns {
		cs := min(ns, n-s0)
		be.im2col(g, anyPtr(x)+devptr(e.Bytes()*int64(s0)*in), col, cs)
		// group j: [O/G, Kg] weights times its Kg rows of patches
		for _, gr := range groupsOf(g, cs*P) {
			be.gemm(false, false, gr.o, cs*P, gr.k, 1, wp+gr.w, gr.k, col.ptr+gr.col, cs*P, 0, tmp.ptr+gr.out, cs*P)
		}
		values := int64(O * cs * P)
		be.launch1d("pk_ocp_to_nchw", values, traffic{4 * (values + biasLen), e.Bytes() * values}, tmp.ptr,
			anyPtr(y)+devptr(e.Bytes()*int64(s0)*out), half(e), ptr(bias), int32(O), int64(cs), int64(P), b2i(g.Layout.Last()))
	}
}

// convGroup is where one group's operands start (bytes) in a grouped
// im2col convolution: its O/G rows of the weight [O, Kg], its Kg rows of
// the patches [C·KH·KW, cols] and its O/G rows of the output [O, cols].
type convGroup struct {
	o, k        int
	w, col, out devptr
}

// groupsOf splits a convolution into its groups, for GEMMs over cols
// columns (one group, at offset 0, without groups).
func groupsOf(g compute.ConvGeom, cols int) []convGroup {
	G := g.Groups()
	og, kg := g.O/G, g.GroupPatch()
	out := make([]convGroup, G)
	for j := range out {
		out[j] = convGroup{o: og, k: kg, w: devptr(4 * j * og * kg), col: devptr(4 * int64(j*kg) * int64(cols)),
			out: devptr(4 * int64(j*og) * int64(cols))}
	}
	return out
}

// The directions of a convolution, as cuDNN plans them.
const (
	dnnForward = 0
	dnnData    = 1
	dnnFilter  = 2
)

type dnnKey struct {
	g    compute.ConvGeom
	kind int
}

// useDNN reports whether cuDNN should run direction kind of convolution g.
func (be *Backend) useDNN(g compute.ConvGeom, kind int) bool {
	if be.dnn == nil || !be.dnn.supports(g) {
		return false
	}
	_, failed := be.noDNN[dnnKey{g, kind}]
	return !failed
}

// dnnRan takes the outcome of a cuDNN call of direction kind on n samples:
// true when it ran (or failed while running: the error is kept), false
// when cuDNN refused it, in which case that direction of the geometry
// goes to im2col from now on — a channels-last one to NCHW, transposed
// around (refusedLast), with a notice.
func (be *Backend) dnnRan(g compute.ConvGeom, n, kind int, err error) bool {
	var pe *planError
	if errors.As(err, &pe) {
		be.noDNN[dnnKey{g, kind}] = pe.Error()
		if g.Layout.Last() {
			how := "in NCHW, transposed around it"
			if g.Elem != compute.F32 {
				how = "on proxykit's own channels-last im2col"
			}
			be.notice(fmt.Sprintf("%s: cuDNN refused the channels-last convolution %s %s (%s); it runs %s",
				be.name, convName(g), dnnDirection(kind), pe.Error(), how))
		}
		return false
	}
	be.record(dnnLaunch(g, n, kind, be.math()))
	be.fail(err)
	return true
}

// dnnLaunch is the record of a cuDNN call of direction kind on n samples:
// its operands and result (in g's layout, as the backend hands them
// over), its arithmetic and its implicit matrix product.
func dnnLaunch(g compute.ConvGeom, n, kind int, math compute.Math) compute.Launch {
	ns, oh, ow, e := int64(n), int64(g.OutH()), int64(g.OutW()), g.Elem.Bytes()
	x, y := e*ns*int64(g.C*g.H*g.W), e*ns*int64(g.O)*oh*ow
	w := e * int64(g.O) * int64(g.GroupPatch())
	if g.Elem == compute.F16 { // PSEUDO_HALF: FP16 tensor cores, FP32 sums
		math = compute.MathFP16
	}
	layout := compute.NCHW
	if g.Layout.Last() {
		layout = compute.NHWC
	}
	l := compute.Launch{Library: true, FLOPs: 2 * ns * oh * ow * int64(g.O) * int64(g.GroupPatch()), Math: math,
		Layout: layout}
	switch kind {
	case dnnForward:
		l.Kernel, l.Read, l.Written = compute.CallConvForward, x+w, y
		l.M, l.N, l.K = ns*oh*ow, int64(g.O), int64(g.PatchLen())
	case dnnData:
		l.Kernel, l.Read, l.Written = compute.CallConvBackwardData, y+w, x
		l.M, l.N, l.K = ns*int64(g.H*g.W), int64(g.C), int64(g.O*g.KH*g.KW)
	default:
		l.Kernel, l.Read, l.Written = compute.CallConvBackwardFilter, x+y, w
		l.M, l.N, l.K = int64(g.O), int64(g.PatchLen()), ns*oh*ow
	}
	return l
}

// addConvBias adds bias[o] to every position of channel o of y [n, O, P]
// (channels-last [n, P, O]: n·P rows of O).
func (be *Backend) addConvBias(g compute.ConvGeom, n int, y, bias compute.Buffer) {
	rows, p := lastRows(g.Layout, n, g.OutH()*g.OutW())
	be.launch1d("pk_add_bias", int64(rows*g.O)*p, rw(int64(rows*g.O)*p+int64(g.O), int64(rows*g.O)*p), ptr(y), ptr(bias), int64(rows), int32(g.O), p)
}

// lastRows is n samples of c channels × hw laid out in layout, as the
// per-channel kernels walk them: NCHW as they are, NHWC as n·hw samples of
// c × 1 (a value's channel is its index mod c; the kernels visit a
// channel's values in the same order either way).
func lastRows(layout compute.Layout, n, hw int) (int, int64) {
	if layout.Last() {
		return n * hw, 1
	}
	return n, int64(hw)
}

// Conv2dBackward implements compute.Backend: the bias gradient; each
// direction on cuDNN where it runs it, the rest on im2col (a channels-last
// convolution's weight transposed to [O, C/G, KH, KW] for the GEMMs, its
// gradient computed so and added back transposed, or written back without
// accumulate), or, for a channels-last
// direction cuDNN refused, in NCHW transposed around (convBackwardNCHW).
func (be *Backend) Conv2dBackward(g compute.ConvGeom, n int, x, w, dy, dx, dw, db compute.Buffer, accumulate bool) {
	if g.Elem != compute.F32 {
		be.fail(fmt.Errorf("cuda: the backward pass of convolution %s of %s values: it takes f32 only", convName(g), g.Elem))
		return
	}
	P, O := g.OutH()*g.OutW(), g.O
	if db != nil {
		// adds into db with accumulate: read and written
		rows, p := lastRows(g.Layout, n, P)
		be.launchBlocks("pk_conv_bias_grad", O, rw(int64(n*O*P)+read(accumulate, int64(O)), int64(O)), ptr(dy), ptr(db), int64(rows), int32(O), p,
			b2i(accumulate))
	}
	// each direction on cuDNN where it plans, the rest on im2col below
	if dw != nil && be.useDNN(g, dnnFilter) && be.dnnRan(g, n, dnnFilter, be.dnn.backwardFilter(be, g, n, ptr(x), ptr(dy), ptr(dw), accumulate)) {
		dw = nil
	}
	if dx != nil && be.useDNN(g, dnnData) && be.dnnRan(g, n, dnnData, be.dnn.backwardData(be, g, n, ptr(w), ptr(dy), ptr(dx))) {
		dx = nil
	}
	if dw != nil && be.refusedLast(g, dnnFilter) || dx != nil && be.refusedLast(g, dnnData) {
		be.convBackwardNCHW(g, n, x, w, dy, dx, dw, accumulate)
		return
	}
	if dw == nil && dx == nil {
		return
	}
	ns, col, dyT, ok := be.convWorkspaces(g, n)
	if !ok {
		return
	}
	last := g.Layout.Last() && distinctWeight(g)
	var wp devptr
	if dx != nil {
		wt, ok := be.weightNCHW(g, w)
		if !ok {
			return
		}
		wp = ptr(wt)
	}
	dwp := ptr(dw) // the weight gradient the GEMMs add into: dw, or channels-last NCHW scratch
	if dw != nil && last {
		t, err := be.workspace("nchw dw", g.O*g.GroupPatch())
		if err != nil {
			be.fail(err)
			return
		}
		dwp = t.ptr
	}
	in, out := int64(g.C*g.H*g.W), int64(O*P)
	for s0 := 0; s0 < n; s0 += ns {
		cs := min(ns, n-s0)
		be.launch1d("pk_nchw_to_ocp", int64(O*cs*P), rw(int64(O*cs*P), int64(O*cs*P)), ptr(dy)+devptr(4*int64(s0)*out), dyT.ptr, int32(O), int64(cs), int64(P),
			b2i(g.Layout.Last()))
		if dw != nil {
			be.im2col(g, ptr(x)+devptr(4*int64(s0)*in), col, cs)
			// per group: dW [O/G, Kg] += dyT [O/G, cs·P] · colᵀ (the scratch,
			// or dw without accumulate, written by the first chunk)
			beta := float32(1)
			if (last || !accumulate) && s0 == 0 {
				beta = 0
			}
			for _, gr := range groupsOf(g, cs*P) {
				be.gemm(false, true, gr.o, gr.k, cs*P, 1, dyT.ptr+gr.out, cs*P, col.ptr+gr.col, cs*P, beta, dwp+gr.w, gr.k)
			}
		}
		if dx != nil {
			// per group: dcol [Kg, cs·P] = Wᵀ [Kg, O/G] · dyT [O/G, cs·P], then back to pixels
			for _, gr := range groupsOf(g, cs*P) {
				be.gemm(true, false, gr.k, cs*P, gr.o, 1, wp+gr.w, gr.k, dyT.ptr+gr.out, cs*P, 0, col.ptr+gr.col, cs*P)
			}
			be.launch1d("pk_col2im", int64(cs)*in, rw(int64(g.PatchLen())*int64(cs*P), int64(cs)*in), col.ptr, ptr(dx)+devptr(4*int64(s0)*in), int32(g.C), int32(g.H),
				int32(g.W), int32(g.KH), int32(g.KW), int32(g.SH), int32(g.SW), int32(g.PT), int32(g.PL), int32(g.DH),
				int32(g.DW), int32(g.OutH()), int32(g.OutW()), int64(cs), b2i(g.Layout.Last()))
		}
	}
	if dw != nil && last {
		// dw [O, KH·KW, C/G] += the scratch [O, C/G, KH·KW] transposed
		be.transpose(int64(g.O), g.GroupPatch()/(g.KH*g.KW), g.KH*g.KW, dwp, ptr(dw), accumulate)
	}
}

// --- linear ---

// LinearForward implements compute.Backend: y = x·Wᵀ on cuBLAS; spikes
// take the same path (a dense GEMM wins on a GPU). With x, w and y
// binary16 and no bias it is one cublasGemmEx with float32 products and
// sums, y rounded once.
func (be *Backend) LinearForward(n, in, out int, x, w, bias, y compute.Buffer, _ bool) {
	if e := compute.ElemOf(x); e != compute.F32 || compute.ElemOf(w) != e || compute.ElemOf(y) != e {
		if e != compute.F16 || compute.ElemOf(w) != e || compute.ElemOf(y) != e || bias != nil {
			be.fail(fmt.Errorf("cuda: linear layer %d→%d on %s x, %s w and %s y (with a bias: %v): the backend takes f32, "+
				"and f16 for all three without a bias", in, out, e, compute.ElemOf(w), compute.ElemOf(y), bias != nil))
			return
		}
		be.gemmHalf(false, true, n, out, in, anyPtr(x), in, anyPtr(w), in, anyPtr(y), out)
		return
	}
	be.gemm(false, true, n, out, in, 1, ptr(x), in, ptr(w), in, 0, ptr(y), out)
	if bias != nil {
		be.launch1d("pk_add_bias", int64(n*out), rw(int64(n*out+out), int64(n*out)), ptr(y), ptr(bias), int64(n), int32(out), int64(1))
	}
}

// LinearBackward implements compute.Backend.
func (be *Backend) LinearBackward(n, in, out int, x, w, dy, dx, dw, db compute.Buffer, accumulate bool) {
	if dx != nil {
		be.gemm(false, false, n, in, out, 1, ptr(dy), out, ptr(w), in, 0, ptr(dx), in)
	}
	if dw != nil {
		be.gemm(true, false, out, in, n, 1, ptr(dy), out, ptr(x), in, float32(b2i(accumulate)), ptr(dw), in)
	}
	if db != nil { // adds into db with accumulate
		be.launch1d("pk_col_sum", int64(out), rw(int64(n*out)+read(accumulate, int64(out)), int64(out)), ptr(dy), ptr(db), int64(n), int32(out),
			b2i(accumulate))
	}
}

// read is n values a kernel reads where it adds into them (accumulate),
// none where it writes them.
func read(accumulate bool, n int64) int64 {
	if accumulate {
		return n
	}
	return 0
}

// --- elementwise, pooling, softmax ---

// ReLUForward implements compute.Backend.
func (be *Backend) ReLUForward(x, y compute.Buffer) {
	be.launch1d("pk_relu", int64(x.Len()), rw(int64(x.Len()), int64(x.Len())), ptr(x), ptr(y), int64(x.Len()))
}

// ReLUBackward implements compute.Backend.
func (be *Backend) ReLUBackward(y, dy, dx compute.Buffer) {
	be.launch1d("pk_relu_backward", int64(y.Len()), rw(2*int64(y.Len()), int64(y.Len())), ptr(y), ptr(dy), ptr(dx), int64(y.Len()))
}

// ClipForward implements compute.Backend.
func (be *Backend) ClipForward(ceiling float32, x, y compute.Buffer) {
	be.launch1d("pk_clip", int64(x.Len()), rw(int64(x.Len()), int64(x.Len())), ptr(x), ptr(y), int64(x.Len()), ceiling)
}

// ClipBackward implements compute.Backend.
func (be *Backend) ClipBackward(ceiling float32, y, dy, dx compute.Buffer) {
	be.launch1d("pk_clip_backward", int64(y.Len()), rw(2*int64(y.Len()), int64(y.Len())), ptr(y), ptr(dy), ptr(dx), int64(y.Len()), ceiling)
}

// ChannelShuffle implements compute.Backend.
func (be *Backend) ChannelShuffle(n, groups, c, hw int, x, y compute.Buffer) {
	size := int64(n) * int64(c) * int64(hw)
	be.launch1d("pk_channel_shuffle", size, rw(size, size), ptr(x), ptr(y), int64(n), int32(groups), int32(c), int64(hw))
}

// MaxPool2dForward implements compute.Backend.
func (be *Backend) MaxPool2dForward(g compute.PoolGeom, n int, x, y compute.Buffer) {
	planes := int64(n * g.C)
	be.launch1d("pk_maxpool", planes*int64(g.OutH()*g.OutW()), rw(planes*int64(g.H*g.W), planes*int64(g.OutH()*g.OutW())), ptr(x), ptr(y), planes, int32(g.H), int32(g.W),
		int32(g.KH), int32(g.KW), int32(g.SH), int32(g.SW), int32(g.PT), int32(g.PL), int32(g.OutH()), int32(g.OutW()), int32(g.C), b2i(g.Layout.Last()))
}

// MaxPool2dBackward implements compute.Backend.
func (be *Backend) MaxPool2dBackward(g compute.PoolGeom, n int, x, dy, dx compute.Buffer, relu bool) {
	planes := int64(n * g.C)
	be.launch1d("pk_maxpool_backward", planes*int64(g.H*g.W), rw(planes*int64(g.H*g.W+g.OutH()*g.OutW()), planes*int64(g.H*g.W)), ptr(x), ptr(dy), ptr(dx), planes, int32(g.H), int32(g.W),
		int32(g.KH), int32(g.KW), int32(g.SH), int32(g.SW), int32(g.PT), int32(g.PL), int32(g.OutH()), int32(g.OutW()), int32(g.C), b2i(g.Layout.Last()),
		b2i(relu))
}

// AvgPool2dForward implements compute.Backend.
func (be *Backend) AvgPool2dForward(g compute.PoolGeom, n int, countPad bool, x, y compute.Buffer) {
	planes := int64(n * g.C)
	be.launch1d("pk_avgpool", planes*int64(g.OutH()*g.OutW()), rw(planes*int64(g.H*g.W), planes*int64(g.OutH()*g.OutW())), ptr(x), ptr(y), planes, int32(g.H), int32(g.W),
		int32(g.KH), int32(g.KW), int32(g.SH), int32(g.SW), int32(g.PT), int32(g.PL), int32(g.PB), int32(g.PR),
		int32(g.OutH()), int32(g.OutW()), b2i(countPad), int32(g.C), b2i(g.Layout.Last()))
}

// AvgPool2dBackward implements compute.Backend.
func (be *Backend) AvgPool2dBackward(g compute.PoolGeom, n int, countPad bool, dy, dx compute.Buffer) {
	planes := int64(n * g.C)
	be.launch1d("pk_avgpool_backward", planes*int64(g.H*g.W), rw(planes*int64(g.OutH()*g.OutW()), planes*int64(g.H*g.W)), ptr(dy), ptr(dx), planes, int32(g.H), int32(g.W),
		int32(g.KH), int32(g.KW), int32(g.SH), int32(g.SW), int32(g.PT), int32(g.PL), int32(g.PB), int32(g.PR),
		int32(g.OutH()), int32(g.OutW()), b2i(countPad), int32(g.C), b2i(g.Layout.Last()))
}

// GlobalAvgPoolForward implements compute.Backend.
func (be *Backend) GlobalAvgPoolForward(nc, hw int, x, y compute.Buffer) {
	be.launch1d("pk_gap", int64(nc), rw(int64(nc*hw), int64(nc)), ptr(x), ptr(y), int64(nc), int64(hw))
}

// GlobalAvgPoolBackward implements compute.Backend.
func (be *Backend) GlobalAvgPoolBackward(nc, hw int, dy, dx compute.Buffer) {
	be.launch1d("pk_gap_backward", int64(nc*hw), rw(int64(nc), int64(nc*hw)), ptr(dy), ptr(dx), int64(nc), int64(hw))
}

// Pad2dForward implements compute.Backend.
func (be *Backend) Pad2dForward(g compute.PadGeom, nc int, x, y compute.Buffer) {
	be.launch1d("pk_pad", int64(nc*g.OutH()*g.OutW()), rw(int64(nc*g.H*g.W), int64(nc*g.OutH()*g.OutW())), ptr(x), ptr(y), int64(nc), int32(g.H), int32(g.W), int32(g.PT),
		int32(g.PL), int32(g.OutH()), int32(g.OutW()), g.Value)
}

// Pad2dBackward implements compute.Backend.
func (be *Backend) Pad2dBackward(g compute.PadGeom, nc int, dy, dx compute.Buffer) {
	be.launch1d("pk_pad_backward", int64(nc*g.H*g.W), rw(int64(nc*g.OutH()*g.OutW()), int64(nc*g.H*g.W)), ptr(dy), ptr(dx), int64(nc), int32(g.H), int32(g.W), int32(g.PT),
		int32(g.PL), int32(g.OutH()), int32(g.OutW()))
}

// SoftmaxForward implements compute.Backend.
func (be *Backend) SoftmaxForward(n, k int, log bool, x, y compute.Buffer) {
	be.launch1d("pk_softmax", int64(n), rw(int64(n*k), int64(n*k)), ptr(x), ptr(y), int64(n), int32(k), b2i(log))
}

// SoftmaxBackward implements compute.Backend.
func (be *Backend) SoftmaxBackward(n, k int, log bool, y, dy, dx compute.Buffer) {
	be.launch1d("pk_softmax_backward", int64(n), rw(2*int64(n*k), int64(n*k)), ptr(y), ptr(dy), ptr(dx), int64(n), int32(k), b2i(log))
}

// --- BatchNorm ---

// BatchNormStats implements compute.Backend: a block per (group, channel);
// channels-last as n·hw samples of c × 1 (lastRows), summed in the same
// order.
func (be *Backend) BatchNormStats(groups, n, c, hw int, layout compute.Layout, x, mean, variance compute.Buffer) {
	rows, p := lastRows(layout, n, hw)
	e := compute.ElemOf(x) // F32, or F16 (HalfStore)
	t := traffic{read: int64(groups*n*c*hw) * e.Bytes(), written: 4 * 2 * int64(groups*c)}
	be.launchBlocks("pk_bn_stats", groups*c, t, anyPtr(x), half(e), ptr(mean), ptr(variance), int64(rows), int32(c), p)
}

// BatchNormUpdateRunning implements compute.Backend.
func (be *Backend) BatchNormUpdateRunning(groups, c, count int, momentum float32, mean, variance, runMean, runVar compute.Buffer) {
	unbias := float32(1)
	if count > 1 {
		unbias = float32(count) / float32(count-1)
	}
	be.launch1d("pk_bn_update_running", int64(c), rw(2*int64(groups*c)+2*int64(c), 2*int64(c)), ptr(mean), ptr(variance), ptr(runMean), ptr(runVar), int32(groups),
		int32(c), momentum, unbias)
}

// BatchNormScaleShift implements compute.Backend.
func (be *Backend) BatchNormScaleShift(groups, c int, eps float32, gamma, beta, mean, variance, scale, shift compute.Buffer) {
	be.launch1d("pk_bn_scale_shift", int64(groups*c), rw(2*int64(c)+2*int64(groups*c), 2*int64(groups*c)), ptr(gamma), ptr(beta), ptr(mean), ptr(variance), ptr(scale),
		ptr(shift), int64(groups), int32(c), eps)
}

// ChannelAffine implements compute.Backend (channels-last: lastRows).
func (be *Backend) ChannelAffine(groups, n, c, hw int, layout compute.Layout, x, scale, shift, y compute.Buffer, relu bool) {
	rows, p := lastRows(layout, n, hw)
	read := int64(groups*n*c*hw) + int64(groups*c) // x, the shift
	if scale != nil {
		read += int64(groups * c)
	}
	be.launch1d("pk_channel_affine", int64(groups*n*c*hw), rw(read, int64(groups*n*c*hw)), ptr(x), ptr(scale), ptr(shift), ptr(y), int64(groups),
		int64(rows), int32(c), p, b2i(relu))
}

// BatchNormBackward implements compute.Backend: the channel sums in one
// reduction kernel, then dx elementwise (channels-last: lastRows).
func (be *Backend) BatchNormBackward(n, c, hw int, layout compute.Layout, batchStats bool, eps float32, gamma, mean, variance, x, dy, dx, dgamma, dbeta compute.Buffer, accumulate bool) {
	sums, err := be.workspace("bn sums", 2*c)
	if err != nil {
		be.fail(err)
		return
	}
	be.bnBackwardReduce(n, c, hw, layout, eps, mean, variance, x, dy, sums, dgamma, dbeta, accumulate)
	if dx != nil {
		be.bnBackwardDX(n, c, hw, n*hw, layout, batchStats, eps, gamma, mean, variance, x, dy, sums, dx)
	}
}

// bnBackwardReduce launches pk_bn_backward_reduce: the channel sums of dy
// and dy·x̂ added into dγ and dβ (with accumulate; else written) and kept
// in sums (2·c values).
func (be *Backend) bnBackwardReduce(n, c, hw int, layout compute.Layout, eps float32, mean, variance, x, dy, sums, dgamma, dbeta compute.Buffer, accumulate bool) {
	// x and dy; the mean and variance, and dγ and dβ where it adds into
	// them; dγ, dβ and the two sums out
	t := rw(2*int64(n*c*hw)+2*int64(c)+read(accumulate, 2*int64(c)), 4*int64(c))
	rows, p := lastRows(layout, n, hw)
	be.launchBlocks("pk_bn_backward_reduce", c, t, ptr(x), ptr(dy), ptr(mean), ptr(variance), ptr(dgamma), ptr(dbeta),
		ptr(sums), int64(rows), int32(c), p, eps, b2i(accumulate))
}

// bnBackwardDX launches pk_bn_backward_dx: with batch statistics it reads
// x, dy, γ, the statistics and the sums; with fixed ones dy, γ and the
// variance only.
func (be *Backend) bnBackwardDX(n, c, hw, count int, layout compute.Layout, batchStats bool, eps float32, gamma, mean, variance, x, dy, sums, dx compute.Buffer) {
	values := int64(n * c * hw)
	read := values + 2*int64(c) // dy, γ, the variance
	if batchStats {
		read += values + 3*int64(c) // x, the mean, the two sums
	}
	rows, p := lastRows(layout, n, hw)
	be.launch1d("pk_bn_backward_dx", values, rw(read, values), ptr(x), ptr(dy), ptr(dx), ptr(gamma), ptr(mean), ptr(variance),
		ptr(sums), int64(rows), int32(c), p, eps, b2i(batchStats), int64(count))
}

// --- spiking, loss, optimizer ---

// IF implements compute.Backend: one fused kernel over all a.Steps steps.
func (be *Backend) IF(a compute.IFArgs) {
	c, hw := int32(max(a.C, 1)), int64(max(a.HW, 1))
	if a.Layout.Last() {
		hw = 1 // neuron j's channel is j mod C
	}
	n, steps := int64(a.N), int64(a.Steps)
	in, out := compute.ElemOf(a.In), compute.ElemOf(a.Spikes) // F32, or F16 (HalfStore)
	inputs := steps * n                                       // input per step
	if a.Constant {
		inputs = n // one input for every step
	}
	t := traffic{read: inputs*in.Bytes() + 4*n, written: steps*n*out.Bytes() + 4*n} // and potentials in; spikes per step and potentials out
	if a.Counts != nil {
		t.read, t.written = t.read+4*n, t.written+4*n
	}
	if a.Start { // potentials and counts are not read
		t.read -= 4 * n
		if a.Counts != nil {
			t.read -= 4 * n
		}
	}
	if a.Shift != nil {
		k := int64(max(a.C, 1)) // scale and shift per channel, per step with PerStep
		if a.PerStep {
			k *= steps
		}
		t.read += 4 * k
		if a.Scale != nil {
			t.read += 4 * k
		}
	}
	if g := a.Pool; g != nil {
		windows := n / int64(g.KH*g.KW)
		t.written -= steps * (n - windows) * out.Bytes() // only the pooled spikes
		be.launch1d("pk_if_pool", windows, t, anyPtr(a.In), half(in), b2i(a.Constant), ptr(a.Scale), ptr(a.Shift), b2i(a.PerStep), c,
			ptr(a.V), anyPtr(a.Spikes), half(out), ptr(a.Counts), int64(a.N), int32(a.Steps), a.Threshold, a.Reset, int32(g.H), int32(g.W),
			int32(g.KH), int32(g.KW), b2i(a.Start), int32(max(g.C, 1)), b2i(a.Layout.Last()))
		return
	}
	be.launch1d("pk_if", int64(a.N), t, anyPtr(a.In), half(in), b2i(a.Constant), ptr(a.Scale), ptr(a.Shift), b2i(a.PerStep), c, hw,
		ptr(a.V), anyPtr(a.Spikes), half(out), ptr(a.Counts), int64(a.N), int32(a.Steps), a.Threshold, a.Reset, b2i(a.Start))
}

// ProxyLossGrad implements compute.Backend.
func (be *Backend) ProxyLossGrad(n, k int, counts, labels, dy compute.Buffer) {
	be.launch1d("pk_proxy_loss_grad", int64(n*k), rw(int64(n*k+n), int64(n*k)), ptr(counts), ptr(labels), ptr(dy), int64(n), int32(k), int64(n))
}

// Adam implements compute.Backend.
func (be *Backend) Adam(a compute.AdamArgs, p, grad, m, v compute.Buffer) {
	stepSize, sqrtBC2 := a.Factors()
	be.launch1d("pk_adam", int64(p.Len()), rw(4*int64(p.Len()), 3*int64(p.Len())), ptr(p), ptr(grad), ptr(m), ptr(v), int64(p.Len()), float32(a.Beta1),
		float32(a.Beta2), float32(a.WeightDecay), float32(a.Eps), stepSize, sqrtBC2)
}

var (
	_ compute.Backend      = (*Backend)(nil)
	_ compute.Counting     = (*Backend)(nil)
	_ compute.LaunchLogger = (*Backend)(nil)
)

// Replay implements program.Capturer. Without Options.Graphs it runs run.
// With it, the first call of a key runs run directly (its plans and
// workspaces are made then), the second captures the kernels, GEMMs and
// device copies run queues as one graph and launches it, and later calls
// launch the graph without calling run; a piece of work that cannot be
// captured (a host copy, a wait or an allocation inside it) runs directly
// from then on. The key must name everything the work's arguments depend
// on (the program, the batch, the buffers bound); freeing any buffer drops
// every graph, since its address may be reused.
//
// It refuses a nil or zero Backend, no work to run and a key a map cannot
// hold (one that is not comparable).
func (be *Backend) Replay(key any, run func() error) error {
	if err := be.ready(); err != nil {
		return err
	}
	if run == nil {
		return fmt.Errorf("cuda: no work to capture (nil)")
	}
	if key != nil && !reflect.ValueOf(key).Comparable() {
		return fmt.Errorf("cuda: a capture's key of type %T is not comparable", key)
	}
	if !be.opt.Graphs || be.capture != nil { // off, or inside a capture already
		return run()
	}
	if be.graphs == nil {
		be.graphs = map[any]*captured{}
	}
	c, seen := be.graphs[key]
	switch {
	case !seen:
		be.graphs[key] = nil
		return run()
	case c != nil && c.direct:
		return run()
	case c == nil:
		var launches []compute.Launch
		if err := be.dev.beginCapture(); err != nil {
			be.graphs[key] = &captured{direct: true, why: err.Error()}
			return run()
		}
		be.capture = &launches
		err := run()
		be.capture = nil
		g, cerr := be.dev.endCapture()
		if err != nil {
			if g != nil {
				be.dev.freeGraph(g)
			}
			return err
		}
		if cerr != nil {
			// nothing ran: run it directly, now and from now on
			if be.graphs == nil {
				be.graphs = map[any]*captured{}
			}
			be.graphs[key] = &captured{direct: true, why: cerr.Error()}
			return run()
		}
		c = &captured{g: g, launches: launches}
		if be.graphs == nil {
			be.graphs = map[any]*captured{}
		}
		be.graphs[key] = c
	}
	for _, l := range c.launches {
		be.record(l)
	}
	be.fail(be.dev.launchGraph(c.g))
	return nil
}

// Graphs describes the captured graphs: how many, the nodes of each, and
// the pieces of work that could not be captured with why.
func (be *Backend) Graphs() (nodes []int, direct []string) {
	for _, c := range be.graphs {
		switch {
		case c == nil:
		case c.direct:
			direct = append(direct, c.why)
		default:
			nodes = append(nodes, c.g.nodes())
		}
	}
	slices.Sort(nodes)
	return nodes, direct
}

// dropGraphs frees every captured graph.
func (be *Backend) dropGraphs() {
	for _, c := range be.graphs {
		if c != nil && c.g != nil {
			be.dev.freeGraph(c.g)
		}
	}
	be.graphs = nil
}

// Address implements compute.Addressed: the device address.
func (b *buffer) Address() uintptr { return uintptr(b.ptr) }
