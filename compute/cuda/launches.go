package cuda

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/program"
)

// The launches a program queues, computed from the program alone: the
// input of a time model (package gpumodel) for a program that has not run,
// on a GPU that is not there.
//
// For every op this file says what the backend's kernel method of that op
// queues — which kernels, how many, in which order, the GEMMs and cuDNN
// calls with their shapes, arithmetic and layout — as the methods in
// backend.go, shard.go and dnn.go do. The bytes of a kernel come from the
// op's operands as the program declares them (each slot's shape per row,
// rate and element type, at the run's dims), not from the buffers and
// arguments the backend is handed; geometry rules (how cuDNN and im2col
// split a convolution, a GEMM's record) are shared with the backend. A
// test (compute/cuda/traffic_test.go) holds the two to the same launches,
// one by one, on the dry emulated device.

// Launches is what a CUDA backend opened with opt queues for op, an op of
// p, in a run of op's pass for d: its kernel launches and device copies
// with their bytes, its cuBLAS GEMMs and cuDNN calls. Convolutions go to
// cuDNN where the backend would hand them to it: on a GPU (cuDNN assumed
// loaded, and planning every configuration) or in a dry run counting
// cuDNN's calls (Options.DryRunCuDNN), unless Options.NoCuDNN; else to
// im2col, in chunks of Options.WorkspaceBytes (512 MB on a GPU and 1 MB
// on the emulated device unless set). Uploads and downloads (op
// program.Const, the host's staging) are not launches.
func Launches(p *program.Program, op program.Op, d program.Dims, opt Options) ([]compute.Launch, error) {
	if err := checkRun(p, d); err != nil {
		return nil, err
	}
	if op == nil {
		return nil, fmt.Errorf("no op (nil)")
	}
	reads, writes := op.Operands()
	for _, r := range append(reads, writes...) {
		if p.Slot(r) == nil {
			return nil, fmt.Errorf("%s uses slot %d; the program has %d", op.Kernel(), r, len(p.Slots))
		}
	}
	q := &queue{p: p, d: d, opt: opt}
	if err := q.op(op); err != nil {
		return nil, err
	}
	return q.out, nil
}

// RunLaunches is what a CUDA backend opened with opt queues for the pass
// runs of p, in order (lower.Lowered.Runs lists a program's).
func RunLaunches(p *program.Program, runs []program.PassRun, opt Options) ([]compute.Launch, error) {
	if err := checkRun(p, program.Dims{N: 1, Steps: 1}); err != nil {
		return nil, err
	}
	q := &queue{p: p, opt: opt}
	for _, r := range runs {
		if r.Pass < 0 || r.Pass >= len(p.Passes) {
			return nil, fmt.Errorf("pass %d of a program of %d", r.Pass, len(p.Passes))
		}
		if err := checkRun(p, r.Dims); err != nil {
			return nil, err
		}
		q.d = r.Dims
		ps := p.Passes[r.Pass]
		for i := ps.Lo; i < ps.Hi; i++ {
			if err := q.op(p.Ops[i]); err != nil {
				return nil, fmt.Errorf("op %d: %w", i, err)
			}
		}
	}
	return q.out, nil
}

// checkRun refuses what no run of a program is: no program, one its Plan
// refuses (ops that are nil or name slots it has not), dims below 1 or
// for which a slot holds more than compute.MaxValues values (the bytes
// then fit an int64). Dims beyond the program's capacity are priced as
// asked (the optimizer's program, planned for one row, runs at any batch).
func checkRun(p *program.Program, d program.Dims) error {
	if _, err := p.Plan(); err != nil {
		return err
	}
	if d.N < 1 || d.Steps < 1 {
		return fmt.Errorf("a run of %d samples and %d steps", d.N, d.Steps)
	}
	for i := range p.Slots {
		s := &p.Slots[i]
		if rows := d.Rows(s.Rate); rows < 0 || s.Numel() < 0 {
			return fmt.Errorf("a run of %d samples and %d steps: slot %s has more than %d values", d.N, d.Steps, s.Name, compute.MaxValues)
		} else if _, err := compute.Elements(s.Numel(), rows); err != nil {
			return fmt.Errorf("a run of %d samples and %d steps: slot %s: %w", d.N, d.Steps, s.Name, err)
		}
	}
	return nil
}

