package compute

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// randVec draws n values: mostly uniform in [-1, 1), with exact zeros
// (share zeros) and, with wide, values across many binades.
func randVec(rng *rand.Rand, n int, zeros float64, wide bool) []float32 {
	v := make([]float32, n)
	for i := range v {
		switch {
		case rng.Float64() < zeros:
		case wide:
			v[i] = float32(math.Ldexp(rng.Float64()*2-1, rng.IntN(40)-20))
		default:
			v[i] = rng.Float32()*2 - 1
		}
	}
	return v
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %g (%#x), want %g (%#x)", what, i, got[i], math.Float32bits(got[i]), want[i],
				math.Float32bits(want[i]))
		}
	}
}

// TestFMA32 holds the reference's fused multiply-add to the exact value
// x·y + z rounded once to float32 (math/big), and every assembly kernel
// set's FMA instructions to it, on values chosen to round badly:
// cancellations, ties, subnormals, wide exponent gaps.
func TestFMA32(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var xs, ys, zs []float32
	edge := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, 3, 1 << 24, 1.0 / (1 << 24), math.SmallestNonzeroFloat32,
		math.MaxFloat32, 1 + 1.0/(1<<23), 1 - 1.0/(1<<24)}
	for _, x := range edge {
		for _, y := range edge {
			for _, z := range edge {
				xs, ys, zs = append(xs, x), append(ys, y), append(zs, z)
			}
		}
	}
	// double-rounding traps: x·y = ±2^(e−24)·(1 − 2^−2k) puts x·y + z
	// just inside a float32 tie of z (exponent e, odd last bit), so close
	// that rounding to float64 first lands on the tie
	for range 20000 {
		e := rng.IntN(40) - 20
		z := float32(math.Ldexp(1+float64(2*rng.IntN(1<<22)+1)/(1<<23), e))
		k := 15 + rng.IntN(9)
		x := float32(math.Ldexp(1+math.Ldexp(1, -k), (e-24)/2))
		y := float32(math.Ldexp(1-math.Ldexp(1, -k), e-24-(e-24)/2))
		if rng.IntN(2) == 0 {
			x = -x
		}
		if rng.IntN(2) == 0 {
			x, z = -x, -z
		}
		xs, ys, zs = append(xs, x), append(ys, y), append(zs, z)
	}
	for range 200000 {
		x := math.Float32frombits(rng.Uint32()&^(0xff<<23) | uint32(rng.IntN(60)+100)<<23)
		y := math.Float32frombits(rng.Uint32()&^(0xff<<23) | uint32(rng.IntN(60)+100)<<23)
		var z float32
		switch rng.IntN(3) {
		case 0: // nearly cancels the product
			z = -x * y * (1 + float32(rng.IntN(5)-2)/(1<<23))
		case 1: // far below the product
			z = x * y * float32(math.Ldexp(rng.Float64(), -rng.IntN(30)))
		default:
			z = math.Float32frombits(rng.Uint32()&^(0xff<<23) | uint32(rng.IntN(80)+90)<<23)
		}
		xs, ys, zs = append(xs, x), append(ys, y), append(zs, z)
	}
	for i := range xs {
		if math.IsInf(float64(xs[i])*float64(ys[i]), 0) {
			continue
		}
		exact := new(big.Float).SetPrec(400).SetFloat64(float64(xs[i]))
		exact.Mul(exact, new(big.Float).SetPrec(400).SetFloat64(float64(ys[i])))
		exact.Add(exact, new(big.Float).SetPrec(400).SetFloat64(float64(zs[i])))
		want, _ := exact.Float32()
		if want == 0 {
			want = xs[i]*ys[i] + zs[i] // the sign of an exact zero
		}
		if got := fma32(xs[i], ys[i], zs[i]); math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", xs[i], ys[i], zs[i], got, want)
		}
		if got := fma32Exact(xs[i], ys[i], zs[i]); math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("fma32Exact(%g, %g, %g) = %g, want %g", xs[i], ys[i], zs[i], got, want)
		}
	}
	// the assembly kernels' FMA: one gather entry per lane, over 16 lanes
	for _, ks := range kernelSets[1:] {
		for i0 := 0; i0+16 <= len(xs); i0 += 16 {
			for l := 0; l < 16; l++ {
				dst := make([]float32, ks.lanes)
				dst[0] = zs[i0+l]
				w := make([]float32, ks.lanes)
				w[0] = ys[i0+l]
				ks.gather(dst, w, ks.lanes, []gatherSeg{{0, 0, 1}}, []int32{0}, xs[i0+l:], true)
				if want := fma32(xs[i0+l], ys[i0+l], zs[i0+l]); math.Float32bits(dst[0]) != math.Float32bits(want) {
					t.Fatalf("%s: fma(%g, %g, %g) = %g, want %g", ks.name, xs[i0+l], ys[i0+l], zs[i0+l], dst[0], want)
				}
			}
			if i0 > 40000 {
				break
			}
		}
	}
}

