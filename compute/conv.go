package compute

import "math/bits"

// ConvGeom describes a 2-D convolution. With G groups the input channels
// split into G blocks of C/G and the output channels into G blocks of
// O/G; output block g sees input block g only, and the weight is [O, C/G,
// KH, KW] (G = C = O: depthwise). G = 0 means 1. Layout is how x, y and
// their gradients are laid out: NCHW (or ""), or NHWC, in which case the
// weight and its gradient are channels-last too, [O, KH, KW, C/G] (cuDNN's
// KRSC).
type ConvGeom struct {
	C, H, W        int // input channels, height, width
	O, KH, KW      int // output channels, kernel height and width
	SH, SW         int // strides
	PT, PL, PB, PR int // zero padding: top, left, bottom, right
	DH, DW         int // dilations
	G              int // groups
	Layout         Layout
	// Elem is how Conv2dForward's x, w and y are stored: F32, or on a
	// HalfStore backend F16, the three alike, with products and sums in
	// float32 and y rounded once (cuDNN's PSEUDO_HALF configuration).
	// The backward pass takes F32 only.
	Elem Elem
}

// Groups is the number of groups, at least 1.
func (g ConvGeom) Groups() int { return max(g.G, 1) }

// GroupPatch is (C/G)·KH·KW, the weights of one output channel.
func (g ConvGeom) GroupPatch() int { return g.C / g.Groups() * g.KH * g.KW }

// OutH is the output height (0 for a stride below 1: no output).
func (g ConvGeom) OutH() int { return convOut(g.H, g.PT, g.PB, g.KH, g.SH, g.DH) }

// OutW is the output width (0 for a stride below 1: no output).
func (g ConvGeom) OutW() int { return convOut(g.W, g.PL, g.PR, g.KW, g.SW, g.DW) }

// convOut is a convolution's output size along one axis:
// ⌊(in + pads − d·(k−1) − 1)/s⌋ + 1, 0 where that is not positive or s < 1.
func convOut(in, padBefore, padAfter, k, s, d int) int {
	span := in + padBefore + padAfter - d*(k-1) - 1
	if s < 1 || span < 0 {
		return 0
	}
	return span/s + 1
}

// PatchLen is C·KH·KW, the length of one im2col patch over all channels
// (G groups take G consecutive blocks of GroupPatch rows of it).
func (g ConvGeom) PatchLen() int { return g.C * g.KH * g.KW }

// The CPU backend's convolutions sum each output
//
//	y[s,o,p] = bias[o] + Σ_{kh,kw,c} w[o,c,kh,kw]·x[s,c,pixel(p,kh,kw)]
//
// as one chain of fused multiply-adds over (kh, kw, c) in that order (tap
// by tap, the channels of a tap in order; c runs over o's group), then
// adds the bias. Two kernels compute that chain:
//
//   - dense: im2col (a patch matrix whose rows are (kh, kw, c)) and a
//     GEMM with the weights permuted to [O, KH, KW, C/G];
//   - event-driven (one group): each input pixel's non-zero channels are
//     listed once, and each output position adds, tap by tap, the weight
//     rows of the active channels of the pixel under the tap — for
//     spikes, additions of weight rows selected by spikes, with no work
//     for absent ones.
//
// Skipping a zero changes no bit (see kernelSet), so the two give the
// same results and the choice between them, per sample, by the share of
// non-zero inputs (defaultEventDensity), is only a matter of speed.

// defaultEventDensity is the share of non-zero inputs below which a sample's
// convolution runs event-driven.
const defaultEventDensity = 0.5

// permuteConvWeight writes w [O, C/G, KH, KW] as [O, KH, KW, C/G]: the
// dense kernel's A operand, whose row o is o's chain order.
func permuteConvWeight(g ConvGeom, w, old []float32) []float32 {
	cg, taps := g.C/g.Groups(), g.KH*g.KW
	out := grow(&old, len(w))
	for o := 0; o < g.O; o++ {
		for c := 0; c < cg; c++ {
			for k := 0; k < taps; k++ {
				out[(o*taps+k)*cg+c] = w[(o*cg+c)*taps+k]
			}
		}
	}
	return out
}

