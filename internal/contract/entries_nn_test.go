package contract_test

import (
	"math"
	"slices"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Entries of nn. A layer's methods are held on its zero value (no
// parameters, no geometry) and on a small valid layer: Info, Params,
// Geom, FanOut, MACs and PinnedInput never panic; OutputShape, Validate
// and the exports refuse what does not fit; Forward, Backward and
// Reference trust their arguments (nn.Layer says so: package lower calls
// them only for a layer whose OutputShape accepted the input), so they are
// run through lower on a network of the layer, whose lowering refuses the
// zero layer first.

// fakeONNX is an nn.ONNXGraph that records what is written; in are the
// shapes it gives the layer's inputs.
type fakeONNX struct {
	nodes []string
	in    [][]int
}

func (g *fakeONNX) InputShapes() [][]int { return g.in }

func (g *fakeONNX) Param(p *nn.Param) string                          { return p.Name }
func (g *fakeONNX) Constant(name string, _ []int, _ []float32) string { return name }
func (g *fakeONNX) IntConstant(name string, _ []int64) string         { return name }
func (g *fakeONNX) Node(op, _ string, _, _ []string, _ ...nn.ONNXAttr) {
	g.nodes = append(g.nodes, op)
}

// fakeNIR is an nn.NIRGraph that records the nodes' types.
type fakeNIR struct {
	types  []string
	asConv bool
}

type fakeNIRNode struct{}

func (fakeNIRNode) Floats(string, []int, []float32) {}
func (fakeNIRNode) Ints(string, ...int)             {}
func (fakeNIRNode) Scalar(string, int64)            {}
func (fakeNIRNode) Meta(string, string)             {}

func (g *fakeNIR) Node(_, typ string) nn.NIRNode {
	g.types = append(g.types, typ)
	return fakeNIRNode{}
}
func (g *fakeNIR) Neurons() (float32, float32, map[string]string) {
	return 1, 0, nil
}
func (g *fakeNIR) MaxPoolThreshold() bool { return false }
func (g *fakeNIR) AvgPoolAsConv() bool    { return g.asConv }

// ones is n values of 1.
func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// layerCase is one layer kind: its zero value, a small valid layer, the
// input shapes the valid one takes (two for a join), whether the zero
// value is a valid layer too (kinds without parameters or geometry), and
// whether NIR has a form of it.
type layerCase struct {
	zero    func() nn.Layer
	valid   func() nn.Layer
	in      [][]int
	zeroOK  bool
	nir     bool
	spikesN bool // the NIR form needs spikes in
}

func layerCases() map[string]layerCase {
	conv := func() nn.Layer {
		return &nn.Conv2d{LayerName: "c", Weight: nn.NewParam("c.weight", ones(2*1*3*3), 2, 1, 3, 3), Bias: nn.NewParam("c.bias", ones(2), 2),
			SH: 1, SW: 1, PT: 1, PL: 1, PB: 1, PR: 1, DH: 1, DW: 1}
	}
	bn := func() nn.Layer {
		return &nn.BatchNorm2d{LayerName: "bn", Gamma: nn.NewParam("bn.weight", ones(2), 2), Beta: nn.NewParam("bn.bias", make([]float32, 2), 2),
			RunningMean: make([]float32, 2), RunningVar: ones(2), Eps: 1e-5, Momentum: 0.1}
	}
	linear := func() nn.Layer {
		return &nn.Linear{LayerName: "fc", Weight: nn.NewParam("fc.weight", ones(3*16), 3, 16), Bias: nn.NewParam("fc.bias", ones(3), 3)}
	}
	chw := [][]int{{1, 4, 4}}
	return map[string]layerCase{
		"Conv2d":        {zero: func() nn.Layer { return &nn.Conv2d{} }, valid: conv, in: chw, nir: true},
		"BatchNorm2d":   {zero: func() nn.Layer { return &nn.BatchNorm2d{} }, valid: bn, in: [][]int{{2, 4, 4}}, nir: true},
		"Linear":        {zero: func() nn.Layer { return &nn.Linear{} }, valid: linear, in: [][]int{{16}}, nir: true},
		"ReLU":          {zero: func() nn.Layer { return &nn.ReLU{} }, valid: func() nn.Layer { return &nn.ReLU{LayerName: "r"} }, in: chw, zeroOK: true, nir: true},
		"Pool2d":        {zero: func() nn.Layer { return &nn.Pool2d{} }, valid: func() nn.Layer { return &nn.Pool2d{LayerName: "p", Max: true, KH: 2, KW: 2, SH: 2, SW: 2} }, in: chw, nir: true, spikesN: true},
		"GlobalAvgPool": {zero: func() nn.Layer { return &nn.GlobalAvgPool{} }, valid: func() nn.Layer { return &nn.GlobalAvgPool{LayerName: "g"} }, in: chw, zeroOK: true, nir: true},
		"Flatten":       {zero: func() nn.Layer { return &nn.Flatten{} }, valid: func() nn.Layer { return &nn.Flatten{LayerName: "f"} }, in: chw, zeroOK: true, nir: true},
		"Pad2d":         {zero: func() nn.Layer { return &nn.Pad2d{} }, valid: func() nn.Layer { return &nn.Pad2d{LayerName: "pad", PT: 1, PL: 2} }, in: chw, zeroOK: true},
		"Softmax":       {zero: func() nn.Layer { return &nn.Softmax{} }, valid: func() nn.Layer { return &nn.Softmax{LayerName: "s", Log: true} }, in: [][]int{{5}}, zeroOK: true},
		"Add":           {zero: func() nn.Layer { return &nn.Add{} }, valid: func() nn.Layer { return &nn.Add{LayerName: "a"} }, in: [][]int{{1, 4, 4}, {1, 4, 4}}, zeroOK: true, nir: true},
		"Concat":        {zero: func() nn.Layer { return &nn.Concat{} }, valid: func() nn.Layer { return &nn.Concat{LayerName: "cat"} }, in: [][]int{{1, 4, 4}, {1, 4, 4}}, zeroOK: true},
		"Clip":          {zero: func() nn.Layer { return &nn.Clip{} }, valid: func() nn.Layer { return &nn.Clip{LayerName: "clip", Ceiling: 6} }, in: chw, nir: true},
		"ChannelShuffle": {zero: func() nn.Layer { return &nn.ChannelShuffle{} }, valid: func() nn.Layer { return &nn.ChannelShuffle{LayerName: "sh", Groups: 2} },
			in: [][]int{{4, 2, 2}}, nir: true},
		"ChannelSlice": {zero: func() nn.Layer { return &nn.ChannelSlice{} }, valid: func() nn.Layer { return &nn.ChannelSlice{LayerName: "sl", Start: 1, Stop: 3} },
			in: [][]int{{4, 2, 2}}, nir: true},
		"Affine": {zero: func() nn.Layer { return &nn.Affine{} }, valid: func() nn.Layer {
			return nn.NewAffine("aff", []float32{2, 0.5}, []float32{1, -1})
		}, in: [][]int{{2, 4, 4}}, nir: true},
	}
}

// netOf is a network of the layer alone (a join reads two ReLUs of the
// input), its input the case's.
func netOf(lc layerCase, l nn.Layer) *nn.Network {
	if len(lc.in) == 1 {
		return &nn.Network{Name: "one layer", InputShape: lc.in[0], Layers: []nn.Layer{l}}
	}
	return &nn.Network{Name: "a join", InputShape: lc.in[0], Layers: []nn.Layer{&nn.ReLU{LayerName: "r0"}, &nn.ReLU{LayerName: "r1"}, l},
		Inputs: [][]int{{-1}, {-1}, {0, 1}}}
}

// hostileShapes are inputs no layer takes.
var hostileShapes = [][][]int{nil, {}, {nil}, {{-1, 4, 4}}, {{huge, huge, huge}}, {{0}}, {{1 << 20, 1 << 20, 1 << 20}}}

// lowerAndRun lowers net with a backward pass on a CPU, runs a batch of
// two forward and back, and returns the first error.
func lowerAndRun(net *nn.Network, batchStats bool) error {
	be := compute.NewCPU()
	if err := net.Bind(be); err != nil {
		return err
	}
	e, err := lower.NewExecutor(be, net, lower.Options{Capacity: 2, Backward: true, BatchStats: batchStats})
	if err != nil {
		return err
	}
	defer e.Free()
	x, err := be.Alloc(2 * nn.Numel(net.InputShape))
	if err != nil {
		return err
	}
	be.Upload(x, ones(x.Len()))
	y, err := e.Forward(nn.Value{Shape: append([]int{2}, net.InputShape...), Buf: x})
	if err != nil {
		return err
	}
	if err := e.Backward(y); err != nil {
		return err
	}
	return be.Err()
}

func init() {
	for kind, lc := range layerCases() {
		name := "nn." + kind + "."
		entries[name+"Info"] = func(c *C) {
			c.NoPanic("zero layer", func() { lc.zero().Info() })
			c.NoPanic("valid layer", func() { c.Check(nn.KindOf(lc.valid()) != "", "no kind") })
		}
		entries[name+"Params"] = func(c *C) {
			c.NoPanic("zero and valid layer", func() {
				for _, l := range []nn.Layer{lc.zero(), lc.valid()} {
					c.Check(!slices.Contains(l.Params(), nil), "Params lists nil")
				}
			})
		}
		entries[name+"OutputShape"] = func(c *C) {
			for _, in := range hostileShapes {
				c.Err("hostile shapes, zero layer", func() error { _, err := lc.zero().OutputShape(in); return err })
				c.Err("hostile shapes, valid layer", func() error { _, err := lc.valid().OutputShape(in); return err })
			}
			c.Ok("its input", func() error { _, err := lc.valid().OutputShape(lc.in); return err })
			if !lc.zeroOK {
				c.Err("zero layer, a fitting input", func() error { _, err := lc.zero().OutputShape(lc.in); return err })
			}
		}
		for _, m := range []string{"Forward", "Backward"} {
			entries[name+m] = func(c *C) {
				c.Ok("a network of the layer, lowered and run forward and back in training and eval mode", func() error {
					if err := lowerAndRun(netOf(lc, lc.valid()), true); err != nil {
						return err
					}
					return lowerAndRun(netOf(lc, lc.valid()), false)
				})
				if !lc.zeroOK {
					c.Err("a network of the zero layer: refused before lowering", func() error { return lowerAndRun(netOf(lc, lc.zero()), true) })
				}
			}
		}
		entries[name+"Reference"] = func(c *C) {
			c.NoPanic("two samples of its input (what lower checks first)", func() {
				l := lc.valid()
				out, err := l.OutputShape(lc.in)
				c.Check(err == nil, "OutputShape: %v", err)
				xs := make([][]float64, len(lc.in))
				for k, in := range lc.in {
					xs[k] = make([]float64, 2*nn.Numel(in))
				}
				y := l.Reference(xs, lc.in, 2, true)
				c.Check(len(y) == 2*nn.Numel(out), "%d values for an output of %v", len(y), out)
			})
		}
		entries[name+"ExportONNX"] = func(c *C) {
			onnx := func() nn.ONNXWriter { return lc.valid().(nn.ONNXWriter) }
			c.Err("nil graph", func() error { return onnx().ExportONNX(nil, "x", []string{"a", "b"}, "y") })
			c.Err("no input names", func() error { return onnx().ExportONNX(&fakeONNX{}, "x", nil, "y") })
			if !lc.zeroOK {
				c.Err("zero layer", func() error {
					return lc.zero().(nn.ONNXWriter).ExportONNX(&fakeONNX{}, "x", []string{"a", "b"}, "y")
				})
			}
			c.Ok("a graph, its inputs", func() error {
				g := &fakeONNX{in: lc.in}
				err := onnx().ExportONNX(g, "x", []string{"a", "b"}, "y")
				c.Check(len(g.nodes) > 0, "no node written")
				return err
			})
		}
		entries[name+"ExportNIR"] = func(c *C) {
			nir := func() nn.NIRWriter { return lc.valid().(nn.NIRWriter) }
			if kind == "Add" { // no node: NIR sums the edges
				c.Ok("nil graph, nil input", func() error { return nir().ExportNIR(nil, nil, false) })
				return
			}
			c.Err("nil graph", func() error { return nir().ExportNIR(nil, lc.in[0], true) })
			for _, in := range hostileShapes {
				if len(in) == 1 {
					c.Err("hostile input shapes", func() error { return nir().ExportNIR(&fakeNIR{}, in[0], true) })
				}
			}
			if !lc.zeroOK {
				c.Err("zero layer", func() error { return lc.zero().(nn.NIRWriter).ExportNIR(&fakeNIR{}, lc.in[0], true) })
			}
			if lc.nir {
				c.Ok("its input", func() error { return nir().ExportNIR(&fakeNIR{asConv: true}, lc.in[0], true) })
			} else {
				c.Err("its input (NIR has no such node)", func() error { return nir().ExportNIR(&fakeNIR{}, lc.in[0], true) })
			}
			if lc.spikesN {
				c.Err("analog input", func() error { return nir().ExportNIR(&fakeNIR{}, lc.in[0], false) })
			}
		}
	}

	// methods some kinds have
	valid := func(kind string) nn.Layer { return layerCases()[kind].valid() }
	for _, kind := range []string{"Conv2d", "Linear", "BatchNorm2d", "Pool2d", "Pad2d", "Clip", "ChannelShuffle", "ChannelSlice", "Affine"} {
		entries["nn."+kind+".Validate"] = func(c *C) {
			lc := layerCases()[kind]
			if !lc.zeroOK {
				c.Err("zero layer", func() error { return lc.zero().(nn.Validator).Validate() })
			}
			c.Ok("valid layer", func() error { return lc.valid().(nn.Validator).Validate() })
		}
	}
	hostileConv := &nn.Conv2d{Weight: nn.NewParam("w", nil, 1, 1, 1, 1), SH: 1, SW: 1, DH: 1, DW: 1, PT: huge}
	entries["nn.Conv2d.Validate"] = func(c *C) {
		c.Err("zero layer", func() error { return (&nn.Conv2d{}).Validate() })
		c.Err("padding 2^62", func() error { return hostileConv.Validate() })
		c.Err("stride 2^62", func() error {
			return (&nn.Conv2d{Weight: nn.NewParam("w", nil, 1, 1, 1, 1), SH: huge, SW: 1, DH: 1, DW: 1}).Validate()
		})
		c.Err("groups -1", func() error {
			return (&nn.Conv2d{Weight: nn.NewParam("w", nil, 1, 1, 1, 1), SH: 1, SW: 1, DH: 1, DW: 1, Groups: -1}).Validate()
		})
		c.Ok("valid layer", func() error { return valid("Conv2d").(nn.Validator).Validate() })
	}
	for _, kind := range []string{"Conv2d", "Linear", "BatchNorm2d", "Affine"} {
		entries["nn."+kind+".ScaleInput"] = func(c *C) {
			for _, f := range []float64{0, -1, math.NaN(), math.Inf(1)} {
				c.Err("hostile scales", func() error { return valid(kind).(nn.Scalable).ScaleInput(f) })
			}
			if kind != "BatchNorm2d" {
				c.Ok("2", func() error { return valid(kind).(nn.Scalable).ScaleInput(2) })
				c.Ok("2, zero layer", func() error { return layerCases()[kind].zero().(nn.Scalable).ScaleInput(2) })
			} else {
				c.Err("2 (a BatchNorm takes no input scale)", func() error { return valid(kind).(nn.Scalable).ScaleInput(2) })
			}
		}
		entries["nn."+kind+".ScaleOutput"] = func(c *C) {
			c.NoPanic("zero layer; valid layer by 2", func() {
				layerCases()[kind].zero().(nn.Scalable).ScaleOutput(2)
				valid(kind).(nn.Scalable).ScaleOutput(2)
			})
		}
	}
	for _, kind := range []string{"Conv2d", "Linear"} {
		entries["nn."+kind+".FanOut"] = func(c *C) {
			c.NoPanic("zero layer, hostile shapes", func() {
				for _, in := range hostileShapes {
					if len(in) == 1 {
						c.Check(layerCases()[kind].zero().(nn.Synaptic).FanOut(in[0]) == nil, "a fan-out for a zero layer")
						c.Check(valid(kind).(nn.Synaptic).FanOut(in[0]) == nil, "a fan-out for %v", in[0])
					}
				}
			})
			c.NoPanic("its input", func() {
				lc := layerCases()[kind]
				c.Check(len(lc.valid().(nn.Synaptic).FanOut(lc.in[0])) == nn.Numel(lc.in[0]), "not one fan-out per input")
			})
		}
		entries["nn."+kind+".MACs"] = func(c *C) {
			c.NoPanic("zero layer, hostile shapes", func() {
				c.Check(layerCases()[kind].zero().(nn.Synaptic).MACs([]int{1, 4, 4}) == 0, "MACs of a zero layer")
				c.Check(valid(kind).(nn.Synaptic).MACs([]int{huge, huge, huge}) == 0, "MACs of a hostile shape")
			})
		}
		entries["nn."+kind+".PinnedInput"] = func(c *C) {
			c.NoPanic("zero layer", func() {
				lead, _ := layerCases()[kind].zero().(nn.InputPinned).PinnedInput()
				c.Check(lead == 0, "a zero layer pins %d", lead)
			})
		}
	}
	entries["nn.Conv2d.Geom"] = func(c *C) {
		c.NoPanic("zero layer, nil and short shapes", func() {
			(&nn.Conv2d{}).Geom(nil)
			c.Check((&nn.Conv2d{}).Geom([]int{1}).OutH() == 0, "a zero layer's geometry has an output")
			valid("Conv2d").(*nn.Conv2d).Geom([]int{1, 2})
		})
	}
	entries["nn.Pool2d.Geom"] = func(c *C) {
		c.NoPanic("zero layer, nil and short shapes", func() {
			c.Check((&nn.Pool2d{}).Geom(nil).OutH() == 0, "a zero layer's geometry has an output")
			valid("Pool2d").(*nn.Pool2d).Geom([]int{1})
		})
	}
	entries["nn.ChannelShuffle.ExportONNX"] = func(c *C) {
		l := valid("ChannelShuffle").(nn.ONNXWriter)
		c.Err("nil graph", func() error { return l.ExportONNX(nil, "x", []string{"a"}, "y") })
		c.Err("a graph that gives no input shape", func() error { return l.ExportONNX(&fakeONNX{}, "x", []string{"a"}, "y") })
		c.Err("an input of 3 channels for 2 groups", func() error { return l.ExportONNX(&fakeONNX{in: [][]int{{3, 2, 2}}}, "x", []string{"a"}, "y") })
		c.Err("zero layer", func() error {
			return (&nn.ChannelShuffle{}).ExportONNX(&fakeONNX{in: [][]int{{4, 2, 2}}}, "x", []string{"a"}, "y")
		})
		c.Ok("its input", func() error { return l.ExportONNX(&fakeONNX{in: [][]int{{4, 2, 2}}}, "x", []string{"a"}, "y") })
	}
	entries["nn.Clip.Saturation"] = func(c *C) { c.NoPanic("zero layer", func() { (&nn.Clip{}).Saturation() }) }
	entries["nn.Clip.ScaleSaturation"] = func(c *C) {
		c.NoPanic("zero layer, NaN", func() { (&nn.Clip{}).ScaleSaturation(math.NaN()) })
		c.Err("a ceiling scaled to NaN: Validate refuses it", func() error {
			l := &nn.Clip{Ceiling: 6}
			l.ScaleSaturation(math.NaN())
			return l.Validate()
		})
	}
	entries["nn.NIRSelect"] = func(c *C) {
		c.Err("nil graph", func() error { return nn.NIRSelect(nil, "s", []int{2}, []int{0}, "") })
		c.Err("nil input", func() error { return nn.NIRSelect(&fakeNIR{}, "s", nil, []int{0}, "") })
		c.Err("a source channel the input has not", func() error { return nn.NIRSelect(&fakeNIR{}, "s", []int{2}, []int{0, 5}, "") })
		c.Err("a negative source channel", func() error { return nn.NIRSelect(&fakeNIR{}, "s", []int{2, 1, 1}, []int{-1}, "") })
		c.Err("2^20 channels from 2^20: a weight of 2^40 values", func() error {
			return nn.NIRSelect(&fakeNIR{}, "s", []int{1 << 20}, make([]int, 1<<20), "")
		})
		c.Ok("a [2 1 1] input, its channels swapped", func() error { return nn.NIRSelect(&fakeNIR{}, "s", []int{2, 1, 1}, []int{1, 0}, "") })
	}
	entries["nn.Pad2d.Geom"] = func(c *C) {
		c.NoPanic("zero layer, nil and short shapes", func() { (&nn.Pad2d{}).Geom(nil); valid("Pad2d").(*nn.Pad2d).Geom([]int{1}) })
	}

	// BatchNorm2d's state
	bnZero := func() *nn.BatchNorm2d { return &nn.BatchNorm2d{} }
	bnValid := func() *nn.BatchNorm2d { return valid("BatchNorm2d").(*nn.BatchNorm2d) }
	entries["nn.BatchNorm2d.Affine"] = func(c *C) {
		c.NoPanic("zero layer", func() {
			s, _ := bnZero().Affine()
			c.Check(s == nil, "an affine map of a zero layer")
		})
		c.NoPanic("statistics shorter than γ", func() {
			l := bnValid()
			l.RunningVar = nil
			l.Affine()
		})
		c.NoPanic("valid layer", func() { s, _ := bnValid().Affine(); c.Check(len(s) == 2, "not one scale per channel") })
	}
	entries["nn.BatchNorm2d.AsAffine"] = func(c *C) {
		c.Err("zero layer: an Affine Validate refuses", func() error { return bnZero().AsAffine().Validate() })
		c.Ok("valid layer", func() error { return bnValid().AsAffine().Validate() })
	}
	entries["nn.BatchNorm2d.BindState"] = func(c *C) {
		c.Err("nil backend", func() error { return bnValid().BindState(nil) })
		c.Ok("zero layer, a CPU", func() error { return bnZero().BindState(compute.NewCPU()) })
	}
	for _, m := range []string{"SyncState", "ReleaseState"} {
		entries["nn.BatchNorm2d."+m] = func(c *C) {
			call := func(l *nn.BatchNorm2d) error {
				if m == "SyncState" {
					return l.SyncState()
				}
				return l.ReleaseState()
			}
			c.Ok("zero layer, unbound", func() error { return call(bnZero()) })
			c.Ok("bound to a CPU", func() error {
				l := bnValid()
				if err := l.BindState(compute.NewCPU()); err != nil {
					return err
				}
				return call(l)
			})
		}
	}
	entries["nn.BatchNorm2d.UploadState"] = func(c *C) {
		c.NoPanic("zero layer", func() { bnZero().UploadState() })
	}
	entries["nn.BatchNorm2d.State"] = func(c *C) {
		c.NoPanic("zero layer", func() { c.Check(len(bnZero().State()) == 2, "not two arrays") })
	}
	entries["nn.BatchNorm2d.WithOwnState"] = func(c *C) {
		c.NoPanic("zero layer", func() { bnZero().WithOwnState() })
		c.NoPanic("valid layer: its own statistics", func() {
			l := bnValid()
			o := l.WithOwnState().(*nn.BatchNorm2d)
			o.RunningMean[0] = 7
			c.Check(l.RunningMean[0] == 0, "the copy shares the statistics")
		})
	}

	// Affine's constants
	affZero := func() *nn.Affine { return &nn.Affine{} }
	affValid := func() *nn.Affine { return valid("Affine").(*nn.Affine) }
	entries["nn.NewAffine"] = func(c *C) {
		c.Err("nil constants: a layer Validate refuses", func() error { return nn.NewAffine("a", nil, nil).Validate() })
		c.Err("a scale per channel and one shift", func() error { return nn.NewAffine("a", ones(2), ones(1)).Validate() })
		c.Err("a NaN scale", func() error { return nn.NewAffine("a", []float32{float32(math.NaN())}, ones(1)).Validate() })
		c.Err("an infinite shift", func() error { return nn.NewAffine("a", ones(1), []float32{float32(math.Inf(-1))}).Validate() })
		c.Ok("one value each", func() error { return nn.NewAffine("a", ones(1), ones(1)).Validate() })
	}
	entries["nn.Affine.BindState"] = func(c *C) {
		c.Err("nil backend", func() error { return affValid().BindState(nil) })
		c.Ok("a CPU", func() error { return affValid().BindState(compute.NewCPU()) })
	}
	for _, m := range []string{"SyncState", "ReleaseState"} {
		entries["nn.Affine."+m] = func(c *C) {
			call := func(l *nn.Affine) error {
				if m == "SyncState" {
					return l.SyncState()
				}
				return l.ReleaseState()
			}
			c.Ok("zero layer, unbound", func() error { return call(affZero()) })
			c.Ok("bound to a CPU", func() error {
				l := affValid()
				if err := l.BindState(compute.NewCPU()); err != nil {
					return err
				}
				return call(l)
			})
		}
	}
	entries["nn.Affine.UploadState"] = func(c *C) { c.NoPanic("zero layer", func() { affZero().UploadState() }) }
	entries["nn.Affine.State"] = func(c *C) {
		c.NoPanic("zero layer", func() { c.Check(len(affZero().State()) == 2, "not two arrays") })
	}
	entries["nn.Affine.WithOwnState"] = func(c *C) {
		c.NoPanic("zero layer", func() { affZero().WithOwnState() })
		c.NoPanic("valid layer: the same constants, which conversion scales for both", func() {
			l := affValid()
			l.WithOwnState().(*nn.Affine).ScaleOutput(2)
			c.Check(l.Scale[0] == 4, "the SNN's layer has constants of its own")
		})
	}
	entries["nn.Affine.ScaleOutput"] = func(c *C) {
		c.NoPanic("zero layer; valid layer by 2", func() {
			affZero().ScaleOutput(2)
			l := affValid()
			l.ScaleOutput(2)
			c.Check(l.Scale[0] == 4 && l.Shift[1] == -2, "not scaled: %v %v", l.Scale, l.Shift)
		})
		c.Err("by 2^200: past float32, which Validate refuses", func() error {
			l := affValid()
			l.ScaleOutput(math.Pow(2, 200))
			return l.Validate()
		})
	}

	// Param
	entries["nn.NewParam"] = func(c *C) {
		c.NoPanic("nil data, negative and huge shapes", func() { nn.NewParam("", nil, -1, huge) })
		c.Err("a shape its data is not, refused by Validate", func() error {
			return nn.Validate(&nn.Network{InputShape: []int{4}, Layers: []nn.Layer{&nn.Linear{Weight: nn.NewParam("w", nil, 2, 4)}}})
		})
	}
	entries["nn.Param.Bind"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := (*nn.Param)(nil).Bind(compute.NewCPU()); return err })
		c.Err("nil backend", func() error { _, err := nn.NewParam("w", ones(2), 2).Bind(nil); return err })
		c.Ok("zero parameter, a CPU", func() error { _, err := (&nn.Param{}).Bind(compute.NewCPU()); return err })
	}
	entries["nn.Param.Buffer"] = func(c *C) {
		c.NoPanic("zero parameter, unbound; nil backend", func() {
			c.Check((&nn.Param{}).Buffer(compute.NewCPU()) == nil && (&nn.Param{}).Buffer(nil) == nil, "a buffer where none is bound")
		})
		c.NoPanic("bound to another backend", func() {
			p := nn.NewParam("w", ones(2), 2)
			p.Bind(compute.NewCPU())
			c.Check(p.Buffer(compute.NewCPU()) == nil, "a buffer on a backend it is not bound to")
		})
	}
	entries["nn.Param.GradBuffer"] = func(c *C) {
		c.NoPanic("zero parameter, unbound; nil backend", func() {
			c.Check((&nn.Param{}).GradBuffer(compute.NewCPU()) == nil && (&nn.Param{}).GradBuffer(nil) == nil, "a gradient where none is bound")
		})
	}
	entries["nn.Param.Grad"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := (*nn.Param)(nil).Grad(); return err })
		c.Ok("zero parameter", func() error { g, err := (&nn.Param{}).Grad(); c.Check(g == nil, "a gradient unbound"); return err })
	}
	entries["nn.Param.Sync"] = func(c *C) {
		c.Err("nil receiver", func() error { return (*nn.Param)(nil).Sync() })
		c.Ok("zero parameter", func() error { return (&nn.Param{}).Sync() })
	}
	entries["nn.Param.Release"] = func(c *C) {
		c.Err("nil receiver", func() error { return (*nn.Param)(nil).Release() })
		c.Ok("zero parameter", func() error { return (&nn.Param{}).Release() })
	}
	entries["nn.Param.Upload"] = func(c *C) { c.NoPanic("zero parameter", func() { (&nn.Param{}).Upload() }) }
	entries["nn.Param.ZeroGrad"] = func(c *C) { c.NoPanic("zero parameter", func() { (&nn.Param{}).ZeroGrad() }) }

	// tensors, values, shapes
	entries["nn.NewTensor"] = func(c *C) {
		c.Err("-1, 5", func() error { _, err := nn.NewTensor(-1, 5); return err })
		c.Err("2^62, 2^62", func() error { _, err := nn.NewTensor(huge, huge); return err })
		c.Err("2^57", func() error { _, err := nn.NewTensor(1 << 57); return err })
		c.Ok("no shape: one value", func() error {
			x, err := nn.NewTensor()
			c.Check(err != nil || len(x.Data) == 1, "a tensor of no shape holds %d values", len(x.Data))
			return err
		})
	}
	entries["nn.Numel"] = func(c *C) {
		c.NoPanic("nil, negative, overflowing", func() {
			c.Check(nn.Numel(nil) == 1, "Numel(nil) is not 1")
			c.Check(nn.Numel([]int{-1, 2}) < 0 && nn.Numel([]int{huge, huge}) < 0 && nn.Numel([]int{1 << 32, 1 << 32}) < 0, "an overflow or a negative size counted")
		})
	}
	entries["nn.ShapeString"] = func(c *C) { c.NoPanic("nil, negative", func() { nn.ShapeString(nil); nn.ShapeString([]int{-1}) }) }
	entries["nn.Full"] = func(c *C) {
		c.NoPanic("hostile shapes", func() {
			c.Check(nn.Full([]int{-1}, 1) == nil && nn.Full([]int{huge, huge}, 1) == nil, "values for a hostile shape")
		})
	}
	entries["nn.Value.N"] = func(c *C) {
		c.NoPanic("zero value", func() { c.Check(nn.Value{}.N() == 0, "a batch in a zero value") })
	}
	entries["nn.Value.PerSample"] = func(c *C) {
		c.NoPanic("zero value, hostile shape", func() { nn.Value{}.PerSample(); nn.Value{Shape: []int{1, huge, huge}}.PerSample() })
	}
	entries["nn.CheckFinite"] = func(c *C) {
		c.Err("NaN", func() error { return nn.CheckFinite("x", []float32{float32(math.NaN())}) })
		c.Ok("nil", func() error { return nn.CheckFinite("", nil) })
	}
	entries["nn.Chunk"] = func(c *C) {
		c.NoPanic("hostile sizes", func() {
			for _, a := range [][2]int{{-1, -1}, {0, 0}, {huge, -5}, {5, huge}} {
				c.Check(nn.Chunk(a[0], a[1]) >= 1, "Chunk(%d, %d) < 1", a[0], a[1])
			}
		})
	}
	entries["nn.Chunks"] = func(c *C) {
		x, _ := nn.NewTensor(3, 2)
		run := func(int, nn.Value) error { return nil }
		c.Err("nil everything", func() error { return nn.Chunks(nil, nil, 0, nil) })
		c.Err("nil tensor", func() error { return nn.Chunks(compute.NewCPU(), nil, 1, run) })
		c.Err("capacity 0", func() error { return nn.Chunks(compute.NewCPU(), x, 0, run) })
		c.Err("nil function", func() error { return nn.Chunks(compute.NewCPU(), x, 1, nil) })
		c.Err("data shorter than the shape", func() error { return nn.Chunks(compute.NewCPU(), &nn.Tensor{Shape: []int{4, 4}}, 2, run) })
		c.Err("a shape of 2^62 samples", func() error { return nn.Chunks(compute.NewCPU(), &nn.Tensor{Shape: []int{huge, 4}}, huge, run) })
		c.Ok("3 samples by 2", func() error {
			var n int
			err := nn.Chunks(compute.NewCPU(), x, 2, func(lo int, v nn.Value) error { n += v.N(); return nil })
			c.Check(n == 3, "%d samples staged", n)
			return err
		})
	}

	// kinds and layers as values
	entries["nn.KindOf"] = func(c *C) { c.NoPanic("nil", func() { c.Check(nn.KindOf(nil) == "", "a nil layer's kind") }) }
	entries["nn.NameOf"] = func(c *C) { c.NoPanic("nil", func() { nn.NameOf(nil) }) }
	entries["nn.RoleOf"] = func(c *C) { c.NoPanic("nil", func() { nn.RoleOf(nil) }) }
	entries["nn.Kinds"] = func(c *C) { c.NoPanic("", func() { c.Check(len(nn.Kinds()) > 0, "no kinds") }) }
	entries["nn.KindNamed"] = func(c *C) {
		c.NoPanic(`"", "Conv2d"`, func() { _, ok := nn.KindNamed(""); _, ok2 := nn.KindNamed("Conv2d"); c.Check(!ok && ok2, "lookup") })
	}
	entries["nn.KindForONNX"] = func(c *C) { c.NoPanic(`""`, func() { nn.KindForONNX("") }) }
	entries["nn.KindForTorch"] = func(c *C) { c.NoPanic(`""`, func() { nn.KindForTorch("") }) }
	entries["nn.ONNXOps"] = func(c *C) { c.NoPanic("", func() { nn.ONNXOps() }) }
	entries["nn.TorchModules"] = func(c *C) { c.NoPanic("", func() { nn.TorchModules() }) }
	entries["nn.FanOut"] = func(c *C) {
		c.NoPanic("nil layer, zero layer, hostile shape", func() {
			_, ok1 := nn.FanOut(nil, nil)
			_, ok2 := nn.FanOut(&nn.Conv2d{}, []int{1, 4, 4})
			_, ok3 := nn.FanOut(valid("Conv2d"), []int{-1})
			c.Check(!ok1 && !ok2 && !ok3, "a fan-out of what has none")
		})
	}
	entries["nn.MACs"] = func(c *C) {
		c.NoPanic("nil layer, zero layer", func() { nn.MACs(nil, nil); nn.MACs(&nn.Linear{}, []int{4}) })
	}
	entries["nn.StatefulLayers"] = func(c *C) { c.NoPanic("nil layers", func() { nn.StatefulLayers([]nn.Layer{nil}) }) }
	entries["nn.FitsInput"] = func(c *C) {
		c.NoPanic("nil, empty, negative and huge shapes", func() {
			c.Check(!nn.FitsInput(nil, nil), "nil fits nil")
			c.Check(!nn.FitsInput([]int{4}, []int{2}), "a batch without a sample axis fits")
			c.Check(!nn.FitsInput([]int{4}, []int{2, -2, -2}), "[-2 -2] fits [4]")
			c.Check(!nn.FitsInput([]int{4}, []int{2, huge, huge}), "[2^62 2^62] fits [4]")
			c.Check(!nn.FitsInput([]int{1, 2, 2}, []int{2, 4}), "[4] fits [1 2 2]")
		})
		c.NoPanic("a flat input takes any sample of as many values", func() {
			c.Check(nn.FitsInput([]int{4}, []int{2, 1, 2, 2}), "[1 2 2] does not fit [4]")
		})
	}
	entries["nn.BiasVector"] = func(c *C) {
		c.Err("nil", func() error { _, err := nn.BiasVector(nil, 3); return err })
		c.Err("zero constant, -1", func() error { _, err := nn.BiasVector(&nn.ONNXConst{}, -1); return err })
		c.Err("one value, -1 outputs", func() error { _, err := nn.BiasVector(&nn.ONNXConst{F: []float32{1}}, -1); return err })
		c.Ok("one value, 3 outputs", func() error { _, err := nn.BiasVector(&nn.ONNXConst{F: []float32{1}}, 3); return err })
		c.Ok("[1 3], 3 outputs", func() error { _, err := nn.BiasVector(&nn.ONNXConst{Shape: []int{1, 3}, F: ones(3)}, 3); return err })
		c.Err("[3 1], 3 outputs: it broadcasts along the batch", func() error {
			_, err := nn.BiasVector(&nn.ONNXConst{Shape: []int{3, 1}, F: ones(3)}, 3)
			return err
		})
	}
	for _, m := range []string{"Floats", "Ints", "IsInt", "Numel"} {
		entries["nn.ONNXConst."+m] = func(c *C) {
			c.NoPanic("zero constant", func() {
				k := &nn.ONNXConst{}
				switch m {
				case "Floats":
					k.Floats()
				case "Ints":
					k.Ints()
				case "IsInt":
					k.IsInt()
				case "Numel":
					c.Check(k.Numel() == 0, "values in a zero constant")
				}
			})
		}
	}
	entries["nn.NIRAvgPoolConv"] = func(c *C) {
		c.Err("nil graph", func() error { return nn.NIRAvgPoolConv(nil, "p", []int{1, 4, 4}, 2, 2, 2, 2, 0, 0) })
		c.Err("nil input", func() error { return nn.NIRAvgPoolConv(&fakeNIR{}, "p", nil, 2, 2, 2, 2, 0, 0) })
		c.Err("window 0, stride -1", func() error { return nn.NIRAvgPoolConv(&fakeNIR{}, "p", []int{1, 4, 4}, 0, 2, -1, 2, 0, 0) })
		c.Err("2^14 channels: a weight of 2^28·4 values", func() error {
			return nn.NIRAvgPoolConv(&fakeNIR{}, "p", []int{1 << 14, 4, 4}, 2, 2, 2, 2, 0, 0)
		})
		c.Ok("a 1×4×4 input", func() error { return nn.NIRAvgPoolConv(&fakeNIR{}, "p", []int{1, 4, 4}, 2, 2, 2, 2, 0, 0) })
	}

	// graphs
	entries["nn.NodeInputs"] = func(c *C) {
		c.NoPanic("out of range", func() {
			c.Check(nn.NodeInputs([][]int{{-1}}, 5) == nil && nn.NodeInputs([][]int{{-1}}, -1) == nil, "inputs of a node not there")
		})
	}
	entries["nn.IsChain"] = func(c *C) { c.NoPanic("nil, empty lists", func() { nn.IsChain(nil); nn.IsChain([][]int{{}, nil}) }) }
	entries["nn.Readers"] = func(c *C) {
		c.NoPanic("hostile counts and inputs", func() { nn.Readers(nil, -1); nn.Readers([][]int{{5, -7}}, 3); nn.Readers(nil, 0) })
	}
	entries["nn.GraphShapes"] = func(c *C) {
		c.Err("a nil layer", func() error { _, err := nn.GraphShapes([]nn.Layer{nil}, nil, []int{1}); return err })
		c.Err("inputs from later nodes", func() error {
			_, err := nn.GraphShapes([]nn.Layer{&nn.ReLU{}, &nn.ReLU{}}, [][]int{{1}, {0}}, []int{1})
			return err
		})
		c.Err("a hostile input shape", func() error { _, err := nn.GraphShapes([]nn.Layer{&nn.ReLU{}}, nil, []int{-1}); return err })
		c.Ok("nothing", func() error { _, err := nn.GraphShapes(nil, nil, nil); return err })
	}
	entries["nn.NodeShapes"] = func(c *C) {
		c.Err("a nil layer", func() error {
			_, err := nn.NodeShapes([]nn.Layer{&nn.ReLU{}, nil}, [][]int{{-1}, {0}}, []int{1})
			return err
		})
		c.Err("fewer input lists than layers", func() error { _, err := nn.NodeShapes([]nn.Layer{&nn.ReLU{}}, [][]int{}, []int{1}); return err })
	}
	entries["nn.Validate"] = func(c *C) {
		c.Err("nil", func() error { return nn.Validate(nil) })
		c.Err("zero network", func() error { return nn.Validate(&nn.Network{}) })
		c.Err("a nil layer", func() error { return nn.Validate(&nn.Network{InputShape: []int{1}, Layers: []nn.Layer{nil}}) })
		c.Err("input 2^62", func() error { return nn.Validate(&nn.Network{InputShape: []int{huge}, Layers: []nn.Layer{&nn.ReLU{}}}) })
		c.Ok("the tiny network", func() error { net, _ := tinyNet(c.t); return nn.Validate(net) })
	}
	entries["nn.ValidateLayers"] = func(c *C) {
		c.Err("nil", func() error { return nn.ValidateLayers(nil) })
		c.Err("zero layers", func() error { return nn.ValidateLayers([]nn.Layer{&nn.Conv2d{}, &nn.Linear{}}) })
	}
	entries["nn.NewSite"] = func(c *C) {
		c.NoPanic("a builder, nil workspaces", func() { nn.NewSite(program.NewBuilder(program.Dims{N: 1, Steps: 1}), -1, "", nil) })
	}
	site := func() *nn.Site {
		b := program.NewBuilder(program.Dims{N: 1, Steps: 1})
		return nn.NewSite(b, 0, "s", map[string]program.Ref{})
	}
	entries["nn.Site.Emit"] = func(c *C) {
		c.Err("nil op and an op outside a pass: the program's Plan refuses it", func() error {
			s := site()
			s.Emit(nil)
			s.Emit(&program.Copy{})
			_, err := s.B.Program().Plan()
			return err
		})
	}
	entries["nn.Site.Param"] = func(c *C) {
		c.NoPanic("nil, zero parameter", func() {
			s := site()
			c.Check(s.Param(nil) == program.None, "a slot for nil")
			s.Param(&nn.Param{})
		})
	}
	entries["nn.Site.Grad"] = func(c *C) {
		c.NoPanic("nil, zero parameter", func() {
			s := site()
			c.Check(s.Grad(nil) == program.None, "a slot for nil")
			s.Grad(&nn.Param{})
		})
	}
	entries["nn.Site.Temp"] = func(c *C) {
		c.NoPanic("hostile shape; nil workspaces", func() {
			site().Temp("t", []int{-1, huge}, program.Rate(99))
			nn.NewSite(program.NewBuilder(program.Dims{}), 0, "", nil).Temp("t", nil, program.Batch)
		})
	}

	// networks
	entries["nn.ArchOf"] = func(c *C) {
		c.NoPanic("nil, zero network, a nil layer", func() {
			nn.ArchOf(nil)
			nn.ArchOf(&nn.Network{})
			nn.ArchOf(&nn.Network{Layers: []nn.Layer{nil}, Inputs: [][]int{}})
		})
	}
	entries["nn.Arch.Build"] = func(c *C) {
		c.Err("zero arch", func() error { _, err := nn.Arch{}.Build("", nil); return err })
		c.Err("input 2^62", func() error { _, err := nn.Arch{InputShape: []int{huge}}.Build("", nil); return err })
		c.Err("a nil layer's arch", func() error {
			_, err := nn.ArchOf(&nn.Network{InputShape: []int{1}, Layers: []nn.Layer{nil}}).Build("", nil)
			return err
		})
		c.Err("a missing parameter", func() error {
			_, err := nn.Arch{InputShape: []int{4}, Layers: []nn.LayerSpec{{Kind: "Linear", Params: []string{"w"}}}}.Build("", nil)
			return err
		})
		c.Ok("the tiny network's", func() error {
			net, _ := tinyNet(c.t)
			ps := map[string]*nn.Param{}
			for _, p := range net.Params() {
				ps[p.Name] = p
			}
			_, err := nn.ArchOf(net).Build("tiny", ps)
			return err
		})
	}
	entries["nn.Architectures"] = func(c *C) {
		c.NoPanic("each built with zero options and sized from nothing", func() {
			for _, a := range nn.Architectures() {
				a.Sized(nil)
				a.Build(nn.ArchOptions{Width: -1, Blocks: -1})
			}
		})
	}
	entries["nn.ArchitectureNamed"] = func(c *C) { c.Err(`""`, func() error { _, err := nn.ArchitectureNamed(""); return err }) }
	entries["nn.ArchitectureNames"] = func(c *C) { c.NoPanic("", func() { nn.ArchitectureNames() }) }
	entries["nn.Reference"] = func(c *C) {
		for _, w := range []int{-1, 0, huge, 1 << 17} {
			c.Err("hostile widths", func() error { _, err := nn.Reference(w, 0); return err })
		}
		c.Ok("width 4", func() error { _, err := nn.Reference(4, 0); return err })
	}
	entries["nn.Tiny"] = func(c *C) { c.Ok("seed 2^64−1", func() error { _, err := nn.Tiny(math.MaxUint64); return err }) }
	entries["nn.ResNet"] = func(c *C) {
		c.Err("nil input", func() error { _, err := nn.ResNet(nil, 4, 1, 10, 0); return err })
		c.Err("input [2^62 8 8]", func() error { _, err := nn.ResNet([]int{huge, 8, 8}, 4, 1, 10, 0); return err })
		c.Err("input [1 2^40 2^40]", func() error { _, err := nn.ResNet([]int{1, 1 << 40, 1 << 40}, 4, 1, 10, 0); return err })
		c.Err("2^62 classes", func() error { _, err := nn.ResNet([]int{1, 8, 8}, 4, 1, huge, 0); return err })
		c.Err("width -1", func() error { _, err := nn.ResNet([]int{1, 8, 8}, -1, 1, 10, 0); return err })
		c.Ok("width 2 on 1×8×8", func() error { _, err := nn.ResNet([]int{1, 8, 8}, 2, 1, 10, 0); return err })
	}

	zeroNet := func() *nn.Network { return &nn.Network{} }
	nilNet := (*nn.Network)(nil)
	entries["nn.Network.Shapes"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilNet.Shapes(); return err })
		c.Err("a nil layer", func() error {
			_, err := (&nn.Network{InputShape: []int{1}, Layers: []nn.Layer{nil}}).Shapes()
			return err
		})
	}
	entries["nn.Network.OutputShape"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilNet.OutputShape(); return err })
		c.Ok("zero network", func() error { _, err := zeroNet().OutputShape(); return err })
	}
	entries["nn.Network.CheckInput"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilNet.CheckInput([]int{1}) })
		c.Err("zero network, nil", func() error { return zeroNet().CheckInput(nil) })
	}
	entries["nn.Network.Bind"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilNet.Bind(compute.NewCPU()) })
		c.Err("nil backend", func() error { return zeroNet().Bind(nil) })
		c.Ok("zero network, a CPU", func() error { return zeroNet().Bind(compute.NewCPU()) })
		c.Ok("a network with a zero layer and a nil layer, a CPU", func() error {
			return (&nn.Network{Layers: []nn.Layer{&nn.Linear{}, nil}}).Bind(compute.NewCPU())
		})
	}
	entries["nn.Network.Sync"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilNet.Sync() })
		c.Ok("zero network", func() error { return zeroNet().Sync() })
	}
	entries["nn.Network.Release"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilNet.Release() })
		c.Ok("zero network", func() error { return zeroNet().Release() })
	}
	withNil := func() *nn.Network {
		return &nn.Network{Layers: []nn.Layer{nil, &nn.Linear{}, &nn.BatchNorm2d{}}, Inputs: [][]int{{9}}}
	}
	for _, m := range []string{"Body", "InputsOf", "IsChain", "ParamCount", "Params", "Upload", "ZeroGrad"} {
		entries["nn.Network."+m] = func(c *C) {
			for _, n := range []*nn.Network{zeroNet(), withNil()} {
				c.NoPanic("zero network; nil, zero layers and inputs out of range", func() {
					switch m {
					case "Body":
						n.Body()
					case "InputsOf":
						n.InputsOf(-1)
						n.InputsOf(huge)
					case "IsChain":
						n.IsChain()
					case "ParamCount":
						n.ParamCount()
					case "Params":
						c.Check(!slices.Contains(n.Params(), nil), "Params lists nil")
					case "Upload":
						n.Upload()
					case "ZeroGrad":
						n.ZeroGrad()
					}
				})
			}
		}
	}
}
