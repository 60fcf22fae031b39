package program

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
)

// Op is one instruction of a program: one kernel of compute.Backend, its
// operands named by slots and its geometry per row. The machine resolves
// the slots to buffers holding the current run's rows and calls the
// kernel; a rewrite may change an op's operands or replace ops.
type Op interface {
	// Kernel is the compute.Backend method the op calls.
	Kernel() string
	// Operands lists the slots the op reads and those it writes; a slot
	// the op reads and writes (an accumulation, a state) is in both.
	Operands() (reads, writes []Ref)
	// Detail is the op's geometry in a few words, for listings.
	Detail() string
	// Run calls the kernel on m's backend for the current run: the
	// machine's Run calls it, on a machine made by NewMachine, and it may
	// panic on another (a zero Machine has no backend). Operands the run
	// cannot have are errors of the run (Machine.Buf), sizes the kernel
	// refuses errors of the backend.
	Run(m *Machine)
}

// Flopper is an op with matrix-product arithmetic (convolutions and
// linear layers): FLOPs counts 2 per multiply-add, for dims d.
type Flopper interface {
	FLOPs(d Dims) int64
}

func refs(rs ...Ref) []Ref {
	out := rs[:0:0]
	for _, r := range rs {
		if r != None {
			out = append(out, r)
		}
	}
	return out
}

// Copy copies Src into Dst (of the same size).
type Copy struct{ Dst, Src Ref }

// Kernel implements Op.
func (o *Copy) Kernel() string { return "Copy" }

// Operands implements Op.
func (o *Copy) Operands() (reads, w []Ref) { return refs(o.Src), refs(o.Dst) }

// Detail implements Op.
func (o *Copy) Detail() string { return "" }

// Run implements Op.
func (o *Copy) Run(m *Machine) { m.be.Copy(m.Buf(o.Dst), m.Buf(o.Src)) }

// Fill sets every value of Dst to Value.
type Fill struct {
	Dst   Ref
	Value float32
}

// Kernel implements Op.
func (o *Fill) Kernel() string { return "Fill" }

// Operands implements Op.
func (o *Fill) Operands() (reads, w []Ref) { return nil, refs(o.Dst) }

// Detail implements Op.
func (o *Fill) Detail() string { return fmt.Sprintf("value %g", o.Value) }

// Run implements Op.
func (o *Fill) Run(m *Machine) { m.be.Fill(m.Buf(o.Dst), o.Value) }

// AddTo adds Src into Dst.
type AddTo struct{ Dst, Src Ref }

// Kernel implements Op.
func (o *AddTo) Kernel() string { return "AddTo" }

// Operands implements Op.
func (o *AddTo) Operands() (reads, w []Ref) { return refs(o.Dst, o.Src), refs(o.Dst) }

// Detail implements Op.
func (o *AddTo) Detail() string { return "" }

// Run implements Op.
func (o *AddTo) Run(m *Machine) { m.be.AddTo(m.Buf(o.Dst), m.Buf(o.Src)) }

// ReLU writes Y = max(X, 0).
type ReLU struct{ X, Y Ref }

// Kernel implements Op.
func (o *ReLU) Kernel() string { return "ReLUForward" }

// Operands implements Op.
func (o *ReLU) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Y) }

// Detail implements Op.
func (o *ReLU) Detail() string { return "" }

// Run implements Op.
func (o *ReLU) Run(m *Machine) { m.be.ReLUForward(m.Buf(o.X), m.Buf(o.Y)) }

// ReLUGrad writes DX = DY where Y > 0, else 0.
type ReLUGrad struct{ Y, DY, DX Ref }

// Kernel implements Op.
func (o *ReLUGrad) Kernel() string { return "ReLUBackward" }

// Operands implements Op.
func (o *ReLUGrad) Operands() (reads, w []Ref) { return refs(o.Y, o.DY), refs(o.DX) }

// Detail implements Op.
func (o *ReLUGrad) Detail() string { return "" }

// Run implements Op.
func (o *ReLUGrad) Run(m *Machine) { m.be.ReLUBackward(m.Buf(o.Y), m.Buf(o.DY), m.Buf(o.DX)) }

// Clip writes Y = min(max(X, 0), Ceiling).
type Clip struct {
	Ceiling float32
	X, Y    Ref
}

// Kernel implements Op.
func (o *Clip) Kernel() string { return "ClipForward" }

// Operands implements Op.
func (o *Clip) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Y) }

