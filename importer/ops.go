package importer

import (
	"fmt"
	"slices"

	"gorgonia.org/tensor"

	"github.com/proxykit/proxykit/nn"
)

// apply converts one ONNX node.
func (c *converter) apply(n outlineNode, attrs map[string]any) error {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return fmt.Errorf("operator domain %q is not supported", n.Domain)
	}
	switch n.OpType {
	case "Constant":
		return c.opConstant(n, attrs)
	case "Identity", "Dropout":
		v, err := c.input(n, 0)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("has no input")
		}
		c.passThrough(n, v)
		return nil
	case "Conv":
		return c.opConv(n, attrs)
	case "BatchNormalization":
		return c.opBatchNorm(n, attrs)
	case "Relu":
		return c.layerOp(n, func(act *value) (nn.Layer, error) {
			return &nn.ReLU{LayerName: c.layerName(n, "relu")}, nil
		})
	case "MaxPool", "AveragePool":
		return c.opPool(n, attrs)
	case "GlobalAveragePool":
		return c.layerOp(n, func(act *value) (nn.Layer, error) {
			return &nn.GlobalAvgPool{LayerName: c.layerName(n, "gap")}, nil
		})
	case "Gemm":
		return c.opGemm(n, attrs)
	case "MatMul":
		return c.opMatMul(n)
	case "Add", "Sub", "Mul", "Div":
		return c.opArith(n)
	case "Flatten":
		return c.opFlatten(n, attrs)
	case "Reshape":
		return c.opReshape(n, attrs)
	case "Pad":
		return c.opPad(n, attrs)
	case "Softmax", "LogSoftmax":
		return c.opSoftmax(n, attrs)
	case "Transpose":
		return c.constOp(n, func(in []*constant) (*constant, error) {
			perm, _, err := attrInts(attrs, "perm")
			if err != nil {
				return nil, err
			}
			return in[0].transpose(perm)
		})
	case "Shape":
		return c.opShape(n, attrs)
	case "Gather":
		return c.constOp(n, func(in []*constant) (*constant, error) {
			axis, err := attrInt(attrs, "axis", 0)
			if err != nil {
				return nil, err
			}
			if len(in) < 2 || in[1] == nil {
				return nil, fmt.Errorf("needs indices")
			}
			return in[0].gather(in[1], axis)
		})
	case "Unsqueeze", "Squeeze":
		return c.constOp(n, func(in []*constant) (*constant, error) {
			axes, ok, err := attrInts(attrs, "axes")
			if err != nil {
				return nil, err
			}
			if !ok && len(in) > 1 && in[1] != nil {
				axes = in[1].ints()
			}
			if n.OpType == "Squeeze" {
				return in[0].squeeze(axes)
			}
			if axes == nil {
				return nil, fmt.Errorf("needs axes")
			}
			return in[0].unsqueeze(axes)
		})
	case "Concat":
		if acts, err := c.activations(n); err != nil {
			return err
		} else if len(acts) > 0 {
			return c.opConcat(n, attrs, acts)
		}
		return c.constOp(n, func(in []*constant) (*constant, error) {
			axis, err := attrInt(attrs, "axis", 0)
			if err != nil {
				return nil, err
			}
			var parts []*constant
			for _, p := range in {
				if p != nil {
					parts = append(parts, p)
				}
			}
			return concat(parts, axis)
		})
	case "Slice":
		return c.constOp(n, func(in []*constant) (*constant, error) {
			var starts, ends, axes, steps []int64
			if c.opset < 10 {
				var err error
				if starts, _, err = attrInts(attrs, "starts"); err != nil {
					return nil, err
				}
				if ends, _, err = attrInts(attrs, "ends"); err != nil {
					return nil, err
				}
				if axes, _, err = attrInts(attrs, "axes"); err != nil {
					return nil, err
				}
			} else {
				get := func(i int) []int64 {
					if i < len(in) && in[i] != nil {
						return in[i].ints()
					}
					return nil
				}
				starts, ends, axes, steps = get(1), get(2), get(3), get(4)
			}
			return in[0].slice(starts, ends, axes, steps)
		})
	case "Cast":
		return c.constOp(n, func(in []*constant) (*constant, error) {
			to, err := attrInt(attrs, "to", 1)
			if err != nil {
				return nil, err
			}
			return in[0].cast(to)
		})
	case "ConstantOfShape":
		return c.constOp(n, func(in []*constant) (*constant, error) {
			shape := make([]int, 0)
			for _, d := range in[0].ints() {
				if d < 0 || d > int64(c.constLimit) {
					return nil, fmt.Errorf("dimension %d out of range", d)
				}
				shape = append(shape, int(d))
			}
			if err := checkSize(shape, c.constLimit); err != nil {
				return nil, err
			}
			fill := &constant{F: []float32{0}}
			if v, ok := attrs["value"]; ok {
				k, err := constantAttr(v)
				if err != nil {
					return nil, err
				}
				fill = k
			}
			out := &constant{Shape: shape}
			if fill.isInt() {
				out.I = make([]int64, numel(shape))
				for i := range out.I {
					out.I[i] = fill.I[0]
				}
			} else {
				out.F = make([]float32, numel(shape))
				for i := range out.F {
					out.F[i] = fill.F[0]
				}
			}
			return out, nil
		})
	}
	return fmt.Errorf("operator %s is not supported (proxykit imports Conv, BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, Gemm, MatMul, Add, Flatten, Reshape, Pad, Dropout, Identity, Softmax and LogSoftmax, and folds constant shape arithmetic)", n.OpType)
}