// padTo rounds n up to a multiple of m.
func padTo(n, m int) int { return (n + m - 1) / m * m }

// gatherWidth is how many columns the gather forms of weights hold: the
// outputs, padded with zero weights to a multiple of 16 (every kernel
// set's lanes divide 16).
func gatherWidth(outputs int) int { return padTo(outputs, 16) }

// gatherConvWeight writes w (one group) as the event-driven kernel reads
// it: row (kh·KW + kw)·C + c holds the O weights from input channel c at
// tap (kh, kw), padded to gatherWidth(O) columns.
func gatherConvWeight(g ConvGeom, w, old []float32) []float32 {
	taps, ld := g.KH*g.KW, gatherWidth(g.O)
	out := old // the same geometry: the padding columns are still zero
	if out == nil {
		out = make([]float32, taps*g.C*ld)
	}
	for o := 0; o < g.O; o++ {
		for c := 0; c < g.C; c++ {
			for k := 0; k < taps; k++ {
				out[(k*g.C+c)*ld+o] = w[(o*g.C+c)*taps+k]
			}
		}
	}
	return out
}

// inputRow is the input row that output row y reads at kernel row kh
// (possibly outside [0, H)), and likewise inputCol.
func (g ConvGeom) inputRow(y, kh int) int { return y*g.SH - g.PT + kh*g.DH }
func (g ConvGeom) inputCol(x, kw int) int { return x*g.SW - g.PL + kw*g.DW }

// colRange is the range [x0, x1) of output columns whose input column
// at kernel column kw lies inside [0, W).
func (g ConvGeom) colRange(kw, ow int) (x0, x1 int) {
	off := kw*g.DW - g.PL // input column of output column 0
	x0 = max(0, (-off+g.SW-1)/g.SW)
	x1 = min(ow, (g.W-1-off)/g.SW+1)
	if g.W-1-off < 0 {
		x1 = 0
	}
	return x0, max(x0, x1)
}

// im2col writes the patch matrix of one sample's group j: col[(kh·KW +
// kw)·cg + c, p] = x[j·cg + c, pixel(p, kh, kw)], 0 outside the input.
func im2col(g ConvGeom, j int, x, col []float32) {
	oh, ow := g.OutH(), g.OutW()
	p, cg := oh*ow, g.C/g.Groups()
	for kh := 0; kh < g.KH; kh++ {
		for kw := 0; kw < g.KW; kw++ {
			x0, x1 := g.colRange(kw, ow)
			off := kw*g.DW - g.PL
			for c := 0; c < cg; c++ {
				row := col[((kh*g.KW+kw)*cg+c)*p : ((kh*g.KW+kw)*cg+c+1)*p]
				plane := x[(j*cg+c)*g.H*g.W : (j*cg+c+1)*g.H*g.W]
				for y := 0; y < oh; y++ {
					ih := g.inputRow(y, kh)
					out := row[y*ow : (y+1)*ow]
					if ih < 0 || ih >= g.H {
						clear(out)
						continue
					}
					src := plane[ih*g.W : (ih+1)*g.W]
					clear(out[:x0])
					if g.SW == 1 {
						copy(out[x0:x1], src[x0+off:])
					} else {
						for xo := x0; xo < x1; xo++ {
							out[xo] = src[xo*g.SW+off]
						}
					}
					clear(out[x1:])
				}
			}
		}
	}
}

