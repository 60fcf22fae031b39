package compute

import "golang.org/x/sys/cpu"

//go:generate go run ./asmgen

// availableKernels lists the pure-Go reference and the assembly kernel
// sets this CPU can run, narrowest first.
func availableKernels() []*kernelSet {
	sets := []*kernelSet{genericKernels}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		sets = append(sets, avx2Kernels)
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		sets = append(sets, avx512Kernels)
	}
	return sets
}

// The two assembly kernel sets are written out, not made by one
// constructor from their functions and lane width: with the lane width a
// constant and each assembly function named, the compiler inlines the
// split helpers and calls the kernels directly. A shared constructor
// measured about 15 % slower in the training step (2026-11-30, AVX-512,
// BenchmarkTrainStep, runs alternated: 46-47 against 55-59 images/s).

// avx2Kernels are kernels_avx2_amd64.s: 8 lanes, a 6×16 GEMM tile.
var avx2Kernels = &kernelSet{
	name: "avx2", mr: 6, nr: 16, micro: microAVX2,
	lanes: 8, maxGather: 64,
	gather: func(dst, w []float32, ld int, segs []gatherSeg, idx []int32, val []float32, load bool) {
		gatherSplit(dst, w, ld, segs, idx, val, load, 8, gatherAVX2)
	},
	convGather: func(positions int, table, idx []int32, val, w []float32, ld int, out []float32, width int) {
		convGatherSplit(positions, table, idx, val, w, ld, out, width, 8, convGatherAVX2)
	},
	convRow: func(kw, tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32, width int) {
		if tiles > 0 {
			_ = out[(int(table[0])+8*8/width-1)*ld+width-1] // the first tile's last row
		}
		convRowAVX2Kernels[kw-1][width/8/2](tiles, table, idx, val, w, ld, tapStride, out)
	},
	rowVectors: 8,
	add: func(dst, src []float32) {
		n := len(dst) &^ 7
		addAVX2(dst[:n], src[:n])
		addGeneric(dst[n:], src[n:len(dst)])
	},
	leaves: func(size, rows, cols int, dy []float32, dyStride int, x []float32, xStride int, dst []float32) {
		leavesSplit(size, rows, cols, dy, dyStride, x, xStride, dst, 8, leavesAVX2)
	},
	ifPlane: func(in, v, spikes, counts []float32, affine bool, sc, sh, th, reset float32) {
		ifSplit(in, v, spikes, counts, affine, sc, sh, th, reset, 8, ifPlaneAVX2)
	},
	transpose: transposeSplit,
	nonzero:   nonzeroSplit,
	relu: func(x, y []float32) {
		n := len(x) &^ 7
		reluAVX2(x[:n], y[:n])
		reluGeneric(x[n:], y[n:len(x)])
	},
	reluGrad: func(y, dy, dx []float32) {
		n := len(y) &^ 7
		reluGradAVX2(y[:n], dy[:n], dx[:n])
		reluGradGeneric(y[n:], dy[n:len(y)], dx[n:len(y)])
	},
	affine: func(x, y []float32, sc, sh float32) {
		n := len(x) &^ 7
		affineAVX2(x[:n], y[:n], sc, sh)
		affineGeneric(x[n:], y[n:len(x)], sc, sh)
	},
	adam: func(p, grad, m, v []float32, f *[8]float32) {
		n := len(p) &^ 7
		_, _, _ = grad[:len(p)], m[:len(p)], v[:len(p)]
		adamAVX2(p[:n], grad[:n], m[:n], v[:n], f)
		adamGeneric(p[n:], grad[n:], m[n:], v[n:], f)
	},
	sums: func(x []float32, mu float64, sq bool) float64 {
		var lanes [32]float64
		n := len(x) &^ 31
		sumsAVX2(x[:n], mu, sq, &lanes)
		sumsLanes(x[n:], mu, sq, &lanes)
		return sum32(&lanes)
	},
}