// layerOp converts a node that becomes one layer on the activation.
func (c *converter) layerOp(n outlineNode, build func(act *value) (nn.Layer, error)) error {
	act, err := c.activation(n)
	if err != nil {
		return err
	}
	if act == nil {
		return fmt.Errorf("computes on constants only, which proxykit does not evaluate for %s", n.OpType)
	}
	l, err := build(act)
	if err != nil {
		return err
	}
	return c.addLayer(n, act, l)
}

// constOp folds a node whose inputs are all constants.
func (c *converter) constOp(n outlineNode, eval func(in []*constant) (*constant, error)) error {
	in := make([]*constant, len(n.Inputs))
	for i := range n.Inputs {
		v, err := c.input(n, i)
		if err != nil {
			return err
		}
		if v == nil {
			continue
		}
		if v.c == nil {
			return fmt.Errorf("is applied to the network's activation %q; proxykit supports %s only on constants", n.Inputs[i], n.OpType)
		}
		in[i] = v.c
	}
	if len(in) == 0 || in[0] == nil {
		return fmt.Errorf("has no input")
	}
	out, err := eval(in)
	if err != nil {
		return err
	}
	c.setOutputs(n, &value{c: out})
	return nil
}

func constantAttr(v any) (*constant, error) {
	switch t := v.(type) {
	case float32:
		return &constant{F: []float32{t}}, nil
	case int64:
		return &constant{I: []int64{t}}, nil
	case []float32:
		return &constant{Shape: []int{len(t)}, F: append([]float32(nil), t...)}, nil
	case []int64:
		return &constant{Shape: []int{len(t)}, I: append([]int64(nil), t...)}, nil
	case tensor.Tensor:
		return fromGorgonia(t)
	}
	return nil, fmt.Errorf("unsupported constant attribute of type %T", v)
}

func (c *converter) opConstant(n outlineNode, attrs map[string]any) error {
	for _, name := range []string{"value", "value_float", "value_floats", "value_int", "value_ints"} {
		v, ok := attrs[name]
		if !ok {
			continue
		}
		k, err := constantAttr(v)
		if err != nil {
			return fmt.Errorf("attribute %s: %w", name, err)
		}
		c.setOutputs(n, &value{c: k})
		return nil
	}
	return fmt.Errorf("has no value attribute proxykit reads (value, value_float(s), value_int(s))")
}

