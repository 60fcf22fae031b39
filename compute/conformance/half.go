package conformance

import (
	"math"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/refmath"
)

// half holds a backend that stores 16-bit values (compute.HalfStore) to
// the kernels' definitions: Convert rounds as refmath.Half does; the IF
// kernels on binary16 currents and spikes compute what they compute on the
// same values in float32 (refmath.IF), bit for bit; BatchNormStats of
// binary16 values equals its float32 result on them; Conv2dForward on
// binary16 x, w and y is refmath.Conv of the values rounded to binary16;
// LinearForward on binary16 spikes, weights and output is refmath.Linear
// of the rounded weights, rounded once; Transpose moves binary16 values
// as they are. A backend that stores float32 only has nothing to run here.
func (s *suite) half(t *testing.T) {
	hs, ok := s.be.(compute.HalfStore)
	if !ok {
		t.Logf("backend %s stores float32 only: no 16-bit kernels to hold", s.be.Name())
		return
	}
	t.Run("Convert", func(t *testing.T) { s.sub(t).halfConvert(hs) })
	t.Run("IF", func(t *testing.T) { s.sub(t).halfIF(hs) })
	t.Run("BatchNormStats", func(t *testing.T) { s.sub(t).halfStats(hs) })
	t.Run("Conv2dForward", func(t *testing.T) { s.sub(t).halfConv(hs) })
	t.Run("LinearForward", func(t *testing.T) { s.sub(t).halfLinear(hs) })
	t.Run("Transpose", func(t *testing.T) { s.sub(t).halfTranspose(hs) })
}

// upHalf is data in a binary16 buffer (rounded by Convert).
func (s *suite) upHalf(hs compute.HalfStore, data []float32) compute.Buffer {
	s.t.Helper()
	f := s.up(data)
	defer s.free(f)
	h := s.outHalf(hs, len(data))
	hs.Convert(f, h)
	return h
}

// outHalf is a binary16 buffer of n values, poisoned with NaN.
func (s *suite) outHalf(hs compute.HalfStore, n int) compute.Buffer {
	s.t.Helper()
	w := s.out((n + 1) / 2)
	return hs.AsElem(w, compute.F16).Slice(0, n)
}

// downHalf reads a binary16 buffer's values (through Convert).
func (s *suite) downHalf(hs compute.HalfStore, b compute.Buffer) []float32 {
	s.t.Helper()
	f := s.out(b.Len())
	defer s.free(f)
	hs.Convert(b, f)
	return s.down(f)
}

// halves is v rounded to binary16.
func halves(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = refmath.Half(x)
	}
	return out
}

func (s *suite) halfConvert(hs compute.HalfStore) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	x := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65519.99, 65520, -65520, 1e6, inf, -inf, nan,
		0x1p-14, 0x1p-24, 0x1.8p-25, 0x1p-25, 0x1p-26, -0x1.4p-20, // the smallest normal, subnormals, ties to even
		1 + 0x1p-11, 1 + 0x3p-11, 2049, 2051, 0.1, -0.3} // ties at 1 and 2048: to even
	x = append(x, s.uniform(2000, -70000, 70000)...)
	x = append(x, s.uniform(2000, -1e-4, 1e-4)...)
	h := s.upHalf(hs, x)
	s.exact("float32 → f16 → float32", s.downHalf(hs, h), halves(x))
	// f16 → f16 copies exactly, and an odd count reaches the last value
	y := s.outHalf(hs, h.Len()-1)
	hs.Convert(h.Slice(1, h.Len()), y)
	s.exact("f16 → f16 from an odd offset", s.downHalf(hs, y), halves(x[1:]))
}

func (s *suite) halfIF(hs compute.HalfStore) {
	type variant struct {
		name          string
		perStep, pool bool
		start         bool
	}
	const steps, c, h, w, samples = 6, 3, 4, 6, 2
	const n = samples * c * h * w
	for _, v := range []variant{{name: "plain"}, {name: "BatchNorm per step", perStep: true}, {name: "max-pooled, starting itself", pool: true, start: true}} {
		in := halves(s.uniform(steps*n, -1, 1.5))
		var scH, shH []float32
		var sc, sh compute.Buffer
		if v.perStep {
			scH, shH = s.uniform(steps*c, 0.5, 2), s.uniform(steps*c, -0.5, 0.5)
			sc, sh = s.up(scH), s.up(shH)
		}
		vh := make([]float32, n)
		spikes, counts := refmath.IF(compute.IFArgs{Steps: steps, N: n, PerStep: v.perStep, C: c, HW: h * w, Threshold: 1}, in, scH, shH, vh)
		out := n
		var pool *compute.PoolGeom
		if v.pool {
			pool = &compute.PoolGeom{C: c, H: h, W: w, KH: 2, KW: 2, SH: 2, SW: 2}
			out = n / 4
			var pooled []float32
			for st := range steps {
				y, _ := refmath.MaxPool(*pool, samples, spikes[st*n:(st+1)*n])
				for _, x := range y {
					pooled = append(pooled, float32(x))
				}
			}
			spikes = pooled
		}
		inB, pot, sp, cnt := s.upHalf(hs, in), s.up(make([]float32, n)), s.outHalf(hs, steps*out), s.up(make([]float32, n))
		if v.start {
			s.be.Fill(pot, float32(math.NaN()))
			s.be.Fill(cnt, float32(math.NaN()))
		}
		s.be.IF(compute.IFArgs{Steps: steps, N: n, In: inB, Scale: sc, Shift: sh, PerStep: v.perStep, C: c, HW: h * w, V: pot,
			Spikes: sp, Counts: cnt, Threshold: 1, Pool: pool, Start: v.start})
		s.exact(v.name+": f16 spikes", s.downHalf(hs, sp), spikes)
		s.exact(v.name+": potentials", s.down(pot), vh)
		s.exact(v.name+": counts", s.down(cnt), counts)
		s.free(pot, cnt, sc, sh)
	}
}

