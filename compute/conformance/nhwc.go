package conformance

import (
	"fmt"
	"math"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/refmath"
)

// The channels-last (NHWC) variants of the kernels that take a layout:
// the NCHW checks' random inputs laid out channels-last (a convolution's
// weight [O, KH, KW, C/G]), the backend's outputs laid back out NCHW
// (refmath.Transpose, exact), held to the same float64 references with the
// same tolerances; the Transpose kernel itself exactly.

// last lays n samples of c channels × hw out channels-last.
func last[T float32 | float64](n, c, hw int, x []T) []T { return refmath.Transpose(n, c, hw, x) }

// first lays n channels-last samples of c channels × hw out NCHW.
func first[T float32 | float64](n, c, hw int, x []T) []T { return refmath.Transpose(n, hw, c, x) }

// lastWeight lays a convolution's weight [O, C/G, KH, KW] out
// channels-last, [O, KH, KW, C/G].
func lastWeight[T float32 | float64](g compute.ConvGeom, w []T) []T {
	return refmath.Transpose(g.O, g.C/g.Groups(), g.KH*g.KW, w)
}

// firstWeight is lastWeight's inverse.
func firstWeight[T float32 | float64](g compute.ConvGeom, w []T) []T {
	return refmath.Transpose(g.O, g.KH*g.KW, g.C/g.Groups(), w)
}

func (s *suite) channelsLast(t *testing.T) {
	t.Run("Transpose", s.transposeCheck)
	t.Run("Conv2d", s.convLast)
	t.Run("Pooling", s.poolingLast)
	t.Run("BatchNorm", s.batchNormLast)
	t.Run("IF", s.ifLast)
	if _, ok := s.be.(compute.Sharded); ok {
		t.Run("Sharded", s.shardedLast)
	}
}

func (s *suite) sub(t *testing.T) *suite { return &suite{t: t, be: s.be, tol: s.tol, rng: s.rng} }

func (s *suite) transposeCheck(t *testing.T) {
	ss := s.sub(t)
	// tiles cut at both edges, a one-row case and many matrices
	for _, c := range []struct{ n, rows, cols int }{{3, 37, 45}, {1, 1, 70}, {200, 5, 3}, {2, 64, 96}} {
		xh := ss.uniform(c.n*c.rows*c.cols, -1, 1)
		x, y := ss.up(xh), ss.out(len(xh))
		s.be.Transpose(c.n, c.rows, c.cols, x, y)
		ss.exact(fmt.Sprintf("%d×[%d %d]", c.n, c.rows, c.cols), ss.down(y), refmath.Transpose(c.n, c.rows, c.cols, xh))
		// and back
		s.be.Transpose(c.n, c.cols, c.rows, y, x)
		ss.exact(fmt.Sprintf("%d×[%d %d] and back", c.n, c.rows, c.cols), ss.down(x), xh)
		ss.free(x, y)
	}
}