// window reads the kernel-window attributes shared by Conv and the pools:
// strides, pads [top, left, bottom, right] (auto_pad resolved) and dilations.
func window(attrs map[string]any, in []int, kh, kw int) (sh, sw, pt, pl, pb, pr, dh, dw int, err error) {
	sh, sw, dh, dw = 1, 1, 1, 1
	if s, ok, e := attrInts(attrs, "strides"); e != nil {
		err = e
		return
	} else if ok {
		if len(s) != 2 || s[0] < 1 || s[1] < 1 {
			err = fmt.Errorf("strides %v: proxykit needs two positive 2-D strides", s)
			return
		}
		sh, sw = int(s[0]), int(s[1])
	}
	if d, ok, e := attrInts(attrs, "dilations"); e != nil {
		err = e
		return
	} else if ok {
		if len(d) != 2 || d[0] < 1 || d[1] < 1 {
			err = fmt.Errorf("dilations %v: proxykit needs two positive 2-D dilations", d)
			return
		}
		dh, dw = int(d[0]), int(d[1])
	}
	autoPad, e := attrString(attrs, "auto_pad", "NOTSET")
	if e != nil {
		err = e
		return
	}
	switch autoPad {
	case "NOTSET", "":
		if p, ok, e := attrInts(attrs, "pads"); e != nil {
			err = e
			return
		} else if ok {
			if len(p) != 4 {
				err = fmt.Errorf("pads %v: proxykit needs 4 values for a 2-D window", p)
				return
			}
			for _, v := range p {
				if v < 0 {
					err = fmt.Errorf("negative pads %v are not supported", p)
					return
				}
			}
			pt, pl, pb, pr = int(p[0]), int(p[1]), int(p[2]), int(p[3])
		}
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		same := func(size, k, s, d int) (int, int) {
			out := (size + s - 1) / s
			total := max((out-1)*s+(k-1)*d+1-size, 0)
			if autoPad == "SAME_UPPER" {
				return total / 2, total - total/2
			}
			return total - total/2, total / 2
		}
		pt, pb = same(in[1], kh, sh, dh)
		pl, pr = same(in[2], kw, sw, dw)
	default:
		err = fmt.Errorf("auto_pad %q is not supported", autoPad)
	}
	return
}

func (c *converter) opConv(n outlineNode, attrs map[string]any) error {
	return c.layerOp(n, func(act *value) (nn.Layer, error) {
		w, err := c.constInput(n, 1, "the weight")
		if err != nil {
			return nil, err
		}
		if w == nil || w.isInt() || len(w.Shape) != 4 {
			return nil, fmt.Errorf("needs a 4-D float weight (only 2-D convolutions are supported)")
		}
		if len(act.shape) != 3 {
			return nil, fmt.Errorf("input has per-sample shape %s; Conv needs [C H W]", nn.ShapeString(act.shape))
		}
		group, err := attrInt(attrs, "group", 1)
		if err != nil {
			return nil, err
		}
		if group < 1 || act.shape[0] != w.Shape[1]*int(group) || w.Shape[0]%int(group) != 0 {
			return nil, fmt.Errorf("group=%d does not fit %d input channels and a weight of shape %v (want [O, C/group, kH, kW] with group dividing O)",
				group, act.shape[0], w.Shape)
		}
		if ks, ok, _ := attrInts(attrs, "kernel_shape"); ok && (len(ks) != 2 || int(ks[0]) != w.Shape[2] || int(ks[1]) != w.Shape[3]) {
			return nil, fmt.Errorf("kernel_shape %v disagrees with the weight's shape %v", ks, w.Shape)
		}
		sh, sw, pt, pl, pb, pr, dh, dw, err := window(attrs, act.shape, w.Shape[2], w.Shape[3])
		if err != nil {
			return nil, err
		}
		name := c.layerName(n, "conv")
		l := &nn.Conv2d{LayerName: name, Weight: nn.NewParam(name+".weight", w.F, w.Shape...),
			SH: sh, SW: sw, PT: pt, PL: pl, PB: pb, PR: pr, DH: dh, DW: dw, Groups: int(group)}
		b, err := c.constInput(n, 2, "the bias")
		if err != nil {
			return nil, err
		}
		if b != nil {
			if b.isInt() || b.numel() != w.Shape[0] {
				return nil, fmt.Errorf("bias has %d values for %d output channels", b.numel(), w.Shape[0])
			}
			l.Bias = nn.NewParam(name+".bias", b.F, w.Shape[0])
		}
		return l, nil
	})
}