// avx512Kernels are kernels_avx512_amd64.s: 16 lanes, a 12×32 GEMM tile.
var avx512Kernels = &kernelSet{
	name: "avx512", mr: 12, nr: 32, micro: microAVX512,
	lanes: 16, maxGather: 128,
	gather: func(dst, w []float32, ld int, segs []gatherSeg, idx []int32, val []float32, load bool) {
		gatherSplit(dst, w, ld, segs, idx, val, load, 16, gatherAVX512)
	},
	convGather: func(positions int, table, idx []int32, val, w []float32, ld int, out []float32, width int) {
		convGatherSplit(positions, table, idx, val, w, ld, out, width, 16, convGatherAVX512)
	},
	convRow: func(kw, tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32, width int) {
		if tiles > 0 {
			_ = out[(int(table[0])+8*16/width-1)*ld+width-1] // the first tile's last row
		}
		convRowAVX512Kernels[kw-1][width/16/2](tiles, table, idx, val, w, ld, tapStride, out)
	},
	rowVectors: 16,
	add: func(dst, src []float32) {
		n := len(dst) &^ 15
		addAVX512(dst[:n], src[:n])
		addGeneric(dst[n:], src[n:len(dst)])
	},
	leaves: func(size, rows, cols int, dy []float32, dyStride int, x []float32, xStride int, dst []float32) {
		leavesSplit(size, rows, cols, dy, dyStride, x, xStride, dst, 16, leavesAVX512)
	},
	ifPlane: func(in, v, spikes, counts []float32, affine bool, sc, sh, th, reset float32) {
		ifSplit(in, v, spikes, counts, affine, sc, sh, th, reset, 16, ifPlaneAVX512)
	},
	transpose: transposeSplit,
	nonzero:   nonzeroSplit,
	relu: func(x, y []float32) {
		n := len(x) &^ 15
		reluAVX512(x[:n], y[:n])
		reluGeneric(x[n:], y[n:len(x)])
	},
	reluGrad: func(y, dy, dx []float32) {
		n := len(y) &^ 15
		reluGradAVX512(y[:n], dy[:n], dx[:n])
		reluGradGeneric(y[n:], dy[n:len(y)], dx[n:len(y)])
	},
	affine: func(x, y []float32, sc, sh float32) {
		n := len(x) &^ 15
		affineAVX512(x[:n], y[:n], sc, sh)
		affineGeneric(x[n:], y[n:len(x)], sc, sh)
	},
	adam: func(p, grad, m, v []float32, f *[8]float32) {
		n := len(p) &^ 15
		_, _, _ = grad[:len(p)], m[:len(p)], v[:len(p)]
		adamAVX512(p[:n], grad[:n], m[:n], v[:n], f)
		adamGeneric(p[n:], grad[n:], m[n:], v[n:], f)
	},
	sums: func(x []float32, mu float64, sq bool) float64 {
		var lanes [32]float64
		n := len(x) &^ 31
		sumsAVX512(x[:n], mu, sq, &lanes)
		sumsLanes(x[n:], mu, sq, &lanes)
		return sum32(&lanes)
	},
}

// gatherSplit runs an assembly gather kernel, which holds 1, 2, 4 or 8
// vectors, over dst in blocks of those sizes (the chains of different
// columns are independent). The rows it reads must lie inside w.
func gatherSplit(dst, w []float32, ld int, segs []gatherSeg, idx []int32, val []float32, load bool, lanes int,
	kernel func(dst, w []float32, ld int, segs []gatherSeg, idx []int32, val []float32, load bool)) {
	for len(dst) > 0 {
		nv := len(dst) / lanes
		switch {
		case nv >= 8:
			nv = 8
		case nv >= 4:
			nv = 4
		case nv >= 2:
			nv = 2
		}
		kernel(dst[:nv*lanes], w, ld, segs, idx, val, load)
		dst, w = dst[nv*lanes:], w[nv*lanes:]
	}
}

