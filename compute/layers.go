package compute

import (
	"math"
	"math/bits"
)

// The CPU backend's linear layers sum each output
//
//	y[b,o] = bias[o] + Σ_i x[b,i]·w[o,i]
//
// as one chain of fused multiply-adds over i in order, then add the bias:
// densely (a GEMM), or, for inputs that are spikes, event-driven — each
// row's non-zero inputs listed once and their rows of the transposed
// weight added (the gather kernel), absent spikes costing nothing. Both
// give the same bits (see conv.go); a row runs event-driven when its
// share of non-zero inputs is below defaultEventDensity.

// linearChunk is how many rows of the transposed weight one pass of the
// event-driven kernel adds before moving on, so that they stay in cache
// while every row of the batch uses them.
func (ks *kernelSet) linearChunk() int { return 256 * 1024 / 4 / ks.maxGather }

// linearForward implements LinearForward.
func (c *CPU) linearForward(n, in, outF int, x, w, bias, y []float32, wb Buffer, spikes bool) {
	ks := c.kernels()
	workers := maxWorkers()
	denseMACs := int64(n) * int64(in) * int64(outF)
	if !spikes {
		ks.gemm(false, true, n, outF, in, x, in, w, in, y, outF, workers)
		addRowBias(n, bias, y)
		c.work.add(workLinearDense, int64(n), int64(n)*int64(in), int64(n)*int64(in), denseMACs, denseMACs, 0)
		return
	}
	// list each row's non-zero inputs
	l := &c.rows
	l.buildRows(ks, n, in, x, c.scratch(workers))
	total := 0
	for _, cnt := range l.n {
		total += int(cnt)
	}
	if float64(total) >= c.eventDensity()*float64(n*in) {
		ks.gemm(false, true, n, outF, in, x, in, w, in, y, outF, workers)
		addRowBias(n, bias, y)
		c.work.add(workLinearSpikes, int64(n), int64(n)*int64(in), int64(total), denseMACs, denseMACs, 0)
		return
	}
	ld := gatherWidth(outF)
	wg := c.prepare("linear/gather", wb, outF, func(w, old []float32) []float32 {
		t := old // the same geometry: the padding columns are still zero
		if t == nil {
			t = make([]float32, in*ld)
		}
		ks.transpose(outF, in, w, in, t, ld)
		return t
	})
	tmp := grow(&c.tmp, n*ld)
	chunk := ks.linearChunk()
	chunks := (in + chunk - 1) / chunk
	// where each row's entries of each chunk of inputs start: bounds[r·(chunks+1) + k]
	bounds := grow(&l.bounds, n*(chunks+1))
	for r := 0; r < n; r++ {
		b := bounds[r*(chunks+1) : (r+1)*(chunks+1)]
		e, end := int32(r*in), int32(r*in)+l.n[r]
		for k := 0; k < chunks; k++ {
			b[k] = e
			for e < end && l.idx[e] < int32((k+1)*chunk) {
				e++
			}
		}
		b[chunks] = end
	}
	blocks := (ld + ks.maxGather - 1) / ks.maxGather
	// one pass over a column block: chunk by chunk of the weight's rows,
	// every row of the batch continuing its chains
	pass := func(jb, r0, r1 int) {
		j0, j1 := jb*ks.maxGather, min((jb+1)*ks.maxGather, ld)
		for k := 0; k < chunks; k++ {
			for r := r0; r < r1; r++ {
				b := bounds[r*(chunks+1)+k:]
				seg := [1]gatherSeg{{base: 0, lo: b[0], hi: b[1]}}
				ks.gather(tmp[r*ld+j0:r*ld+j1], wg[j0:], ld, seg[:], l.idx, l.val, k > 0)
			}
		}
	}
	if blocks >= workers {
		parallelFor(blocks, workers, func(_, lo, hi int) {
			for jb := lo; jb < hi; jb++ {
				pass(jb, 0, n)
			}
		})
	} else {
		parallelFor(n, workers, func(_, lo, hi int) {
			for jb := 0; jb < blocks; jb++ {
				pass(jb, lo, hi)
			}
		})
	}
	for r := 0; r < n; r++ {
		copy(y[r*outF:(r+1)*outF], tmp[r*ld:])
	}
	addRowBias(n, bias, y)
	c.work.add(workLinearSpikes, int64(n), int64(n)*int64(in), int64(total), denseMACs, int64(total)*int64(outF), n)
}

// buildRows lists each of n rows' non-zero values of x ([n, in]): row
// r's are idx[r·in : r·in + n[r]], in order.
func (l *spikeList) buildRows(ks *kernelSet, n, in int, x []float32, scratch []workerScratch) {
	grow(&l.n, n)
	grow(&l.idx, n*in)
	grow(&l.val, n*in)
	parallelFor(n, len(scratch), func(wk, lo, hi int) {
		mask := grow(&scratch[wk].list.mask, (in+63)/64)
		for r := lo; r < hi; r++ {
			row := x[r*in : (r+1)*in]
			ks.nonzero(row, mask)
			at := r * in
			for w, m := range mask {
				for ; m != 0; m &= m - 1 {
					i := w*64 + bits.TrailingZeros64(m)
					l.idx[at], l.val[at] = int32(i), row[i]
					at++
				}
			}
			l.n[r] = int32(at - r*in)
		}
	})
}