// Detail implements Op.
func (o *Clip) Detail() string { return fmt.Sprintf("ceiling %g", o.Ceiling) }

// Run implements Op.
func (o *Clip) Run(m *Machine) { m.be.ClipForward(o.Ceiling, m.Buf(o.X), m.Buf(o.Y)) }

// ClipGrad writes DX = DY where 0 < Y < Ceiling, else 0.
type ClipGrad struct {
	Ceiling   float32
	Y, DY, DX Ref
}

// Kernel implements Op.
func (o *ClipGrad) Kernel() string { return "ClipBackward" }

// Operands implements Op.
func (o *ClipGrad) Operands() (reads, w []Ref) { return refs(o.Y, o.DY), refs(o.DX) }

// Detail implements Op.
func (o *ClipGrad) Detail() string { return fmt.Sprintf("ceiling %g", o.Ceiling) }

// Run implements Op.
func (o *ClipGrad) Run(m *Machine) {
	m.be.ClipBackward(o.Ceiling, m.Buf(o.Y), m.Buf(o.DY), m.Buf(o.DX))
}

// ChannelShuffle writes, per row of C channels of HW values, output
// channel j = input channel (j mod Groups)·(C/Groups) + ⌊j/Groups⌋
// (compute.Backend.ChannelShuffle).
type ChannelShuffle struct {
	Groups, C, HW int
	Rate          Rate
	X, Y          Ref
}

// Kernel implements Op.
func (o *ChannelShuffle) Kernel() string { return "ChannelShuffle" }

// Operands implements Op.
func (o *ChannelShuffle) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Y) }

// Detail implements Op.
func (o *ChannelShuffle) Detail() string {
	return fmt.Sprintf("%d channels ×%d in %d groups", o.C, o.HW, o.Groups)
}

// Run implements Op.
func (o *ChannelShuffle) Run(m *Machine) {
	m.be.ChannelShuffle(m.Rows(o.Rate), o.Groups, o.C, o.HW, m.Buf(o.X), m.Buf(o.Y))
}

// CopyChannels copies C channels of HW values per row from channel SrcOff
// of Src (SrcC channels a row) to channel DstOff of Dst (DstC channels).
type CopyChannels struct {
	Rate         Rate
	C, HW        int
	Src          Ref
	SrcC, SrcOff int
	Dst          Ref
	DstC, DstOff int
}

// Kernel implements Op.
func (o *CopyChannels) Kernel() string { return "CopyChannels" }

// Operands implements Op.
func (o *CopyChannels) Operands() (reads, w []Ref) { return refs(o.Src), refs(o.Dst) }

// Detail implements Op.
func (o *CopyChannels) Detail() string {
	return fmt.Sprintf("%d channels ×%d: %d of %d → %d of %d", o.C, o.HW, o.SrcOff, o.SrcC, o.DstOff, o.DstC)
}

// Run implements Op.
func (o *CopyChannels) Run(m *Machine) {
	m.be.CopyChannels(m.Rows(o.Rate), o.C, o.HW, m.Buf(o.Src), o.SrcC, o.SrcOff, m.Buf(o.Dst), o.DstC, o.DstOff)
}

// Conv2d is a convolution's forward pass (compute.Backend.Conv2dForward).
type Conv2d struct {
	G             compute.ConvGeom
	Rate          Rate
	X, W, Bias, Y Ref
}

// Kernel implements Op.
func (o *Conv2d) Kernel() string { return "Conv2dForward" }

// Operands implements Op.
func (o *Conv2d) Operands() (reads, w []Ref) { return refs(o.X, o.W, o.Bias), refs(o.Y) }

// Detail implements Op.
func (o *Conv2d) Detail() string { return convDetail(o.G) }

// Run implements Op.
func (o *Conv2d) Run(m *Machine) {
	m.be.Conv2dForward(o.G, m.Rows(o.Rate), m.Buf(o.X), m.Buf(o.W), m.Buf(o.Bias), m.Buf(o.Y))
}

// FLOPs implements Flopper.
func (o *Conv2d) FLOPs(d Dims) int64 { return convFLOPs(o.G, d.Rows(o.Rate)) }

// Conv2dGrad is a convolution's backward pass: DX (None: skipped) and the
// gradients added into DW and DB (None: skipped), or with Overwrite
// written there (NoGradFill: no fill before).
type Conv2dGrad struct {
	G                    compute.ConvGeom
	Rate                 Rate
	Overwrite            bool
	X, W, DY, DX, DW, DB Ref
}

