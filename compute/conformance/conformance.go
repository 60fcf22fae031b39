// Package conformance is the test suite every compute.Backend runs, the
// way gonum's testblas holds any BLAS to one set of tests: each kernel
// against PyTorch's results (testdata/kernels.json, written by
// scripts/make_kernel_fixtures.py) and, on random inputs, against plain
// float64 references written in this package, each check with a stated
// tolerance. Outputs are poisoned with NaN before a kernel writes them, so
// an element a kernel forgets fails the check.
//
// A backend's own test calls Test:
//
//	func TestConformance(t *testing.T) { conformance.Test(t, compute.NewCPU(), conformance.FP32) }
package conformance

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/internal/fixture"
)

// Tolerances are the relative errors (‖got − want‖/‖want‖) a backend is held
// to.
type Tolerances struct {
	// Elementwise is for kernels without matrix products (pooling, BN,
	// softmax, Adam): float32 arithmetic against a float64 reference.
	Elementwise float64
	// GEMM is for convolutions and linear layers, whose sums a backend may
	// compute with reduced-precision products (TF32).
	GEMM float64
}

// FP32 holds a backend that computes in float32 throughout: far below
// float32's 6e-8 rounding per operation times the depth of the sums here.
var FP32 = Tolerances{Elementwise: 1e-5, GEMM: 1e-5}

// TF32 holds a backend whose matrix products round their inputs to TF32's
// 10-bit mantissa (relative error about 5e-4 per product), as NVIDIA's
// tensor cores do; everything else stays FP32.
var TF32 = Tolerances{Elementwise: 1e-5, GEMM: 3e-3}

// suite carries one backend's run.
type suite struct {
	t   *testing.T
	be  compute.Backend
	tol Tolerances
	rng *rand.Rand
}

// Test runs every check on be.
func Test(t *testing.T, be compute.Backend, tol Tolerances) {
	s := &suite{t: t, be: be, tol: tol, rng: rand.New(rand.NewPCG(7, 11))}
	t.Run("Memory", s.memory)
	t.Run("PyTorch", s.pytorch)
	t.Run("Conv2d", s.conv)
	t.Run("Linear", s.linear)
	t.Run("ReLU", s.relu)
	t.Run("Clip", s.clip)
	t.Run("ChannelShuffle", s.channelShuffle)
	t.Run("Pooling", s.pooling)
	t.Run("GlobalAvgPoolAndPad", s.gapPad)
	t.Run("Joins", s.joins)
	t.Run("Softmax", s.softmax)
	t.Run("BatchNorm", s.batchNorm)
	t.Run("IF", s.integrateAndFire)
	t.Run("Surrogate", s.surrogate)
	t.Run("ProxyLossAndAdam", s.lossAdam)
	t.Run("ChannelsLast", s.channelsLast)
	t.Run("Half", s.half)
	if err := be.Err(); err != nil {
		t.Fatalf("backend %s reported: %v", be.Name(), err)
	}
}

// --- helpers ---

func (s *suite) up(data []float32) compute.Buffer {
	s.t.Helper()
	b, err := s.be.Alloc(len(data))
	if err != nil {
		s.t.Fatal(err)
	}
	s.be.Upload(b, data)
	return b
}

// out allocates an output buffer poisoned with NaN.
func (s *suite) out(n int) compute.Buffer {
	s.t.Helper()
	b, err := s.be.Alloc(n)
	if err != nil {
		s.t.Fatal(err)
	}
	s.be.Fill(b, float32(math.NaN()))
	return b
}

func (s *suite) down(b compute.Buffer) []float32 {
	s.t.Helper()
	h := make([]float32, b.Len())
	if err := s.be.Download(h, b); err != nil {
		s.t.Fatal(err)
	}
	return h
}

func (s *suite) free(bs ...compute.Buffer) {
	for _, b := range bs {
		if b != nil {
			s.be.Free(b)
		}
	}
}

func (s *suite) uniform(n int, lo, hi float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*s.rng.Float32()
	}
	return v
}