// col2im adds the patch-matrix gradient dcol of group j into dx (one
// sample), tap by tap in (kh, kw) order: the inverse walk of im2col.
func (ks *kernelSet) col2im(g ConvGeom, j int, dcol, dx []float32) {
	oh, ow := g.OutH(), g.OutW()
	p, cg := oh*ow, g.C/g.Groups()
	for kh := 0; kh < g.KH; kh++ {
		for kw := 0; kw < g.KW; kw++ {
			x0, x1 := g.colRange(kw, ow)
			off := kw*g.DW - g.PL
			for c := 0; c < cg; c++ {
				row := dcol[((kh*g.KW+kw)*cg+c)*p : ((kh*g.KW+kw)*cg+c+1)*p]
				plane := dx[(j*cg+c)*g.H*g.W : (j*cg+c+1)*g.H*g.W]
				for y := 0; y < oh; y++ {
					ih := g.inputRow(y, kh)
					if ih < 0 || ih >= g.H {
						continue
					}
					dst := plane[ih*g.W : (ih+1)*g.W]
					src := row[y*ow : (y+1)*ow]
					if g.SW == 1 {
						ks.add(dst[x0+off:x1+off], src[x0:x1])
					} else {
						for xo := x0; xo < x1; xo++ {
							dst[xo*g.SW+off] += src[xo]
						}
					}
				}
			}
		}
	}
}

// spikeList lists non-zero inputs: for a convolution (build) by pixel,
// pixel q's list at q·(c+1) holding its count idx[q·(c+1)] and then its
// non-zero channels, in order, and their values (in val at the same
// places); for a linear layer (buildRows) by row, row r's count in n[r]
// and its non-zero inputs at idx[r·in…].
type spikeList struct {
	mask   []uint64 // a plane's or a row's non-zero values
	n      []int32
	idx    []int32
	val    []float32
	bounds []int32 // rows' chunk boundaries (linearForward)
}

// build lists x's non-zero values ([c, hw], channel-major) by pixel and
// returns how many there are.
func (l *spikeList) build(ks *kernelSet, c, hw int, x []float32) int {
	cnt := grow(&l.n, hw)
	grow(&l.idx, (c+1)*hw)
	grow(&l.val, (c+1)*hw)
	mask := grow(&l.mask, (c*hw+63)/64)
	clear(cnt)
	ks.nonzero(x[:c*hw], mask)
	total := 0
	ch, end := 0, hw // the channel of the values before end
	for w, m := range mask {
		for ; m != 0; m &= m - 1 {
			i := w*64 + bits.TrailingZeros64(m)
			for i >= end {
				ch++
				end += hw
			}
			q := i - (end - hw)
			at := q*(c+1) + 1 + int(cnt[q])
			l.idx[at], l.val[at] = int32(ch), x[i]
			cnt[q]++
			total++
		}
	}
	for q, k := range cnt {
		l.idx[q*(c+1)] = k
	}
	return total
}

// convTable is a geometry's tap table for the event-driven kernel
// (kernelSet.convGather): for each output position, the number of taps
// whose input pixel lies inside the input, then for each such tap (in
// (kh, kw) order) its weight rows' base (kh·KW + kw)·C and its pixel's
// list, q·(C+1). fan counts, for each input pixel, the (position, tap)
// pairs that read it.
type convTable struct {
	table, fan []int32
	off        []int32 // where each position's entry starts in table
}

func newConvTable(g ConvGeom) *convTable {
	oh, ow := g.OutH(), g.OutW()
	t := &convTable{fan: make([]int32, g.H*g.W)}
	for y := 0; y < oh; y++ {
		for xo := 0; xo < ow; xo++ {
			at := len(t.table)
			t.off = append(t.off, int32(at))
			t.table = append(t.table, 0)
			for kh := 0; kh < g.KH; kh++ {
				ih := g.inputRow(y, kh)
				if ih < 0 || ih >= g.H {
					continue
				}
				for kw := 0; kw < g.KW; kw++ {
					iw := g.inputCol(xo, kw)
					if iw < 0 || iw >= g.W {
						continue
					}
					q := ih*g.W + iw
					t.table = append(t.table, int32((kh*g.KW+kw)*g.C), int32(q*(g.C+1)))
					t.table[at]++
					t.fan[q]++
				}
			}
		}
	}
	return t
}