// Kernel implements Op.
func (o *Conv2dGrad) Kernel() string { return "Conv2dBackward" }

// Operands implements Op.
func (o *Conv2dGrad) Operands() (reads, w []Ref) {
	if o.Overwrite {
		return refs(o.X, o.W, o.DY), refs(o.DX, o.DW, o.DB)
	}
	return refs(o.X, o.W, o.DY, o.DW, o.DB), refs(o.DX, o.DW, o.DB)
}

// Detail implements Op.
func (o *Conv2dGrad) Detail() string { return convDetail(o.G) }

// Run implements Op.
func (o *Conv2dGrad) Run(m *Machine) {
	m.be.Conv2dBackward(o.G, m.Rows(o.Rate), m.Buf(o.X), m.Buf(o.W), m.Buf(o.DY), m.Buf(o.DX), m.Buf(o.DW), m.Buf(o.DB), !o.Overwrite)
}

// FLOPs implements Flopper: the data gradient where asked and the weight
// gradient.
func (o *Conv2dGrad) FLOPs(d Dims) int64 {
	f := convFLOPs(o.G, d.Rows(o.Rate))
	if o.DX != None {
		return 2 * f
	}
	return f
}

func convFLOPs(g compute.ConvGeom, n int) int64 {
	return 2 * int64(n) * int64(g.O) * int64(g.OutH()) * int64(g.OutW()) * int64(g.C/max(g.G, 1)) * int64(g.KH) * int64(g.KW)
}

func convDetail(g compute.ConvGeom) string {
	s := fmt.Sprintf("%d→%d %dx%d on %dx%d stride %d,%d pad %d,%d,%d,%d", g.C, g.O, g.KH, g.KW, g.H, g.W, g.SH, g.SW, g.PT, g.PL, g.PB, g.PR)
	if g.G > 1 {
		s += fmt.Sprintf(" groups %d", g.G)
	}
	return s + lastDetail(g.Layout)
}

// lastDetail is ", channels-last" for NHWC, for listings.
func lastDetail(l Layout) string {
	if l.Last() {
		return ", channels-last"
	}
	return ""
}

// Linear is a fully connected layer's forward pass; Spikes says X holds
// spikes (mostly zeros).
type Linear struct {
	In, Out       int
	Rate          Rate
	X, W, Bias, Y Ref
	Spikes        bool
}

// Kernel implements Op.
func (o *Linear) Kernel() string { return "LinearForward" }

// Operands implements Op.
func (o *Linear) Operands() (reads, w []Ref) { return refs(o.X, o.W, o.Bias), refs(o.Y) }

// Detail implements Op.
func (o *Linear) Detail() string {
	s := fmt.Sprintf("%d→%d", o.In, o.Out)
	if o.Spikes {
		s += " on spikes"
	}
	return s
}

// Run implements Op.
func (o *Linear) Run(m *Machine) {
	m.be.LinearForward(m.Rows(o.Rate), o.In, o.Out, m.Buf(o.X), m.Buf(o.W), m.Buf(o.Bias), m.Buf(o.Y), o.Spikes)
}

// FLOPs implements Flopper.
func (o *Linear) FLOPs(d Dims) int64 { return 2 * int64(d.Rows(o.Rate)) * int64(o.In) * int64(o.Out) }

// LinearGrad is a fully connected layer's backward pass: DX (None:
// skipped) and the gradients added into DW and DB (None: skipped), or
// with Overwrite written there (NoGradFill: no fill before).
type LinearGrad struct {
	In, Out              int
	Rate                 Rate
	Overwrite            bool
	X, W, DY, DX, DW, DB Ref
}

// Kernel implements Op.
func (o *LinearGrad) Kernel() string { return "LinearBackward" }

// Operands implements Op.
func (o *LinearGrad) Operands() (reads, w []Ref) {
	if o.Overwrite {
		return refs(o.X, o.W, o.DY), refs(o.DX, o.DW, o.DB)
	}
	return refs(o.X, o.W, o.DY, o.DW, o.DB), refs(o.DX, o.DW, o.DB)
}

// Detail implements Op.
func (o *LinearGrad) Detail() string { return fmt.Sprintf("%d→%d", o.In, o.Out) }

// Run implements Op.
func (o *LinearGrad) Run(m *Machine) {
	m.be.LinearBackward(m.Rows(o.Rate), o.In, o.Out, m.Buf(o.X), m.Buf(o.W), m.Buf(o.DY), m.Buf(o.DX), m.Buf(o.DW), m.Buf(o.DB), !o.Overwrite)
}

