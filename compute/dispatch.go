package compute

import (
	"fmt"
	"math"
	"os"
	"strings"
)

// kernelSet is one implementation of the CPU backend's inner loops: the
// pure-Go reference ("generic"), AVX2 with FMA ("avx2") or AVX-512
// ("avx512"), the last two in amd64 assembly. Everything above these
// loops (blocking, packing, spike lists, the batch reduction tree) is the
// same Go code for all three.
//
// All three compute the same bits. Each output of a matrix product is one
// chain of single-rounding fused multiply-adds over its inputs in
// ascending order, starting from +0; the vector kernels put independent
// outputs in their lanes and never split a chain. A zero input adds
// exactly nothing to a chain (fma(0, w, acc) = acc for finite w), so a
// kernel that skips zero inputs (the event-driven ones) gives the bits of
// the dense one. Elementwise kernels round each operation as the Go code
// does.
type kernelSet struct {
	name string

	// mr×nr is the GEMM micro-kernel's tile.
	mr, nr int
	// micro computes one mr×nr tile of C = A·B from a packed A panel
	// (a[p·mr+i] = A[i,p]) and a packed B panel (b[p·nr+j] = B[p,j]) over
	// p < k: c[i·ldc+j] = chain over p of fma(A[i,p], B[p,j], ·), starting
	// from c[i·ldc+j] when load, else from +0.
	micro func(k int, a, b, c []float32, ldc int, load bool)

	// lanes is the vector width the gather kernel works in; maxGather
	// the most columns one gather call holds in registers.
	lanes, maxGather int
	// gather adds weight rows selected by a list of active inputs:
	// for each segment s and e in [s.lo, s.hi), with row = s.base +
	// idx[e], dst[j] = fma(val[e], w[row·ld+j], dst[j]) for j <
	// len(dst), the chain starting from dst when load, else from +0.
	// len(dst) is a multiple of lanes, at most maxGather.
	gather func(dst, w []float32, ld int, segs []gatherSeg, idx []int32, val []float32, load bool)

	// convGather computes the event-driven convolution of one sample,
	// positions output positions, width columns (at most maxGather, a
	// multiple of lanes): for position p, table holds from its cursor k,
	// then k pairs (base, start), one for each tap whose input pixel lies
	// inside the input, in tap order; the pixel's list at start holds
	// its count idx[start] and its non-zero channels and values at
	// start+1…; out[p·ld + j] = the chain over the taps and their entries
	// of fma(val[e], w[(base + idx[e])·ld + j], ·), from +0.
	convGather func(positions int, table, idx []int32, val, w []float32, ld int, out []float32, width int)

	// convRow is convGather for tiles of J = rowTile(width) consecutive
	// output positions of one output row (stride and dilation 1, kw ≤ 3
	// taps a kernel row): table holds, per tile, its first position p0,
	// its number of kernel rows inside the input, and per such row the
	// base of its weight rows, (kh·kw)·C, then the starts of the J+kw−1
	// pixel lists it reads, left to right (−1 outside the input); tap kw'
	// of the row is tapStride rows further. out[(p0+j)·ld + …] gets
	// position p0+j's chain, in the same order as convGather's.
	convRow func(kw, tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32, width int)
	// rowVectors is the vector width that sets the row tiles: rowTile.
	rowVectors int

	// leaves sums up to four samples' outer-product leaves by the batch
	// reduction rule (reduce.go): for r < rows and j < cols, with p_t =
	// fl(dy[t·dyStride + r]·x[t·xStride + j]), dst[r·cols + j] = p_0,
	// p_0 + p_1, p_0 + (p_1 + p_2) or (p_0 + p_1) + (p_2 + p_3) for size
	// 1 to 4 (a linear layer's weight gradient).
	leaves func(size, rows, cols int, dy []float32, dyStride int, x []float32, xStride int, dst []float32)

	// transpose writes dst[c·ldd + r] = src[r·ld + c] for r < rows and
	// c < cols.
	transpose func(rows, cols int, src []float32, ld int, dst []float32, ldd int)
	// nonzero sets bit i%64 of mask[i/64] where x[i] != 0 (NaN counts,
	// −0 does not) and clears it elsewhere, bits past len(x) too.
	nonzero func(x []float32, mask []uint64)

	// adam applies one Adam step (AdamStep) with the factors f =
	// {stepSize, sqrtBC2, b1, 1−b1, b2, 1−b2, weight decay, eps}.
	adam func(p, grad, m, v []float32, f *[8]float32)
	// sums returns Σ float64(x[i]), or Σ (float64(x[i]) − mu)² with sq,
	// in 32 lanes: lane j sums the i ≡ j (mod 32) in order, and the lanes
	// are added pairwise (sum32).
	sums func(x []float32, mu float64, sq bool) float64

	// relu computes y[i] = x[i] > 0 ? x[i] : 0 (NaN and −0 give +0).
	relu func(x, y []float32)
	// reluGrad computes dx[i] = y[i] > 0 ? dy[i] : 0.
	reluGrad func(y, dy, dx []float32)
	// affine computes y[i] = fl(fl(x[i]·sc) + sh).
	affine func(x, y []float32, sc, sh float32)

	// add computes dst[i] += src[i].
	add func(dst, src []float32)
	// ifPlane advances integrate-and-fire neurons by one step: for
	// each i, u = in[i], or fl(fl(in[i]·sc) + sh) when affine; p = v[i]
	// + u; where p >= th the neuron spikes (spikes[i] = 1, v[i] =
	// reset), else spikes[i] = 0 and v[i] = p; counts (if not nil)
	// adds the spike.
	ifPlane func(in, v, spikes, counts []float32, affine bool, sc, sh, th, reset float32)
}