// spikes draws 0/1 values, 1 with probability p.
func (s *suite) spikes(n int, p float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		if s.rng.Float32() < p {
			v[i] = 1
		}
	}
	return v
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// check compares got with want: ‖got − want‖/‖want‖ ≤ tol, and no NaN
// (an unwritten element) where want has none.
func (s *suite) check(what string, got []float32, want []float64, tol float64) {
	s.t.Helper()
	if len(got) != len(want) {
		s.t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	var num, den float64
	worst, at := 0.0, 0
	for i := range want {
		g := float64(got[i])
		if math.IsNaN(g) != math.IsNaN(want[i]) {
			s.t.Errorf("%s: element %d is %g, want %g (unwritten or wrong)", what, i, g, want[i])
			return
		}
		if math.IsNaN(g) {
			continue
		}
		d := g - want[i]
		num += d * d
		den += want[i] * want[i]
		if math.Abs(d) > worst {
			worst, at = math.Abs(d), i
		}
	}
	rel := math.Sqrt(num / math.Max(den, 1e-300))
	if den == 0 {
		rel = math.Sqrt(num)
	}
	if rel > tol {
		s.t.Errorf("%s: relative error %.3g > %.3g (worst: element %d off by %.3g)", what, rel, tol, at, worst)
	}
}

// exact requires got == want element by element.
func (s *suite) exact(what string, got, want []float32) {
	s.t.Helper()
	bad := 0
	first := -1
	for i := range want {
		if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if bad > 0 {
		s.t.Errorf("%s: %d of %d values differ (first: element %d is %g, want %g)", what, bad, len(want), first, got[first], want[first])
	}
}

// --- memory ---

func (s *suite) memory(t *testing.T) {
	b, err := s.be.Alloc(1000)
	if err != nil {
		t.Fatal(err)
	}
	defer s.be.Free(b)
	for i, v := range s.down(b) {
		if v != 0 {
			t.Fatalf("Alloc: element %d is %g, want 0", i, v)
		}
	}
	h := s.uniform(1000, -1, 1)
	s.be.Upload(b, h)
	s.exact("Upload/Download", s.down(b), h)
	sl := b.Slice(100, 300)
	if sl.Len() != 200 {
		t.Fatalf("Slice(100, 300).Len() = %d", sl.Len())
	}
	s.exact("Slice", s.down(sl), h[100:300])
	s.be.Fill(sl.Slice(50, 60), 7)
	want := append([]float32(nil), h...)
	for i := 150; i < 160; i++ {
		want[i] = 7
	}
	s.exact("Fill of a slice", s.down(b), want)
	c, err := s.be.Alloc(200)
	if err != nil {
		t.Fatal(err)
	}
	defer s.be.Free(c)
	s.be.Copy(c, sl)
	s.exact("Copy", s.down(c), want[100:300])
	sum, err := s.be.Sum(b)
	if err != nil {
		t.Fatal(err)
	}
	var ref float64
	for _, v := range want {
		ref += float64(v)
	}
	if math.Abs(sum-ref) > 1e-9*math.Max(1, math.Abs(ref))+1e-6 {
		t.Errorf("Sum = %.9g, want %.9g", sum, ref)
	}
	host := s.uniform(64, 0, 1)
	ad, err := s.be.Adopt(host)
	if err != nil {
		t.Fatal(err)
	}
	s.exact("Adopt", s.down(ad), host)
	host[3] = 42
	s.be.Upload(ad, host)
	s.exact("Upload after a host change", s.down(ad), host)
	s.be.Free(ad)
	if err := s.be.Err(); err != nil {
		t.Fatal(err)
	}
}

// --- PyTorch fixtures ---

type arr struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

type kernelCase struct {
	Op              string  `json:"op"`
	Layer           string  `json:"layer"`
	Stride          []int   `json:"stride"`
	Pads            []int   `json:"pads"`
	Groups          int     `json:"groups"`
	Ceiling         float32 `json:"ceiling"`
	Channels        []int   `json:"channels"`
	Dilation        []int   `json:"dilation"`
	K               int     `json:"k"`
	S               int     `json:"s"`
	P               int     `json:"p"`
	Ceil            bool    `json:"ceil"`
	CountIncludePad bool    `json:"count_include_pad"`
	Eps             float32 `json:"eps"`
	Vth             float32 `json:"vth"`
	Vreset          float32 `json:"vreset"`
	X, W, B, Y      *arr
	DY, DX, DW, DB  *arr
	Gamma, Beta     *arr
	Mean, Var       *arr
	NewMean         *arr `json:"new_mean"`
	NewVar          *arr `json:"new_var"`
	DGamma          *arr `json:"dgamma"`
	DBeta           *arr `json:"dbeta"`
	LogY            *arr `json:"logy"`
	Grads           *arr
	Momentum        float32
	LR              float64   `json:"lr"`
	Betas           []float64 `json:"betas"`
	WeightDecay     float64   `json:"weight_decay"`
}

func (s *suite) pytorch(t *testing.T) {
	b, err := os.ReadFile(fixture.Path("kernels.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []kernelCase }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, c := range f.Cases {
		name := c.Op
		if c.Layer != "" {
			name = c.Layer
		}
		seen[name]++
		t.Run(fmt.Sprintf("%d_%s", i, name), func(t *testing.T) {
			sub := &suite{t: t, be: s.be, tol: s.tol, rng: s.rng}
			sub.fixture(c)
		})
	}
	for _, op := range []string{"conv", "maxpool", "avgpool", "bn_eval", "bn_train", "linear", "adam", "softmax", "if",
		"Softmax", "LogSoftmax", "GlobalAvgPool", "Pad2d", "ReLU", "ReLU6", "Hardtanh", "ChannelShuffle", "ChannelSlice"} {
		if seen[op] == 0 {
			t.Errorf("kernels.json has no %s case", op)
		}
	}
}

func (s *suite) fixture(c kernelCase) {
	be, t := s.be, s.t
	switch c.Op {
	case "conv":
		n := c.X.Shape[0]
		g := compute.ConvGeom{C: c.X.Shape[1], H: c.X.Shape[2], W: c.X.Shape[3], O: c.W.Shape[0], KH: c.W.Shape[2],
			KW: c.W.Shape[3], SH: c.Stride[0], SW: c.Stride[1], PT: c.Pads[0], PL: c.Pads[1], PB: c.Pads[2],
			PR: c.Pads[3], DH: c.Dilation[0], DW: c.Dilation[1], G: c.Groups}
		if g.OutH() != c.Y.Shape[2] || g.OutW() != c.Y.Shape[3] {
			t.Fatalf("conv output %dx%d, torch %v", g.OutH(), g.OutW(), c.Y.Shape)
		}
		x, w, dy := s.up(c.X.Data), s.up(c.W.Data), s.up(c.DY.Data)
		var bias, db compute.Buffer
		if c.B != nil {
			bias, db = s.up(c.B.Data), s.up(make([]float32, len(c.B.Data)))
		}
		y, dx, dw := s.out(len(c.Y.Data)), s.out(len(c.X.Data)), s.up(make([]float32, len(c.W.Data)))
		be.Conv2dForward(g, n, x, w, bias, y)
		be.Conv2dBackward(g, n, x, w, dy, dx, dw, db, true)
		s.check("conv forward", s.down(y), f64(c.Y.Data), s.tol.GEMM)
		s.check("conv dx", s.down(dx), f64(c.DX.Data), s.tol.GEMM)
		s.check("conv dw", s.down(dw), f64(c.DW.Data), s.tol.GEMM)
		if db != nil {
			s.check("conv db", s.down(db), f64(c.DB.Data), s.tol.Elementwise)
		}
		s.free(x, w, dy, bias, db, y, dx, dw)
	case "maxpool", "avgpool":
		g := compute.PoolGeom{C: c.X.Shape[1], H: c.X.Shape[2], W: c.X.Shape[3], KH: c.K, KW: c.K, SH: c.S, SW: c.S,
			PT: c.P, PL: c.P, PB: c.P, PR: c.P, Ceil: c.Ceil}
		if g.OutH() != c.Y.Shape[2] || g.OutW() != c.Y.Shape[3] {
			t.Fatalf("%s output %dx%d, torch %v", c.Op, g.OutH(), g.OutW(), c.Y.Shape)
		}
		x, dy := s.up(c.X.Data), s.up(c.DY.Data)
		y, dx := s.out(len(c.Y.Data)), s.out(len(c.X.Data))
		if c.Op == "maxpool" {
			be.MaxPool2dForward(g, c.X.Shape[0], x, y)
			be.MaxPool2dBackward(g, c.X.Shape[0], x, dy, dx, false)
		} else {
			be.AvgPool2dForward(g, c.X.Shape[0], c.CountIncludePad, x, y)
			be.AvgPool2dBackward(g, c.X.Shape[0], c.CountIncludePad, dy, dx)
		}
		s.check(c.Op+" forward", s.down(y), f64(c.Y.Data), 1e-6)
		// ties in the max-pool input: the gradient goes to the first maximum, as in PyTorch
		s.check(c.Op+" backward", s.down(dx), f64(c.DX.Data), 1e-6)
		s.free(x, dy, y, dx)
	case "bn_eval", "bn_train":
		n, ch, hw := c.X.Shape[0], c.X.Shape[1], c.X.Shape[2]*c.X.Shape[3]
		x, gamma, beta, dy := s.up(c.X.Data), s.up(c.Gamma.Data), s.up(c.Beta.Data), s.up(c.DY.Data)
		mean, variance := s.up(c.Mean.Data), s.up(c.Var.Data)
		scale, shift, y := s.out(ch), s.out(ch), s.out(len(c.X.Data))
		train := c.Op == "bn_train"
		if train {
			runMean, runVar := s.up(c.Mean.Data), s.up(c.Var.Data)
			be.BatchNormStats(1, n, ch, hw, compute.NCHW, x, mean, variance)
			be.BatchNormUpdateRunning(1, ch, n*hw, c.Momentum, mean, variance, runMean, runVar)
			s.check("bn running mean", s.down(runMean), f64(c.NewMean.Data), 1e-6)
			s.check("bn running var", s.down(runVar), f64(c.NewVar.Data), 1e-6)
			s.free(runMean, runVar)
		}
		be.BatchNormScaleShift(1, ch, c.Eps, gamma, beta, mean, variance, scale, shift)
		be.ChannelAffine(1, n, ch, hw, compute.NCHW, x, scale, shift, y, false)
		s.check(c.Op+" forward", s.down(y), f64(c.Y.Data), 1e-6)
		dx, dg, dbeta := s.out(len(c.X.Data)), s.up(make([]float32, ch)), s.up(make([]float32, ch))
		be.BatchNormBackward(n, ch, hw, compute.NCHW, train, c.Eps, gamma, mean, variance, x, dy, dx, dg, dbeta, true)
		s.check(c.Op+" dx", s.down(dx), f64(c.DX.Data), 1e-5)
		s.check(c.Op+" dgamma", s.down(dg), f64(c.DGamma.Data), 1e-5)
		s.check(c.Op+" dbeta", s.down(dbeta), f64(c.DBeta.Data), 1e-5)
		s.free(x, gamma, beta, dy, mean, variance, scale, shift, y, dx, dg, dbeta)
	case "linear":
		n, in, outF := c.X.Shape[0], c.X.Shape[1], c.W.Shape[0]
		x, w, bias, dy := s.up(c.X.Data), s.up(c.W.Data), s.up(c.B.Data), s.up(c.DY.Data)
		y, dx := s.out(n*outF), s.out(len(c.X.Data))
		dw, db := s.up(make([]float32, len(c.W.Data))), s.up(make([]float32, outF))
		be.LinearForward(n, in, outF, x, w, bias, y, false)
		be.LinearBackward(n, in, outF, x, w, dy, dx, dw, db, true)
		s.check("linear", s.down(y), f64(c.Y.Data), s.tol.GEMM)
		s.check("linear dx", s.down(dx), f64(c.DX.Data), s.tol.GEMM)
		s.check("linear dw", s.down(dw), f64(c.DW.Data), s.tol.GEMM)
		s.check("linear db", s.down(db), f64(c.DB.Data), 1e-6)
		s.free(x, w, bias, dy, y, dx, dw, db)
	case "adam":
		k := len(c.X.Data)
		p, m, v, g := s.up(c.X.Data), s.up(make([]float32, k)), s.up(make([]float32, k)), s.out(k)
		for step := 0; step < c.Grads.Shape[0]; step++ {
			be.Upload(g, c.Grads.Data[step*k:(step+1)*k])
			be.Adam(compute.AdamArgs{Step: step + 1, LR: c.LR, Beta1: c.Betas[0], Beta2: c.Betas[1], Eps: float64(c.Eps),
				WeightDecay: c.WeightDecay}, p, g, m, v)
			s.check(fmt.Sprintf("adam step %d", step+1), s.down(p), f64(c.Y.Data[step*k:(step+1)*k]), 1e-6)
		}
		s.free(p, m, v, g)
	case "softmax":
		n, k := c.X.Shape[0], c.X.Shape[1]
		x, y := s.up(c.X.Data), s.out(n*k)
		be.SoftmaxForward(n, k, false, x, y)
		s.check("softmax", s.down(y), f64(c.Y.Data), 1e-6)
		be.SoftmaxForward(n, k, true, x, y)
		s.check("log-softmax", s.down(y), f64(c.LogY.Data), 1e-6)
		s.free(x, y)
	case "if":
		steps, n := c.X.Shape[0], c.X.Shape[1]
		in, v := s.up(c.X.Data), s.out(n)
		be.Fill(v, c.Vreset)
		spikes := s.out(steps * n)
		// one call over all steps, then the same one step per call
		be.IF(compute.IFArgs{Steps: steps, N: n, In: in, V: v, Spikes: spikes, Threshold: c.Vth, Reset: c.Vreset})
		s.exact("IF spikes, all steps in one call", s.down(spikes), c.Y.Data)
		be.Fill(v, c.Vreset)
		for step := 0; step < steps; step++ {
			be.IF(compute.IFArgs{Steps: 1, N: n, In: in.Slice(step*n, (step+1)*n), V: v,
				Spikes: spikes.Slice(step*n, (step+1)*n), Threshold: c.Vth, Reset: c.Vreset})
		}
		s.exact("IF spikes, one step per call", s.down(spikes), c.Y.Data)
		s.free(in, v, spikes)
	case "layer":
		x, dy := s.up(c.X.Data), s.up(c.DY.Data)
		y, dx := s.out(len(c.Y.Data)), s.out(len(c.X.Data))
		switch c.Layer {
		case "Softmax", "LogSoftmax":
			log := c.Layer == "LogSoftmax"
			be.SoftmaxForward(c.X.Shape[0], c.X.Shape[1], log, x, y)
			be.SoftmaxBackward(c.X.Shape[0], c.X.Shape[1], log, y, dy, dx)
		case "GlobalAvgPool":
			nc, hw := c.X.Shape[0]*c.X.Shape[1], c.X.Shape[2]*c.X.Shape[3]
			be.GlobalAvgPoolForward(nc, hw, x, y)
			be.GlobalAvgPoolBackward(nc, hw, dy, dx)
		case "Pad2d": // the fixture's padding: top 0, bottom 3, left 1, right 2, value 0.5
			g := compute.PadGeom{H: c.X.Shape[2], W: c.X.Shape[3], PT: 0, PB: 3, PL: 1, PR: 2, Value: 0.5}
			nc := c.X.Shape[0] * c.X.Shape[1]
			be.Pad2dForward(g, nc, x, y)
			be.Pad2dBackward(g, nc, dy, dx)
		case "ReLU":
			be.ReLUForward(x, y)
			be.ReLUBackward(y, dy, dx)
		case "ReLU6", "Hardtanh":
			be.ClipForward(c.Ceiling, x, y)
			be.ClipBackward(c.Ceiling, y, dy, dx)
		case "ChannelShuffle": // the backward pass is the inverse shuffle
			n, ch, hw := c.X.Shape[0], c.X.Shape[1], c.X.Shape[2]*c.X.Shape[3]
			be.ChannelShuffle(n, c.Groups, ch, hw, x, y)
			be.ChannelShuffle(n, ch/c.Groups, ch, hw, dy, dx)
		case "ChannelSlice": // channels [lo, hi); the gradient is zero elsewhere
			n, ch, hw := c.X.Shape[0], c.X.Shape[1], c.X.Shape[2]*c.X.Shape[3]
			lo, hi := c.Channels[0], c.Channels[1]
			be.CopyChannels(n, hi-lo, hw, x, ch, lo, y, hi-lo, 0)
			be.Fill(dx, 0)
			be.CopyChannels(n, hi-lo, hw, dy, hi-lo, 0, dx, ch, lo)
		default:
			t.Fatalf("unknown layer case %q", c.Layer)
		}
		s.check(c.Layer+" forward", s.down(y), f64(c.Y.Data), 1e-6)
		s.check(c.Layer+" backward", s.down(dx), f64(c.DX.Data), 1e-5)
		s.free(x, dy, y, dx)
	default:
		t.Fatalf("unknown case op %q", c.Op)
	}
}