func (s *suite) convLast(t *testing.T) {
	for i, c := range convCases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			ss := s.sub(t)
			g, n := c.g, c.n
			hw, p := g.H*g.W, g.OutH()*g.OutW()
			lg := g
			lg.Layout = compute.NHWC
			xh := ss.uniform(n*g.C*hw, -1, 1)
			wh, bh := ss.uniform(g.O*g.GroupPatch(), -0.5, 0.5), ss.uniform(g.O, -1, 1)
			dyh := ss.uniform(n*g.O*p, -1, 1)
			dw0, db0 := ss.uniform(len(wh), -1, 1), ss.uniform(g.O, -1, 1)
			x, w, bias, dy := ss.up(last(n, g.C, hw, xh)), ss.up(lastWeight(g, wh)), ss.up(bh), ss.up(last(n, g.O, p, dyh))
			y, dx, dw, db := ss.out(len(dyh)), ss.out(len(xh)), ss.up(lastWeight(g, dw0)), ss.up(db0)
			s.be.Conv2dForward(lg, n, x, w, bias, y)
			s.be.Conv2dBackward(lg, n, x, w, dy, dx, dw, db, true)
			ss.check("forward", first(n, g.O, p, ss.down(y)), refmath.Conv(g, n, xh, wh, bh), s.tol.GEMM)
			rdx, rdw, rdb := refmath.ConvBackward(g, n, xh, wh, dyh)
			for i := range rdw {
				rdw[i] += float64(dw0[i])
			}
			for i := range rdb {
				rdb[i] += float64(db0[i])
			}
			ss.check("dx", first(n, g.C, hw, ss.down(dx)), rdx, s.tol.GEMM)
			ss.check("dw (accumulated)", firstWeight(g, ss.down(dw)), rdw, s.tol.GEMM)
			ss.check("db (accumulated)", ss.down(db), rdb, s.tol.Elementwise)
			// no bias, no dx
			y2, dw2 := ss.out(len(dyh)), ss.up(make([]float32, len(wh)))
			s.be.Conv2dForward(lg, n, x, w, nil, y2)
			s.be.Conv2dBackward(lg, n, x, w, dy, nil, dw2, nil, true)
			ss.check("forward without bias", first(n, g.O, p, ss.down(y2)), refmath.Conv(g, n, xh, wh, nil), s.tol.GEMM)
			_, rdw2, _ := refmath.ConvBackward(g, n, xh, wh, dyh)
			ss.check("dw without dx", firstWeight(g, ss.down(dw2)), rdw2, s.tol.GEMM)
			// written, not added into (poisoned: NaN stays where it is read)
			dw3, db3 := ss.out(len(wh)), ss.out(g.O)
			s.be.Conv2dBackward(lg, n, x, w, dy, nil, dw3, db3, false)
			_, _, rdb3 := refmath.ConvBackward(g, n, xh, wh, dyh)
			ss.check("dw written", firstWeight(g, ss.down(dw3)), rdw2, s.tol.GEMM)
			ss.check("db written", ss.down(db3), rdb3, s.tol.Elementwise)
			ss.free(x, w, bias, dy, y, dx, dw, db, y2, dw2, dw3, db3)
		})
	}
}

func (s *suite) poolingLast(t *testing.T) {
	ss := s.sub(t)
	for i, g := range poolCases {
		n, hw, p := 3, g.H*g.W, g.OutH()*g.OutW()
		lg := g
		lg.Layout = compute.NHWC
		for _, spiking := range []bool{false, true} {
			var xh []float32
			if spiking {
				xh = ss.spikes(n*g.C*hw, 0.4)
			} else {
				xh = ss.uniform(n*g.C*hw, -1, 1)
			}
			dyh := ss.uniform(n*g.C*p, -1, 1)
			x, dy, y, dx := ss.up(last(n, g.C, hw, xh)), ss.up(last(n, g.C, p, dyh)), ss.out(len(dyh)), ss.out(len(xh))
			what := fmt.Sprintf("case %d spikes=%v", i, spiking)
			s.be.MaxPool2dForward(lg, n, x, y)
			s.be.MaxPool2dBackward(lg, n, x, dy, dx, false)
			ry, arg := refmath.MaxPool(g, n, xh)
			rdx := make([]float64, len(xh))
			for o, a := range arg {
				if a >= 0 {
					rdx[a] += float64(dyh[o])
				}
			}
			ss.check("max forward "+what, first(n, g.C, p, ss.down(y)), ry, 0)
			ss.check("max backward "+what, first(n, g.C, hw, ss.down(dx)), rdx, 1e-6)
			s.be.MaxPool2dBackward(lg, n, x, dy, dx, true) // through the ReLU whose output x is
			for j, v := range xh {
				if !(v > 0) {
					rdx[j] = 0
				}
			}
			ss.check("max backward through a ReLU "+what, first(n, g.C, hw, ss.down(dx)), rdx, 1e-6)
			for _, countPad := range []bool{false, true} {
				s.be.AvgPool2dForward(lg, n, countPad, x, y)
				s.be.AvgPool2dBackward(lg, n, countPad, dy, dx)
				ss.check(fmt.Sprintf("avg forward %s countPad=%v", what, countPad), first(n, g.C, p, ss.down(y)), refmath.AvgPool(g, n, countPad, xh), s.tol.Elementwise)
				ss.check(fmt.Sprintf("avg backward %s countPad=%v", what, countPad), first(n, g.C, hw, ss.down(dx)),
					refmath.AvgPoolBackward(g, n, countPad, dyh), s.tol.Elementwise)
			}
			ss.free(x, dy, y, dx)
		}
	}
}

