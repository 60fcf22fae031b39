package importer

import (
	"fmt"
	"math"
	"slices"
	"strings"

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
	case "Add", "Sub", "Mul", "Div":
		return c.opArith(n, attrs)
	case "Flatten":
		return c.opFlatten(n, attrs)
	case "Reshape":
		return c.opReshape(n, attrs)
	case "Transpose":
		return c.opTranspose(n, attrs)
	case "Split":
		return c.opSplit(n, attrs)
	case "ReduceMean":
		return c.opReduceMean(n, attrs)
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
			return c.applyKind(n, attrs, "Concat")
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
		if v, err := c.input(n, 0); err != nil {
			return err
		} else if v != nil && v.c == nil {
			return c.applyKind(n, attrs, "Slice")
		}
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
	if _, ok := nn.KindForONNX(n.OpType); ok {
		return c.applyKind(n, attrs, n.OpType)
	}
	if why, ok := nonReLU[n.OpType]; ok {
		return notReLUError(why)
	}
	return notImplemented(n.OpType)
}

// applyKind converts a node that becomes one layer, by the layer kind
// that reads operator op (nn.Kind.FromONNX): a layer on the node's
// activation, a join of its activations, or nothing (the identity).
func (c *converter) applyKind(n outlineNode, attrs map[string]any, op string) error {
	kind, _ := nn.KindForONNX(op)
	acts, err := c.activations(n)
	if err != nil {
		return err
	}
	if len(acts) == 0 {
		return fmt.Errorf("computes on constants only, which proxykit does not evaluate for %s", n.OpType)
	}
	l, err := kind.FromONNX(&onnxNode{c: c, n: n, attrs: attrs, acts: acts})
	switch {
	case err != nil:
		return err
	case l == nil:
		c.passThrough(n, acts[0])
		return nil
	}
	if nn.RoleOf(l).Join {
		return c.addJoin(n, acts, l)
	}
	if len(acts) > 1 {
		return fmt.Errorf("combines %d activations; of the operators that join branches proxykit imports Add and Concat (along channels)", len(acts))
	}
	return c.addLayer(n, acts[0], l)
}

// onnxNode is a node as a layer kind reads it (nn.ONNXNode).
type onnxNode struct {
	c     *converter
	n     outlineNode
	attrs map[string]any
	acts  []*value
}

func (o *onnxNode) Op() string                     { return o.n.OpType }
func (o *onnxNode) Name() string                   { return o.n.Name }
func (o *onnxNode) Opset() int                     { return int(o.c.opset) }
func (o *onnxNode) LayerName(prefix string) string { return o.c.layerName(o.n, prefix) }
func (o *onnxNode) NumInputs() int                 { return len(o.n.Inputs) }
func (o *onnxNode) Note(s string)                  { o.c.notes = append(o.c.notes, s) }
func (o *onnxNode) HasOutput(i int) bool           { return i < len(o.n.Outputs) && o.n.Outputs[i] != "" }

func (o *onnxNode) Activations() [][]int {
	shapes := make([][]int, len(o.acts))
	for i, a := range o.acts {
		shapes[i] = a.shape
	}
	return shapes
}

func (o *onnxNode) IsActivation(i int) bool {
	v, _ := o.c.input(o.n, i)
	return v != nil && v.c == nil
}

func (o *onnxNode) Const(i int, what string) (*nn.ONNXConst, error) {
	k, err := o.c.constInput(o.n, i, what)
	if err != nil || k == nil {
		return nil, err
	}
	return k.public(), nil
}

func (o *onnxNode) Int(name string, def int64) (int64, error) { return attrInt(o.attrs, name, def) }
func (o *onnxNode) Ints(name string) ([]int64, bool, error)   { return attrInts(o.attrs, name) }
func (o *onnxNode) Float(name string, def float32) (float32, error) {
	return attrFloat(o.attrs, name, def)
}
func (o *onnxNode) String(name, def string) (string, error) { return attrString(o.attrs, name, def) }

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
			return fmt.Errorf("is applied to the network's activation %q: proxykit has not implemented %s of an activation (it folds it on constants)", n.Inputs[i], n.OpType)
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

