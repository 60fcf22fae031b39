package importer

import (
	"errors"
	"fmt"
	"math"

	"github.com/proxykit/proxykit/nn"
	"gorgonia.org/tensor"
)

// batchDim stands for the (symbolic) batch size inside constant shape
// computations such as PyTorch's Shape→Gather→Unsqueeze→Concat→Reshape
// chain for x.view(x.size(0), -1).
const batchDim = -(1 << 40)

// constant is a value known at import time: an initializer, a Constant
// node's output, or a folded computation on those. Exactly one of F and I
// is set (I for integer and boolean tensors).
type constant nn.ONNXConst

// public is the constant as layer kinds read it (the same values).
func (c *constant) public() *nn.ONNXConst { return (*nn.ONNXConst)(c) }

func (c *constant) numel() int        { return c.public().Numel() }
func (c *constant) isInt() bool       { return c.public().IsInt() }
func (c *constant) ints() []int64     { return c.public().Ints() }
func (c *constant) floats() []float32 { return c.public().Floats() }

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// maxConstElems bounds the size of a constant proxykit computes at import
// from a shape alone (ConstantOfShape) or by broadcasting, unless the file
// itself holds more data (see constLimit).
const maxConstElems = 1 << 24

// constLimit is the most elements a computed constant may hold for a model
// file of fileBytes bytes: 2^24, or twice the floats the file holds, so
// that a real fully connected layer (VGG's 4096×25088) is admitted while a
// small file cannot ask for gigabytes.
func constLimit(fileBytes int) int { return max(maxConstElems, fileBytes/2) }

// checkSize refuses shapes with negative dimensions or more than limit
// elements (and products that would overflow).
func checkSize(shape []int, limit int) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d > 0 && n > limit/d {
			return fmt.Errorf("a constant of shape %v is too large for a model file of this size", shape)
		}
		n *= d
	}
	return nil
}

// fromGorgonia converts a tensor decoded by onnx-go.
func fromGorgonia(t tensor.Tensor) (*constant, error) {
	if t == nil {
		return nil, errors.New("no data")
	}
	// gorgonia reports shape (1) as "scalar" too, so only the length tells a 0-d tensor.
	var shape []int
	if len(t.Shape()) > 0 {
		shape = append(shape, t.Shape()...)
	}
	c := &constant{Shape: shape}
	switch d := t.Data().(type) {
	case []float32:
		c.F = append([]float32(nil), d...)
	case float32:
		c.F = []float32{d}
	case []float64:
		c.F = make([]float32, len(d))
		for i, v := range d {
			c.F[i] = float32(v)
		}
	case float64:
		c.F = []float32{float32(d)}
	case []int64:
		c.I = append([]int64(nil), d...)
	case int64:
		c.I = []int64{d}
	case []int32:
		c.I = make([]int64, len(d))
		for i, v := range d {
			c.I[i] = int64(v)
		}
	case int32:
		c.I = []int64{int64(d)}
	case []bool:
		c.I = make([]int64, len(d))
		for i, v := range d {
			if v {
				c.I[i] = 1
			}
		}
	case bool:
		c.I = []int64{0}
		if d {
			c.I[0] = 1
		}
	default:
		return nil, fmt.Errorf("unsupported tensor type %v", t.Dtype())
	}
	if c.numel() != numel(c.Shape) {
		return nil, fmt.Errorf("tensor of shape %v holds %d values", c.Shape, c.numel())
	}
	return c, nil
}

// strides of a row-major shape.
func strides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// gatherIndex builds a constant whose element k comes from src element idx[k].
func (c *constant) pick(shape []int, idx []int) *constant {
	out := &constant{Shape: shape}
	if c.F != nil {
		out.F = make([]float32, len(idx))
		for k, i := range idx {
			out.F[k] = c.F[i]
		}
	} else {
		out.I = make([]int64, len(idx))
		for k, i := range idx {
			out.I[k] = c.I[i]
		}
	}
	return out
}

// normAxis resolves a possibly negative axis against a rank.
func normAxis(axis int64, rank int) (int, error) {
	a := int(axis)
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	return a, nil
}

// transpose permutes the axes (perm nil: reverse them).
func (c *constant) transpose(perm []int64) (*constant, error) {
	r := len(c.Shape)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != r {
		return nil, fmt.Errorf("perm %v does not match rank %d", perm, r)
	}
	outShape := make([]int, r)
	for i, p := range perm {
		if p < 0 || int(p) >= r {
			return nil, fmt.Errorf("perm %v out of range", perm)
		}
		outShape[i] = c.Shape[p]
	}
	inStr := strides(c.Shape)
	n := numel(outShape)
	idx := make([]int, n)
	coord := make([]int, r)
	for k := 0; k < n; k++ {
		src := 0
		for i := range coord {
			src += coord[i] * inStr[perm[i]]
		}
		idx[k] = src
		for i := r - 1; i >= 0; i-- {
			coord[i]++
			if coord[i] < outShape[i] {
				break
			}
			coord[i] = 0
		}
	}
	return c.pick(outShape, idx), nil
}

