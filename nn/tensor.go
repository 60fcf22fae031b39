// Package nn is the network that proxykit's ANN and SNN share: layers,
// their parameters and shapes, and the ANN's forward pass.
//
// A Network is a feed-forward chain of Layers. Parameters live in Param
// values that both the ANN and the SNN built from it point to, so an update
// of a weight through one is seen by the other.
package nn

import (
	"fmt"
	"strings"
)

// Tensor is a dense float32 array in row-major order. Activations are
// batched: Shape[0] is the batch size, as in PyTorch's NCHW layout.
type Tensor struct {
	Shape []int
	Data  []float32
}

// NewTensor allocates a zeroed tensor of the given shape.
func NewTensor(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, Numel(shape))}
}

// Numel is the number of elements of a shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// ShapeString formats a shape as [a b c].
func ShapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Param is a trainable array shared by the ANN and the SNN.
type Param struct {
	Name  string // stable name, e.g. "conv1.weight"
	Shape []int
	Data  []float32
	// Grad accumulates dLoss/dData during a backward pass (allocated on first use).
	Grad []float32
}

// GradBuf returns the gradient buffer, allocating it on first use.
func (p *Param) GradBuf() []float32 {
	if p.Grad == nil {
		p.Grad = make([]float32, len(p.Data))
	}
	return p.Grad
}

// ZeroGrad clears the gradient.
func (p *Param) ZeroGrad() { clear(p.Grad) }

// NewParam wraps data as a parameter of the given shape.
func NewParam(name string, data []float32, shape ...int) *Param {
	return &Param{Name: name, Shape: append([]int(nil), shape...), Data: data}
}