// FLOPs implements Flopper.
func (o *LinearGrad) FLOPs(d Dims) int64 {
	f := 2 * int64(d.Rows(o.Rate)) * int64(o.In) * int64(o.Out)
	if o.DX != None {
		return 2 * f
	}
	return f
}

// Pool is max or average pooling's forward pass.
type Pool struct {
	G        compute.PoolGeom
	Max      bool
	CountPad bool
	Rate     Rate
	X, Y     Ref
}

// Kernel implements Op.
func (o *Pool) Kernel() string {
	if o.Max {
		return "MaxPool2dForward"
	}
	return "AvgPool2dForward"
}

// Operands implements Op.
func (o *Pool) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Y) }

// Detail implements Op.
func (o *Pool) Detail() string { return poolDetail(o.G) }

// Run implements Op.
func (o *Pool) Run(m *Machine) {
	if o.Max {
		m.be.MaxPool2dForward(o.G, m.Rows(o.Rate), m.Buf(o.X), m.Buf(o.Y))
	} else {
		m.be.AvgPool2dForward(o.G, m.Rows(o.Rate), o.CountPad, m.Buf(o.X), m.Buf(o.Y))
	}
}

// PoolGrad is pooling's backward pass (max pooling reads X). With ReLU
// (max pooling), X is a ReLU's output and DX the gradient through that
// ReLU too (FuseReLUGrad).
type PoolGrad struct {
	G         compute.PoolGeom
	Max       bool
	CountPad  bool
	ReLU      bool
	Rate      Rate
	X, DY, DX Ref
}

// Kernel implements Op.
func (o *PoolGrad) Kernel() string {
	if o.Max {
		return "MaxPool2dBackward"
	}
	return "AvgPool2dBackward"
}

// Operands implements Op.
func (o *PoolGrad) Operands() (reads, w []Ref) { return refs(o.X, o.DY), refs(o.DX) }

// Detail implements Op.
func (o *PoolGrad) Detail() string { return poolDetail(o.G) }

// Run implements Op.
func (o *PoolGrad) Run(m *Machine) {
	if o.Max {
		m.be.MaxPool2dBackward(o.G, m.Rows(o.Rate), m.Buf(o.X), m.Buf(o.DY), m.Buf(o.DX), o.ReLU)
	} else {
		m.be.AvgPool2dBackward(o.G, m.Rows(o.Rate), o.CountPad, m.Buf(o.DY), m.Buf(o.DX))
	}
}

func poolDetail(g compute.PoolGeom) string {
	return fmt.Sprintf("%dx%d stride %d,%d on %d×%dx%d", g.KH, g.KW, g.SH, g.SW, g.C, g.H, g.W) + lastDetail(g.Layout)
}

// GlobalAvgPool averages each of C planes of HW values per row.
type GlobalAvgPool struct {
	C, HW int
	Rate  Rate
	X, Y  Ref
}

// Kernel implements Op.
func (o *GlobalAvgPool) Kernel() string { return "GlobalAvgPoolForward" }

// Operands implements Op.
func (o *GlobalAvgPool) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Y) }

// Detail implements Op.
func (o *GlobalAvgPool) Detail() string { return fmt.Sprintf("%d×%d", o.C, o.HW) }

// Run implements Op.
func (o *GlobalAvgPool) Run(m *Machine) {
	m.be.GlobalAvgPoolForward(mul(m.Rows(o.Rate), o.C), o.HW, m.Buf(o.X), m.Buf(o.Y))
}

// GlobalAvgPoolGrad is its backward pass.
type GlobalAvgPoolGrad struct {
	C, HW  int
	Rate   Rate
	DY, DX Ref
}

// Kernel implements Op.
func (o *GlobalAvgPoolGrad) Kernel() string { return "GlobalAvgPoolBackward" }

// Operands implements Op.
func (o *GlobalAvgPoolGrad) Operands() (reads, w []Ref) { return refs(o.DY), refs(o.DX) }

// Detail implements Op.
func (o *GlobalAvgPoolGrad) Detail() string { return fmt.Sprintf("%d×%d", o.C, o.HW) }

// Run implements Op.
func (o *GlobalAvgPoolGrad) Run(m *Machine) {
	m.be.GlobalAvgPoolBackward(mul(m.Rows(o.Rate), o.C), o.HW, m.Buf(o.DY), m.Buf(o.DX))
}

