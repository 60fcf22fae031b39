package cuda

import (
	"fmt"
	"os"

	"github.com/proxykit/proxykit/compute"
)

// Channels-last (NHWC) on the CUDA backend. A program lowered for it
// (Options.ChannelsLast, lower.LayoutPreferrer) hands the convolutions,
// and the kernels around them, NHWC activations and channels-last weights
// [O, KH, KW, C/G]:
//
//   - cuDNN gets NHWC tensor and filter descriptors (descriptorsOf) and
//     computes in the layout of its tensor-core kernels, converting
//     nothing. Where it refuses a channels-last configuration, that
//     direction runs in NCHW with transposes around it, after a one-line
//     notice (convForwardNCHW, convBackwardNCHW).
//   - On im2col (the emulated device, asymmetric padding, no cuDNN) the
//     patches are gathered from and scattered to NHWC pixels in the same
//     (c, kh, kw) order, the weight transposed to [O, C/G, KH, KW] first,
//     so that every GEMM sums as in NCHW: the emulated device computes
//     the NCHW program's bits.
//   - The per-channel kernels (BatchNorm, the affine map, the bias, IF's
//     fused BatchNorm) read n NHWC samples of hw pixels as n·hw samples of
//     c channels × 1 (lastRows), visiting each channel's values in the
//     same order; pooling and IF's pooled windows take the layout.

// ChannelsLast implements lower.LayoutPreferrer: Options.ChannelsLast
// (false on a nil receiver).
func (be *Backend) ChannelsLast() bool { return be != nil && be.opt.ChannelsLast }

// HalfSpikes implements lower.HalfPreferrer: Options.HalfSpikes (false on
// a nil receiver).
func (be *Backend) HalfSpikes() bool { return be != nil && be.opt.HalfSpikes }

// Transpose implements compute.Backend, on float32 or binary16 values
// (each converted to y's type where they differ).
func (be *Backend) Transpose(n, rows, cols int, x, y compute.Buffer) {
	be.transposeOf(int64(n), rows, cols, anyPtr(x), compute.ElemOf(x), anyPtr(y), compute.ElemOf(y), false)
}

// transpose launches pk_transpose over n rows×cols matrices of float32
// values (adding into y with add).
func (be *Backend) transpose(n int64, rows, cols int, x, y devptr, add bool) {
	be.transposeOf(n, rows, cols, x, compute.F32, y, compute.F32, add)
}

// transposeOf launches pk_transpose over n rows×cols matrices, x of
// values of type xe and y of ye: one block per TILE×TILE tile, up to
// maxBlocks blocks.
func (be *Backend) transposeOf(n int64, rows, cols int, x devptr, xe compute.Elem, y devptr, ye compute.Elem, add bool) {
	m := n * int64(rows) * int64(cols)
	t := traffic{m * xe.Bytes(), m * ye.Bytes()}
	if add {
		t.read += m * ye.Bytes()
	}
	tiles := n * int64((rows+tile-1)/tile) * int64((cols+tile-1)/tile)
	be.launchBlocks("pk_transpose", int(min(tiles, maxBlocks)), t, x, half(xe), y, half(ye), n, int32(rows), int32(cols), b2i(add))
}

// tile is TILE in kernels.cu.
const tile = 32

// distinctWeight reports whether g's weight differs between its NCHW
// [O, C/G, KH, KW] and channels-last [O, KH, KW, C/G] forms (C/G > 1 and
// KH·KW > 1); where it does not, one memory is both.
func distinctWeight(g compute.ConvGeom) bool { return g.C/g.Groups() > 1 && g.KH*g.KW > 1 }

// weightNCHW is g's weight w in NCHW order: w, or for a channels-last
// convolution's distinct weight a transposed copy in a workspace. False
// when the workspace could not be had (recorded).
func (be *Backend) weightNCHW(g compute.ConvGeom, w compute.Buffer) (compute.Buffer, bool) {
	if !g.Layout.Last() || !distinctWeight(g) {
		return w, true
	}
	cg, k := g.C/g.Groups(), g.KH*g.KW
	t, ok := be.nchwScratch("nchw w", g.O*cg*k)
	if ok {
		be.transpose(int64(g.O), k, cg, ptr(w), ptr(t), false)
	}
	return t, ok
}