func (s *suite) batchNormLast(t *testing.T) {
	ss := s.sub(t)
	groups, n, c, hw := 4, 5, 6, 21
	nb := groups * n
	xh := ss.uniform(nb*c*hw, -2, 3)
	x := ss.up(last(nb, c, hw, xh))
	mean, variance := ss.out(groups*c), ss.out(groups*c)
	s.be.BatchNormStats(groups, n, c, hw, compute.NHWC, x, mean, variance)
	rm, rv := refmath.BNStats(groups, n, c, hw, xh)
	mh, vh := ss.down(mean), ss.down(variance)
	ss.check("stats: mean per group", mh, rm, s.tol.Elementwise)
	ss.check("stats: variance per group", vh, rv, s.tol.Elementwise)

	// the affine map per group, with the statistics' scale and shift
	sch, shh := ss.uniform(groups*c, 0.5, 2), ss.uniform(groups*c, -1, 1)
	scale, shift, y := ss.up(sch), ss.up(shh), ss.out(len(xh))
	s.be.ChannelAffine(groups, n, c, hw, compute.NHWC, x, scale, shift, y, false)
	want := affinePerGroup(groups, n, c, hw, xh, sch, shh)
	ss.check("affine per group", first(nb, c, hw, ss.down(y)), want, s.tol.Elementwise)

	// backward, with batch statistics and with fixed ones
	gh := ss.uniform(c, 0.5, 1.5)
	gamma := ss.up(gh)
	eps := float32(1e-5)
	dyh := ss.uniform(nb*c*hw, -1, 1)
	dy := ss.up(last(nb, c, hw, dyh))
	for _, train := range []bool{true, false} {
		m1, v1 := ss.out(c), ss.out(c)
		s.be.BatchNormStats(1, nb, c, hw, compute.NHWC, x, m1, v1)
		if !train {
			s.be.Upload(m1, ss.uniform(c, -1, 1))
			s.be.Upload(v1, ss.uniform(c, 0.5, 2))
		}
		m1h, v1h := ss.down(m1), ss.down(v1)
		dg0, db0 := ss.uniform(c, -1, 1), ss.uniform(c, -1, 1)
		dx, dg, db := ss.out(len(xh)), ss.up(dg0), ss.up(db0)
		s.be.BatchNormBackward(nb, c, hw, compute.NHWC, train, eps, gamma, m1, v1, x, dy, dx, dg, db, true)
		rdx, rdg, rdb := refmath.BNBackward(nb, c, hw, train, eps, gh, m1h, v1h, xh, dyh)
		dg3, db3 := ss.out(c), ss.out(c) // written, not added into (poisoned)
		s.be.BatchNormBackward(nb, c, hw, compute.NHWC, train, eps, gamma, m1, v1, x, dy, nil, dg3, db3, false)
		ss.check(fmt.Sprintf("backward dgamma written train=%v", train), ss.down(dg3), rdg, 1e-5)
		ss.check(fmt.Sprintf("backward dbeta written train=%v", train), ss.down(db3), rdb, 1e-5)
		ss.free(dg3, db3)
		for i := range rdg {
			rdg[i] += float64(dg0[i])
			rdb[i] += float64(db0[i])
		}
		ss.check(fmt.Sprintf("backward dx train=%v", train), first(nb, c, hw, ss.down(dx)), rdx, 1e-5)
		ss.check(fmt.Sprintf("backward dgamma train=%v", train), ss.down(dg), rdg, 1e-5)
		ss.check(fmt.Sprintf("backward dbeta train=%v", train), ss.down(db), rdb, 1e-5)
		ss.free(m1, v1, dx, dg, db)
	}
	ss.free(x, mean, variance, scale, shift, y, gamma, dy)
}