// chainGemm is the definition the GEMM kernels compute: each C element one
// chain of fma32 over p in order, from +0.
func chainGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int) []float32 {
	c := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var acc float32
			for p := 0; p < k; p++ {
				av, bv := a[i*lda+p], b[p*ldb+j]
				if transA {
					av = a[p*lda+i]
				}
				if transB {
					bv = b[j*ldb+p]
				}
				acc = fma32(av, bv, acc)
			}
			c[i*n+j] = acc
		}
	}
	return c
}

// TestGemmChains holds every kernel set's blocked GEMM to the chain
// definition bit for bit, on every transpose, with sizes across the
// micro-tiles' and the blocks' edges (k past gemmKC continues chains from
// C) and on 1 and 3 workers.
func TestGemmChains(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := [][3]int{{1, 1, 1}, {5, 3, 7}, {13, 33, 9}, {25, 70, 300}, {200, 17, 40}, {7, 2100, 3}}
	for _, sz := range sizes {
		m, n, k := sz[0], sz[1], sz[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				lda, ldb := k+1, n+2
				if ta {
					lda = m + 1
				}
				if tb {
					ldb = k + 2
				}
				a := randVec(rng, max(m, k)*lda, 0.3, true)
				b := randVec(rng, max(n, k)*ldb, 0.3, false)
				want := chainGemm(ta, tb, m, n, k, a, lda, b, ldb)
				for _, ks := range kernelSets {
					for _, workers := range []int{1, 3} {
						c := randVec(rng, m*(n+1), 0, false) // ldc = n+1; the extra column untouched
						extra := make([]float32, m)
						for i := range extra {
							extra[i] = c[i*(n+1)+n]
						}
						ks.gemm(ta, tb, m, n, k, a, lda, b, ldb, c, n+1, workers)
						got := make([]float32, m*n)
						for i := 0; i < m; i++ {
							copy(got[i*n:(i+1)*n], c[i*(n+1):])
							if c[i*(n+1)+n] != extra[i] {
								t.Fatalf("%s: wrote past the tile's columns", ks.name)
							}
						}
						sameBits(t, fmt.Sprintf("%s %dx%dx%d transA=%v transB=%v workers=%d", ks.name, m, n, k, ta, tb, workers), got, want)
					}
				}
			}
		}
	}
}

