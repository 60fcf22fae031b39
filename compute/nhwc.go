package compute

// The CPU computes in NCHW. Its channels-last kernels (what a backend
// whose libraries want NHWC asks its programs for, docs/design.md §4) are
// there so that the conformance suite holds every backend's channels-last
// variants to one reference: each transposes its NHWC operands into NCHW
// scratch, runs the NCHW kernel, and transposes what that wrote back, so
// that it computes the NCHW kernel's bits. Elementwise maps that only
// need a value's channel (ChannelAffine, IF's fused BatchNorm) read an
// NHWC sample of hw pixels as hw samples of c channels × 1 instead.

// lastScratch is the CPU's memory for its channels-last kernels, kept
// from call to call.
type lastScratch struct {
	buf [6][]float32
	// w is the NCHW form of a channels-last weight, a buffer of its own
	// so that the NCHW kernel's prepared forms of it are remade whenever
	// it is written (its version changes).
	w *hostBuffer
}

// Transpose implements Backend.
func (c *CPU) Transpose(n, rows, cols int, x, y Buffer) {
	a := args{kernel: "Transpose"}
	size := a.size(n, rows, cols)
	xs, ys := a.buf("x", x, size), a.buf("y", y, size)
	if !c.ok(&a) {
		return
	}
	c.transposeAll(n, rows, cols, xs, ys)
	touch(y)
}

// transposeAll writes each of n rows×cols matrices of x transposed into y.
func (c *CPU) transposeAll(n, rows, cols int, x, y []float32) {
	ks, m := c.kernels(), rows*cols
	if m == 0 {
		return
	}
	parallelRange(n, func(lo, hi int) {
		for s := lo; s < hi; s++ {
			ks.transpose(rows, cols, x[s*m:(s+1)*m], cols, y[s*m:(s+1)*m], rows)
		}
	})
}

// transposeAdd adds each of n rows×cols matrices of x transposed into y.
func transposeAdd(n, rows, cols int, x, y []float32) {
	m := rows * cols
	for s := 0; s < n; s++ {
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				y[s*m+j*rows+i] += x[s*m+i*cols+j]
			}
		}
	}
}

// scratchLast is channels-last scratch i, n values (contents undefined).
func (c *CPU) scratchLast(i, n int) []float32 { return grow(&c.last.buf[i], n) }

// toNCHW writes x, n samples of c channels × hw laid out channels-last,
// into scratch i in NCHW and returns it (nil for nil).
func (c *CPU) toNCHW(i, n, ch, hw int, x []float32) []float32 {
	if x == nil {
		return nil
	}
	t := c.scratchLast(i, n*ch*hw)
	c.transposeAll(n, hw, ch, x, t)
	return t
}

// fromNCHW writes t, n samples in NCHW, into y channels-last.
func (c *CPU) fromNCHW(n, ch, hw int, t, y []float32) { c.transposeAll(n, ch, hw, t, y) }

// weightNCHW is a channels-last weight [O, KH, KW, C/G] as [O, C/G, KH,
// KW], in a buffer of the CPU's own whose version changes now.
func (c *CPU) weightNCHW(g ConvGeom, w []float32) ([]float32, Buffer) {
	if c.last.w == nil {
		c.last.w = &hostBuffer{root: &hostRoot{}}
	}
	b := c.last.w
	if cap(b.data) < len(w) {
		b.data = make([]float32, len(w))
	}
	b.data = b.data[:len(w)]
	c.transposeAll(g.O, g.KH*g.KW, g.C/g.Groups(), w, b.data)
	b.root.version++
	return b.data, b
}

// convForwardLast is Conv2dForward on channels-last operands.
func (c *CPU) convForwardLast(g ConvGeom, n int, xs, ws, bs, ys []float32) {
	ng, p := g, g.OutH()*g.OutW()
	ng.Layout = ""
	xt := c.toNCHW(0, n, g.C, g.H*g.W, xs)
	wt, wb := c.weightNCHW(g, ws)
	yt := c.scratchLast(1, len(ys))
	c.convForward(ng, n, xt, wt, bs, yt, wb)
	c.fromNCHW(n, g.O, p, yt, ys)
}

// convBackwardLast is Conv2dBackward on channels-last operands: the
// weight gradient computed into zeroed NCHW scratch, then added into dw.
func (c *CPU) convBackwardLast(g ConvGeom, n int, xs, ws, dys, dxs, dws, dbs []float32) {
	ng, p, hw := g, g.OutH()*g.OutW(), g.H*g.W
	ng.Layout = ""
	xt := c.toNCHW(0, n, g.C, hw, xs)
	dyt := c.toNCHW(1, n, g.O, p, dys)
	wt, wb := c.weightNCHW(g, ws)
	var dxt, dwt []float32
	if dxs != nil {
		dxt = c.scratchLast(2, len(dxs))
	}
	if dws != nil {
		dwt = c.scratchLast(3, len(dws))
		clear(dwt)
	}
	c.convBackward(ng, n, xt, wt, dyt, dxt, dwt, dbs, wb)
	if dxs != nil {
		c.fromNCHW(n, g.C, hw, dxt, dxs)
	}
	if dws != nil {
		transposeAdd(g.O, g.C/g.Groups(), g.KH*g.KW, dwt, dws)
	}
}

// poolLast runs a pooling kernel f on channels-last x (n samples, input
// planes) and y (output planes): transposed in, the NCHW kernel,
// transposed out. backward says x is the gradient written (dx) and y the
// one read (dy); xs2 is max pooling's forward input in a backward pass.
func (c *CPU) poolLast(g PoolGeom, n int, in, out, x2 []float32, backward bool, f func(g PoolGeom, in, out, x2 []float32)) {
	ng, hw, p := g, g.H*g.W, g.OutH()*g.OutW()
	ng.Layout = ""
	x2t := c.toNCHW(2, n, g.C, hw, x2)
	if !backward {
		it := c.toNCHW(0, n, g.C, hw, in)
		ot := c.scratchLast(1, len(out))
		f(ng, it, ot, x2t)
		c.fromNCHW(n, g.C, p, ot, out)
		return
	}
	ot := c.toNCHW(1, n, g.C, p, out)
	it := c.scratchLast(0, len(in))
	f(ng, it, ot, x2t)
	c.fromNCHW(n, g.C, hw, it, in)
}