// queue collects the launches of a program's ops in a run for d.
type queue struct {
	p   *program.Program
	d   program.Dims
	opt Options
	out []compute.Launch
}

// bytes is the bytes of the slots rs hold in the run (None: none).
func (q *queue) bytes(rs ...program.Ref) int64 {
	var b int64
	for _, r := range rs {
		if r != program.None {
			s := q.p.Slot(r)
			b += int64(s.Numel()) * int64(q.d.Rows(s.Rate)) * s.Elem.Bytes()
		}
	}
	return b
}

// values is the values slot r holds in the run.
func (q *queue) values(r program.Ref) int64 {
	if r == program.None {
		return 0
	}
	s := q.p.Slot(r)
	return int64(s.Numel()) * int64(q.d.Rows(s.Rate))
}

// kernel records a launch of kernel name over items (threads or blocks:
// none when there are none) moving read and written bytes.
func (q *queue) kernel(name string, items, read, written int64) {
	if items > 0 {
		q.out = append(q.out, compute.Launch{Kernel: name, Read: read, Written: written})
	}
}

// gemm records a cuBLAS GEMM [m, k]·[k, n].
func (q *queue) gemm(m, n, k int) {
	q.out = append(q.out, gemmLaunch(m, n, k, q.opt.math(), compute.F32))
}

// dnn reports whether the backend hands convolution g to cuDNN.
func (q *queue) dnn(g compute.ConvGeom) bool {
	return !q.opt.NoCuDNN && (q.opt.DryRunCuDNN || !q.opt.Emulate) && dnnSupports(g)
}

// conv records a cuDNN call of direction kind on n rows.
func (q *queue) conv(g compute.ConvGeom, n, kind int) {
	q.out = append(q.out, dnnLaunch(g, n, kind, q.opt.math()))
}

// added is the bytes of rs that a kernel adding into them reads: none
// where it writes them (overwrite).
func (q *queue) added(overwrite bool, rs ...program.Ref) int64 {
	if overwrite {
		return 0
	}
	return q.bytes(rs...)
}

// f32 is the bytes of n float32 values (the backend's workspaces).
func f32(n int64) int64 { return 4 * n }