// convGatherSplit runs an assembly convolution gather, which holds 1, 2,
// 4 or 8 vectors, over width columns in blocks of those sizes. The table
// and lists come from the CPU backend's own builders (conv.go); the
// output rows are checked here.
func convGatherSplit(positions int, table, idx []int32, val, w []float32, ld int, out []float32, width, lanes int,
	kernel func(positions int, table, idx []int32, val, w []float32, ld int, out []float32, width int)) {
	if positions <= 0 {
		return
	}
	_ = out[(positions-1)*ld+width-1]
	for j := 0; j < width; {
		nv := (width - j) / lanes
		switch {
		case nv >= 8:
			nv = 8
		case nv >= 4:
			nv = 4
		case nv >= 2:
			nv = 2
		}
		kernel(positions, table, idx, val, w[j:], ld, out[j:], nv*lanes)
		j += nv * lanes
	}
}

// leavesSplit runs an assembly leaves kernel on whole vectors of columns
// and the reference on the rest, after checking that it reads and writes
// inside the slices.
func leavesSplit(size, rows, cols int, dy []float32, dyStride int, x []float32, xStride int, dst []float32, lanes int,
	kernel func(size, rows, cols int, dy []float32, dyStride int, x []float32, xStride int, dst []float32)) {
	if size < 1 || size > 4 || rows < 1 || cols < 1 {
		leavesGeneric(size, rows, cols, dy, dyStride, x, xStride, dst)
		return
	}
	_, _, _ = dy[(size-1)*dyStride+rows-1], x[(size-1)*xStride+cols-1], dst[rows*cols-1]
	n := cols / lanes * lanes
	if n == cols {
		kernel(size, rows, cols, dy, dyStride, x, xStride, dst)
		return
	}
	// whole vectors of each row, then the tails
	tmp := make([]float32, rows*n)
	if n > 0 {
		kernel(size, rows, n, dy, dyStride, x, xStride, tmp)
	}
	for r := 0; r < rows; r++ {
		copy(dst[r*cols:r*cols+n], tmp[r*n:(r+1)*n])
		var tail [64]float32
		t := tail[:cols-n]
		leavesGeneric(size, 1, cols-n, dy[r:], dyStride, x[n:], xStride, t)
		copy(dst[r*cols+n:(r+1)*cols], t)
	}
}

// transposeSplit transposes whole 8×8 blocks with AVX2 (the AVX-512
// set's too: data movement) and the edges with the reference.
func transposeSplit(rows, cols int, src []float32, ld int, dst []float32, ldd int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	_, _ = src[(rows-1)*ld+cols-1], dst[(cols-1)*ldd+rows-1]
	r8, c8 := rows&^7, cols&^7
	// in tiles of 64×64, so that both sides stay in cache
	const tile = 64
	for r0 := 0; r0 < r8; r0 += tile {
		for c0 := 0; c0 < c8; c0 += tile {
			transposeAVX2(min(tile, r8-r0), min(tile, c8-c0), src[r0*ld+c0:], ld, dst[c0*ldd+r0:], ldd)
		}
	}
	if c8 < cols {
		transposeGeneric(rows, cols-c8, src[c8:], ld, dst[c8*ldd:], ldd)
	}
	if r8 < rows {
		transposeGeneric(rows-r8, c8, src[r8*ld:], ld, dst[r8:], ldd)
	}
}

// nonzeroSplit maps whole words of 64 values with AVX2 and the rest with
// the reference.
func nonzeroSplit(x []float32, mask []uint64) {
	if len(x) == 0 {
		return
	}
	n := len(x) &^ 63
	_ = mask[(len(x)+63)/64-1]
	if n > 0 {
		nonzeroAVX2(x[:n], mask[:n/64])
	}
	if n < len(x) {
		nonzeroGeneric(x[n:], mask[n/64:])
	}
}

// ifSplit runs an assembly IF kernel on whole vectors and the reference
// on the rest.
func ifSplit(in, v, spikes, counts []float32, affine bool, sc, sh, th, reset float32, lanes int,
	kernel func(in, v, spikes, counts []float32, affine bool, sc, sh, th, reset float32)) {
	n := len(v) / lanes * lanes
	in, spikes = in[:len(v)], spikes[:len(v)]
	var c0, c1 []float32
	if counts != nil {
		counts = counts[:len(v)]
		c0, c1 = counts[:n], counts[n:]
	}
	kernel(in[:n], v[:n], spikes[:n], c0, affine, sc, sh, th, reset)
	ifPlaneGeneric(in[n:], v[n:], spikes[n:], c1, affine, sc, sh, th, reset)
}