func (c *converter) opBatchNorm(n outlineNode, attrs map[string]any) error {
	// opsets 7 and 8: spatial=0 normalises each position on its own
	if spatial, err := attrInt(attrs, "spatial", 1); err != nil || spatial != 1 {
		return fmt.Errorf("spatial=%d BatchNormalization (statistics per position) is not supported", spatial)
	}
	return c.layerOp(n, func(act *value) (nn.Layer, error) {
		ch := act.shape[0]
		get := func(i int, what string) ([]float32, error) {
			k, err := c.constInput(n, i, what)
			if err != nil {
				return nil, err
			}
			if k == nil || k.numel() != ch {
				return nil, fmt.Errorf("%s must have %d values (one per channel)", what, ch)
			}
			return k.floats(), nil
		}
		gamma, err := get(1, "scale")
		if err != nil {
			return nil, err
		}
		beta, err := get(2, "bias")
		if err != nil {
			return nil, err
		}
		mean, err := get(3, "mean")
		if err != nil {
			return nil, err
		}
		variance, err := get(4, "var")
		if err != nil {
			return nil, err
		}
		eps, err := attrFloat(attrs, "epsilon", 1e-5)
		if err != nil {
			return nil, err
		}
		mom, err := attrFloat(attrs, "momentum", 0.9)
		if err != nil {
			return nil, err
		}
		name := c.layerName(n, "bn")
		return &nn.BatchNorm2d{LayerName: name,
			Gamma: nn.NewParam(name+".weight", gamma, ch), Beta: nn.NewParam(name+".bias", beta, ch),
			RunningMean: append([]float32(nil), mean...), RunningVar: append([]float32(nil), variance...),
			Eps: eps, Momentum: 1 - mom}, nil
	})
}

func (c *converter) opPool(n outlineNode, attrs map[string]any) error {
	return c.layerOp(n, func(act *value) (nn.Layer, error) {
		if len(act.shape) != 3 {
			return nil, fmt.Errorf("input has per-sample shape %s; pooling needs [C H W]", nn.ShapeString(act.shape))
		}
		ks, ok, err := attrInts(attrs, "kernel_shape")
		if err != nil {
			return nil, err
		}
		if !ok || len(ks) != 2 || ks[0] < 1 || ks[1] < 1 {
			return nil, fmt.Errorf("kernel_shape %v: proxykit needs a 2-D window", ks)
		}
		sh, sw, pt, pl, pb, pr, dh, dw, err := window(attrs, act.shape, int(ks[0]), int(ks[1]))
		if err != nil {
			return nil, err
		}
		if dh != 1 || dw != 1 {
			return nil, fmt.Errorf("dilated pooling is not supported")
		}
		if _, ok, _ := attrInts(attrs, "strides"); !ok && c.opset < 10 {
			sh, sw = 1, 1
		}
		ceil, err := attrInt(attrs, "ceil_mode", 0)
		if err != nil {
			return nil, err
		}
		countPad, err := attrInt(attrs, "count_include_pad", 0)
		if err != nil {
			return nil, err
		}
		isMax := n.OpType == "MaxPool"
		if isMax && len(n.Outputs) > 1 && n.Outputs[1] != "" {
			c.notes = append(c.notes, fmt.Sprintf("MaxPool %q: its indices output is not computed", n.Name))
		}
		kind := "avgpool"
		if isMax {
			kind = "maxpool"
		}
		return &nn.Pool2d{LayerName: c.layerName(n, kind), Max: isMax, KH: int(ks[0]), KW: int(ks[1]),
			SH: sh, SW: sw, PT: pt, PL: pl, PB: pb, PR: pr, Ceil: ceil != 0, CountPad: countPad != 0}, nil
	})
}