func (q *queue) op(op program.Op) error {
	switch o := op.(type) {
	case *program.Convert:
		q.kernel("pk_convert", q.values(o.Dst), q.bytes(o.Src), q.bytes(o.Dst))
	case *program.Copy:
		q.kernel("copy", q.values(o.Dst), q.bytes(o.Src), q.bytes(o.Dst))
	case *program.Fill:
		q.kernel("pk_fill", q.values(o.Dst), 0, q.bytes(o.Dst))
	case *program.AddTo:
		q.kernel("pk_add_to", q.values(o.Dst), q.bytes(o.Dst, o.Src), q.bytes(o.Dst))
	case *program.ReLU:
		q.kernel("pk_relu", q.values(o.X), q.bytes(o.X), q.bytes(o.Y))
	case *program.ReLUGrad:
		q.kernel("pk_relu_backward", q.values(o.Y), q.bytes(o.Y, o.DY), q.bytes(o.DX))
	case *program.Clip:
		q.kernel("pk_clip", q.values(o.X), q.bytes(o.X), q.bytes(o.Y))
	case *program.ClipGrad:
		q.kernel("pk_clip_backward", q.values(o.Y), q.bytes(o.Y, o.DY), q.bytes(o.DX))
	case *program.ChannelShuffle:
		n := int64(q.d.Rows(o.Rate)) * int64(o.C) * int64(o.HW)
		q.kernel("pk_channel_shuffle", n, n*q.p.Slot(o.X).Elem.Bytes(), n*q.p.Slot(o.Y).Elem.Bytes())
	case *program.CopyChannels:
		n := int64(q.d.Rows(o.Rate)) * int64(o.C) * int64(o.HW)
		q.kernel("pk_copy_channels", n, n*q.p.Slot(o.Src).Elem.Bytes(), n*q.p.Slot(o.Dst).Elem.Bytes())
	case *program.Conv2d:
		q.convForward(o)
	case *program.Conv2dGrad:
		q.convBackward(o)
	case *program.Linear:
		n := q.d.Rows(o.Rate)
		if q.p.Slot(o.X).Elem == program.F16 {
			q.out = append(q.out, gemmLaunch(n, o.Out, o.In, compute.MathFP16, compute.F16))
		} else {
			q.gemm(n, o.Out, o.In)
		}
		if o.Bias != program.None {
			q.kernel("pk_add_bias", int64(n*o.Out), q.bytes(o.Y, o.Bias), q.bytes(o.Y))
		}
	case *program.LinearGrad:
		n := q.d.Rows(o.Rate)
		if o.DX != program.None {
			q.gemm(n, o.In, o.Out)
		}
		if o.DW != program.None {
			q.gemm(o.Out, o.In, n)
		}
		if o.DB != program.None {
			q.kernel("pk_col_sum", int64(o.Out), q.bytes(o.DY)+q.added(o.Overwrite, o.DB), q.bytes(o.DB))
		}
	case *program.Pool:
		name, out := "pk_avgpool", int64(q.d.Rows(o.Rate))*int64(o.G.C)*int64(o.G.OutH()*o.G.OutW())
		if o.Max {
			name = "pk_maxpool"
		}
		q.kernel(name, out, q.bytes(o.X), q.bytes(o.Y))
	case *program.PoolGrad:
		in := int64(q.d.Rows(o.Rate)) * int64(o.G.C) * int64(o.G.H*o.G.W)
		if o.Max {
			q.kernel("pk_maxpool_backward", in, q.bytes(o.X, o.DY), q.bytes(o.DX))
		} else {
			q.kernel("pk_avgpool_backward", in, q.bytes(o.DY), q.bytes(o.DX))
		}
	case *program.GlobalAvgPool:
		q.kernel("pk_gap", int64(q.d.Rows(o.Rate))*int64(o.C), q.bytes(o.X), q.bytes(o.Y))
	case *program.GlobalAvgPoolGrad:
		q.kernel("pk_gap_backward", int64(q.d.Rows(o.Rate))*int64(o.C)*int64(o.HW), q.bytes(o.DY), q.bytes(o.DX))
	case *program.Pad:
		q.kernel("pk_pad", int64(q.d.Rows(o.Rate))*int64(o.C)*int64(o.G.OutH()*o.G.OutW()), q.bytes(o.X), q.bytes(o.Y))
	case *program.PadGrad:
		q.kernel("pk_pad_backward", int64(q.d.Rows(o.Rate))*int64(o.C)*int64(o.G.H*o.G.W), q.bytes(o.DY), q.bytes(o.DX))
	case *program.Softmax:
		q.kernel("pk_softmax", int64(q.d.Rows(o.Rate)), q.bytes(o.X), q.bytes(o.Y))
	case *program.SoftmaxGrad:
		q.kernel("pk_softmax_backward", int64(q.d.Rows(o.Rate)), q.bytes(o.Y, o.DY), q.bytes(o.DX))
	case *program.BatchNormStats:
		groups := 1
		if o.Rate == program.Steps {
			groups = q.d.Steps
		}
		q.kernel("pk_bn_stats", int64(groups*o.C), q.bytes(o.X), q.bytes(o.Mean, o.Var))
	case *program.BatchNormRunning:
		q.kernel("pk_bn_update_running", int64(o.C), q.bytes(o.Mean, o.Var, o.RunMean, o.RunVar), q.bytes(o.RunMean, o.RunVar))
	case *program.BatchNormScaleShift:
		q.kernel("pk_bn_scale_shift", int64(q.d.Rows(o.Rate))*int64(o.C), q.bytes(o.Gamma, o.Beta, o.Mean, o.Var),
			q.bytes(o.Scale, o.Shift))
	case *program.ChannelAffine:
		q.kernel("pk_channel_affine", int64(q.d.Rows(o.Rate))*int64(o.C)*int64(o.HW), q.bytes(o.X, o.Scale, o.Shift), q.bytes(o.Y))
	case *program.BatchNormGrad:
		// the channel sums (added into dγ and dβ, and kept in a workspace
		// of 2·C for dx), then dx; with PerGroup, both for each time
		// step's rows and statistics (the per-row slots' bytes a share)
		groups := int64(1)
		if o.PerGroup {
			groups = int64(q.d.Steps)
		}
		sums := f32(2 * int64(o.C))
		part := func(rs ...program.Ref) int64 { return q.bytes(rs...) / groups }
		for g := range groups {
			q.kernel("pk_bn_backward_reduce", int64(o.C), part(o.X, o.DY, o.Mean, o.Var)+q.added(o.Overwrite && g == 0, o.DG, o.DB), q.bytes(o.DG, o.DB)+sums)
			if o.DX != program.None {
				read := part(o.DY, o.Var) + q.bytes(o.Gamma) // fixed statistics: dx = γ·invstd·dy
				if o.BatchStats {
					read += part(o.X, o.Mean) + sums
				}
				q.kernel("pk_bn_backward_dx", q.values(o.DX)/groups, read, part(o.DX))
			}
		}
	case *program.IF:
		reads := []program.Ref{o.In, o.Scale, o.Shift, o.V, o.Counts}
		if o.Start && q.d.T0 == 0 { // the first chunk starts the potentials and counts unread
			reads = reads[:3]
		}
		name, threads := "pk_if", int64(q.d.N)*int64(o.N)
		if g := o.Pool; g != nil {
			name, threads = "pk_if_pool", threads/int64(g.KH*g.KW)
		}
		q.kernel(name, threads, q.bytes(reads...), q.bytes(o.V, o.Spikes, o.Counts))
	case *program.IFRecord, *program.IFSurrogateGrad:
		q.surrogate(op)
	case *program.ProxyLoss:
		q.kernel("pk_proxy_loss_grad", int64(q.d.N)*int64(o.K), q.bytes(o.Counts, o.Labels), q.bytes(o.DY))
	case *program.SynOps:
		// LinearForward into one value per row, then its sum (a pair of
		// float32 holding a double)
		q.gemm(q.d.Rows(o.Rate), 1, o.K)
		q.kernel("pk_sum", 1, q.bytes(o.Tmp), f32(2))
	case *program.Const:
		// an upload, not a launch
	case *program.Adam:
		q.kernel("pk_adam", q.values(o.P), q.bytes(o.P, o.Grad, o.M, o.V), q.bytes(o.P, o.M, o.V))
	case *program.Transpose:
		q.transpose(int64(q.d.Rows(o.Rate))*int64(max(o.Count, 1)), o.Rows, o.Cols, q.bytes(o.X), q.bytes(o.Y))
	default:
		return fmt.Errorf("no CUDA launches known for op %s (%T)", op.Kernel(), op)
	}
	return nil
}

