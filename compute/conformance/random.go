package conformance

import (
	"fmt"
	"github.com/proxykit/proxykit/compute/refmath"
	"math"
	"testing"

	"github.com/proxykit/proxykit/compute"
)

// convCases cover padding on one side only, strides, dilation, a kernel
// larger than its padding, and sizes large enough to reach the backends'
// parallel and chunked paths.
var convCases = []struct {
	g compute.ConvGeom
	n int
}{
	{compute.ConvGeom{C: 3, H: 7, W: 9, O: 4, KH: 3, KW: 2, SH: 2, SW: 1, PT: 1, PL: 0, PB: 2, PR: 1, DH: 2, DW: 1}, 2},
	{compute.ConvGeom{C: 1, H: 28, W: 28, O: 8, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1, DH: 1, DW: 1}, 5},
	{compute.ConvGeom{C: 8, H: 14, W: 14, O: 16, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1, DH: 1, DW: 1}, 9},
	{compute.ConvGeom{C: 5, H: 11, W: 6, O: 3, KH: 5, KW: 1, SH: 3, SW: 2, PT: 0, PL: 2, PB: 1, PR: 0, DH: 1, DW: 3}, 3},
	{compute.ConvGeom{C: 2, H: 4, W: 4, O: 2, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1}, 1},
	// grouped (2 groups, 3 inputs and 2 outputs each, stride and asymmetric padding) and depthwise (a
	// channel multiplier of 2)
	{compute.ConvGeom{C: 6, H: 9, W: 7, O: 4, KH: 3, KW: 3, SH: 2, SW: 1, PT: 1, PL: 0, PB: 0, PR: 1, DH: 1, DW: 1, G: 2}, 3},
	{compute.ConvGeom{C: 8, H: 14, W: 14, O: 16, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1, DH: 1, DW: 1, G: 8}, 4},
}

func (s *suite) conv(t *testing.T) {
	for i, c := range convCases {
		for _, spiking := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d_spikes=%v", i, spiking), func(t *testing.T) {
				ss := &suite{t: t, be: s.be, tol: s.tol, rng: s.rng}
				g, n := c.g, c.n
				var xh []float32
				if spiking {
					xh = ss.spikes(n*g.C*g.H*g.W, 0.2)
				} else {
					xh = ss.uniform(n*g.C*g.H*g.W, -1, 1)
				}
				wh, bh := ss.uniform(g.O*g.GroupPatch(), -0.5, 0.5), ss.uniform(g.O, -1, 1)
				ny := n * g.O * g.OutH() * g.OutW()
				dyh := ss.uniform(ny, -1, 1)
				dw0, db0 := ss.uniform(len(wh), -1, 1), ss.uniform(g.O, -1, 1)
				x, w, bias, dy := ss.up(xh), ss.up(wh), ss.up(bh), ss.up(dyh)
				y, dx, dw, db := ss.out(ny), ss.out(len(xh)), ss.up(dw0), ss.up(db0)
				s.be.Conv2dForward(g, n, x, w, bias, y)
				s.be.Conv2dBackward(g, n, x, w, dy, dx, dw, db, true)
				ss.check("forward", ss.down(y), refmath.Conv(g, n, xh, wh, bh), s.tol.GEMM)
				rdx, rdw, rdb := refmath.ConvBackward(g, n, xh, wh, dyh)
				for i := range rdw {
					rdw[i] += float64(dw0[i])
				}
				for i := range rdb {
					rdb[i] += float64(db0[i])
				}
				ss.check("dx", ss.down(dx), rdx, s.tol.GEMM)
				ss.check("dw (accumulated)", ss.down(dw), rdw, s.tol.GEMM)
				ss.check("db (accumulated)", ss.down(db), rdb, s.tol.Elementwise)
				// no bias, no dx: the nil forms
				y2, dw2 := ss.out(ny), ss.up(make([]float32, len(wh)))
				s.be.Conv2dForward(g, n, x, w, nil, y2)
				s.be.Conv2dBackward(g, n, x, w, dy, nil, dw2, nil, true)
				ss.check("forward without bias", ss.down(y2), refmath.Conv(g, n, xh, wh, nil), s.tol.GEMM)
				_, rdw2, _ := refmath.ConvBackward(g, n, xh, wh, dyh)
				ss.check("dw without dx", ss.down(dw2), rdw2, s.tol.GEMM)
				// written, not added into (poisoned: NaN stays where it is read)
				dw3, db3 := ss.out(len(wh)), ss.out(g.O)
				s.be.Conv2dBackward(g, n, x, w, dy, nil, dw3, db3, false)
				_, _, rdb3 := refmath.ConvBackward(g, n, xh, wh, dyh)
				ss.check("dw written", ss.down(dw3), rdw2, s.tol.GEMM)
				ss.check("db written", ss.down(db3), rdb3, s.tol.Elementwise)
				ss.free(dw3, db3)
				// the weights change (as an optimizer changes them): a backend
				// that prepares weights must see the new ones
				wh2 := ss.uniform(len(wh), -0.5, 0.5)
				s.be.Upload(w, wh2)
				s.be.Conv2dForward(g, n, x, w, nil, y2)
				ss.check("forward after the weights changed", ss.down(y2), refmath.Conv(g, n, xh, wh2, nil), s.tol.GEMM)
				ss.free(x, w, bias, dy, y, dx, dw, db, y2, dw2)
			})
		}
	}
}