// reshape applies ONNX Reshape semantics (0 copies a dimension unless
// allowZero, −1 is inferred).
func (c *constant) reshape(target []int64, allowZero bool) (*constant, error) {
	shape, err := resolveShape(c.Shape, target, allowZero)
	if err != nil {
		return nil, err
	}
	out := *c
	out.Shape = shape
	return &out, nil
}

func resolveShape(in []int, target []int64, allowZero bool) ([]int, error) {
	shape := make([]int, len(target))
	infer := -1
	known := 1
	for i, t := range target {
		switch {
		case t == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("reshape target %v copies dimension %d of a rank-%d input", target, i, len(in))
			}
			shape[i] = in[i]
		case t == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("reshape target %v has two -1 entries", target)
			}
			infer = i
			continue
		case t < 0:
			return nil, fmt.Errorf("reshape target %v has a negative entry", target)
		default:
			shape[i] = int(t)
		}
		known *= shape[i]
	}
	total := numel(in)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		shape[infer] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape %v (%d values) to %v", in, total, target)
	}
	return shape, nil
}

// concat joins constants along axis.
func concat(parts []*constant, axis int64) (*constant, error) {
	if len(parts) == 0 {
		return nil, errors.New("nothing to concatenate")
	}
	r := len(parts[0].Shape)
	a, err := normAxis(axis, r)
	if err != nil {
		return nil, err
	}
	isInt := parts[0].isInt()
	if r == 0 {
		return nil, errors.New("cannot concatenate scalars")
	}
	outShape := append([]int(nil), parts[0].Shape...)
	outShape[a] = 0
	for _, p := range parts {
		if len(p.Shape) != r {
			return nil, errors.New("concatenated tensors differ in rank")
		}
		for i := range p.Shape {
			if i != a && p.Shape[i] != parts[0].Shape[i] {
				return nil, errors.New("concatenated tensors differ in shape")
			}
		}
		outShape[a] += p.Shape[a]
		if p.isInt() != isInt {
			isInt = false
		}
	}
	outer := numel(outShape[:a])
	out := &constant{Shape: outShape}
	for o := 0; o < outer; o++ {
		for _, p := range parts {
			inner := numel(p.Shape[a:])
			if isInt {
				out.I = append(out.I, p.ints()[o*inner:(o+1)*inner]...)
			} else {
				out.F = append(out.F, p.floats()[o*inner:(o+1)*inner]...)
			}
		}
	}
	if isInt && out.I == nil {
		out.I = []int64{}
	}
	if !isInt && out.F == nil {
		out.F = []float32{}
	}
	return out, nil
}

// gather takes entries along axis (ONNX Gather).
func (c *constant) gather(indices *constant, axis int64) (*constant, error) {
	r := len(c.Shape)
	a, err := normAxis(axis, r)
	if err != nil {
		return nil, err
	}
	ids := indices.ints()
	outShape := append(append(append([]int(nil), c.Shape[:a]...), indices.Shape...), c.Shape[a+1:]...)
	outer, inner := numel(c.Shape[:a]), numel(c.Shape[a+1:])
	var idx []int
	for o := 0; o < outer; o++ {
		for _, id := range ids {
			if id < 0 {
				id += int64(c.Shape[a])
			}
			if id < 0 || int(id) >= c.Shape[a] {
				return nil, fmt.Errorf("gather index %d out of range", id)
			}
			for i := 0; i < inner; i++ {
				idx = append(idx, (o*c.Shape[a]+int(id))*inner+i)
			}
		}
	}
	return c.pick(outShape, idx), nil
}

// slice applies ONNX Slice.
func (c *constant) slice(starts, ends, axes, steps []int64) (*constant, error) {
	r := len(c.Shape)
	begin := make([]int, r)
	step := make([]int, r)
	count := append([]int(nil), c.Shape...)
	for i := range step {
		step[i] = 1
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	if len(starts) != len(ends) || len(axes) != len(starts) || (steps != nil && len(steps) != len(starts)) {
		return nil, errors.New("slice starts, ends, axes and steps differ in length")
	}
	for k, ax := range axes {
		a, err := normAxis(ax, r)
		if err != nil {
			return nil, err
		}
		dim := int64(c.Shape[a])
		st := int64(1)
		if steps != nil {
			st = steps[k]
		}
		if st == 0 {
			return nil, errors.New("slice step 0")
		}
		s, e := starts[k], ends[k]
		if s < 0 {
			s += dim
		}
		if e < 0 {
			e += dim
		}
		if st > 0 {
			s = max(0, min(s, dim))
			e = max(0, min(e, dim))
		} else {
			s = max(-1, min(s, dim-1))
			e = max(-1, min(e, dim-1))
		}
		n := int64(0)
		if st > 0 && e > s {
			n = (e - s + st - 1) / st
		} else if st < 0 && s > e {
			n = (s - e + (-st) - 1) / (-st)
		}
		begin[a], step[a], count[a] = int(s), int(st), int(n)
	}
	inStr := strides(c.Shape)
	total := numel(count)
	idx := make([]int, total)
	coord := make([]int, r)
	for k := 0; k < total; k++ {
		src := 0
		for i := range coord {
			src += (begin[i] + coord[i]*step[i]) * inStr[i]
		}
		idx[k] = src
		for i := r - 1; i >= 0; i-- {
			coord[i]++
			if coord[i] < count[i] {
				break
			}
			coord[i] = 0
		}
	}
	return c.pick(count, idx), nil
}

// unsqueeze inserts size-1 axes (positions in the output).
func (c *constant) unsqueeze(axes []int64) (*constant, error) {
	r := len(c.Shape) + len(axes)
	ins := map[int]bool{}
	for _, ax := range axes {
		a, err := normAxis(ax, r)
		if err != nil {
			return nil, err
		}
		ins[a] = true
	}
	var shape []int
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			shape = append(shape, 1)
		} else {
			shape = append(shape, c.Shape[j])
			j++
		}
	}
	out := *c
	out.Shape = shape
	return &out, nil
}