// Pad pads each of C planes per row.
type Pad struct {
	G    compute.PadGeom
	C    int
	Rate Rate
	X, Y Ref
}

// Kernel implements Op.
func (o *Pad) Kernel() string { return "Pad2dForward" }

// Operands implements Op.
func (o *Pad) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Y) }

// Detail implements Op.
func (o *Pad) Detail() string { return padDetail(o.G) }

// Run implements Op.
func (o *Pad) Run(m *Machine) {
	m.be.Pad2dForward(o.G, mul(m.Rows(o.Rate), o.C), m.Buf(o.X), m.Buf(o.Y))
}

// PadGrad is its backward pass.
type PadGrad struct {
	G      compute.PadGeom
	C      int
	Rate   Rate
	DY, DX Ref
}

// Kernel implements Op.
func (o *PadGrad) Kernel() string { return "Pad2dBackward" }

// Operands implements Op.
func (o *PadGrad) Operands() (reads, w []Ref) { return refs(o.DY), refs(o.DX) }

// Detail implements Op.
func (o *PadGrad) Detail() string { return padDetail(o.G) }

// Run implements Op.
func (o *PadGrad) Run(m *Machine) {
	m.be.Pad2dBackward(o.G, mul(m.Rows(o.Rate), o.C), m.Buf(o.DY), m.Buf(o.DX))
}

func padDetail(g compute.PadGeom) string {
	return fmt.Sprintf("%d,%d,%d,%d on %dx%d value %g", g.PT, g.PL, g.PB, g.PR, g.H, g.W, g.Value)
}

// Softmax is (log-)softmax over rows of K.
type Softmax struct {
	K    int
	Log  bool
	Rate Rate
	X, Y Ref
}

// Kernel implements Op.
func (o *Softmax) Kernel() string { return "SoftmaxForward" }

// Operands implements Op.
func (o *Softmax) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Y) }

// Detail implements Op.
func (o *Softmax) Detail() string { return fmt.Sprintf("%d classes log %v", o.K, o.Log) }

// Run implements Op.
func (o *Softmax) Run(m *Machine) {
	m.be.SoftmaxForward(m.Rows(o.Rate), o.K, o.Log, m.Buf(o.X), m.Buf(o.Y))
}

// SoftmaxGrad is its backward pass, from the forward output Y.
type SoftmaxGrad struct {
	K         int
	Log       bool
	Rate      Rate
	Y, DY, DX Ref
}

// Kernel implements Op.
func (o *SoftmaxGrad) Kernel() string { return "SoftmaxBackward" }

// Operands implements Op.
func (o *SoftmaxGrad) Operands() (reads, w []Ref) { return refs(o.Y, o.DY), refs(o.DX) }

// Detail implements Op.
func (o *SoftmaxGrad) Detail() string { return fmt.Sprintf("%d classes log %v", o.K, o.Log) }

// Run implements Op.
func (o *SoftmaxGrad) Run(m *Machine) {
	m.be.SoftmaxBackward(m.Rows(o.Rate), o.K, o.Log, m.Buf(o.Y), m.Buf(o.DY), m.Buf(o.DX))
}

// bnGroups is the groups and samples per group of a BatchNorm op at rate
// r: each time step its own group (Steps), else one group of the batch.
func bnGroups(m *Machine, r Rate) (groups, n int) {
	if r == Steps {
		return m.dims.Steps, m.dims.N
	}
	return 1, m.Rows(r)
}

// BatchNormStats measures each channel's mean and biased variance, per
// group (Rate Steps: per time step).
type BatchNormStats struct {
	C, HW        int
	Rate         Rate
	Layout       Layout
	X, Mean, Var Ref
}

// Kernel implements Op.
func (o *BatchNormStats) Kernel() string { return "BatchNormStats" }

// Operands implements Op.
func (o *BatchNormStats) Operands() (reads, w []Ref) { return refs(o.X), refs(o.Mean, o.Var) }

// Detail implements Op.
func (o *BatchNormStats) Detail() string {
	return fmt.Sprintf("%d channels ×%d", o.C, o.HW) + lastDetail(o.Layout)
}

// Run implements Op.
func (o *BatchNormStats) Run(m *Machine) {
	g, n := bnGroups(m, o.Rate)
	m.be.BatchNormStats(g, n, o.C, o.HW, o.Layout, m.Buf(o.X), m.Buf(o.Mean), m.Buf(o.Var))
}