// gatherSeg is one run of a gather's active inputs: entries [lo, hi) of
// the index list, whose rows are base + idx[e]. The assembly kernels read
// its three int32 fields at offsets 0, 4 and 8.
type gatherSeg struct {
	base, lo, hi int32
}

// kernelSets lists the implementations this machine can run, the
// reference first. availableKernels (kernels_amd64.go) adds the
// assembly ones where the CPU has their instructions.
var kernelSets = availableKernels()

// defaultKernels is the dispatch table a CPU backend takes when it is
// created: the widest set the CPU supports, or the one the environment
// variable PROXYKIT_CPU_KERNELS names (generic, avx2 or avx512; tests and
// users force a path with it).
var defaultKernels = chooseKernels(os.Getenv("PROXYKIT_CPU_KERNELS"))

func chooseKernels(name string) *kernelSet {
	if name == "" {
		return kernelSets[len(kernelSets)-1]
	}
	ks, err := kernelsNamed(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "proxykit: PROXYKIT_CPU_KERNELS: %v; using %s\n", err, kernelSets[len(kernelSets)-1].name)
		return kernelSets[len(kernelSets)-1]
	}
	return ks
}

// kernelsNamed returns the kernel set called name, or an error naming the
// ones this CPU can run.
func kernelsNamed(name string) (*kernelSet, error) {
	var names []string
	for _, ks := range kernelSets {
		if ks.name == name {
			return ks, nil
		}
		names = append(names, ks.name)
	}
	return nil, fmt.Errorf("kernels %q are not available on this CPU (available: %s)", name, strings.Join(names, ", "))
}

// KernelSets names the CPU kernel implementations this machine can run,
// the pure-Go reference first and the one a new CPU backend uses last
// (unless PROXYKIT_CPU_KERNELS names another).
func KernelSets() []string {
	names := make([]string, len(kernelSets))
	for i, ks := range kernelSets {
		names[i] = ks.name
	}
	return names
}

// genericKernels is the pure-Go reference: plain loops that read like the
// definitions above.
var genericKernels = &kernelSet{
	name:       "generic",
	mr:         4,
	nr:         4,
	micro:      microGeneric,
	lanes:      1,
	maxGather:  64,
	gather:     gatherGeneric,
	convGather: convGatherGeneric,
	convRow:    convRowGeneric,
	rowVectors: 16,
	leaves:     leavesGeneric,
	transpose:  transposeGeneric,
	relu:       reluGeneric,
	reluGrad:   reluGradGeneric,
	affine:     affineGeneric,
	adam:       adamGeneric,
	sums:       sumsGeneric,
	nonzero:    nonzeroGeneric,
	add:        addGeneric,
	ifPlane:    ifPlaneGeneric,
}

