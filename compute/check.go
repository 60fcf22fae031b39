package compute

import (
	"errors"
	"fmt"
	"math/bits"
)

// MaxValues bounds the values of one buffer, and the product of the sizes
// a kernel is given: 2^56, beyond any machine's memory, so that sizes in
// bytes and sums of a few sizes cannot overflow an int.
const MaxValues = 1 << 56

// maxGeomDim bounds each field of a convolution's or pooling's geometry
// (a size, stride, padding or dilation): 2^24, so that the geometry's
// arithmetic cannot overflow.
const maxGeomDim = 1 << 24

// Elements is the product of dims — the values of a tensor of those
// sizes —, refused when a size is negative or the product exceeds
// MaxValues. No dims is one value.
func Elements(dims ...int) (int, error) {
	n := uint64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("size %d in %v: sizes are not negative", d, dims)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > MaxValues {
			return 0, fmt.Errorf("sizes %v: more than %d values", dims, MaxValues)
		}
		n = lo
	}
	return int(n), nil
}

// The CPU backend checks each kernel's arguments before it runs — sizes
// not negative and their products within MaxValues, geometries that have
// an output, each buffer one of the CPU's and at least as long as the
// sizes need (nil only where the kernel skips it) — and skips a kernel
// whose arguments fail, keeping the first failure for Err: a caller's
// mistake is an error, never a panic or a write out of bounds.

// args collects one kernel call's failures.
type args struct {
	kernel string
	err    error
}

// fail keeps the first failure.
func (a *args) fail(format string, v ...any) {
	if a.err == nil {
		a.err = fmt.Errorf(format, v...)
	}
}

// size is the product of dims (0 after a failure).
func (a *args) size(dims ...int) int {
	n, err := Elements(dims...)
	if err != nil {
		if a.err == nil {
			a.err = err
		}
		return 0
	}
	return n
}

// buf is b's values: b must be a CPU buffer of at least n values.
func (a *args) buf(name string, b Buffer, n int) []float32 {
	if b == nil {
		a.fail("%s is nil, %d values needed", name, n)
		return nil
	}
	return a.opt(name, b, n)
}

// opt is buf for a buffer the kernel may skip: nil gives nil.
func (a *args) opt(name string, b Buffer, n int) []float32 {
	if b == nil {
		return nil
	}
	hb, ok := b.(*hostBuffer)
	if !ok {
		a.fail("%s is a %T buffer, not the CPU backend's", name, b)
		return nil
	}
	if len(hb.data) < n {
		a.fail("%s holds %d values, %d needed", name, len(hb.data), n)
		return nil
	}
	return hb.data
}

// in checks that each named value lies in [lo, hi].
func (a *args) in(lo, hi int, kv ...any) {
	for i := 0; i+1 < len(kv); i += 2 {
		if v := kv[i+1].(int); v < lo || v > hi {
			a.fail("%s is %d: want %d to %d", kv[i], v, lo, hi)
		}
	}
}

// layout checks a layout argument.
func (a *args) layout(l Layout) {
	if !l.Valid() {
		a.fail("layout %q: want %q or %q", string(l), NCHW, NHWC)
	}
}

// conv checks a convolution's geometry.
func (a *args) conv(g ConvGeom) {
	a.layout(g.Layout)
	if g.Elem != F32 {
		a.fail("values stored as %s: this backend stores float32 only", g.Elem)
	}
	a.in(1, maxGeomDim, "C", g.C, "H", g.H, "W", g.W, "O", g.O, "KH", g.KH, "KW", g.KW, "SH", g.SH, "SW", g.SW, "DH", g.DH, "DW", g.DW)
	a.in(0, maxGeomDim, "PT", g.PT, "PL", g.PL, "PB", g.PB, "PR", g.PR, "G", g.G)
	if a.err != nil {
		return
	}
	if gr := g.Groups(); g.C%gr != 0 || g.O%gr != 0 {
		a.fail("%d groups do not divide %d input and %d output channels", gr, g.C, g.O)
	}
	if g.OutH() < 1 || g.OutW() < 1 {
		a.fail("a %d×%d kernel (dilation %d×%d) leaves no output of a padded %d×%d input", g.KH, g.KW, g.DH, g.DW, g.H+g.PT+g.PB, g.W+g.PL+g.PR)
	}
}

// pool checks a pooling's geometry: PyTorch's rule that padding is at
// most half the window, so that no window lies in the padding alone.
func (a *args) pool(g PoolGeom) {
	a.layout(g.Layout)
	a.in(1, maxGeomDim, "C", g.C, "H", g.H, "W", g.W, "KH", g.KH, "KW", g.KW, "SH", g.SH, "SW", g.SW)
	a.in(0, maxGeomDim, "PT", g.PT, "PL", g.PL, "PB", g.PB, "PR", g.PR)
	if a.err != nil {
		return
	}
	if 2*max(g.PT, g.PB) > g.KH || 2*max(g.PL, g.PR) > g.KW {
		a.fail("padding %d,%d,%d,%d is more than half the %d×%d window", g.PT, g.PL, g.PB, g.PR, g.KH, g.KW)
	}
	if g.OutH() < 1 || g.OutW() < 1 {
		a.fail("a %d×%d window leaves no output of a padded %d×%d input", g.KH, g.KW, g.H+g.PT+g.PB, g.W+g.PL+g.PR)
	}
}

// pad checks a padding's geometry.
func (a *args) pad(g PadGeom) {
	a.in(0, maxGeomDim, "H", g.H, "W", g.W, "PT", g.PT, "PL", g.PL, "PB", g.PB, "PR", g.PR)
}

// ok reports whether the call's arguments passed; if not, the backend
// keeps the failure for Err.
func (c *CPU) ok(a *args) bool {
	if a.err == nil {
		return true
	}
	c.fail(fmt.Errorf("cpu: %s: %w", a.kernel, a.err))
	return false
}

// fail keeps the first failure for Err.
func (c *CPU) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// errNotCPU is Alloc's and Adopt's answer on a nil CPU.
var errNotCPU = errors.New("cpu: no backend (a nil *CPU)")