// BatchNormRunning folds the measured statistics into the running ones,
// one group after the other.
type BatchNormRunning struct {
	C, HW                      int
	Rate                       Rate
	Momentum                   float32
	Mean, Var, RunMean, RunVar Ref
}

// Kernel implements Op.
func (o *BatchNormRunning) Kernel() string { return "BatchNormUpdateRunning" }

// Operands implements Op.
func (o *BatchNormRunning) Operands() (reads, w []Ref) {
	return refs(o.Mean, o.Var, o.RunMean, o.RunVar), refs(o.RunMean, o.RunVar)
}

// Detail implements Op.
func (o *BatchNormRunning) Detail() string {
	return fmt.Sprintf("%d channels momentum %g", o.C, o.Momentum)
}

// Run implements Op.
func (o *BatchNormRunning) Run(m *Machine) {
	g, n := bnGroups(m, o.Rate)
	m.be.BatchNormUpdateRunning(g, o.C, mul(n, o.HW), o.Momentum, m.Buf(o.Mean), m.Buf(o.Var), m.Buf(o.RunMean), m.Buf(o.RunVar))
}

// BatchNormScaleShift computes the per-channel map that normalises with
// (Mean, Var), per row of its rate (Groups: per time step; Once: one).
type BatchNormScaleShift struct {
	C                                    int
	Rate                                 Rate
	Eps                                  float32
	Gamma, Beta, Mean, Var, Scale, Shift Ref
}

// Kernel implements Op.
func (o *BatchNormScaleShift) Kernel() string { return "BatchNormScaleShift" }

// Operands implements Op.
func (o *BatchNormScaleShift) Operands() (reads, w []Ref) {
	return refs(o.Gamma, o.Beta, o.Mean, o.Var), refs(o.Scale, o.Shift)
}

// Detail implements Op.
func (o *BatchNormScaleShift) Detail() string { return fmt.Sprintf("%d channels eps %g", o.C, o.Eps) }

// Run implements Op.
func (o *BatchNormScaleShift) Run(m *Machine) {
	m.be.BatchNormScaleShift(m.Rows(o.Rate), o.C, o.Eps, m.Buf(o.Gamma), m.Buf(o.Beta), m.Buf(o.Mean), m.Buf(o.Var), m.Buf(o.Scale), m.Buf(o.Shift))
}

// ChannelAffine writes Y = X·Scale + Shift per channel (per group when
// PerGroup, Rate Steps: per time step); Scale None is a bias, X + Shift;
// with ReLU, Y is the map's ReLU.
type ChannelAffine struct {
	C, HW              int
	Rate               Rate
	PerGroup           bool
	Layout             Layout
	X, Scale, Shift, Y Ref
	// ReLU: Y is the ReLU of the map (a ReLU fused into it).
	ReLU bool
}

// Kernel implements Op.
func (o *ChannelAffine) Kernel() string { return "ChannelAffine" }

// Operands implements Op.
func (o *ChannelAffine) Operands() (reads, w []Ref) {
	return refs(o.X, o.Scale, o.Shift), refs(o.Y)
}

// Detail implements Op.
func (o *ChannelAffine) Detail() string {
	s := fmt.Sprintf("%d channels ×%d", o.C, o.HW)
	if o.Scale == None {
		s += ", a bias"
	}
	if o.ReLU {
		s += ", then ReLU"
	}
	return s + lastDetail(o.Layout)
}

// Run implements Op.
func (o *ChannelAffine) Run(m *Machine) {
	groups, rows := 1, m.Rows(o.Rate)
	if o.PerGroup {
		groups = m.dims.Steps
	}
	if groups < 1 {
		m.fail(fmt.Errorf("program: ChannelAffine per time step in a run of %d steps", groups))
		return
	}
	m.be.ChannelAffine(groups, rows/groups, o.C, o.HW, o.Layout, m.Buf(o.X), m.Buf(o.Scale), m.Buf(o.Shift), m.Buf(o.Y), o.ReLU)
}

// BatchNormGrad is BatchNorm's backward pass for the statistics the
// forward pass normalised with (BatchStats: the batch's own). With
// PerGroup (Rate Steps, statistics per time step) each step's rows run
// their own backward pass with their step's statistics, adding into DG
// and DB in step order. With Overwrite, DG and DB are written (the first
// step's) instead of added into (NoGradFill: no fill before).
type BatchNormGrad struct {
	C, HW                               int
	Rate                                Rate
	BatchStats, PerGroup, Overwrite     bool
	Eps                                 float32
	Layout                              Layout
	Gamma, Mean, Var, X, DY, DX, DG, DB Ref
}