// rowTable is a geometry's row tiles of J positions for the row-tile
// kernel (kernelSet.convRow), and the runs of positions at the ends of
// output rows that fill no tile (for convGather).
type rowTable struct {
	table []int32
	tiles int
	rest  []struct{ p, n int }
}

// rowTiles reports whether g's convolution can run in row tiles: stride
// and dilation 1 along rows, at most three taps a kernel row.
func (g ConvGeom) rowTiles() bool { return g.SW == 1 && g.DW == 1 && g.KW <= 3 }

func newRowTable(g ConvGeom, J int) *rowTable {
	oh, ow := g.OutH(), g.OutW()
	t := &rowTable{}
	for y := 0; y < oh; y++ {
		x0 := 0
		for ; x0+J <= ow; x0 += J {
			t.tiles++
			t.table = append(t.table, int32(y*ow+x0), 0)
			rows := len(t.table) - 1
			for kh := 0; kh < g.KH; kh++ {
				ih := g.inputRow(y, kh)
				if ih < 0 || ih >= g.H {
					continue
				}
				t.table[rows]++
				t.table = append(t.table, int32(kh*g.KW*g.C))
				for du := 0; du < J+g.KW-1; du++ {
					start := int32(-1)
					if u := x0 - g.PL + du; u >= 0 && u < g.W {
						start = int32((ih*g.W + u) * (g.C + 1))
					}
					t.table = append(t.table, start)
				}
			}
		}
		if x0 < ow {
			t.rest = append(t.rest, struct{ p, n int }{y*ow + x0, ow - x0})
		}
	}
	return t
}

type rowKey struct {
	g ConvGeom
	j int
}

// rowTable returns g's row tiles of J positions, made once.
func (c *CPU) rowTable(g ConvGeom, J int) *rowTable {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rowTables == nil {
		c.rowTables = map[rowKey]*rowTable{}
	}
	t, ok := c.rowTables[rowKey{g, J}]
	if !ok {
		t = newRowTable(g, J)
		c.rowTables[rowKey{g, J}] = t
	}
	return t
}

// convTable returns g's tap table, made once.
func (c *CPU) convTable(g ConvGeom) *convTable {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tables == nil {
		c.tables = map[ConvGeom]*convTable{}
	}
	t, ok := c.tables[g]
	if !ok {
		t = newConvTable(g)
		c.tables[g] = t
	}
	return t
}