// TestKernelSetsAgree holds each assembly kernel set's gather, add, scale
// and IF step to the pure-Go reference, bit for bit, at every length
// around the vector widths.
func TestKernelSetsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, ks := range kernelSets[1:] {
		t.Run(ks.name, func(t *testing.T) {
			// gather: widths of 1…maxGather/lanes vectors (and past, split), two segments
			for width := ks.lanes; width <= 2*ks.maxGather; width += ks.lanes {
				ld := width + 16
				rows := 40
				w := randVec(rng, rows*ld, 0, true)
				idx := []int32{0, 3, 4, 9, 1, 2, 7}
				val := randVec(rng, len(idx), 0, false)
				val[2] = 1
				segs := []gatherSeg{{base: 5, lo: 0, hi: 4}, {base: 20, lo: 4, hi: 7}, {base: 0, lo: 3, hi: 3}}
				for _, load := range []bool{false, true} {
					init := randVec(rng, width, 0, false)
					got, want := slices.Clone(init), slices.Clone(init)
					ks.gather(got, w[16:], ld, segs, idx, val, load)
					gatherGeneric(want, w[16:], ld, segs, idx, val, load)
					sameBits(t, fmt.Sprintf("gather width %d load %v", width, load), got, want)
				}
			}
			// leaves: 1 to 4 samples, column counts around the vector width
			for size := 1; size <= 4; size++ {
				for _, cols := range []int{1, ks.lanes, 3*ks.lanes + 5, 64} {
					rows := 3
					dy, x := randVec(rng, 4*7, 0.1, true), randVec(rng, 4*80, 0.2, true)
					got, want := make([]float32, rows*cols), make([]float32, rows*cols)
					ks.leaves(size, rows, cols, dy[2:], 7, x[3:], 80, got)
					leavesGeneric(size, rows, cols, dy[2:], 7, x[3:], 80, want)
					sameBits(t, fmt.Sprintf("leaves size %d cols %d", size, cols), got, want)
				}
			}
			// transpose and the non-zero bitmap, at sizes across the 8×8 blocks and 64-bit words
			for _, sz := range [][2]int{{1, 1}, {8, 8}, {17, 9}, {64, 130}, {7, 40}} {
				rows, cols := sz[0], sz[1]
				src := randVec(rng, rows*(cols+3), 0.5, true)
				got, want := make([]float32, cols*(rows+2)), make([]float32, cols*(rows+2))
				ks.transpose(rows, cols, src, cols+3, got, rows+2)
				transposeGeneric(rows, cols, src, cols+3, want, rows+2)
				sameBits(t, fmt.Sprintf("transpose %dx%d", rows, cols), got, want)
				src[1] = float32(math.Copysign(0, -1))
				src[2] = float32(math.NaN())
				mg, mw := make([]uint64, (len(src)+63)/64), make([]uint64, (len(src)+63)/64)
				for i := range mg {
					mg[i], mw[i] = ^uint64(0), 0
				}
				ks.nonzero(src, mg)
				nonzeroGeneric(src, mw)
				if !slices.Equal(mg, mw) || mw[0]&6 != 4 {
					t.Fatalf("nonzero of %d values: %x, want %x", len(src), mg, mw)
				}
			}
			// ReLU, its gradient, the affine map
			for _, n := range []int{0, 7, 16, 50} {
				x, dy := randVec(rng, n, 0.2, true), randVec(rng, n, 0, false)
				if n > 2 {
					x[0], x[1] = float32(math.Copysign(0, -1)), float32(math.NaN())
				}
				g1, w1 := make([]float32, n), make([]float32, n)
				ks.relu(x, g1)
				reluGeneric(x, w1)
				sameBits(t, fmt.Sprintf("relu n=%d", n), g1, w1)
				ks.reluGrad(x, dy, g1)
				reluGradGeneric(x, dy, w1)
				sameBits(t, fmt.Sprintf("relu gradient n=%d", n), g1, w1)
				ks.affine(x, g1, 1.5, -0.25)
				affineGeneric(x, w1, 1.5, -0.25)
				for i := range g1 {
					if math.Float32bits(g1[i]) != math.Float32bits(w1[i]) && !(g1[i] != g1[i] && w1[i] != w1[i]) {
						t.Fatalf("affine n=%d element %d: %g, want %g", n, i, g1[i], w1[i])
					}
				}
			}
			// Adam and the 32-lane sums
			for _, n := range []int{0, 5, 16, 33, 100, 1000} {
				p, grad := randVec(rng, n, 0.1, true), randVec(rng, n, 0.1, true)
				m, v := randVec(rng, n, 0.1, false), randVec(rng, n, 0, false)
				for i := range v {
					v[i] *= v[i]
				}
				f := [8]float32{1e-3, 0.9, 0.8, 0.2, 0.99, 0.01, 1e-6, 1e-8}
				pg, gg, mg, vg := slices.Clone(p), slices.Clone(grad), slices.Clone(m), slices.Clone(v)
				ks.adam(pg, gg, mg, vg, &f)
				adamGeneric(p, grad, m, v, &f)
				sameBits(t, fmt.Sprintf("adam n=%d p", n), pg, p)
				sameBits(t, fmt.Sprintf("adam n=%d m", n), mg, m)
				sameBits(t, fmt.Sprintf("adam n=%d v", n), vg, v)
				for _, sq := range []bool{false, true} {
					if got, want := ks.sums(p, 0.125, sq), sumsGeneric(p, 0.125, sq); math.Float64bits(got) != math.Float64bits(want) {
						t.Fatalf("sums n=%d sq=%v: %g, want %g", n, sq, got, want)
					}
				}
			}
			for n := 0; n < 100; n++ {
				src := randVec(rng, n, 0.2, true)
				d0 := randVec(rng, n, 0.2, true)
				got, want := slices.Clone(d0), slices.Clone(d0)
				ks.add(got, src)
				addGeneric(want, src)
				sameBits(t, fmt.Sprintf("add n=%d", n), got, want)
				for _, affine := range []bool{false, true} {
					for _, counts := range []bool{false, true} {
						in := randVec(rng, n, 0.3, false)
						for i := range in {
							in[i] *= 3
						}
						v0 := randVec(rng, n, 0.1, false)
						if n > 2 {
							v0[1] = 2 - in[1] // exactly at the threshold: spikes (>=)
							v0[2] = float32(math.NaN())
						}
						c0 := randVec(rng, n, 0.5, false)
						vg, vw := slices.Clone(v0), slices.Clone(v0)
						sg, sw := make([]float32, n), make([]float32, n)
						var cg, cw []float32
						if counts {
							cg, cw = slices.Clone(c0), slices.Clone(c0)
						}
						sc, sh := rng.Float32()*2, rng.Float32()-0.5
						ks.ifPlane(in, vg, sg, cg, affine, sc, sh, 2, 0.25)
						ifPlaneGeneric(in, vw, sw, cw, affine, sc, sh, 2, 0.25)
						what := fmt.Sprintf("IF n=%d affine=%v counts=%v", n, affine, counts)
						sameBits(t, what+" spikes", sg, sw)
						sameBits(t, what+" counts", cg, cw)
						for i := range vg {
							if math.Float32bits(vg[i]) != math.Float32bits(vw[i]) && !(vg[i] != vg[i] && vw[i] != vw[i]) {
								t.Fatalf("%s: v[%d] = %g, want %g", what, i, vg[i], vw[i])
							}
						}
					}
				}
			}
		})
	}
}