// ifLast runs IF channels-last: a fused BatchNorm per step (the channel of
// a neuron is its index mod C) and max-pooled windows, in chunks of steps,
// the first starting the neurons itself; exactly the NCHW reference's
// spikes, potentials and counts.
func (s *suite) ifLast(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		t.Run(fmt.Sprintf("pooled=%v", pooled), func(t *testing.T) {
			ss := s.sub(t)
			steps, n, c, h, w := 5, 3, 4, 4, 6
			hw, N := h*w, n*c*h*w
			split := []int{2, 3}
			inH := ss.uniform(steps*N, -1, 1.5)
			scH, shH := ss.uniform(steps*c, 0.5, 2), ss.uniform(steps*c, -0.5, 0.5)
			vh := make([]float32, N)
			wantSpikes, wantCounts := refmath.IF(compute.IFArgs{Steps: steps, N: N, PerStep: true, C: c, HW: hw, Threshold: 1}, inH, scH, shH, vh)
			out, outHW := N, hw // spikes per step, and per sample and channel
			var pool *compute.PoolGeom
			if pooled {
				pool = &compute.PoolGeom{C: c, H: h, W: w, KH: 2, KW: 3, SH: 2, SW: 3}
				out, outHW = N/6, pool.OutH()*pool.OutW()
				var p []float32
				for st := 0; st < steps; st++ {
					y, _ := refmath.MaxPool(*pool, n, wantSpikes[st*N:(st+1)*N])
					for _, v := range y {
						p = append(p, float32(v))
					}
				}
				wantSpikes = p
			}
			var inL []float32
			for st := 0; st < steps; st++ {
				inL = append(inL, last(n, c, hw, inH[st*N:(st+1)*N])...)
			}
			in, sc, sh := ss.up(inL), ss.up(scH), ss.up(shH)
			pot, spikes, counts := ss.out(N), ss.out(steps*out), ss.out(N) // started by the kernel: NaN unread
			t0 := 0
			for _, k := range split {
				ss.be.IF(compute.IFArgs{Steps: k, N: N, In: in.Slice(t0*N, (t0+k)*N), Scale: sc.Slice(t0*c, (t0+k)*c), Shift: sh.Slice(t0*c, (t0+k)*c),
					PerStep: true, C: c, HW: hw, V: pot, Spikes: spikes.Slice(t0*out, (t0+k)*out), Counts: counts, Threshold: 1, Pool: pool,
					Start: t0 == 0, Layout: compute.NHWC})
				t0 += k
			}
			got := ss.down(spikes)
			var gotN []float32
			for st := 0; st < steps; st++ {
				gotN = append(gotN, first(n, c, outHW, got[st*out:(st+1)*out])...)
			}
			ss.exact("spikes", gotN, wantSpikes)
			ss.exact("potentials", first(n, c, hw, ss.down(pot)), vh)
			ss.exact("counts", first(n, c, hw, ss.down(counts)), wantCounts)
			var fired float32
			for _, v := range wantCounts {
				fired += v
			}
			if fired == 0 {
				t.Error("no neuron fired: equal spikes would prove nothing")
			}
			ss.free(in, sc, sh, pot, spikes, counts)
		})
	}
}