//go:noescape
func microAVX2(k int, a, b, c []float32, ldc int, load bool)

//go:noescape
func convGatherAVX2(positions int, table, idx []int32, val, w []float32, ld int, out []float32, width int)

// convRowAVX2Kernels[kw−1][nv/2] is convRowAVX2k{kw}n{nv}.
var convRowAVX2Kernels = [3][3]func(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32){
	{convRowAVX2k1n1, convRowAVX2k1n2, convRowAVX2k1n4},
	{convRowAVX2k2n1, convRowAVX2k2n2, convRowAVX2k2n4},
	{convRowAVX2k3n1, convRowAVX2k3n2, convRowAVX2k3n4},
}

//go:noescape
func convRowAVX2k1n1(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX2k1n2(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX2k1n4(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX2k2n1(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX2k2n2(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX2k2n4(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX2k3n1(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX2k3n2(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX2k3n4(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func gatherAVX2(dst, w []float32, ld int, segs []gatherSeg, idx []int32, val []float32, load bool)

//go:noescape
func addAVX2(dst, src []float32)

//go:noescape
func leavesAVX2(size, rows, cols int, dy []float32, dyStride int, x []float32, xStride int, dst []float32)

//go:noescape
func ifPlaneAVX2(in, v, spikes, counts []float32, affine bool, sc, sh, th, reset float32)

//go:noescape
func reluAVX2(x, y []float32)

//go:noescape
func reluGradAVX2(y, dy, dx []float32)

//go:noescape
func affineAVX2(x, y []float32, sc, sh float32)

//go:noescape
func adamAVX2(p, grad, m, v []float32, f *[8]float32)

//go:noescape
func sumsAVX2(x []float32, mu float64, sq bool, lanes *[32]float64)

//go:noescape
func reluAVX512(x, y []float32)

//go:noescape
func reluGradAVX512(y, dy, dx []float32)

//go:noescape
func affineAVX512(x, y []float32, sc, sh float32)

//go:noescape
func adamAVX512(p, grad, m, v []float32, f *[8]float32)

//go:noescape
func sumsAVX512(x []float32, mu float64, sq bool, lanes *[32]float64)

//go:noescape
func transposeAVX2(rows, cols int, src []float32, ld int, dst []float32, ldd int)

//go:noescape
func nonzeroAVX2(x []float32, mask []uint64)

//go:noescape
func microAVX512(k int, a, b, c []float32, ldc int, load bool)

//go:noescape
func convGatherAVX512(positions int, table, idx []int32, val, w []float32, ld int, out []float32, width int)

// convRowAVX512Kernels[kw−1][nv/2] is convRowAVX512k{kw}n{nv}.
var convRowAVX512Kernels = [3][3]func(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32){
	{convRowAVX512k1n1, convRowAVX512k1n2, convRowAVX512k1n4},
	{convRowAVX512k2n1, convRowAVX512k2n2, convRowAVX512k2n4},
	{convRowAVX512k3n1, convRowAVX512k3n2, convRowAVX512k3n4},
}

//go:noescape
func convRowAVX512k1n1(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX512k1n2(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX512k1n4(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX512k2n1(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX512k2n2(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX512k2n4(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX512k3n1(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX512k3n2(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func convRowAVX512k3n4(tiles int, table, idx []int32, val, w []float32, ld, tapStride int, out []float32)

//go:noescape
func gatherAVX512(dst, w []float32, ld int, segs []gatherSeg, idx []int32, val []float32, load bool)

//go:noescape
func addAVX512(dst, src []float32)

//go:noescape
func leavesAVX512(size, rows, cols int, dy []float32, dyStride int, x []float32, xStride int, dst []float32)

//go:noescape
func ifPlaneAVX512(in, v, spikes, counts []float32, affine bool, sc, sh, th, reset float32)