func (s *suite) linear(t *testing.T) {
	// the last case is large enough for the CPU backend's parallel GEMM
	for _, c := range []struct{ n, in, out int }{{3, 5, 4}, {16, 70, 33}, {100, 300, 120}} {
		for _, spiking := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx%dx%d_spikes=%v", c.n, c.in, c.out, spiking), func(t *testing.T) {
				ss := &suite{t: t, be: s.be, tol: s.tol, rng: s.rng}
				var xh []float32
				if spiking {
					xh = ss.spikes(c.n*c.in, 0.15)
				} else {
					xh = ss.uniform(c.n*c.in, -1, 1)
				}
				wh, bh, dyh := ss.uniform(c.out*c.in, -0.3, 0.3), ss.uniform(c.out, -1, 1), ss.uniform(c.n*c.out, -1, 1)
				dw0 := ss.uniform(len(wh), -1, 1)
				x, w, bias, dy := ss.up(xh), ss.up(wh), ss.up(bh), ss.up(dyh)
				y, dx, dw, db := ss.out(c.n*c.out), ss.out(len(xh)), ss.up(dw0), ss.up(make([]float32, c.out))
				s.be.LinearForward(c.n, c.in, c.out, x, w, bias, y, spiking)
				ss.check("forward", ss.down(y), refmath.Linear(c.n, c.in, c.out, xh, wh, bh), s.tol.GEMM)
				s.be.LinearBackward(c.n, c.in, c.out, x, w, dy, dx, dw, db, true)
				rdx, rdw, rdb := refmath.LinearBackward(c.n, c.in, c.out, xh, wh, dyh)
				for j := range rdw {
					rdw[j] += float64(dw0[j])
				}
				ss.check("dx", ss.down(dx), rdx, s.tol.GEMM)
				ss.check("dw (accumulated)", ss.down(dw), rdw, s.tol.GEMM)
				ss.check("db", ss.down(db), rdb, s.tol.Elementwise)
				// written, not added into (poisoned: NaN stays where it is read)
				dw3, db3 := ss.out(len(wh)), ss.out(c.out)
				s.be.LinearBackward(c.n, c.in, c.out, x, w, dy, nil, dw3, db3, false)
				_, rdw3, _ := refmath.LinearBackward(c.n, c.in, c.out, xh, wh, dyh)
				ss.check("dw written", ss.down(dw3), rdw3, s.tol.GEMM)
				ss.check("db written", ss.down(db3), rdb, s.tol.Elementwise)
				ss.free(dw3, db3)
				// changed weights and no bias: a backend caching transposed
				// weights must drop the old ones
				wh2 := ss.uniform(len(wh), -0.3, 0.3)
				s.be.Upload(w, wh2)
				s.be.LinearForward(c.n, c.in, c.out, x, w, nil, y, spiking)
				ss.check("forward after the weights changed", ss.down(y), refmath.Linear(c.n, c.in, c.out, xh, wh2, nil), s.tol.GEMM)
				ss.free(x, w, bias, dy, y, dx, dw, db)
			})
		}
	}
}

func (s *suite) relu(t *testing.T) {
	n := 3001
	xh, dyh := s.uniform(n, -1, 1), s.uniform(n, -1, 1)
	xh[0], xh[1] = 0, float32(math.Copysign(0, -1))
	x, dy, y, dx := s.up(xh), s.up(dyh), s.out(n), s.out(n)
	s.be.ReLUForward(x, y)
	s.be.ReLUBackward(y, dy, dx)
	want, wantDX := make([]float32, n), make([]float32, n)
	for i, v := range xh {
		if v > 0 {
			want[i], wantDX[i] = v, dyh[i]
		}
	}
	s.exact("forward", s.down(y), want)
	s.exact("backward", s.down(dx), wantDX)
	s.be.ReLUForward(x, x) // in place
	s.exact("in place", s.down(x), want)
	s.free(x, dy, y, dx)
}