// squeeze removes size-1 axes (all of them when axes is nil).
func (c *constant) squeeze(axes []int64) (*constant, error) {
	drop := map[int]bool{}
	for _, ax := range axes {
		a, err := normAxis(ax, len(c.Shape))
		if err != nil {
			return nil, err
		}
		if c.Shape[a] != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of size %d", a, c.Shape[a])
		}
		drop[a] = true
	}
	var shape []int
	for i, d := range c.Shape {
		if (axes == nil && d == 1) || drop[i] {
			continue
		}
		shape = append(shape, d)
	}
	out := *c
	out.Shape = shape
	return &out, nil
}

// broadcastShape is numpy's broadcasting rule for two shapes.
func broadcastShape(a, b []int) ([]int, error) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for i := 0; i < r; i++ {
		da, db := 1, 1
		if j := len(a) - r + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - r + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// broadcastIndex maps each element of outShape to the flat index of a in it.
func broadcastIndex(a, outShape []int) []int {
	r := len(outShape)
	st := strides(a)
	n := numel(outShape)
	idx := make([]int, n)
	coord := make([]int, r)
	for k := 0; k < n; k++ {
		src := 0
		for i := range coord {
			j := len(a) - r + i
			if j >= 0 && a[j] != 1 {
				src += coord[i] * st[j]
			}
		}
		idx[k] = src
		for i := r - 1; i >= 0; i-- {
			coord[i]++
			if coord[i] < outShape[i] {
				break
			}
			coord[i] = 0
		}
	}
	return idx
}

// arith applies an elementwise binary operation with broadcasting, to a
// result of at most limit elements.
func arith(op string, a, b *constant, limit int) (*constant, error) {
	shape, err := broadcastShape(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	if err := checkSize(shape, limit); err != nil {
		return nil, err
	}
	ia, ib := broadcastIndex(a.Shape, shape), broadcastIndex(b.Shape, shape)
	out := &constant{Shape: shape}
	if a.isInt() && b.isInt() {
		x, y := a.ints(), b.ints()
		out.I = make([]int64, len(ia))
		for k := range ia {
			u, v := x[ia[k]], y[ib[k]]
			switch op {
			case "Add":
				out.I[k] = u + v
			case "Sub":
				out.I[k] = u - v
			case "Mul":
				out.I[k] = u * v
			case "Div":
				if v == 0 {
					return nil, errors.New("integer division by zero")
				}
				out.I[k] = u / v
			}
		}
		return out, nil
	}
	x, y := a.floats(), b.floats()
	out.F = make([]float32, len(ia))
	for k := range ia {
		u, v := x[ia[k]], y[ib[k]]
		switch op {
		case "Add":
			out.F[k] = u + v
		case "Sub":
			out.F[k] = u - v
		case "Mul":
			out.F[k] = u * v
		case "Div":
			out.F[k] = u / v
		}
	}
	return out, nil
}

// cast converts to ONNX element type `to`: floats or integers.
func (c *constant) cast(to int64) (*constant, error) {
	out := &constant{Shape: c.Shape}
	switch to {
	case 1, 10, 11, 16: // FLOAT, FLOAT16, DOUBLE, BFLOAT16: kept as float32
		out.F = c.floats()
	case 2, 3, 4, 5, 6, 7, 12, 13: // integer types
		if c.F != nil {
			out.I = make([]int64, len(c.F))
			for i, v := range c.F {
				out.I[i] = int64(math.Trunc(float64(v)))
			}
		} else {
			out.I = c.I
		}
	case 9: // BOOL
		out.I = make([]int64, c.numel())
		for i, v := range c.floats() {
			if v != 0 {
				out.I[i] = 1
			}
		}
	default:
		return nil, fmt.Errorf("cast to ONNX type %d is not supported", to)
	}
	return out, nil
}
