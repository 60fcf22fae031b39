package compute

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// buf is a CPU buffer holding a copy of v.
func buf(v []float32) Buffer {
	return &hostBuffer{data: slices.Clone(v), root: &hostRoot{}}
}

// spikeVec draws 0/1 values, 1 with probability p.
func spikeVec(rng *rand.Rand, n int, p float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		if rng.Float64() < p {
			v[i] = 1
		}
	}
	return v
}

var pathConvs = []ConvGeom{
	{C: 16, H: 10, W: 9, O: 24, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1, DH: 1, DW: 1},
	{C: 5, H: 11, W: 8, O: 130, KH: 3, KW: 2, SH: 2, SW: 1, PT: 1, PL: 0, PB: 2, PR: 1, DH: 2, DW: 1},
	{C: 32, H: 7, W: 7, O: 16, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
}

// inputs draws an input of n values: spikes at density p, or, for p ≥ 0.5,
// analog values with 30 % zeros.
func inputs(rng *rand.Rand, n int, p float64) []float32 {
	if p >= 0.5 {
		return randVec(rng, n, 0.3, true)
	}
	return spikeVec(rng, n, p)
}

// TestEventDrivenMatchesDense: the event-driven convolution and linear
// layer give the dense kernels' bits, on every kernel set, for spikes of
// several densities and for analog inputs with zeros.
func TestEventDrivenMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, ks := range kernelSets {
		dense, events := &CPU{ks: ks, density: -1}, &CPU{ks: ks, density: 2}
		for gi, g := range pathConvs {
			n := 3
			for _, p := range []float64{0.02, 0.2, 0.7} {
				x := inputs(rng, n*g.C*g.H*g.W, p)
				w, bias := buf(randVec(rng, g.O*g.GroupPatch(), 0, true)), buf(randVec(rng, g.O, 0, false))
				ny := n * g.O * g.OutH() * g.OutW()
				yd, ye := buf(make([]float32, ny)), buf(make([]float32, ny))
				dense.Conv2dForward(g, n, buf(x), w, bias, yd)
				events.Conv2dForward(g, n, buf(x), w, bias, ye)
				sameBits(t, fmt.Sprintf("%s conv %d density %g", ks.name, gi, p), host(ye), host(yd))
				if events.Work()[0].EventSamples != int64(n) || dense.Work()[0].EventSamples != 0 {
					t.Fatalf("the forced paths did not run: %+v, %+v", events.Work(), dense.Work())
				}
				events.ResetWork()
				dense.ResetWork()
			}
		}
		for _, sz := range [][3]int{{4, 300, 10}, {7, 1100, 150}, {2, 40, 300}} {
			n, in, out := sz[0], sz[1], sz[2]
			for _, p := range []float64{0.02, 0.2, 0.7} {
				x := inputs(rng, n*in, p)
				w, bias := buf(randVec(rng, out*in, 0, true)), buf(randVec(rng, out, 0, false))
				yd, ye, ya := buf(make([]float32, n*out)), buf(make([]float32, n*out)), buf(make([]float32, n*out))
				dense.LinearForward(n, in, out, buf(x), w, bias, yd, true)
				events.LinearForward(n, in, out, buf(x), w, bias, ye, true)
				events.LinearForward(n, in, out, buf(x), w, bias, ya, false) // the ANN's dense kernel
				what := fmt.Sprintf("%s linear %v density %g", ks.name, sz, p)
				sameBits(t, what, host(ye), host(yd))
				sameBits(t, what+" (no spike hint)", host(ya), host(yd))
			}
		}
	}
}

// hashFloats adds vs to a running hash.
func hashFloats(h interface{ Write([]byte) (int, error) }, vs ...[]float32) {
	var b [4]byte
	for _, v := range vs {
		for _, x := range v {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
			h.Write(b[:])
		}
	}
}