// clip checks ClipForward and ClipBackward against refmath, exactly, with
// the bounds themselves, values beyond them, negative zero and NaN in the
// input.
func (s *suite) clip(t *testing.T) {
	n := 3001
	for _, ceiling := range []float32{6, 0.75} {
		xh, dyh := s.uniform(n, -2*ceiling, 2*ceiling), s.uniform(n, -1, 1)
		xh[0], xh[1], xh[2], xh[3] = 0, ceiling, float32(math.Copysign(0, -1)), float32(math.NaN())
		x, dy, y, dx := s.up(xh), s.up(dyh), s.out(n), s.out(n)
		s.be.ClipForward(ceiling, x, y)
		s.be.ClipBackward(ceiling, y, dy, dx)
		yh := s.down(y)
		want := refmath.Clip(float64(ceiling), xh)
		s.exact(fmt.Sprintf("forward, ceiling %g", ceiling), yh, f32(want))
		s.exact(fmt.Sprintf("backward, ceiling %g", ceiling), s.down(dx), f32(refmath.ClipBackward(float64(ceiling), yh, dyh)))
		s.be.ClipForward(ceiling, x, x) // in place
		s.exact(fmt.Sprintf("in place, ceiling %g", ceiling), s.down(x), f32(want))
		s.free(x, dy, y, dx)
	}
}

// channelShuffle checks ChannelShuffle against refmath's transpose, and
// that the shuffle with c/groups groups undoes it, exactly, on sizes that
// reach the backends' parallel paths.
func (s *suite) channelShuffle(t *testing.T) {
	for _, c := range []struct{ n, groups, c, hw int }{{2, 2, 6, 5}, {3, 3, 12, 7}, {4, 2, 116, 64}, {1, 4, 4, 1}} {
		size := c.n * c.c * c.hw
		xh := s.uniform(size, -1, 1)
		x, y, back := s.up(xh), s.out(size), s.out(size)
		s.be.ChannelShuffle(c.n, c.groups, c.c, c.hw, x, y)
		what := fmt.Sprintf("%d samples of %d channels ×%d, %d groups", c.n, c.c, c.hw, c.groups)
		s.exact(what, s.down(y), f32(refmath.ChannelShuffle(c.n, c.groups, c.c, c.hw, xh)))
		s.be.ChannelShuffle(c.n, c.c/c.groups, c.c, c.hw, y, back)
		s.exact(what+", undone", s.down(back), xh)
		s.free(x, y, back)
	}
}

// f32 rounds a reference's values to float32, for exact comparisons.
func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// joins checks the operations of branching networks: AddTo (a residual
// join, and gradients summed at a fan-out) and CopyChannels (a
// concatenation along channels and its backward pass), exactly.
func (s *suite) joins(t *testing.T) {
	n := 1037
	ah, bh := s.uniform(n, -1, 1), s.uniform(n, -1, 1)
	a, b := s.up(ah), s.up(bh)
	s.be.AddTo(a, b)
	want := make([]float32, n)
	for i := range want {
		want[i] = ah[i] + bh[i]
	}
	s.exact("AddTo", s.down(a), want)
	// concatenate [3, 2, 5, hw] and [3, 4, 5, hw]-like tensors: 2 + 4
	// channels of hw values, 3 samples; then take the second part back out
	ns, hw, c1, c2 := 3, 7, 2, 4
	xh, yh := s.uniform(ns*c1*hw, -1, 1), s.uniform(ns*c2*hw, -1, 1)
	x, y, cat, back := s.up(xh), s.up(yh), s.out(ns*(c1+c2)*hw), s.out(ns*c2*hw)
	s.be.CopyChannels(ns, c1, hw, x, c1, 0, cat, c1+c2, 0)
	s.be.CopyChannels(ns, c2, hw, y, c2, 0, cat, c1+c2, c1)
	wantCat := make([]float32, 0, ns*(c1+c2)*hw)
	for i := 0; i < ns; i++ {
		wantCat = append(wantCat, xh[i*c1*hw:(i+1)*c1*hw]...)
		wantCat = append(wantCat, yh[i*c2*hw:(i+1)*c2*hw]...)
	}
	s.exact("CopyChannels (concatenate)", s.down(cat), wantCat)
	s.be.CopyChannels(ns, c2, hw, cat, c1+c2, c1, back, c2, 0)
	s.exact("CopyChannels (split)", s.down(back), yh)
	s.free(a, b, x, y, cat, back)
}