// fma32 is x·y + z rounded once to float32, as the FMA instructions
// compute it. math.FMA gives r, the exact value rounded once to float64;
// rounding r to float32 is then the correct rounding unless r lies
// exactly halfway between two float32 values (the exact value may lie a
// little to either side), or among float32's subnormals: those rare cases
// take fma32Exact.
func fma32(x, y, z float32) float32 {
	r := math.FMA(float64(x), float64(y), float64(z))
	if math.Float64bits(r)&(1<<29-1) != 1<<28 && !(r != 0 && math.Abs(r) < 0x1p-126) {
		return float32(r)
	}
	return fma32Exact(x, y, z)
}

// fma32Exact is fma32 without math.FMA: the product of two float32 values
// is exact in float64; the sum is rounded to float64 with its error kept
// (TwoSum), and the rounding made "to odd" where the error is not zero,
// so that the final rounding to float32 is the correct one (53 ≥ 24 + 2
// bits; rounding the float64 sum directly would round twice).
func fma32Exact(x, y, z float32) float32 {
	p := float64(x) * float64(y)
	c := float64(z)
	s := p + c
	if math.IsInf(s, 0) || s != s {
		return float32(s)
	}
	bv := s - p
	e := (p - (s - bv)) + (c - bv)
	if e != 0 {
		bits := math.Float64bits(s)
		if bits&1 == 0 {
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
		}
		s = math.Float64frombits(bits)
	}
	return float32(s)
}

// microGeneric is the reference GEMM micro-kernel (4×4 tile).
func microGeneric(k int, a, b, c []float32, ldc int, load bool) {
	const mr, nr = 4, 4
	var acc [mr][nr]float32
	if load {
		for i := range mr {
			for j := range nr {
				acc[i][j] = c[i*ldc+j]
			}
		}
	}
	for p := range k {
		ap, bp := a[p*mr:p*mr+mr], b[p*nr:p*nr+nr]
		for i := range mr {
			for j := range nr {
				acc[i][j] = fma32(ap[i], bp[j], acc[i][j])
			}
		}
	}
	for i := range mr {
		copy(c[i*ldc:i*ldc+nr], acc[i][:])
	}
}

// gatherGeneric is the reference gather: one chain per column.
func gatherGeneric(dst, w []float32, ld int, segs []gatherSeg, idx []int32, val []float32, load bool) {
	if !load {
		clear(dst)
	}
	for _, s := range segs {
		for e := s.lo; e < s.hi; e++ {
			row := int(s.base+idx[e]) * ld
			v := val[e]
			wr := w[row : row+len(dst)]
			for j := range dst {
				dst[j] = fma32(v, wr[j], dst[j])
			}
		}
	}
}

func leavesGeneric(size, rows, cols int, dy []float32, dyStride int, x []float32, xStride int, dst []float32) {
	for r := 0; r < rows; r++ {
		d := dst[r*cols : (r+1)*cols]
		for j := range d {
			// the conversions round each product: no fused multiply-add
			p := func(t int) float32 { return float32(dy[t*dyStride+r] * x[t*xStride+j]) }
			switch size {
			case 1:
				d[j] = p(0)
			case 2:
				d[j] = p(0) + p(1)
			case 3:
				d[j] = p(0) + (p(1) + p(2))
			default:
				d[j] = (p(0) + p(1)) + (p(2) + p(3))
			}
		}
	}
}

func transposeGeneric(rows, cols int, src []float32, ld int, dst []float32, ldd int) {
	const tile = 32 // both sides stay in cache
	for r0 := 0; r0 < rows; r0 += tile {
		for c0 := 0; c0 < cols; c0 += tile {
			for r := r0; r < min(r0+tile, rows); r++ {
				for c := c0; c < min(c0+tile, cols); c++ {
					dst[c*ldd+r] = src[r*ld+c]
				}
			}
		}
	}
}

func nonzeroGeneric(x []float32, mask []uint64) {
	for w := 0; w*64 < len(x); w++ {
		var m uint64
		for i, v := range x[w*64 : min(len(x), w*64+64)] {
			if v != 0 {
				m |= 1 << i
			}
		}
		mask[w] = m
	}
}

func adamGeneric(p, grad, m, v []float32, f *[8]float32) {
	stepSize, sqrtBC2, b1, c1, b2, c2, wd, e := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
	grad, m, v = grad[:len(p)], m[:len(p)], v[:len(p)]
	for i := range p {
		// the conversions round each product: no fused multiply-add
		g := grad[i] + float32(wd*p[i])
		m[i] = float32(b1*m[i]) + float32(c1*g)
		v[i] = float32(b2*v[i]) + float32(float32(c2*g)*g)
		denom := float32(math.Sqrt(float64(v[i])))/sqrtBC2 + e
		p[i] -= float32(stepSize*m[i]) / denom
	}
}