// linearFrom builds a Linear layer with weight [out, in].
func (c *converter) linearFrom(n outlineNode, act *value, w *constant) (*nn.Linear, error) {
	if len(act.shape) != 1 {
		return nil, fmt.Errorf("input has per-sample shape %s; a fully connected layer needs a flat [F] input (add a Flatten)", nn.ShapeString(act.shape))
	}
	if w.Shape[1] != act.shape[0] {
		return nil, fmt.Errorf("weight takes %d features, the input has %d", w.Shape[1], act.shape[0])
	}
	name := c.layerName(n, "fc")
	return &nn.Linear{LayerName: name, Weight: nn.NewParam(name+".weight", w.F, w.Shape...)}, nil
}

func (c *converter) opGemm(n outlineNode, attrs map[string]any) error {
	return c.layerOp(n, func(act *value) (nn.Layer, error) {
		if v, _ := c.input(n, 0); v != act {
			return nil, fmt.Errorf("the activation must be Gemm's first input A")
		}
		transA, err := attrInt(attrs, "transA", 0)
		if err != nil {
			return nil, err
		}
		if transA != 0 {
			return nil, fmt.Errorf("transA=1 is not supported")
		}
		transB, err := attrInt(attrs, "transB", 0)
		if err != nil {
			return nil, err
		}
		alpha, err := attrFloat(attrs, "alpha", 1)
		if err != nil {
			return nil, err
		}
		beta, err := attrFloat(attrs, "beta", 1)
		if err != nil {
			return nil, err
		}
		b, err := c.constInput(n, 1, "B")
		if err != nil {
			return nil, err
		}
		if b == nil || b.isInt() || len(b.Shape) != 2 {
			return nil, fmt.Errorf("B must be a 2-D float constant")
		}
		w := b
		if transB == 0 {
			if w, err = b.transpose(nil); err != nil {
				return nil, err
			}
		}
		if alpha != 1 {
			w = &constant{Shape: w.Shape, F: scaled(w.F, alpha)}
		}
		l, err := c.linearFrom(n, act, w)
		if err != nil {
			return nil, err
		}
		bias, err := c.constInput(n, 2, "C")
		if err != nil {
			return nil, err
		}
		if bias != nil {
			vec, err := biasVector(bias, w.Shape[0])
			if err != nil {
				return nil, fmt.Errorf("C: %w", err)
			}
			l.Bias = nn.NewParam(l.LayerName+".bias", scaled(vec, beta), w.Shape[0])
		}
		return l, nil
	})
}

func scaled(x []float32, s float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = v * s
	}
	return out
}

// biasVector broadcasts a constant of shape [], [1], [K] or [1 K] to K values.
func biasVector(b *constant, k int) ([]float32, error) {
	if b.isInt() {
		return nil, fmt.Errorf("bias must be float")
	}
	nonUnit := 0
	for _, d := range b.Shape {
		if d != 1 {
			nonUnit++
		}
	}
	switch {
	case b.numel() == k && nonUnit <= 1:
		return append([]float32(nil), b.F...), nil
	case b.numel() == 1:
		out := make([]float32, k)
		for i := range out {
			out[i] = b.F[0]
		}
		return out, nil
	}
	return nil, fmt.Errorf("shape %v does not broadcast to %d outputs", b.Shape, k)
}

