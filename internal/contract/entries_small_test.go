package contract_test

import (
	"errors"
	"io"
	"math"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/refmath"
	"github.com/proxykit/proxykit/setting"
)

// Entries of setting and compute/refmath. The references are the tests'
// oracle and trust their arguments (their package says so): they are held
// to give empty results for no sizes and the right values on a small case,
// never to refuse hostile ones.

func init() {
	// setting
	entries["setting.Errorf"] = func(c *C) {
		c.NoPanic(`"", no arguments; a format missing its arguments`, func() {
			_ = setting.Errorf("").Error()
			_ = setting.Errorf("%s %d %w").Error()
		})
	}
	entries["setting.Error.Error"] = func(c *C) {
		c.NoPanic("zero and nil errors", func() { _ = (&setting.Error{}).Error(); _ = (*setting.Error)(nil).Error() })
	}
	entries["setting.Error.Spell"] = func(c *C) {
		c.NoPanic("nil speller; a nil error", func() {
			e := setting.Errorf("set %s", setting.Device)
			c.Check(e.Spell(nil) == "set device", "Spell(nil) is %q", e.Spell(nil))
			c.Check(e.Spell(func(n setting.Name) string { return "--" + string(n) }) == "set --device", "no flag spelled")
			(*setting.Error)(nil).Spell(nil)
		})
	}
	entries["setting.Error.Unwrap"] = func(c *C) {
		c.NoPanic("zero and nil errors, one wrapping io.EOF", func() {
			c.Check((&setting.Error{}).Unwrap() == nil && (*setting.Error)(nil).Unwrap() == nil, "an error unwrapped from none")
			c.Check(errors.Is(setting.Errorf("%s: %w", setting.DataDir, io.EOF), io.EOF), "io.EOF not unwrapped")
		})
	}

	// compute/refmath: no sizes, and one small case against a value worked by hand
	zeroConv := compute.ConvGeom{}
	zeroPool := compute.PoolGeom{}
	ref := map[string]func(c *C){
		"Conv": func(c *C) {
			c.Check(len(refmath.Conv[float32, float32](zeroConv, 0, nil, nil, nil)) == 0, "values for no sizes")
			g := compute.ConvGeom{C: 1, H: 2, W: 2, O: 1, KH: 2, KW: 2, SH: 1, SW: 1, DH: 1, DW: 1}
			y := refmath.Conv(g, 1, []float32{1, 2, 3, 4}, []float32{1, 1, 1, 1}, []float32{0.5})
			c.Check(len(y) == 1 && y[0] == 10.5, "a 2×2 kernel of ones over 1..4 plus 0.5 is %v", y)
		},
		"ConvBackward": func(c *C) {
			dx, dw, db := refmath.ConvBackward[float32](zeroConv, 0, nil, nil, nil)
			c.Check(len(dx)+len(dw)+len(db) == 0, "values for no sizes")
		},
		"Linear": func(c *C) {
			c.Check(len(refmath.Linear[float32, float32](0, 0, 0, nil, nil, nil)) == 0, "values for no sizes")
			y := refmath.Linear(1, 2, 1, []float64{3, 4}, []float64{2, -1}, nil)
			c.Check(len(y) == 1 && y[0] == 2, "3·2 − 4 is %v", y)
		},
		"LinearBackward": func(c *C) {
			dx, dw, db := refmath.LinearBackward(1, 2, 1, []float64{3, 4}, []float64{2, -1}, []float64{1})
			c.Check(dx[0] == 2 && dx[1] == -1 && dw[0] == 3 && dw[1] == 4 && db[0] == 1, "dx %v dw %v db %v", dx, dw, db)
		},
		"MaxPool": func(c *C) {
			y, arg := refmath.MaxPool[float32](zeroPool, 0, nil)
			c.Check(len(y)+len(arg) == 0, "values for no sizes")
			g := compute.PoolGeom{C: 1, H: 2, W: 2, KH: 2, KW: 2, SH: 2, SW: 2}
			y, arg = refmath.MaxPool(g, 1, []float32{1, 7, 3, 4})
			c.Check(y[0] == 7 && arg[0] == 1, "the maximum of 1, 7, 3, 4 is %v at %v", y, arg)
		},
		"AvgPool": func(c *C) {
			g := compute.PoolGeom{C: 1, H: 2, W: 2, KH: 2, KW: 2, SH: 2, SW: 2}
			y := refmath.AvgPool(g, 1, false, []float32{1, 7, 3, 5})
			c.Check(len(y) == 1 && y[0] == 4, "the mean of 1, 7, 3, 5 is %v", y)
			c.Check(len(refmath.AvgPool[float32](zeroPool, 0, true, nil)) == 0, "values for no sizes")
		},
		"AvgPoolBackward": func(c *C) {
			g := compute.PoolGeom{C: 1, H: 2, W: 2, KH: 2, KW: 2, SH: 2, SW: 2}
			dx := refmath.AvgPoolBackward(g, 1, false, []float32{4})
			c.Check(len(dx) == 4 && dx[3] == 1, "4 spread over 4 is %v", dx)
		},
		"PoolWindow": func(c *C) {
			h0, h1, w0, w1, div := refmath.PoolWindow(compute.PoolGeom{H: 2, W: 2, KH: 3, KW: 3, SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, 0, 0, true)
			c.Check(h0 == 0 && h1 == 2 && w0 == 0 && w1 == 2 && div == 9, "window [%d,%d)×[%d,%d) of %d", h0, h1, w0, w1, div)
			refmath.PoolWindow(zeroPool, -1, huge, false)
		},
		"BNStats": func(c *C) {
			m, v := refmath.BNStats(1, 2, 1, 1, []float64{1, 3})
			c.Check(m[0] == 2 && v[0] == 1, "mean %v variance %v of 1 and 3", m, v)
			m, v = refmath.BNStats[float32](0, 0, 0, 0, nil)
			c.Check(len(m)+len(v) == 0, "values for no sizes")
		},
		"BNBackward": func(c *C) {
			dx, dg, db := refmath.BNBackward[float32](0, 0, 0, true, 1e-5, nil, nil, nil, nil, nil)
			c.Check(len(dx)+len(dg)+len(db) == 0, "values for no sizes")
		},
		"IF": func(c *C) {
			v := []float32{0}
			spikes, counts := refmath.IF(compute.IFArgs{Steps: 3, N: 1, Threshold: 1}, []float32{0.6, 0.6, 0.6}, nil, nil, v)
			c.Check(counts[0] == 1 && spikes[1] == 1, "0.6 a step against 1 fires once, at step 2: %v", spikes)
			s, n := refmath.IF(compute.IFArgs{}, nil, nil, nil, nil)
			c.Check(len(s)+len(n) == 0, "values for no sizes")
		},
		"IFRecord": func(c *C) {
			v := []float32{0}
			spikes, counts, h := refmath.IFRecord(compute.IFArgs{Steps: 2, N: 1, Threshold: 1}, []float32{0.6, 0.6}, nil, nil, v)
			c.Check(counts[0] == 1 && spikes[1] == 1 && h[1] == 1.2, "0.6 a step against 1: potentials %v before the spikes %v", h, spikes)
			s, n, hh := refmath.IFRecord(compute.IFArgs{}, nil, nil, nil, nil)
			c.Check(len(s)+len(n)+len(hh) == 0, "values for no sizes")
		},
		"IFSurrogateGrad": func(c *C) {
			du := refmath.IFSurrogateGrad(compute.IFGradArgs{Steps: 1, N: 1, Threshold: 1, Alpha: 4}, []float32{1}, []float32{1})
			c.Check(len(du) == 1 && du[0] == 1, "at the threshold, α = 4, the gradient passes as 1: %v", du)
			c.Check(len(refmath.IFSurrogateGrad(compute.IFGradArgs{}, nil, nil)) == 0, "values for no sizes")
		},
		"Softmax": func(c *C) {
			y := refmath.Softmax(1, 2, false, []float64{0, 0})
			c.Check(y[0] == 0.5 && y[1] == 0.5, "softmax of 0, 0 is %v", y)
			c.Check(len(refmath.Softmax[float32](0, 0, true, nil)) == 0, "values for no sizes")
			c.Check(math.IsNaN(refmath.Softmax(1, 1, false, []float64{math.NaN()})[0]), "softmax of NaN is not NaN")
		},
		"Clip": func(c *C) {
			y := refmath.Clip(6, []float64{-1, 3, 9, math.NaN()})
			c.Check(y[0] == 0 && y[1] == 3 && y[2] == 6 && y[3] == 0, "clip to [0, 6] of -1, 3, 9, NaN is %v", y)
			c.Check(len(refmath.Clip[float32](6, nil)) == 0, "values for no sizes")
		},
		"ClipBackward": func(c *C) {
			dx := refmath.ClipBackward(6, []float64{0, 3, 6}, []float64{1, 1, 1})
			c.Check(dx[0] == 0 && dx[1] == 1 && dx[2] == 0, "the gradient of clip at 0, 3, 6 is %v", dx)
		},
		"ChannelShuffle": func(c *C) {
			y := refmath.ChannelShuffle(1, 2, 4, 1, []float64{0, 1, 2, 3})
			c.Check(len(y) == 4 && y[1] == 2 && y[2] == 1, "4 channels shuffled in 2 groups are %v", y)
			c.Check(len(refmath.ChannelShuffle[float32](0, 1, 0, 0, nil)) == 0, "values for no sizes")
		},
		"SoftmaxBackward": func(c *C) {
			dx := refmath.SoftmaxBackward(1, 2, true, []float64{math.Log(0.5), math.Log(0.5)}, []float64{1, 0})
			c.Check(math.Abs(dx[0]-0.5) < 1e-12 && math.Abs(dx[1]+0.5) < 1e-12, "log-softmax backward is %v", dx)
		},
	}
	for name, f := range ref {
		entries["compute/refmath."+name] = func(c *C) { c.NoPanic("no sizes; a small case", func() { f(c) }) }
	}
}