// Kernel implements Op.
func (o *BatchNormGrad) Kernel() string { return "BatchNormBackward" }

// Operands implements Op.
func (o *BatchNormGrad) Operands() (reads, w []Ref) {
	if o.Overwrite {
		return refs(o.Gamma, o.Mean, o.Var, o.X, o.DY), refs(o.DX, o.DG, o.DB)
	}
	return refs(o.Gamma, o.Mean, o.Var, o.X, o.DY, o.DG, o.DB), refs(o.DX, o.DG, o.DB)
}

// Detail implements Op.
func (o *BatchNormGrad) Detail() string {
	return fmt.Sprintf("%d channels ×%d batch statistics %v", o.C, o.HW, o.BatchStats) + lastDetail(o.Layout)
}

// Run implements Op.
func (o *BatchNormGrad) Run(m *Machine) {
	if o.PerGroup {
		o.runGroups(m)
		return
	}
	m.be.BatchNormBackward(m.Rows(o.Rate), o.C, o.HW, o.Layout, o.BatchStats, o.Eps, m.Buf(o.Gamma), m.Buf(o.Mean), m.Buf(o.Var),
		m.Buf(o.X), m.Buf(o.DY), m.Buf(o.DX), m.Buf(o.DG), m.Buf(o.DB), !o.Overwrite)
}

// runGroups runs one backward pass per time step on its rows.
func (o *BatchNormGrad) runGroups(m *Machine) {
	n, size := m.dims.N, m.dims.N*o.C*o.HW
	x, dy, dx, mean, vr := m.Buf(o.X), m.Buf(o.DY), m.Buf(o.DX), m.Buf(o.Mean), m.Buf(o.Var)
	for g := 0; g < m.dims.Steps; g++ {
		var dxg compute.Buffer
		if dx != nil {
			dxg = dx.Slice(g*size, (g+1)*size)
		}
		m.be.BatchNormBackward(n, o.C, o.HW, o.Layout, o.BatchStats, o.Eps, m.Buf(o.Gamma), mean.Slice(g*o.C, (g+1)*o.C), vr.Slice(g*o.C, (g+1)*o.C),
			x.Slice(g*size, (g+1)*size), dy.Slice(g*size, (g+1)*size), dxg, m.Buf(o.DG), m.Buf(o.DB), g > 0 || !o.Overwrite)
	}
}

// IF advances N integrate-and-fire neurons per sample over the run's
// steps: In is their current ([steps, N] rows, or with Constant the same
// [N] at every step), mapped first by Scale and Shift where set (a fused
// BatchNorm of C channels × HW, per step with PerStep; Shift alone is the
// producing layer's fused bias); V the potentials
// ([N] per sample, carried from run to run of the pass), Spikes the
// output, Counts (None: not counted) the spikes summed. With Pool the
// spikes are max-pooled in the kernel and Spikes receives only the pooled
// ones (compute.IFArgs.Pool). Layout is how the C channels × HW of each
// sample's neurons lie (its operands' layout).
type IF struct {
	N                 int
	In                Ref
	Constant          bool
	Scale, Shift      Ref
	PerStep           bool
	C, HW             int
	Layout            Layout
	V, Spikes, Counts Ref
	Threshold, Reset  float32
	Pool              *compute.PoolGeom
	// Start: in the simulation's first chunk (Dims.T0 = 0) the potentials
	// start at Reset and the counts at 0 without being read, so that no
	// fill is needed (compute.IFArgs.Start).
	Start bool
}

// Kernel implements Op.
func (o *IF) Kernel() string { return "IF" }

// Operands implements Op.
func (o *IF) Operands() (reads, w []Ref) {
	return refs(o.In, o.Scale, o.Shift, o.V, o.Counts), refs(o.V, o.Spikes, o.Counts)
}

// Detail implements Op.
func (o *IF) Detail() string {
	s := fmt.Sprintf("%d neurons v_th %g v_reset %g", o.N, o.Threshold, o.Reset)
	if o.Constant {
		s += ", constant input"
	}
	if o.Scale != None {
		s += ", BatchNorm applied"
	} else if o.Shift != None {
		s += ", bias added"
	}
	if g := o.Pool; g != nil {
		s += fmt.Sprintf(", max-pooled %dx%d", g.KH, g.KW)
	}
	if o.Start {
		s += ", starting at v_reset"
	}
	return s + lastDetail(o.Layout)
}