func (c *converter) opMatMul(n outlineNode) error {
	return c.layerOp(n, func(act *value) (nn.Layer, error) {
		if v, _ := c.input(n, 0); v != act {
			return nil, fmt.Errorf("the activation must be MatMul's first input")
		}
		b, err := c.constInput(n, 1, "the weight")
		if err != nil {
			return nil, err
		}
		if b == nil || b.isInt() || len(b.Shape) != 2 {
			return nil, fmt.Errorf("the weight must be a 2-D float constant")
		}
		w, err := b.transpose(nil) // [in, out] → [out, in]
		if err != nil {
			return nil, err
		}
		return c.linearFrom(n, act, w)
	})
}

// opArith folds arithmetic on constants, and turns Add of a constant to the
// output of a bias-free Linear or Conv into that layer's bias.
func (c *converter) opArith(n outlineNode) error {
	acts, err := c.activations(n)
	if err != nil {
		return err
	}
	if len(acts) == 2 && n.OpType == "Add" && len(n.Inputs) == 2 {
		if !slices.Equal(acts[0].shape, acts[1].shape) {
			return fmt.Errorf("adds activations of shapes %s and %s; proxykit joins equal shapes only (no broadcasting)",
				nn.ShapeString(acts[0].shape), nn.ShapeString(acts[1].shape))
		}
		return c.addJoin(n, acts, &nn.Add{LayerName: c.layerName(n, "add")})
	}
	act, err := c.activation(n)
	if err != nil {
		return err
	}
	if act == nil {
		return c.constOp(n, func(in []*constant) (*constant, error) {
			if len(in) != 2 || in[1] == nil {
				return nil, fmt.Errorf("needs two inputs")
			}
			return arith(n.OpType, in[0], in[1], c.constLimit)
		})
	}
	if n.OpType != "Add" || len(n.Inputs) != 2 {
		return fmt.Errorf("%s on the network's activation is not supported (only Add of a bias after Linear or Conv)", n.OpType)
	}
	other := 1
	if v, _ := c.input(n, 0); v != act {
		other = 0
	}
	k, err := c.constInput(n, other, "the bias")
	if err != nil {
		return err
	}
	if act.gen != c.gen {
		return fmt.Errorf("Add of a constant is only supported as the bias of the layer right before it")
	}
	switch l := c.lastLayer.(type) {
	case *nn.Linear:
		if l.Bias == nil {
			vec, err := biasVector(k, l.Weight.Shape[0])
			if err != nil {
				return fmt.Errorf("bias: %w", err)
			}
			l.Bias = nn.NewParam(l.LayerName+".bias", vec, l.Weight.Shape[0])
			c.passThrough(n, act)
			return nil
		}
	case *nn.Conv2d:
		o := l.Weight.Shape[0]
		okShape := k.numel() == o && (len(k.Shape) == 3 && k.Shape[1] == 1 && k.Shape[2] == 1 ||
			len(k.Shape) == 4 && k.Shape[0] == 1 && k.Shape[2] == 1 && k.Shape[3] == 1 || len(k.Shape) == 1 && o == 1)
		if l.Bias == nil && okShape && !k.isInt() {
			l.Bias = nn.NewParam(l.LayerName+".bias", append([]float32(nil), k.F...), o)
			c.passThrough(n, act)
			return nil
		}
	}
	return fmt.Errorf("Add of a constant is only supported as the bias of a bias-free Linear (MatMul) or Conv right before it")
}

// opConcat joins activations along the channel axis (axis 1 of [B C H W]
// or [B C]).
func (c *converter) opConcat(n outlineNode, attrs map[string]any, acts []*value) error {
	for i := range n.Inputs {
		if v, _ := c.input(n, i); v != nil && v.c != nil {
			return fmt.Errorf("concatenates a constant with activations; proxykit joins activations only")
		}
	}
	if len(acts) < 2 {
		c.passThrough(n, acts[0])
		return nil
	}
	axis, err := attrInt(attrs, "axis", 0)
	if err != nil {
		return err
	}
	a, err := normAxis(axis, len(acts[0].shape)+1)
	if err != nil {
		return err
	}
	if a != 1 {
		return fmt.Errorf("concatenates along axis %d; proxykit joins along channels (axis 1) only", axis)
	}
	return c.addJoin(n, acts, &nn.Concat{LayerName: c.layerName(n, "concat")})
}