// transpose records pk_transpose over n rows×cols matrices moving read and
// written bytes (Backend.transpose's grid).
func (q *queue) transpose(n int64, rows, cols int, read, written int64) {
	tiles := n * int64((rows+tile-1)/tile) * int64((cols+tile-1)/tile)
	q.kernel("pk_transpose", min(tiles, maxBlocks), read, written)
}

// weightNCHW records the transpose of a channels-last convolution's
// distinct weight to NCHW for im2col (Backend.weightNCHW).
func (q *queue) weightNCHW(g compute.ConvGeom) {
	if g.Layout.Last() && distinctWeight(g) {
		w := f32(int64(g.O) * int64(g.GroupPatch()))
		q.transpose(int64(g.O), g.KH*g.KW, g.C/g.Groups(), w, w)
	}
}

// convForward is Conv2dForward's launches: a cuDNN call and the bias, or
// (a channels-last weight transposed first) per chunk of samples im2col,
// a GEMM per group and the layout change back (adding the bias).
func (q *queue) convForward(o *program.Conv2d) {
	g, n := o.G, q.d.Rows(o.Rate)
	if q.dnn(g) {
		q.conv(g, n, dnnForward)
		if o.Bias != program.None {
			q.kernel("pk_add_bias", q.values(o.Y), q.bytes(o.Y, o.Bias), q.bytes(o.Y))
		}
		return
	}
	P, O, K := int64(g.OutH()*g.OutW()), int64(g.O), int64(g.PatchLen())
	var bias int64
	if o.Bias != program.None {
		bias = q.bytes(o.Bias)
	}
	e := g.Elem.Bytes()
	if g.Elem == compute.F16 { // the weight's float32 copy for the GEMMs
		w := int64(g.O) * int64(g.GroupPatch())
		q.kernel("pk_convert", w, e*w, f32(w))
	}
	q.weightNCHW(g)
	ns := convChunk(g, n, q.opt.im2colWorkspace())
	for s0 := 0; s0 < n; s0 += ns {
		cs := min(ns, n-s0)
		cols := int64(cs) * P
		q.kernel("pk_im2col", K*cols, e*K*cols, f32(K*cols))
		for _, gr := range groupsOf(g, cs*int(P)) {
			q.gemm(gr.o, cs*int(P), gr.k)
		}
		q.kernel("pk_ocp_to_nchw", O*cols, f32(O*cols)+bias, e*O*cols)
	}
}