var poolCases = []compute.PoolGeom{
	{C: 3, H: 8, W: 8, KH: 2, KW: 2, SH: 2, SW: 2},
	{C: 2, H: 7, W: 9, KH: 3, KW: 2, SH: 2, SW: 3, PT: 1, PL: 1, PB: 1, PR: 0, Ceil: true},
	{C: 4, H: 5, W: 5, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{C: 2, H: 6, W: 7, KH: 4, KW: 3, SH: 3, SW: 2, Ceil: true},
}

func (s *suite) pooling(t *testing.T) {
	for i, g := range poolCases {
		n := 3
		nx, ny := n*g.C*g.H*g.W, n*g.C*g.OutH()*g.OutW()
		for _, spiking := range []bool{false, true} {
			var xh []float32
			if spiking { // ties everywhere: the gradient must go to the first maximum
				xh = s.spikes(nx, 0.4)
			} else {
				xh = s.uniform(nx, -1, 1)
			}
			dyh := s.uniform(ny, -1, 1)
			x, dy, y, dx := s.up(xh), s.up(dyh), s.out(ny), s.out(nx)
			what := fmt.Sprintf("case %d spikes=%v", i, spiking)
			s.be.MaxPool2dForward(g, n, x, y)
			s.be.MaxPool2dBackward(g, n, x, dy, dx, false)
			ry, arg := refmath.MaxPool(g, n, xh)
			rdx := make([]float64, nx)
			for o, a := range arg {
				if a >= 0 {
					rdx[a] += float64(dyh[o])
				}
			}
			s.check("max forward "+what, s.down(y), ry, 0)
			s.check("max backward "+what, s.down(dx), rdx, 1e-6)
			// through the ReLU whose output x is (x ≤ 0 where it is not
			// positive; a spike's 0 too): 0 wherever x is not positive
			s.be.MaxPool2dBackward(g, n, x, dy, dx, true)
			for j, v := range xh {
				if !(v > 0) {
					rdx[j] = 0
				}
			}
			s.check("max backward through a ReLU "+what, s.down(dx), rdx, 1e-6)
			for _, countPad := range []bool{false, true} {
				s.be.AvgPool2dForward(g, n, countPad, x, y)
				s.be.AvgPool2dBackward(g, n, countPad, dy, dx)
				s.check(fmt.Sprintf("avg forward %s countPad=%v", what, countPad), s.down(y), refmath.AvgPool(g, n, countPad, xh), s.tol.Elementwise)
				s.check(fmt.Sprintf("avg backward %s countPad=%v", what, countPad), s.down(dx), refmath.AvgPoolBackward(g, n, countPad, dyh), s.tol.Elementwise)
			}
			s.free(x, dy, y, dx)
		}
	}
}

func (s *suite) gapPad(t *testing.T) {
	nc, hw := 37, 49
	xh, dyh := s.uniform(nc*hw, -1, 1), s.uniform(nc, -1, 1)
	x, dy, y, dx := s.up(xh), s.up(dyh), s.out(nc), s.out(nc*hw)
	s.be.GlobalAvgPoolForward(nc, hw, x, y)
	s.be.GlobalAvgPoolBackward(nc, hw, dy, dx)
	ry, rdx := make([]float64, nc), make([]float64, nc*hw)
	for i := 0; i < nc; i++ {
		for j := 0; j < hw; j++ {
			ry[i] += float64(xh[i*hw+j]) / float64(hw)
			rdx[i*hw+j] = float64(dyh[i]) / float64(hw)
		}
	}
	s.check("global average pool forward", s.down(y), ry, s.tol.Elementwise)
	s.check("global average pool backward", s.down(dx), rdx, s.tol.Elementwise)
	s.free(x, dy, y, dx)

	g := compute.PadGeom{H: 5, W: 7, PT: 2, PL: 0, PB: 1, PR: 3, Value: -0.25}
	nc = 6
	xh = s.uniform(nc*g.H*g.W, -1, 1)
	dyh = s.uniform(nc*g.OutH()*g.OutW(), -1, 1)
	x, dy, y, dx = s.up(xh), s.up(dyh), s.out(len(dyh)), s.out(len(xh))
	s.be.Pad2dForward(g, nc, x, y)
	s.be.Pad2dBackward(g, nc, dy, dx)
	want, wantDX := make([]float32, len(dyh)), make([]float32, len(xh))
	for p := 0; p < nc; p++ {
		for yy := 0; yy < g.OutH(); yy++ {
			for xx := 0; xx < g.OutW(); xx++ {
				o := (p*g.OutH()+yy)*g.OutW() + xx
				ih, iw := yy-g.PT, xx-g.PL
				if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
					want[o] = g.Value
					continue
				}
				i := (p*g.H+ih)*g.W + iw
				want[o], wantDX[i] = xh[i], dyh[o]
			}
		}
	}
	s.exact("pad forward", s.down(y), want)
	s.exact("pad backward", s.down(dx), wantDX)
	s.free(x, dy, y, dx)
}