// refusedLast reports whether cuDNN refused direction kind of
// channels-last convolution g (and it is there to run it in NCHW).
func (be *Backend) refusedLast(g compute.ConvGeom, kind int) bool {
	if !g.Layout.Last() || be.dnn == nil {
		return false
	}
	_, refused := be.noDNN[dnnKey{g, kind}]
	return refused
}

// nchwScratch returns n values of workspace use as a buffer (recording a
// failure).
func (be *Backend) nchwScratch(use string, n int) (compute.Buffer, bool) {
	t, err := be.workspace(use, n)
	if err != nil {
		be.fail(err)
		return nil, false
	}
	return t.Slice(0, n), true
}

// convForwardNCHW runs channels-last convolution g in NCHW: x and the
// weight transposed into workspaces, the NCHW convolution (cuDNN where it
// takes it, else im2col), its output transposed into y.
func (be *Backend) convForwardNCHW(g compute.ConvGeom, n int, x, w, bias, y compute.Buffer) {
	ng, hw, p := g, g.H*g.W, g.OutH()*g.OutW()
	ng.Layout = ""
	xt, ok1 := be.nchwScratch("nchw x", n*g.C*hw)
	yt, ok2 := be.nchwScratch("nchw y", n*g.O*p)
	wt, ok3 := be.weightNCHW(g, w)
	if !ok1 || !ok2 || !ok3 {
		return
	}
	be.transpose(int64(n), hw, g.C, ptr(x), ptr(xt), false)
	be.Conv2dForward(ng, n, xt, wt, bias, yt)
	be.transpose(int64(n), g.O, p, ptr(yt), ptr(y), false)
}

// convBackwardNCHW runs the backward directions dx and dw (nil: skipped;
// the bias gradient is done) of channels-last convolution g in NCHW:
// operands transposed into workspaces, the NCHW backward pass, dx
// transposed back and the weight gradient added back transposed (written
// back without accumulate).
func (be *Backend) convBackwardNCHW(g compute.ConvGeom, n int, x, w, dy, dx, dw compute.Buffer, accumulate bool) {
	ng, hw, p := g, g.H*g.W, g.OutH()*g.OutW()
	ng.Layout = ""
	dyt, ok := be.nchwScratch("nchw dy", n*g.O*p)
	if !ok {
		return
	}
	be.transpose(int64(n), p, g.O, ptr(dy), ptr(dyt), false)
	var xt, wt, dxt, dwt compute.Buffer
	if dw != nil {
		if xt, ok = be.nchwScratch("nchw x", n*g.C*hw); !ok {
			return
		}
		be.transpose(int64(n), hw, g.C, ptr(x), ptr(xt), false)
		dwt = dw
		if distinctWeight(g) {
			if dwt, ok = be.nchwScratch("nchw dw", g.O*g.GroupPatch()); !ok {
				return
			}
		}
	}
	if dx != nil {
		if wt, ok = be.weightNCHW(g, w); !ok {
			return
		}
		if dxt, ok = be.nchwScratch("nchw dx", n*g.C*hw); !ok {
			return
		}
	}
	be.Conv2dBackward(ng, n, xt, wt, dyt, dxt, dwt, nil, accumulate && !distinctWeight(g)) // the scratch: written
	if dx != nil {
		be.transpose(int64(n), g.C, hw, ptr(dxt), ptr(dx), false)
	}
	if dw != nil && distinctWeight(g) {
		be.transpose(int64(g.O), g.C/g.Groups(), g.KH*g.KW, ptr(dwt), ptr(dw), accumulate)
	}
}

// dnnDirection names direction kind of a convolution.
func dnnDirection(kind int) string {
	switch kind {
	case dnnForward:
		return "forward"
	case dnnData:
		return "backward data"
	}
	return "backward filter"
}

// convName names a convolution's geometry in a notice.
func convName(g compute.ConvGeom) string {
	return fmt.Sprintf("%d→%d %dx%d on %dx%d", g.C, g.O, g.KH, g.KW, g.H, g.W)
}

// notice writes msg as one line to Options.Notices (standard error when
// nil), once.
func (be *Backend) notice(msg string) {
	if be.noticed[msg] {
		return
	}
	be.noticed[msg] = true
	w := be.opt.Notices
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintln(w, "proxykit: "+msg)
}