func (c *converter) opFlatten(n outlineNode, attrs map[string]any) error {
	act, err := c.activation(n)
	if err != nil {
		return err
	}
	if act == nil {
		return c.constOp(n, func(in []*constant) (*constant, error) {
			axis, err := attrInt(attrs, "axis", 1)
			if err != nil {
				return nil, err
			}
			a, err := normAxis(axis, len(in[0].Shape)+1)
			if err != nil {
				return nil, err
			}
			return in[0].reshape([]int64{int64(numel(in[0].Shape[:a])), -1}, false)
		})
	}
	axis, err := attrInt(attrs, "axis", 1)
	if err != nil {
		return err
	}
	if axis != 1 && axis != -int64(len(act.shape)) {
		return fmt.Errorf("Flatten with axis=%d would mix samples; proxykit supports axis=1", axis)
	}
	if len(act.shape) == 1 {
		c.passThrough(n, act)
		return nil
	}
	return c.addLayer(n, act, &nn.Flatten{LayerName: c.layerName(n, "flatten")})
}

func (c *converter) opReshape(n outlineNode, attrs map[string]any) error {
	allowZero, err := attrInt(attrs, "allowzero", 0)
	if err != nil {
		return err
	}
	k, err := c.constInput(n, 1, "the target shape")
	if err != nil {
		return err
	}
	if k == nil {
		return fmt.Errorf("has no target shape")
	}
	target := k.ints()
	act, err := c.activation(n)
	if err != nil {
		return err
	}
	if act == nil {
		return c.constOp(n, func(in []*constant) (*constant, error) {
			return in[0].reshape(target, allowZero != 0)
		})
	}
	if len(target) == 0 {
		return fmt.Errorf("reshapes the batch away")
	}
	first := target[0]
	per := numel(act.shape)
	rest := target[1:]
	switch {
	case first == batchDim, first == 0 && allowZero == 0:
	case first == -1:
		for _, d := range rest {
			if d <= 0 {
				return fmt.Errorf("target shape %v leaves the batch size ambiguous", target)
			}
		}
	case c.batch > 0 && first == int64(c.batch):
		c.notes = append(c.notes, fmt.Sprintf("Reshape %q fixes the batch size at %d; proxykit treats that dimension as the batch", n.Name, c.batch))
	default:
		return fmt.Errorf("target shape %v does not keep the batch dimension first", target)
	}
	shape, err := resolveShape(act.shape, rest, allowZero != 0)
	if err != nil {
		return err
	}
	if numel(shape) != per {
		return fmt.Errorf("target shape %v does not hold the %d values of each sample", target, per)
	}
	switch {
	case slices.Equal(shape, act.shape):
		c.passThrough(n, act)
		return nil
	case len(shape) == 1:
		return c.addLayer(n, act, &nn.Flatten{LayerName: c.layerName(n, "flatten")})
	}
	return fmt.Errorf("reshape of %s to %s is not supported (only flattening)", nn.ShapeString(act.shape), nn.ShapeString(shape))
}