func (s *suite) softmax(t *testing.T) {
	n, k := 13, 10
	xh, dyh := s.uniform(n*k, -5, 5), s.uniform(n*k, -1, 1)
	x, dy, y, dx := s.up(xh), s.up(dyh), s.out(n*k), s.out(n*k)
	for _, log := range []bool{false, true} {
		s.be.SoftmaxForward(n, k, log, x, y)
		yh := s.down(y)
		s.check(fmt.Sprintf("forward log=%v", log), yh, refmath.Softmax(n, k, log, xh), s.tol.Elementwise)
		s.be.SoftmaxBackward(n, k, log, y, dy, dx)
		s.check(fmt.Sprintf("backward log=%v", log), s.down(dx), refmath.SoftmaxBackward(n, k, log, yh, dyh), s.tol.Elementwise)
	}
	s.free(x, dy, y, dx)
}

func (s *suite) batchNorm(t *testing.T) {
	groups, n, c, hw := 4, 5, 6, 21
	xh := s.uniform(groups*n*c*hw, -2, 3)
	x := s.up(xh)
	mean, variance := s.out(groups*c), s.out(groups*c)
	s.be.BatchNormStats(groups, n, c, hw, compute.NCHW, x, mean, variance)
	rm, rv := refmath.BNStats(groups, n, c, hw, xh)
	mh, vh := s.down(mean), s.down(variance)
	s.check("stats: mean per group", mh, rm, s.tol.Elementwise)
	s.check("stats: variance per group", vh, rv, s.tol.Elementwise)

	// running statistics: folded in group after group
	r0m, r0v := s.uniform(c, -1, 1), s.uniform(c, 0.5, 2)
	runMean, runVar := s.up(r0m), s.up(r0v)
	mom := float32(0.1)
	s.be.BatchNormUpdateRunning(groups, c, n*hw, mom, mean, variance, runMean, runVar)
	wantM, wantV := f64(r0m), f64(r0v)
	for g := 0; g < groups; g++ {
		for ch := 0; ch < c; ch++ {
			wantM[ch] = (1-float64(mom))*wantM[ch] + float64(mom)*float64(mh[g*c+ch])
			wantV[ch] = (1-float64(mom))*wantV[ch] + float64(mom)*float64(vh[g*c+ch])*float64(n*hw)/float64(n*hw-1)
		}
	}
	s.check("running mean", s.down(runMean), wantM, 1e-6)
	s.check("running variance", s.down(runVar), wantV, 1e-6)

	// scale, shift and the affine map, per group
	gh, bh := s.uniform(c, 0.5, 1.5), s.uniform(c, -0.5, 0.5)
	gamma, beta := s.up(gh), s.up(bh)
	scale, shift, y := s.out(groups*c), s.out(groups*c), s.out(len(xh))
	eps := float32(1e-5)
	s.be.BatchNormScaleShift(groups, c, eps, gamma, beta, mean, variance, scale, shift)
	sch, shh := s.down(scale), s.down(shift)
	wantSc, wantSh := make([]float64, groups*c), make([]float64, groups*c)
	for g := 0; g < groups; g++ {
		for ch := 0; ch < c; ch++ {
			i := g*c + ch
			wantSc[i] = float64(gh[ch]) / math.Sqrt(float64(vh[i])+float64(eps))
			wantSh[i] = float64(bh[ch]) - float64(mh[i])*wantSc[i]
		}
	}
	s.check("scale", sch, wantSc, 1e-6)
	s.check("shift", shh, wantSh, 1e-6)
	s.be.ChannelAffine(groups, n, c, hw, compute.NCHW, x, scale, shift, y, false)
	want := affinePerGroup(groups, n, c, hw, xh, sch, shh)
	s.check("affine per group", s.down(y), want, s.tol.Elementwise)
	// a bias alone (scale nil), then a ReLU: what a fused bias and ReLU
	// computes (lower.FuseReLU)
	ones := make([]float32, groups*c)
	for i := range ones {
		ones[i] = 1
	}
	s.be.ChannelAffine(groups, n, c, hw, compute.NCHW, x, nil, shift, y, true)
	want = affinePerGroup(groups, n, c, hw, xh, ones, shh)
	for i, v := range want {
		want[i] = math.Max(v, 0)
	}
	s.check("bias, then ReLU, per group", s.down(y), want, s.tol.Elementwise)

	// backward, with batch statistics and with fixed ones
	nb := groups * n
	dyh := s.uniform(nb*c*hw, -1, 1)
	dy := s.up(dyh)
	for _, train := range []bool{true, false} {
		m1, v1 := s.out(c), s.out(c)
		s.be.BatchNormStats(1, nb, c, hw, compute.NCHW, x, m1, v1)
		if !train {
			s.be.Upload(m1, r0m)
			s.be.Upload(v1, r0v)
		}
		m1h, v1h := s.down(m1), s.down(v1)
		dg0, db0 := s.uniform(c, -1, 1), s.uniform(c, -1, 1)
		dx, dg, db := s.out(len(xh)), s.up(dg0), s.up(db0)
		s.be.BatchNormBackward(nb, c, hw, compute.NCHW, train, eps, gamma, m1, v1, x, dy, dx, dg, db, true)
		rdx, rdg, rdb := refmath.BNBackward(nb, c, hw, train, eps, gh, m1h, v1h, xh, dyh)
		// written, not added into (poisoned: NaN stays where it is read)
		dg3, db3 := s.out(c), s.out(c)
		s.be.BatchNormBackward(nb, c, hw, compute.NCHW, train, eps, gamma, m1, v1, x, dy, nil, dg3, db3, false)
		s.check(fmt.Sprintf("backward dgamma written train=%v", train), s.down(dg3), rdg, 1e-5)
		s.check(fmt.Sprintf("backward dbeta written train=%v", train), s.down(db3), rdb, 1e-5)
		s.free(dg3, db3)
		for i := range rdg {
			rdg[i] += float64(dg0[i])
			rdb[i] += float64(db0[i])
		}
		s.check(fmt.Sprintf("backward dx train=%v", train), s.down(dx), rdx, 1e-5)
		s.check(fmt.Sprintf("backward dgamma train=%v", train), s.down(dg), rdg, 1e-5)
		s.check(fmt.Sprintf("backward dbeta train=%v", train), s.down(db), rdb, 1e-5)
		s.free(m1, v1, dx, dg, db)
	}
	s.free(x, mean, variance, runMean, runVar, gamma, beta, scale, shift, y, dy)
}