// shardedLast holds a Sharded backend's channels-last BatchNorm sums and
// data gradient to its NCHW ones on the same values: the sums within
// float64 rounding, the rest within float32's.
func (s *suite) shardedLast(t *testing.T) {
	ss := s.sub(t)
	sb := s.be.(compute.Sharded)
	groups, n, c, hw := 2, 7, 5, 13
	nb := groups * n
	xh := ss.uniform(nb*c*hw, -2, 3)
	xN, xL := ss.up(xh), ss.up(last(nb, c, hw, xh))
	// sums of x, then of (x − mean)², per group and channel (float64
	// values, two places each)
	sumsN, sumsL, mu := ss.out(4*groups*c), ss.out(4*groups*c), ss.out(2*groups*c)
	sb.BatchNormSums(groups, n, c, hw, compute.NCHW, xN, nil, sumsN)
	sb.BatchNormSums(groups, n, c, hw, compute.NHWC, xL, nil, sumsL)
	sb.BatchNormDivide(groups*c, n*hw, sumsN, mu, ss.out(groups*c))
	ss.checkF64("sums of x", f64s(ss.down(sumsL)), f64s(ss.down(sumsN)), 1e-12)
	sb.BatchNormSums(groups, n, c, hw, compute.NCHW, xN, mu, sumsN)
	sb.BatchNormSums(groups, n, c, hw, compute.NHWC, xL, mu, sumsL)
	ss.checkF64("sums of squares", f64s(ss.down(sumsL)), f64s(ss.down(sumsN)), 1e-12)

	dyh := ss.uniform(nb*c*hw, -1, 1)
	dyN, dyL := ss.up(dyh), ss.up(last(nb, c, hw, dyh))
	mean, variance, gamma := ss.up(ss.uniform(c, -1, 1)), ss.up(ss.uniform(c, 0.5, 2)), ss.up(ss.uniform(c, 0.5, 1.5))
	bsN, bsL := ss.out(2*c), ss.out(2*c)
	dgN, dbN, dgL, dbL := ss.up(make([]float32, c)), ss.up(make([]float32, c)), ss.up(make([]float32, c)), ss.up(make([]float32, c))
	eps := float32(1e-5)
	sb.BatchNormBackwardSums(nb, c, hw, compute.NCHW, eps, mean, variance, xN, dyN, bsN, dgN, dbN)
	sb.BatchNormBackwardSums(nb, c, hw, compute.NHWC, eps, mean, variance, xL, dyL, bsL, dgL, dbL)
	ss.check("backward sums", ss.down(bsL), f64(ss.down(bsN)), s.tol.Elementwise)
	ss.check("dgamma", ss.down(dgL), f64(ss.down(dgN)), s.tol.Elementwise)
	ss.check("dbeta", ss.down(dbL), f64(ss.down(dbN)), s.tol.Elementwise)
	dxN, dxL := ss.out(len(xh)), ss.out(len(xh))
	sb.BatchNormBackwardData(nb, c, hw, 3*nb*hw, compute.NCHW, eps, gamma, mean, variance, xN, dyN, bsN, dxN)
	sb.BatchNormBackwardData(nb, c, hw, 3*nb*hw, compute.NHWC, eps, gamma, mean, variance, xL, dyL, bsN, dxL)
	ss.check("backward dx of a share", first(nb, c, hw, ss.down(dxL)), f64(ss.down(dxN)), s.tol.Elementwise)
	ss.free(xN, xL, sumsN, sumsL, mu, dyN, dyL, mean, variance, gamma, bsN, bsL, dgN, dbN, dgL, dbL, dxN, dxL)
}

// f64s reads float64 values stored two float32 places each (the Sharded
// sums' convention) as float32 pairs' bits.
func f64s(v []float32) []float64 {
	out := make([]float64, len(v)/2)
	for i := range out {
		lo, hi := math.Float32bits(v[2*i]), math.Float32bits(v[2*i+1])
		out[i] = math.Float64frombits(uint64(hi)<<32 | uint64(lo))
	}
	return out
}

// checkF64 holds float64 values to want within a relative error tol
// (‖got − want‖/‖want‖).
func (s *suite) checkF64(what string, got, want []float64, tol float64) {
	s.t.Helper()
	var num, den float64
	for i := range want {
		d := got[i] - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	if e := math.Sqrt(num / max(den, 1e-300)); !(e <= tol) {
		s.t.Errorf("%s: relative error %.3g, tolerance %.3g", what, e, tol)
	}
}