// opArith folds arithmetic on constants, and turns Add of a constant to the
// output of a bias-free Linear or Conv into that layer's bias.
func (c *converter) opArith(n outlineNode, attrs map[string]any) error {
	acts, err := c.activations(n)
	if err != nil {
		return err
	}
	if len(acts) == 2 && n.OpType == "Add" && len(n.Inputs) == 2 {
		return c.applyKind(n, attrs, "Add")
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
	if len(n.Inputs) != 2 {
		return fmt.Errorf("%s of %d inputs; ONNX's takes two", n.OpType, len(n.Inputs))
	}
	other := 1
	if v, _ := c.input(n, 0); v != act {
		other = 0
	}
	k, err := c.constInput(n, other, "the constant")
	if err != nil {
		return err
	}
	if k == nil {
		return fmt.Errorf("%s of an activation and an empty input name: it needs a constant there", n.OpType)
	}
	if n.OpType == "Add" && act.gen == c.gen && c.asBias(n, act, k) {
		return nil
	}
	return c.affine(n, act, k, other == 0)
}

// asBias takes the constant k that Add adds to act, the output of the
// layer right before it, as that layer's bias where it is a bias-free
// Linear (MatMul) or Conv and k holds one value per output, and reports
// whether it did.
func (c *converter) asBias(n outlineNode, act *value, k *constant) bool {
	switch l := c.lastLayer.(type) {
	case *nn.Linear:
		if l.Bias == nil {
			vec, err := nn.BiasVector(k.public(), l.Weight.Shape[0])
			if err != nil {
				return false
			}
			l.Bias = nn.NewParam(l.LayerName+".bias", vec, l.Weight.Shape[0])
			c.passThrough(n, act)
			return true
		}
	case *nn.Conv2d:
		o := l.Weight.Shape[0]
		okShape := k.numel() == o && (len(k.Shape) == 3 && k.Shape[1] == 1 && k.Shape[2] == 1 ||
			len(k.Shape) == 4 && k.Shape[0] == 1 && k.Shape[2] == 1 && k.Shape[3] == 1 || len(k.Shape) == 1 && o == 1)
		if l.Bias == nil && okShape && !k.isInt() {
			l.Bias = nn.NewParam(l.LayerName+".bias", append([]float32(nil), k.F...), o)
			c.passThrough(n, act)
			return true
		}
	}
	return false
}

// affine reads Add, Sub, Mul or Div of the activation act and the
// constant k (k first with constFirst) as an Affine layer: k one value,
// or one per channel of act's samples broadcast over the rest ([C 1 1]
// for [C H W], [C] for [C]).
func (c *converter) affine(n outlineNode, act *value, k *constant, constFirst bool) error {
	vals, err := affineConstant(k, act.shape)
	if err != nil {
		return fmt.Errorf("%s of an activation %s and a constant %s: %w", n.OpType, nn.ShapeString(act.shape), nn.ShapeString(k.Shape), err)
	}
	scale, shift := make([]float32, len(vals)), make([]float32, len(vals))
	for i, v := range vals {
		switch {
		case n.OpType == "Add":
			scale[i], shift[i] = 1, v
		case n.OpType == "Sub" && constFirst:
			scale[i], shift[i] = -1, v
		case n.OpType == "Sub":
			scale[i], shift[i] = 1, -v
		case n.OpType == "Mul":
			scale[i] = v
		case constFirst: // Div
			return fmt.Errorf("Div of a constant by an activation: not an affine map, which is all proxykit reads of arithmetic with constants")
		case v == 0:
			return fmt.Errorf("Div by a constant holding 0 (channel %d)", i)
		default:
			scale[i] = float32(1 / float64(v))
			if math.IsInf(float64(scale[i]), 0) {
				return fmt.Errorf("Div by %g: its reciprocal overflows float32", v)
			}
		}
	}
	node := &onnxNode{c: c, n: n}
	return c.addLayer(n, act, nn.NewAffine(node.LayerName("affine"), scale, shift))
}

// affineConstant is the values of k, a constant one value or one per
// channel of an activation of per-sample shape in.
func affineConstant(k *constant, in []int) ([]float32, error) {
	vals, shape := k.public().Floats(), k.Shape
	if len(shape) > len(in)+1 {
		return nil, fmt.Errorf("a constant of more axes than the batch %d: the result would gain axes", len(in)+1)
	}
	if len(vals) == 1 {
		return vals, nil
	}
	if len(shape) == len(in)+1 && shape[0] == 1 { // the batch axis
		shape = shape[1:]
	}
	if len(in) == 0 || len(shape) != len(in) || shape[0] != in[0] || nn.Numel(shape) != in[0] {
		want := "[C" + strings.Repeat(" 1", max(len(in)-1, 0)) + "]"
		return nil, fmt.Errorf("proxykit reads a constant of one value, or one per channel: shape %s (or [1 %s) for a %s activation",
			want, want[1:], nn.ShapeString(in))
	}
	return vals, nil
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
	return c.applyKind(n, attrs, "Flatten")
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
	act, err := c.input(n, 0)
	if err != nil {
		return err
	}
	if act == nil || act.c != nil {
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
		c.fixedBatch = append(c.fixedBatch, n.Name)
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
	if sv := act.shuffle; sv != nil {
		// the end of a channel shuffle (or of a view that undoes itself)
		switch {
		case !slices.Equal(shape, sv.src.shape):
			return fmt.Errorf("proxykit has not implemented a reshape of %s to %s: it reads a channel shuffle's view only reshaped back to its activation's %s",
				nn.ShapeString(act.shape), nn.ShapeString(shape), nn.ShapeString(sv.src.shape))
		case !sv.transposed:
			c.passThrough(n, sv.src)
			return nil
		}
		return c.addLayer(n, sv.src, &nn.ChannelShuffle{LayerName: c.layerName(n, "shuffle"), Groups: sv.groups})
	}
	switch {
	case slices.Equal(shape, act.shape):
		c.passThrough(n, act)
		return nil
	case len(shape) == 1:
		return c.addLayer(n, act, &nn.Flatten{LayerName: c.layerName(n, "flatten")})
	case len(shape) == len(act.shape)+1 && shape[0] > 1 && shape[0]*shape[1] == act.shape[0] && slices.Equal(shape[2:], act.shape[1:]):
		// channels split into groups: a channel shuffle begins
		c.setOutputs(n, &value{shape: shape, gen: act.gen, shuffle: &shuffleView{src: act, groups: shape[0]}})
		return nil
	}
	return fmt.Errorf("proxykit has not implemented a reshape of %s to %s (it reads flattening, and the channel shuffle's Reshape to [N, groups, C/groups, H, W], Transpose and Reshape back)",
		nn.ShapeString(act.shape), nn.ShapeString(shape))
}

// opTranspose folds a Transpose of a constant; of an activation it reads
// only the middle of a channel shuffle: axes 1 and 2 of [N, groups,
// C/groups, ...] swapped.
func (c *converter) opTranspose(n outlineNode, attrs map[string]any) error {
	perm, _, err := attrInts(attrs, "perm")
	if err != nil {
		return err
	}
	v, err := c.input(n, 0)
	if err != nil {
		return err
	}
	if v == nil || v.c != nil {
		return c.constOp(n, func(in []*constant) (*constant, error) { return in[0].transpose(perm) })
	}
	swap := []int64{0, 2, 1}
	for k := 3; k <= len(v.shape); k++ {
		swap = append(swap, int64(k))
	}
	if sv := v.shuffle; sv != nil && !sv.transposed && slices.Equal(perm, swap) {
		shape := slices.Clone(v.shape)
		shape[0], shape[1] = shape[1], shape[0]
		c.setOutputs(n, &value{shape: shape, gen: v.gen, shuffle: &shuffleView{src: sv.src, groups: sv.groups, transposed: true}})
		return nil
	}
	return fmt.Errorf("proxykit has not implemented a Transpose (perm %v) of the network's activation %q; it reads one only inside a channel shuffle "+
		"(Reshape to [N, groups, C/groups, H, W], Transpose of axes 1 and 2, Reshape back)", perm, n.Inputs[0])
}

// opSplit reads a Split of an activation along channels (axis 1): each
// output a ChannelSlice layer.
func (c *converter) opSplit(n outlineNode, attrs map[string]any) error {
	act, err := c.activation(n)
	if err != nil {
		return err
	}
	if act == nil {
		return fmt.Errorf("splits a constant, which proxykit does not evaluate")
	}
	axis, err := attrInt(attrs, "axis", 0)
	if err != nil {
		return err
	}
	if a, err := normAxis(axis, len(act.shape)+1); err != nil {
		return err
	} else if a != 1 {
		return fmt.Errorf("splits axis %d of the activation; proxykit has implemented splits along channels (axis 1) only", axis)
	}
	ch := act.shape[0]
	var sizes []int64
	if c.opset < 13 {
		sizes, _, err = attrInts(attrs, "split")
	} else {
		var k *constant
		if k, err = c.constInput(n, 1, "the split sizes"); k != nil {
			sizes = k.ints()
		}
	}
	if err != nil {
		return err
	}
	parts := len(n.Outputs)
	if sizes == nil {
		if parts, err = attrIntAs(attrs, "num_outputs", parts); err != nil {
			return err
		}
		if parts < 1 || parts > ch {
			return fmt.Errorf("splits %d channels into %d parts", ch, parts)
		}
		each := (ch + parts - 1) / parts // the last part may be smaller (opset 18)
		for k := 0; k < parts; k++ {
			sizes = append(sizes, int64(min(each, ch-k*each)))
		}
	}
	if len(sizes) != len(n.Outputs) {
		return fmt.Errorf("%d split sizes for %d outputs", len(sizes), len(n.Outputs))
	}
	start := 0
	for k, size := range sizes {
		if size < 1 || int64(start)+size > int64(ch) {
			return fmt.Errorf("split sizes %v do not divide %d channels into non-empty parts", sizes, ch)
		}
		stop := start + int(size)
		out := n.Outputs[k]
		switch {
		case out == "":
		case start == 0 && stop == ch:
			c.values[out] = act
		default:
			l := &nn.ChannelSlice{LayerName: c.layerName(n, "split"), Start: start, Stop: stop}
			if err := c.addLayerAs(out, act, l); err != nil {
				return err
			}
		}
		start = stop
	}
	if start != ch {
		return fmt.Errorf("split sizes %v do not add up to the %d channels", sizes, ch)
	}
	return nil
}

// opReduceMean reads a mean over the spatial axes of a [C H W] activation
// as global average pooling (MNASNet's x.mean([2, 3])), followed by a
// flattening where the axes are not kept.
func (c *converter) opReduceMean(n outlineNode, attrs map[string]any) error {
	act, err := c.activation(n)
	if err != nil {
		return err
	}
	if act == nil {
		return fmt.Errorf("averages a constant, which proxykit does not evaluate")
	}
	keep, err := attrInt(attrs, "keepdims", 1)
	if err != nil {
		return err
	}
	axes, _, err := attrInts(attrs, "axes")
	if err != nil {
		return err
	}
	if c.opset >= 18 {
		k, err := c.constInput(n, 1, "the axes")
		if err != nil {
			return err
		}
		if k != nil {
			axes = k.ints()
		}
	}
	rank := len(act.shape) + 1
	var norm []int
	for _, a := range axes {
		b, err := normAxis(a, rank)
		if err != nil {
			return err
		}
		norm = append(norm, b)
	}
	slices.Sort(norm)
	if rank != 4 || !slices.Equal(norm, []int{2, 3}) {
		return fmt.Errorf("proxykit has implemented ReduceMean over the spatial axes of [N C H W] (global average pooling) only, not over axes %v of a %s activation",
			axes, nn.ShapeString(act.shape))
	}
	if err := c.addLayer(n, act, &nn.GlobalAvgPool{LayerName: c.layerName(n, "gap")}); err != nil {
		return err
	}
	if keep == 0 {
		return c.addLayer(n, c.values[n.Outputs[0]], &nn.Flatten{LayerName: c.layerName(n, "flatten")})
	}
	return nil
}

// attrIntAs reads an integer attribute as an int (def when missing).
func attrIntAs(attrs map[string]any, name string, def int) (int, error) {
	v, err := attrInt(attrs, name, int64(def))
	return int(v), err
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