// convForward implements Conv2dForward.
func (c *CPU) convForward(g ConvGeom, n int, x, w, bias, y []float32, wb Buffer) {
	ks := c.kernels()
	oh, ow := g.OutH(), g.OutW()
	p := oh * ow
	inSize, outSize := g.C*g.H*g.W, g.O*p
	groups, og, kk := g.Groups(), g.O/g.Groups(), g.GroupPatch()
	wp := c.prepare("conv/permuted", wb, g.O<<16|groups, func(w, old []float32) []float32 { return permuteConvWeight(g, w, old) })
	// each group's permuted weight, packed for the GEMM
	packed := c.prepare("conv/packed/"+ks.name, wb, g.O<<16|groups, func(_, old []float32) []float32 {
		size := padTo(og, ks.mr) * kk
		all := grow(&old, groups*size)
		for j := 0; j < groups; j++ {
			ks.packAll(false, og, kk, wp[j*og*kk:], kk, all[j*size:(j+1)*size])
		}
		return all
	})
	var wg []float32
	var tbl *convTable
	if groups == 1 {
		wg = c.prepare("conv/gather", wb, g.O, func(w, old []float32) []float32 { return gatherConvWeight(g, w, old) })
		tbl = c.convTable(g)
	}
	workers := maxWorkers()
	scratch := c.scratch(workers)
	var active, dense, macs int64
	results := make([][3]int64, workers)
	parallelFor(n, workers, func(wk, lo, hi int) {
		sc := &scratch[wk]
		r := &results[wk]
		for s := lo; s < hi; s++ {
			xs, ys := x[s*inSize:(s+1)*inSize], y[s*outSize:(s+1)*outSize]
			if groups == 1 {
				nz := sc.list.build(ks, g.C, g.H*g.W, xs)
				r[0] += int64(nz)
				if float64(nz) < c.eventDensity()*float64(inSize) {
					r[2] += c.convEvents(g, ks, tbl, wg, sc, ys)
					addBias(bias, ys, p)
					continue
				}
			} else {
				r[0] += int64(countNonZero(xs))
			}
			r[1]++
			col := grow(&sc.col, kk*p)
			for j := 0; j < groups; j++ {
				im2col(g, j, xs, col)
				ks.gemmSerial(false, false, og, p, kk, nil, 0, col, p, ys[j*og*p:], p, packed[j*padTo(og, ks.mr)*kk:])
			}
			addBias(bias, ys, p)
		}
	})
	for _, r := range results {
		active += r[0]
		dense += r[1]
		macs += r[2]
	}
	denseMACs := int64(g.O) * int64(p) * int64(kk)
	c.work.add(workConv, int64(n), int64(n)*int64(inSize), active, int64(n)*denseMACs, macs+dense*denseMACs, n-int(dense))
}

// convEvents computes one sample's convolution (one group, no bias) from
// its spike list into ys, and returns the multiply-adds it did.
func (c *CPU) convEvents(g ConvGeom, ks *kernelSet, tbl *convTable, wg []float32, sc *workerScratch, ys []float32) int64 {
	p := g.OutH() * g.OutW()
	ld := gatherWidth(g.O)
	outT := grow(&sc.outT, p*ld)
	l := &sc.list
	for j := 0; j < ld; {
		// a column block of 8, 4, 2 or 1 vectors
		width := 8 * ks.rowVectors
		for width > min(ld-j, ks.maxGather) {
			width /= 2
		}
		if J := ks.rowTile(width); J >= 2 && g.rowTiles() {
			rt := c.rowTable(g, J)
			ks.convRow(g.KW, rt.tiles, rt.table, l.idx, l.val, wg[j:], ld, g.C, outT[j:], width)
			for _, run := range rt.rest {
				ks.convGather(run.n, tbl.table[tbl.off[run.p]:], l.idx, l.val, wg[j:], ld, outT[run.p*ld+j:], width)
			}
		} else {
			ks.convGather(p, tbl.table, l.idx, l.val, wg[j:], ld, outT[j:], width)
		}
		j += width
	}
	ks.transpose(p, g.O, outT, ld, ys, p)
	var macs int64
	for q, f := range tbl.fan {
		macs += int64(l.n[q]) * int64(f)
	}
	return macs * int64(g.O)
}

// addBias adds bias[o] to each of the len(bias) planes of p values of y.
func addBias(bias, y []float32, p int) {
	for o, b := range bias {
		plane := y[o*p : (o+1)*p]
		for i := range plane {
			plane[i] += b
		}
	}
}

func countNonZero(x []float32) int {
	n := 0
	for _, v := range x {
		if v != 0 {
			n++
		}
	}
	return n
}