func (c *converter) opPad(n outlineNode, attrs map[string]any) error {
	act, err := c.activation(n)
	if err != nil {
		return err
	}
	if act == nil {
		return fmt.Errorf("pads a constant, which proxykit does not evaluate")
	}
	l, err := func() (*nn.Pad2d, error) {
		mode, err := attrString(attrs, "mode", "constant")
		if err != nil {
			return nil, err
		}
		if mode != "constant" {
			return nil, fmt.Errorf("pad mode %q is not supported (only constant)", mode)
		}
		var pads []int64
		var val float32
		if c.opset < 11 {
			if pads, _, err = attrInts(attrs, "pads"); err != nil {
				return nil, err
			}
			if val, err = attrFloat(attrs, "value", 0); err != nil {
				return nil, err
			}
		} else {
			k, err := c.constInput(n, 1, "pads")
			if err != nil {
				return nil, err
			}
			if k == nil {
				return nil, fmt.Errorf("has no pads")
			}
			pads = k.ints()
			cv, err := c.constInput(n, 2, "constant_value")
			if err != nil {
				return nil, err
			}
			if cv != nil && cv.numel() > 0 {
				val = cv.floats()[0]
			}
			ax, err := c.constInput(n, 3, "axes")
			if err != nil {
				return nil, err
			}
			if ax != nil {
				full := make([]int64, 8)
				axes := ax.ints()
				if len(pads) != 2*len(axes) {
					return nil, fmt.Errorf("pads %v do not match axes %v", pads, axes)
				}
				for i, a := range axes {
					a, err := normAxis(a, 4)
					if err != nil {
						return nil, err
					}
					full[a], full[a+4] = pads[i], pads[i+len(axes)]
				}
				pads = full
			}
		}
		if len(act.shape) != 3 || len(pads) != 8 {
			return nil, fmt.Errorf("proxykit pads only 4-D NCHW activations (pads %v, per-sample shape %s)", pads, nn.ShapeString(act.shape))
		}
		if pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 {
			return nil, fmt.Errorf("pads %v touch the batch or channel axes; only spatial padding is supported", pads)
		}
		for _, p := range pads {
			if p < 0 {
				return nil, fmt.Errorf("negative pads %v (cropping) are not supported", pads)
			}
		}
		if pads[2] == 0 && pads[3] == 0 && pads[6] == 0 && pads[7] == 0 {
			return nil, nil
		}
		return &nn.Pad2d{LayerName: c.layerName(n, "pad"), PT: int(pads[2]), PL: int(pads[3]), PB: int(pads[6]),
			PR: int(pads[7]), Value: val}, nil
	}()
	if err != nil {
		return err
	}
	if l == nil { // all-zero pads, as PyTorch's opset-11 export writes before AveragePool
		c.passThrough(n, act)
		return nil
	}
	return c.addLayer(n, act, l)
}

func (c *converter) opSoftmax(n outlineNode, attrs map[string]any) error {
	return c.layerOp(n, func(act *value) (nn.Layer, error) {
		def := int64(1)
		if c.opset >= 13 {
			def = -1
		}
		axis, err := attrInt(attrs, "axis", def)
		if err != nil {
			return nil, err
		}
		if len(act.shape) != 1 || (axis != 1 && axis != -1) {
			return nil, fmt.Errorf("%s over axis %d of per-sample shape %s: only over the classes of a [B K] output", n.OpType, axis, nn.ShapeString(act.shape))
		}
		l := &nn.Softmax{LayerName: c.layerName(n, "softmax"), Log: n.OpType == "LogSoftmax"}
		c.notes = append(c.notes, fmt.Sprintf("%s %q at the end is kept in the ANN and left out of the SNN (its output is spike counts)", n.OpType, l.LayerName))
		return l, nil
	})
}

func (c *converter) opShape(n outlineNode, attrs map[string]any) error {
	v, err := c.input(n, 0)
	if err != nil {
		return err
	}
	if v == nil {
		return fmt.Errorf("has no input")
	}
	var full []int64
	if v.c != nil {
		for _, d := range v.c.Shape {
			full = append(full, int64(d))
		}
	} else {
		full = append(full, batchDim)
		for _, d := range v.shape {
			full = append(full, int64(d))
		}
	}
	r := int64(len(full))
	start, err := attrInt(attrs, "start", 0)
	if err != nil {
		return err
	}
	end, err := attrInt(attrs, "end", r)
	if err != nil {
		return err
	}
	if start < 0 {
		start += r
	}
	if end < 0 {
		end += r
	}
	start, end = max(0, min(start, r)), max(0, min(end, r))
	if end < start {
		end = start
	}
	out := append([]int64{}, full[start:end]...)
	c.setOutputs(n, &value{c: &constant{Shape: []int{len(out)}, I: out}})
	return nil
}