func (s *suite) halfStats(hs compute.HalfStore) {
	const groups, n, c, hw = 3, 4, 5, 9
	x := halves(s.uniform(groups*n*c*hw, -3, 3))
	for _, layout := range []compute.Layout{compute.NCHW, compute.NHWC} {
		xf, xh := s.up(x), s.upHalf(hs, x)
		m32, v32, m16, v16 := s.out(groups*c), s.out(groups*c), s.out(groups*c), s.out(groups*c)
		s.be.BatchNormStats(groups, n, c, hw, layout, xf, m32, v32)
		s.be.BatchNormStats(groups, n, c, hw, layout, xh, m16, v16)
		s.exact(layout.String()+": mean of f16 values", s.down(m16), s.down(m32))
		s.exact(layout.String()+": variance of f16 values", s.down(v16), s.down(v32))
		s.free(xf, m32, v32, m16, v16)
	}
}

func (s *suite) halfConv(hs compute.HalfStore) {
	const n = 3
	for _, layout := range []compute.Layout{compute.NCHW, compute.NHWC} {
		g := compute.ConvGeom{C: 6, H: 7, W: 5, O: 8, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1, DH: 1, DW: 1, Layout: layout, Elem: compute.F16}
		x := s.spikes(n*g.C*g.H*g.W, 0.3)
		w := s.uniform(g.O*g.GroupPatch(), -0.5, 0.5)
		want := refmath.Conv(g, n, x, halves(w), nil)
		if layout.Last() { // x and y NHWC, w [O, KH, KW, C]
			x = last(n, g.C, g.H*g.W, x)
			w = lastWeight(g, w)
			want = last(n, g.O, g.OutH()*g.OutW(), want)
		}
		for i, v := range want {
			want[i] = float64(refmath.Half(float32(v)))
		}
		xb, wb, yb := s.upHalf(hs, x), s.upHalf(hs, w), s.outHalf(hs, n*g.O*g.OutH()*g.OutW())
		s.be.Conv2dForward(g, n, xb, wb, nil, yb)
		// one binary16 rounding of a float32 sum: within binary16's half unit
		s.check(layout.String()+": f16 convolution", s.downHalf(hs, yb), want, 1e-3)
	}
}

func (s *suite) halfLinear(hs compute.HalfStore) {
	const n, in, out = 7, 50, 9
	x := s.spikes(n*in, 0.4)
	// weights of up to 15 significant bits (multiples of 2^-16 below 1/4),
	// which binary16 rounds, while every partial sum of 50 of them is a
	// multiple of 2^-16 below 2^4, exact in float32 in any order: the one
	// rounding of the result then decides every bit
	w := make([]float32, out*in)
	for i := range w {
		w[i] = float32(s.rng.IntN(1<<15)-1<<14) * 0x1p-16
	}
	sums := refmath.Linear(n, in, out, x, halves(w), []float32(nil))
	want := make([]float32, len(sums))
	for i, v := range sums {
		want[i] = refmath.Half(float32(v))
	}
	xb, wb, yb := s.upHalf(hs, x), s.upHalf(hs, w), s.outHalf(hs, n*out)
	s.be.LinearForward(n, in, out, xb, wb, nil, yb, true)
	s.exact("f16 linear layer", s.downHalf(hs, yb), want)
}

func (s *suite) halfTranspose(hs compute.HalfStore) {
	const n, rows, cols = 3, 37, 45
	x := halves(s.uniform(n*rows*cols, -2, 2))
	want := make([]float32, len(x))
	for m := range n {
		for i := range rows {
			for j := range cols {
				want[m*rows*cols+j*rows+i] = x[m*rows*cols+i*cols+j]
			}
		}
	}
	xb, yb := s.upHalf(hs, x), s.outHalf(hs, len(x))
	s.be.Transpose(n, rows, cols, xb, yb)
	s.exact("f16 transpose", s.downHalf(hs, yb), want)
}