// addRowBias adds bias (if not nil) to each of n rows of y.
func addRowBias(n int, bias, y []float32) {
	if bias == nil {
		return
	}
	k := len(bias)
	for r := 0; r < n; r++ {
		row := y[r*k : (r+1)*k]
		for i, b := range bias {
			row[i] += b
		}
	}
}

// linearBackward implements LinearBackward: dx = dy·W (a chain over o,
// overwritten), and, by the batch reduction rule (reduce.go) with leaves
// dy[s,o]·x[s,i] and dy[s,o], dw += Σ_s dyᵀ·x and db += Σ_s dy. The
// weight gradient is reduced tile by tile, each tile's tree in cache,
// the kernel summing up to four leaves in registers.
func (c *CPU) linearBackward(n, in, outF int, x, w, dy, dx, dw, db []float32) {
	ks := c.kernels()
	workers := maxWorkers()
	if dx != nil {
		ks.gemm(false, false, n, in, outF, dy, outF, w, in, dx, in, workers)
	}
	if dw != nil {
		const tileRows, tileCols = 8, 512
		rowTiles, colTiles := (outF+tileRows-1)/tileRows, (in+tileCols-1)/tileCols
		scratch := c.scratch(workers)
		parallelFor(rowTiles*colTiles, workers, func(wk, lo, hi int) {
			ws := &scratch[wk]
			for t := lo; t < hi; t++ {
				o0, i0 := t/colTiles*tileRows, t%colTiles*tileCols
				rows, cols := min(tileRows, outF-o0), min(tileCols, in-i0)
				tile := grow(&ws.tile, rows*cols)
				batchTree(n, 1, 4, tile, func(_, lo, hi int, leaf []float32) {
					ks.leaves(hi-lo, rows, cols, dy[lo*outF+o0:], outF, x[lo*in+i0:], in, leaf)
				}, ks.add, func(_, i int) []float32 { return ws.treeBuf(i, rows*cols) })
				for r := 0; r < rows; r++ {
					ks.add(dw[(o0+r)*in+i0:(o0+r)*in+i0+cols], tile[r*cols:(r+1)*cols])
				}
			}
		})
	}
	if db != nil {
		root := grow(&c.root, outF)
		batchTree(n, 1, 1, root, func(_, s, _ int, leaf []float32) { copy(leaf, dy[s*outF:(s+1)*outF]) }, ks.add, nil)
		ks.add(db, root)
	}
}

// softmaxForward applies softmax (or log-softmax) to each of n rows of k values.
func softmaxForward(n, k int, log bool, x, out []float32) {
	for b := 0; b < n; b++ {
		row, dst := x[b*k:(b+1)*k], out[b*k:(b+1)*k]
		m := row[0]
		for _, v := range row {
			m = max(m, v)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - m))
		}
		for i, v := range row {
			if log {
				dst[i] = v - m - float32(math.Log(sum))
			} else {
				dst[i] = float32(math.Exp(float64(v-m)) / sum)
			}
		}
	}
}

// softmaxBackward computes dx from the forward output y and dy, row by row:
// softmax dx = y·(dy − Σ dy·y); log-softmax dx = dy − exp(y)·Σ dy.
func softmaxBackward(n, k int, log bool, y, dy, dx []float32) {
	for b := 0; b < n; b++ {
		yr, gr, dr := y[b*k:(b+1)*k], dy[b*k:(b+1)*k], dx[b*k:(b+1)*k]
		if log {
			var sum float32
			for _, g := range gr {
				sum += g
			}
			for i := range dr {
				dr[i] = gr[i] - float32(math.Exp(float64(yr[i])))*sum
			}
		} else {
			var dot float32
			for i := range gr {
				dot += gr[i] * yr[i]
			}
			for i := range dr {
				dr[i] = yr[i] * (gr[i] - dot)
			}
		}
	}
}

// copyChannels copies, for each of n samples, channels [srcOff, srcOff+c)
// of src (srcC channels of hw values a sample) to channels [dstOff,
// dstOff+c) of dst (dstC channels a sample).
func copyChannels(n, c, hw int, src []float32, srcC, srcOff int, dst []float32, dstC, dstOff int) {
	for s := 0; s < n; s++ {
		from := src[(s*srcC+srcOff)*hw : (s*srcC+srcOff+c)*hw]
		copy(dst[(s*dstC+dstOff)*hw:(s*dstC+dstOff+c)*hw], from)
	}
}