func (s *suite) integrateAndFire(t *testing.T) {
	type variant struct {
		name             string
		constant, affine bool
		// bias: Shift alone (a layer's bias fused into the IF kernel)
		bias             bool
		perStep, counts  bool
		threshold, reset float32
		steps, n, c, hw  int
		split            []int // steps per call
		inputLo, inputHi float32
		// poolKH, poolKW: the spikes max-pooled in the kernel (IFArgs.Pool)
		// over planes of h×w = hw neurons
		poolKH, poolKW, h, w int
		// start: the first call starts the potentials and counts itself
		// (IFArgs.Start), their buffers poisoned with NaN
		start bool
	}
	variants := []variant{
		{name: "plain", steps: 15, n: 1000, threshold: 2, reset: 0, split: []int{15}, inputLo: -0.5, inputHi: 1.5},
		{name: "one step per call", steps: 15, n: 1000, threshold: 2, reset: 0, split: []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, inputLo: -0.5, inputHi: 1.5},
		{name: "uneven chunks, reset 0.5", steps: 8, n: 777, threshold: 1.5, reset: 0.5, split: []int{3, 4, 1}, counts: true, inputLo: -1, inputHi: 2},
		{name: "constant input", constant: true, steps: 15, n: 600, threshold: 2, split: []int{15}, counts: true, inputLo: 0, inputHi: 1},
		{name: "fused affine", affine: true, steps: 6, n: 2 * 3 * 20, c: 3, hw: 20, threshold: 1, split: []int{6}, counts: true, inputLo: -1, inputHi: 1},
		{name: "fused affine per step", affine: true, perStep: true, steps: 5, n: 4 * 7 * 9, c: 7, hw: 9, threshold: 1, split: []int{5}, counts: true, inputLo: -1, inputHi: 1},
		// planes of 64 neurons or more are mapped inside the CPU's step kernel, smaller ones first
		{name: "fused affine per step, planes of 100", affine: true, perStep: true, steps: 4, n: 3 * 2 * 100, c: 2, hw: 100, threshold: 1, split: []int{1, 3},
			counts: true, inputLo: -1, inputHi: 1},
		{name: "fused bias, planes of 100", bias: true, steps: 4, n: 3 * 2 * 100, c: 2, hw: 100, threshold: 1, split: []int{4}, counts: true, inputLo: -1, inputHi: 1},
		{name: "fused affine, small planes over blocks of 4096", affine: true, steps: 3, n: 240 * 3 * 7, c: 3, hw: 7, threshold: 1, split: []int{3},
			counts: true, inputLo: -1, inputHi: 1},
		{name: "fused bias", bias: true, steps: 6, n: 2 * 3 * 20, c: 3, hw: 20, threshold: 1, split: []int{2, 4}, counts: true, inputLo: -1, inputHi: 1},
		{name: "max-pooled, fused bias", bias: true, steps: 5, n: 3 * 2 * 24, c: 2, hw: 24, h: 4, w: 6, poolKH: 2, poolKW: 3, threshold: 1,
			split: []int{5}, inputLo: -1, inputHi: 1},
		{name: "fused affine per step, chunks", affine: true, perStep: true, steps: 5, n: 4 * 7 * 9, c: 7, hw: 9, threshold: 1, split: []int{2, 3}, counts: true, inputLo: -1, inputHi: 1},
		{name: "max-pooled", steps: 7, n: 2 * 3 * 24, c: 3, hw: 24, h: 4, w: 6, poolKH: 2, poolKW: 2, threshold: 1, split: []int{7}, counts: true, inputLo: -0.5, inputHi: 1},
		{name: "max-pooled, fused affine per step, chunks", affine: true, perStep: true, steps: 5, n: 3 * 2 * 24, c: 2, hw: 24, h: 4, w: 6, poolKH: 2, poolKW: 3,
			threshold: 1, split: []int{2, 3}, inputLo: -1, inputHi: 1},
		{name: "starting itself", steps: 8, n: 500, threshold: 1.5, reset: 0.25, split: []int{3, 5}, counts: true, start: true, inputLo: -0.5, inputHi: 1.5},
		{name: "max-pooled, starting itself", steps: 6, n: 2 * 3 * 24, c: 3, hw: 24, h: 4, w: 6, poolKH: 2, poolKW: 2, threshold: 1, split: []int{2, 4},
			counts: true, start: true, inputLo: -0.5, inputHi: 1},
		{name: "max-pooled, constant input", constant: true, steps: 9, n: 5 * 4 * 16, c: 4, hw: 16, h: 4, w: 4, poolKH: 4, poolKW: 4, threshold: 2,
			split: []int{9}, counts: true, inputLo: 0, inputHi: 1},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			ss := &suite{t: t, be: s.be, tol: s.tol, rng: s.rng}
			inLen := v.steps * v.n
			if v.constant {
				inLen = v.n
			}
			inH := ss.uniform(inLen, v.inputLo, v.inputHi)
			var scH, shH []float32
			var sc, sh compute.Buffer
			if v.affine {
				rows := 1
				if v.perStep {
					rows = v.steps
				}
				scH, shH = ss.uniform(rows*v.c, 0.5, 2), ss.uniform(rows*v.c, -0.5, 0.5)
				sc, sh = ss.up(scH), ss.up(shH)
			} else if v.bias {
				shH = ss.uniform(v.c, -0.5, 0.5)
				sh = ss.up(shH)
			}
			vh := make([]float32, v.n)
			for i := range vh {
				vh[i] = v.reset
			}
			wantSpikes, wantCounts := refmath.IF(compute.IFArgs{Steps: v.steps, N: v.n, Constant: v.constant, PerStep: v.perStep,
				C: v.c, HW: v.hw, Threshold: v.threshold, Reset: v.reset}, inH, scH, shH, vh)
			var pool *compute.PoolGeom
			out := v.n // spikes per step
			if v.poolKH > 0 {
				pool = &compute.PoolGeom{C: v.c, H: v.h, W: v.w, KH: v.poolKH, KW: v.poolKW, SH: v.poolKH, SW: v.poolKW}
				if !compute.PoolFits(*pool) {
					t.Fatalf("the variant's pooling does not fit: %+v", *pool)
				}
				out = v.n / (v.poolKH * v.poolKW)
				var pooled []float32
				for st := 0; st < v.steps; st++ {
					y, _ := refmath.MaxPool(*pool, v.n/v.hw/v.c, wantSpikes[st*v.n:(st+1)*v.n])
					for _, x := range y {
						pooled = append(pooled, float32(x))
					}
				}
				wantSpikes = pooled
			}
			in, pot, spikes := ss.up(inH), ss.out(v.n), ss.out(v.steps*out)
			ss.be.Fill(pot, v.reset)
			var counts compute.Buffer
			if v.counts {
				counts = ss.up(make([]float32, v.n))
			}
			if v.start {
				ss.be.Fill(pot, float32(math.NaN()))
				if counts != nil {
					ss.be.Fill(counts, float32(math.NaN()))
				}
			}
			t0 := 0
			for _, k := range v.split {
				a := compute.IFArgs{Steps: k, N: v.n, Constant: v.constant, V: pot, Spikes: spikes.Slice(t0*out, (t0+k)*out),
					Counts: counts, Threshold: v.threshold, Reset: v.reset, Pool: pool, Start: v.start && t0 == 0}
				if v.constant {
					a.In = in
				} else {
					a.In = in.Slice(t0*v.n, (t0+k)*v.n)
				}
				if v.affine || v.bias || pool != nil {
					a.C, a.HW = v.c, v.hw
				}
				if v.bias {
					a.Shift = sh
				}
				if v.affine {
					a.PerStep = v.perStep
					if v.perStep {
						a.Scale, a.Shift = sc.Slice(t0*v.c, (t0+k)*v.c), sh.Slice(t0*v.c, (t0+k)*v.c)
					} else {
						a.Scale, a.Shift = sc, sh
					}
				}
				ss.be.IF(a)
				t0 += k
			}
			ss.exact("spikes", ss.down(spikes), wantSpikes)
			ss.exact("potentials", ss.down(pot), vh)
			if v.counts {
				ss.exact("counts", ss.down(counts), wantCounts)
			}
			ss.free(in, pot, spikes, counts, sc, sh)
		})
	}
}