// convBackward is Conv2dBackward's launches: the bias gradient; each
// direction on cuDNN where the backend hands it there (the filter's
// first); the rest per chunk of samples on im2col (a channels-last
// weight transposed first for the data gradient, the weight gradient
// added back transposed after).
func (q *queue) convBackward(o *program.Conv2dGrad) {
	g, n := o.G, q.d.Rows(o.Rate)
	if o.DB != program.None {
		q.kernel("pk_conv_bias_grad", int64(g.O), q.bytes(o.DY)+q.added(o.Overwrite, o.DB), q.bytes(o.DB))
	}
	dw, dx := o.DW != program.None, o.DX != program.None
	if dw && q.dnn(g) {
		q.conv(g, n, dnnFilter)
		dw = false
	}
	if dx && q.dnn(g) {
		q.conv(g, n, dnnData)
		dx = false
	}
	if !dw && !dx {
		return
	}
	P, O, K, in := int64(g.OutH()*g.OutW()), int64(g.O), int64(g.PatchLen()), int64(g.C*g.H*g.W)
	if dx {
		q.weightNCHW(g)
	}
	ns := convChunk(g, n, q.opt.im2colWorkspace())
	for s0 := 0; s0 < n; s0 += ns {
		cs := min(ns, n-s0)
		cols := int64(cs) * P
		q.kernel("pk_nchw_to_ocp", O*cols, f32(O*cols), f32(O*cols))
		if dw {
			q.kernel("pk_im2col", K*cols, f32(K*cols), f32(K*cols))
			for _, gr := range groupsOf(g, int(cols)) {
				q.gemm(gr.o, gr.k, int(cols))
			}
		}
		if dx {
			for _, gr := range groupsOf(g, int(cols)) {
				q.gemm(gr.k, int(cols), gr.o)
			}
			q.kernel("pk_col2im", int64(cs)*in, f32(K*cols), f32(int64(cs)*in))
		}
	}
	if dw && g.Layout.Last() && distinctWeight(g) {
		w := f32(int64(g.O) * int64(g.GroupPatch()))
		read := 2 * w // added into the gradient
		if o.Overwrite {
			read = w // written
		}
		q.transpose(int64(g.O), g.C/g.Groups(), g.KH*g.KW, read, w)
	}
}