// convBackward implements Conv2dBackward:
//
//	dx[s,c,ih,iw] = Σ_{kh,kw} Σ_o w[o,c,kh,kw]·dy[s,o,p(ih,iw,kh,kw)]
//	dw[o,c,kh,kw] += Σ_s Σ_p dy[s,o,p]·x[s,c,pixel(p,kh,kw)]    db[o] += Σ_s Σ_p dy[s,o,p]
//
// dx: for each tap a chain over o (a GEMM with the permuted weights,
// transposed), the taps added in (kh, kw) order from 0 (col2im). dw and
// db: each sample's leaf is its chain over p (a GEMM of dy with the patch
// matrix; db a plain sum over p), the leaves combined by the batch
// reduction rule (reduce.go), the root added to dw and db.
func (c *CPU) convBackward(g ConvGeom, n int, x, w, dy, dx, dw, db []float32, wb Buffer) {
	ks := c.kernels()
	oh, ow := g.OutH(), g.OutW()
	p := oh * ow
	inSize, outSize := g.C*g.H*g.W, g.O*p
	groups, og, kk := g.Groups(), g.O/g.Groups(), g.GroupPatch()
	wp := c.prepare("conv/permuted", wb, g.O<<16|groups, func(w, old []float32) []float32 { return permuteConvWeight(g, w, old) })
	// each group's permuted weight, transposed and packed for the GEMM
	var packedT []float32
	if dx != nil {
		packedT = c.prepare("conv/packedT/"+ks.name, wb, g.O<<16|groups, func(_, old []float32) []float32 {
			size := padTo(kk, ks.mr) * og
			all := grow(&old, groups*size)
			for j := 0; j < groups; j++ {
				ks.packAll(true, kk, og, wp[j*og*kk:], kk, all[j*size:(j+1)*size])
			}
			return all
		})
	}
	workers := maxWorkers()
	scratch := c.scratch(workers)
	// sample s's dx, and its leaf: dW (permuted layout) then db
	dwLen, dbLen := 0, 0
	if dw != nil {
		dwLen = g.O * kk
	}
	if db != nil {
		dbLen = g.O
	}
	sample := func(wk, s int, leaf []float32) {
		sc := &scratch[wk]
		xs, dys := x[s*inSize:(s+1)*inSize], dy[s*outSize:(s+1)*outSize]
		if dx != nil {
			dxs := dx[s*inSize : (s+1)*inSize]
			clear(dxs)
			dcol := grow(&sc.dcol, kk*p)
			for j := 0; j < groups; j++ {
				ks.gemmSerial(true, false, kk, p, og, nil, 0, dys[j*og*p:], p, dcol, p, packedT[j*padTo(kk, ks.mr)*og:])
				ks.col2im(g, j, dcol, dxs)
			}
		}
		if leaf == nil {
			return
		}
		if dw != nil {
			col := grow(&sc.col, kk*p)
			for j := 0; j < groups; j++ {
				im2col(g, j, xs, col)
				ks.gemmSerial(false, true, og, kk, p, dys[j*og*p:], p, col, p, leaf[j*og*kk:], kk, nil)
			}
		}
		if db != nil {
			lb := leaf[dwLen:]
			for o := 0; o < g.O; o++ {
				var sum float32
				for _, v := range dys[o*p : (o+1)*p] {
					sum += v
				}
				lb[o] = sum
			}
		}
	}
	if dw == nil && db == nil {
		parallelFor(n, workers, func(wk, lo, hi int) {
			for s := lo; s < hi; s++ {
				sample(wk, s, nil)
			}
		})
		return
	}
	size := dwLen + dbLen
	root := grow(&c.root, size)
	batchTree(n, workers, 1, root, func(wk, s, _ int, leaf []float32) { sample(wk, s, leaf) }, ks.add,
		func(wk, i int) []float32 { return scratch[wk].treeBuf(i, size) })
	if dw != nil {
		cg, taps := g.C/groups, g.KH*g.KW
		for o := 0; o < g.O; o++ {
			for ci := 0; ci < cg; ci++ {
				for k := 0; k < taps; k++ {
					dw[(o*cg+ci)*taps+k] += root[(o*taps+k)*cg+ci]
				}
			}
		}
	}
	if db != nil {
		for o, v := range root[dwLen:] {
			db[o] += v
		}
	}
}