// layerRun runs every kernel with a batch reduction or a matrix product,
// forward and backward, on fixed random data with c, and hashes all
// outputs.
func layerRun(c *CPU) [32]byte {
	rng := rand.New(rand.NewPCG(21, 22))
	h := sha256.New()
	n := 6
	for gi, g := range append(pathConvs, ConvGeom{C: 6, H: 9, W: 7, O: 4, KH: 3, KW: 3, SH: 2, SW: 1, PT: 1, PR: 1, DH: 1, DW: 1, G: 2}) {
		x := inputs(rng, n*g.C*g.H*g.W, []float64{0.1, 0.3, 0.7, 0.7}[gi])
		ny := n * g.O * g.OutH() * g.OutW()
		w, bias := buf(randVec(rng, g.O*g.GroupPatch(), 0, false)), buf(randVec(rng, g.O, 0, false))
		y, dx := buf(make([]float32, ny)), buf(make([]float32, len(x)))
		dw, db := buf(randVec(rng, g.O*g.GroupPatch(), 0, false)), buf(randVec(rng, g.O, 0, false))
		c.Conv2dForward(g, n, buf(x), w, bias, y)
		c.Conv2dBackward(g, n, buf(x), w, buf(randVec(rng, ny, 0.2, false)), dx, dw, db, true)
		hashFloats(h, host(y), host(dx), host(dw), host(db))
	}
	for _, sz := range [][3]int{{5, 700, 130}, {6, 6272, 40}} {
		n, in, out := sz[0], sz[1], sz[2]
		for _, spikes := range []bool{false, true} {
			x := inputs(rng, n*in, map[bool]float64{false: 0.7, true: 0.15}[spikes])
			w, bias := buf(randVec(rng, out*in, 0, false)), buf(randVec(rng, out, 0, false))
			y, dx := buf(make([]float32, n*out)), buf(make([]float32, n*in))
			dw, db := buf(randVec(rng, out*in, 0, false)), buf(randVec(rng, out, 0, false))
			c.LinearForward(n, in, out, buf(x), w, bias, y, spikes)
			c.LinearBackward(n, in, out, buf(x), w, buf(randVec(rng, n*out, 0, false)), dx, dw, db, true)
			hashFloats(h, host(y), host(dx), host(dw), host(db))
		}
	}
	ch, hw := 5, 37
	x := randVec(rng, n*ch*hw, 0.1, false)
	mean, variance := buf(make([]float32, ch)), buf(make([]float32, ch))
	c.BatchNormStats(1, n, ch, hw, NCHW, buf(x), mean, variance)
	gamma, dx, dg, dbeta := buf(randVec(rng, ch, 0, false)), buf(make([]float32, len(x))), buf(make([]float32, ch)), buf(make([]float32, ch))
	c.BatchNormBackward(n, ch, hw, NCHW, true, 1e-5, gamma, mean, variance, buf(x), buf(randVec(rng, len(x), 0, false)), dx, dg, dbeta, true)
	hashFloats(h, host(mean), host(variance), host(dx), host(dg), host(dbeta))
	steps, nn := 3, 4*ch*hw
	v, spikes, counts := buf(make([]float32, nn)), buf(make([]float32, steps*nn)), buf(make([]float32, nn))
	c.IF(IFArgs{Steps: steps, N: nn, In: buf(randVec(rng, steps*nn, 0, false)), Scale: buf(randVec(rng, steps*ch, 0, false)),
		Shift: buf(randVec(rng, steps*ch, 0, false)), PerStep: true, C: ch, HW: hw, V: v, Spikes: spikes, Counts: counts,
		Threshold: 0.5, Reset: 0})
	hashFloats(h, host(v), host(spikes), host(counts))
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// TestSameBitsEverywhere: every kernel set, on 1, 2 or 3 cores, computes
// the same bits for the products, the batch reductions and the IF step.
func TestSameBitsEverywhere(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(1)
	want := layerRun(&CPU{ks: genericKernels})
	for _, ks := range kernelSets {
		for _, procs := range []int{1, 2, 3} {
			runtime.GOMAXPROCS(procs)
			if got := layerRun(&CPU{ks: ks}); got != want {
				t.Errorf("%s on %d cores: results differ from the reference on one core", ks.name, procs)
			}
		}
	}
}

// TestBatchTreeSplits shows the batch reduction rule (reduce.go) doing
// what a data-parallel trainer needs: with the batch split into halves
// (and quarters), each share's gradients from zero, combined pairwise in
// the tree, are the whole batch's gradients bit for bit — for the
// convolution's dw and db, the linear layer's dw and db, BatchNorm's dγ
// and dβ and its statistics' sums.
func TestBatchTreeSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	c := &CPU{}
	const n = 12 // halves of 6, quarters of 3
	// grads runs one backward pass over samples [lo, hi) into zeroed
	// gradients and returns them
	type kernel struct {
		name  string
		grads func(lo, hi int) [][]float32
	}
	g := ConvGeom{C: 6, H: 8, W: 8, O: 10, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1, DH: 1, DW: 1}
	cx, cw := randVec(rng, n*g.C*g.H*g.W, 0.5, false), randVec(rng, g.O*g.GroupPatch(), 0, false)
	cdy := randVec(rng, n*g.O*g.OutH()*g.OutW(), 0, false)
	in, out := 70, 9
	lx, lw, ldy := randVec(rng, n*in, 0.5, false), randVec(rng, out*in, 0, false), randVec(rng, n*out, 0, false)
	ch, hw := 4, 30
	bx, bdy := randVec(rng, n*ch*hw, 0, false), randVec(rng, n*ch*hw, 0, false)
	gamma, mean, variance := randVec(rng, ch, 0, false), randVec(rng, ch, 0, false), []float32{1, 2, 0.5, 0.25}
	kernels := []kernel{
		{"conv", func(lo, hi int) [][]float32 {
			inS, outS := g.C*g.H*g.W, g.O*g.OutH()*g.OutW()
			dw, db := make([]float32, len(cw)), make([]float32, g.O)
			c.convBackward(g, hi-lo, cx[lo*inS:hi*inS], cw, cdy[lo*outS:hi*outS], nil, dw, db, buf(cw))
			return [][]float32{dw, db}
		}},
		{"linear", func(lo, hi int) [][]float32 {
			dw, db := make([]float32, len(lw)), make([]float32, out)
			c.linearBackward(hi-lo, in, out, lx[lo*in:hi*in], lw, ldy[lo*out:hi*out], nil, dw, db)
			return [][]float32{dw, db}
		}},
		{"batchnorm", func(lo, hi int) [][]float32 {
			dg, dbeta := make([]float32, ch), make([]float32, ch)
			batchNormBackward(hi-lo, ch, hw, true, 1e-5, gamma, mean, variance, bx[lo*ch*hw:hi*ch*hw], bdy[lo*ch*hw:hi*ch*hw],
				nil, dg, dbeta)
			return [][]float32{dg, dbeta}
		}},
	}
	for _, k := range kernels {
		whole := k.grads(0, n)
		// halves: one tree level
		left, right := k.grads(0, n/2), k.grads(n/2, n)
		// quarters: two levels, ((q0+q1)+(q2+q3))
		q := [4][][]float32{k.grads(0, 3), k.grads(3, 6), k.grads(6, 9), k.grads(9, 12)}
		for i := range whole {
			halves := slices.Clone(left[i])
			addGeneric(halves, right[i])
			sameBits(t, fmt.Sprintf("%s gradient %d from two halves", k.name, i), halves, whole[i])
			a, b := slices.Clone(q[0][i]), slices.Clone(q[2][i])
			addGeneric(a, q[1][i])
			addGeneric(b, q[3][i])
			addGeneric(a, b)
			sameBits(t, fmt.Sprintf("%s gradient %d from four quarters", k.name, i), a, whole[i])
		}
	}
	// BatchNorm's statistics: the sums over each half, added, are the
	// whole batch's
	mu := []float64{0.1, -0.2, 0.3, 0}
	for _, m := range [][]float64{nil, mu} {
		whole, left, right := make([]float64, ch), make([]float64, ch), make([]float64, ch)
		ks := defaultKernels
		ks.bnSums(n, ch, hw, bx, m, whole)
		ks.bnSums(n/2, ch, hw, bx[:n/2*ch*hw], m, left)
		ks.bnSums(n/2, ch, hw, bx[n/2*ch*hw:], m, right)
		addF64(left, right)
		for i := range whole {
			if left[i] != whole[i] {
				t.Fatalf("BatchNorm sums (mu %v) channel %d: %g from two halves, %g whole", m, i, left[i], whole[i])
			}
		}
	}
}