func (s *suite) lossAdam(t *testing.T) {
	n, k := 37, 10
	countsH := make([]float32, n*k)
	labelsH := make([]float32, n)
	for i := range countsH {
		countsH[i] = float32(s.rng.IntN(16))
	}
	for i := range labelsH {
		labelsH[i] = float32(s.rng.IntN(k))
	}
	counts, labels, dy := s.up(countsH), s.up(labelsH), s.out(n*k)
	s.be.ProxyLossGrad(n, k, counts, labels, dy)
	want := make([]float64, n*k)
	for i := 0; i < n; i++ {
		for j := 0; j < k; j++ {
			d := float64(countsH[i*k+j])
			if j == int(labelsH[i]) {
				d--
			}
			want[i*k+j] = 2 * d / float64(n*k)
		}
	}
	s.check("proxy loss gradient", s.down(dy), want, 1e-7)
	s.free(counts, labels, dy)

	// Adam over several steps, against its definition in float64
	size := 5000
	ph := s.uniform(size, -1, 1)
	p, m, v, g := s.up(ph), s.up(make([]float32, size)), s.up(make([]float32, size)), s.out(size)
	rp, rm, rv := f64(ph), make([]float64, size), make([]float64, size)
	args := compute.AdamArgs{LR: 1e-3, Beta1: 0.8, Beta2: 0.99, Eps: 1e-8, WeightDecay: 1e-2}
	for step := 1; step <= 5; step++ {
		gh := s.uniform(size, -1, 1)
		s.be.Upload(g, gh)
		args.Step = step
		s.be.Adam(args, p, g, m, v)
		bc1 := 1 - math.Pow(args.Beta1, float64(step))
		bc2 := 1 - math.Pow(args.Beta2, float64(step))
		for i := range rp {
			gr := float64(gh[i]) + args.WeightDecay*rp[i]
			rm[i] = args.Beta1*rm[i] + (1-args.Beta1)*gr
			rv[i] = args.Beta2*rv[i] + (1-args.Beta2)*gr*gr
			rp[i] -= args.LR / bc1 * rm[i] / (math.Sqrt(rv[i])/math.Sqrt(bc2) + args.Eps)
		}
		s.check(fmt.Sprintf("Adam step %d", step), s.down(p), rp, 1e-6)
	}
	s.check("Adam first moment", s.down(m), rm, 1e-5)
	s.check("Adam second moment", s.down(v), rv, 1e-5)
	s.free(p, m, v, g)
}

// affinePerGroup is ChannelAffine's reference over NCHW values x of
// groups × n samples of c channels × hw: each group's channels mapped by
// that group's scale and shift.
func affinePerGroup(groups, n, c, hw int, x, scale, shift []float32) []float64 {
	y := make([]float64, len(x))
	for g := 0; g < groups; g++ {
		for b := 0; b < n; b++ {
			for ch := 0; ch < c; ch++ {
				for i := 0; i < hw; i++ {
					j := ((g*n+b)*c+ch)*hw + i
					y[j] = float64(x[j])*float64(scale[g*c+ch]) + float64(shift[g*c+ch])
				}
			}
		}
	}
	return y
}