// sumsLanes adds x's values (or squared differences from mu) into the
// 32 lanes, value i into lane i mod 32.
func sumsLanes(x []float32, mu float64, sq bool, lanes *[32]float64) {
	for i, v := range x {
		d := float64(v)
		if sq {
			d -= mu
			d = float64(d * d)
		}
		lanes[i%32] += d
	}
}

// sum32 adds the 32 lanes pairwise: ((l0+l1)+(l2+l3))+… up to the root.
func sum32(l *[32]float64) float64 {
	var s [16]float64
	for i := range 16 {
		s[i] = l[2*i] + l[2*i+1]
	}
	for i := range 8 {
		s[i] = s[2*i] + s[2*i+1]
	}
	s0, s1, s2, s3 := s[0]+s[1], s[2]+s[3], s[4]+s[5], s[6]+s[7]
	return (s0 + s1) + (s2 + s3)
}

func sumsGeneric(x []float32, mu float64, sq bool) float64 {
	var lanes [32]float64
	sumsLanes(x, mu, sq, &lanes)
	return sum32(&lanes)
}

func reluGeneric(x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		if v > 0 {
			y[i] = v
		} else {
			y[i] = 0
		}
	}
}

func reluGradGeneric(y, dy, dx []float32) {
	dy, dx = dy[:len(y)], dx[:len(y)]
	for i, v := range y {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
}

func affineGeneric(x, y []float32, sc, sh float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = float32(v*sc) + sh
	}
}

func convGatherGeneric(positions int, table, idx []int32, val, w []float32, ld int, out []float32, width int) {
	t := 0
	for p := 0; p < positions; p++ {
		acc := out[p*ld : p*ld+width]
		clear(acc)
		k := int(table[t])
		t++
		for ; k > 0; k-- {
			base, start := int(table[t]), int(table[t+1])
			t += 2
			for e := start + 1; e <= start+int(idx[start]); e++ {
				row, v := w[(base+int(idx[e]))*ld:], val[e]
				for j := range acc {
					acc[j] = fma32(v, row[j], acc[j])
				}
			}
		}
	}
}

// rowTile is how many positions a row tile of width columns holds: 8/nv
// for nv = width/rowVectors of 1, 2 or 4 (eight chains in flight), else 0
// (the position-by-position kernel).
func (ks *kernelSet) rowTile(width int) int { return rowTileFor(width, ks.rowVectors) }

func rowTileFor(width, vector int) int {
	switch width {
	case vector:
		return 8
	case 2 * vector:
		return 4
	case 4 * vector:
		return 2
	}
	return 0
}

func convRowGeneric(kw, tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32, width int) {
	J := rowTileFor(width, 16)
	t := 0
	for ; tiles > 0; tiles-- {
		p0, rows := int(table[t]), int(table[t+1])
		t += 2
		acc := out[p0*ld : (p0+J-1)*ld+width]
		for j := 0; j < J; j++ {
			clear(acc[j*ld : j*ld+width])
		}
		for ; rows > 0; rows-- {
			base := int(table[t])
			t++
			for du := 0; du < J+kw-1; du++ {
				start := int(table[t])
				t++
				if start < 0 {
					continue
				}
				for e := start + 1; e <= start+int(idx[start]); e++ {
					v := val[e]
					for k := 0; k < kw; k++ {
						if j := du - k; j >= 0 && j < J {
							row, a := w[(base+k*tapStride+int(idx[e]))*ld:], acc[j*ld:j*ld+width]
							for c := range a {
								a[c] = fma32(v, row[c], a[c])
							}
						}
					}
				}
			}
		}
	}
}

func addGeneric(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

func ifPlaneGeneric(in, v, spikes, counts []float32, affine bool, sc, sh, th, reset float32) {
	in, spikes = in[:len(v)], spikes[:len(v)]
	for i, x := range in {
		u := x
		if affine {
			u = float32(x*sc) + sh
		}
		p := v[i] + u
		if p >= th {
			spikes[i] = 1
			v[i] = reset
		} else {
			spikes[i] = 0
			v[i] = p
		}
	}
	if counts != nil {
		counts = counts[:len(v)]
		for i, s := range spikes {
			counts[i] += s
		}
	}
}