// Run implements Op.
func (o *IF) Run(m *Machine) {
	a := compute.IFArgs{Steps: m.dims.Steps, N: mul(m.dims.N, o.N), In: m.Buf(o.In), Constant: o.Constant,
		V: m.Buf(o.V), Spikes: m.Buf(o.Spikes), Counts: m.Buf(o.Counts), Threshold: o.Threshold, Reset: o.Reset, Pool: o.Pool,
		Start: o.Start && m.dims.T0 == 0, Layout: o.Layout}
	if o.Shift != None {
		a.Scale, a.Shift, a.PerStep, a.C, a.HW = m.Buf(o.Scale), m.Buf(o.Shift), o.PerStep, o.C, o.HW
	}
	m.be.IF(a)
}

// ProxyLoss writes the proxy loss's gradient from the counts and labels.
type ProxyLoss struct {
	K                  int
	Counts, Labels, DY Ref
}

// Kernel implements Op.
func (o *ProxyLoss) Kernel() string { return "ProxyLossGrad" }

// Operands implements Op.
func (o *ProxyLoss) Operands() (reads, w []Ref) { return refs(o.Counts, o.Labels), refs(o.DY) }

// Detail implements Op.
func (o *ProxyLoss) Detail() string { return fmt.Sprintf("%d classes", o.K) }

// Run implements Op.
func (o *ProxyLoss) Run(m *Machine) {
	m.be.ProxyLossGrad(m.dims.N, o.K, m.Buf(o.Counts), m.Buf(o.Labels), m.Buf(o.DY))
}

// SynOps adds to the machine's synaptic operation count for Node what
// the K inputs per row of X trigger: Σ X × FanOut, a matrix-vector product
// into Tmp and its sum (a host read).
type SynOps struct {
	K              int
	Rate           Rate
	X, FanOut, Tmp Ref
	Spikes         bool
	Node           int
}

// Kernel implements Op.
func (o *SynOps) Kernel() string { return "LinearForward+Sum" }

// Operands implements Op.
func (o *SynOps) Operands() (reads, w []Ref) { return refs(o.X, o.FanOut), refs(o.Tmp) }

// Detail implements Op.
func (o *SynOps) Detail() string { return fmt.Sprintf("synaptic operations of %d inputs", o.K) }

// Run implements Op.
func (o *SynOps) Run(m *Machine) {
	rows := m.Rows(o.Rate)
	tmp := m.Buf(o.Tmp)
	m.be.LinearForward(rows, o.K, 1, m.Buf(o.X), m.Buf(o.FanOut), nil, tmp, o.Spikes)
	s, err := m.be.Sum(tmp)
	if err != nil {
		m.fail(fmt.Errorf("counting synaptic operations: %w", err))
	}
	if m.synOps == nil {
		m.synOps = map[int]float64{}
	}
	m.synOps[o.Node] += s
}

// Const uploads host values into Dst: constants a program needs on its
// backend (fan-outs), written once per run.
type Const struct {
	Dst  Ref
	Data []float32
}

// Kernel implements Op.
func (o *Const) Kernel() string { return "Upload" }

// Operands implements Op.
func (o *Const) Operands() (reads, w []Ref) { return nil, refs(o.Dst) }

// Detail implements Op.
func (o *Const) Detail() string { return fmt.Sprintf("%d values", len(o.Data)) }

// Run implements Op.
func (o *Const) Run(m *Machine) { m.be.Upload(m.Buf(o.Dst), o.Data) }

// Adam applies one step of PyTorch's Adam with L2 weight decay to a
// parameter from its gradient and moments. Args are the step's settings,
// which the optimizer sets before each run.
type Adam struct {
	Args          *compute.AdamArgs
	P, Grad, M, V Ref
}

// Kernel implements Op.
func (o *Adam) Kernel() string { return "Adam" }

// Operands implements Op.
func (o *Adam) Operands() (reads, w []Ref) {
	return refs(o.P, o.Grad, o.M, o.V), refs(o.P, o.M, o.V)
}

// Detail implements Op.
func (o *Adam) Detail() string { return "" }

// Run implements Op.
func (o *Adam) Run(m *Machine) {
	if o.Args == nil {
		m.fail(fmt.Errorf("program: an Adam op without its step's settings (Args nil)"))
		return
	}
	m.be.Adam(*o.Args, m.Buf(o.P), m.Buf(o.Grad), m.Buf(o.M), m.Buf(o.V))
}
