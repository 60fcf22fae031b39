package nn

import (
	"github.com/proxykit/proxykit/compute"
)

// Mode selects how layers behave in a training forward pass.
type Mode struct {
	// BatchStats: BatchNorm normalises with the batch's statistics and
	// updates its running statistics (PyTorch's train()); otherwise it uses
	// the running statistics (eval()).
	BatchStats bool
}

// Trainable is a layer with a forward pass that keeps what its backward
// pass needs, and that backward pass. Every layer in this package is one.
type Trainable interface {
	Layer
	// ForwardTrain runs the layer, returning its output and a cache for Backward.
	ForwardTrain(x *Tensor, mode Mode) (y *Tensor, cache any)
	// Backward takes dLoss/dy, adds the parameter gradients into each
	// Param's Grad and returns dLoss/dx.
	Backward(cache any, dy *Tensor) *Tensor
}

type inputCache struct{ x *Tensor }

// ForwardTrain implements Trainable.
func (l *Conv2d) ForwardTrain(x *Tensor, _ Mode) (*Tensor, any) {
	return l.Forward(x), inputCache{x}
}

// Backward implements Trainable.
func (l *Conv2d) Backward(cache any, dy *Tensor) *Tensor {
	x := cache.(inputCache).x
	dx := NewTensor(x.Shape...)
	var db []float32
	if l.Bias != nil {
		db = l.Bias.GradBuf()
	}
	compute.Conv2dBackward(l.Geom(x.Shape[1:]), x.Shape[0], x.Data, l.Weight.Data, dy.Data, dx.Data, l.Weight.GradBuf(), db)
	return dx
}

type bnCache struct {
	x            *Tensor
	mean, invstd []float32
	batch        bool
}

// ForwardTrain implements Trainable. With mode.BatchStats it normalises with
// the batch's mean and biased variance and updates the running statistics
// with momentum, using the unbiased variance, as PyTorch does.
func (l *BatchNorm2d) ForwardTrain(x *Tensor, mode Mode) (*Tensor, any) {
	if !mode.BatchStats {
		c := len(l.Gamma.Data)
		invstd := make([]float32, c)
		for i := range invstd {
			invstd[i] = 1 / sqrt32(l.RunningVar[i]+l.Eps)
		}
		return l.Forward(x), bnCache{x: x, mean: append([]float32(nil), l.RunningMean...), invstd: invstd}
	}
	y, mean, invstd := l.forwardBatch(x)
	return y, bnCache{x: x, mean: mean, invstd: invstd, batch: true}
}

// ForwardBatchStats normalises with batch statistics and updates the
// running statistics, without keeping a cache: the SNN's BN in training mode.
func (l *BatchNorm2d) ForwardBatchStats(x *Tensor) *Tensor {
	y, _, _ := l.forwardBatch(x)
	return y
}

func (l *BatchNorm2d) forwardBatch(x *Tensor) (*Tensor, []float32, []float32) {
	n, c, hw := x.Shape[0], x.Shape[1], Numel(x.Shape[2:])
	y := NewTensor(x.Shape...)
	mean, variance, invstd := make([]float32, c), make([]float32, c), make([]float32, c)
	compute.BatchNormTrainForward(n, c, hw, l.Eps, l.Gamma.Data, l.Beta.Data, x.Data, y.Data, mean, variance, invstd)
	m := float32(n * hw)
	unbias := float32(1)
	if m > 1 {
		unbias = m / (m - 1)
	}
	for i := 0; i < c; i++ {
		l.RunningMean[i] = (1-l.Momentum)*l.RunningMean[i] + l.Momentum*mean[i]
		l.RunningVar[i] = (1-l.Momentum)*l.RunningVar[i] + l.Momentum*variance[i]*unbias
	}
	return y, mean, invstd
}

// Backward implements Trainable.
func (l *BatchNorm2d) Backward(cache any, dy *Tensor) *Tensor {
	cc := cache.(bnCache)
	x := cc.x
	dx := NewTensor(x.Shape...)
	compute.BatchNormBackward(x.Shape[0], x.Shape[1], Numel(x.Shape[2:]), cc.batch, l.Gamma.Data, cc.mean, cc.invstd,
		x.Data, dy.Data, dx.Data, l.Gamma.GradBuf(), l.Beta.GradBuf())
	return dx
}

// ForwardTrain implements Trainable.
func (l *Linear) ForwardTrain(x *Tensor, _ Mode) (*Tensor, any) {
	return l.Forward(x), inputCache{x}
}

// Backward implements Trainable.
func (l *Linear) Backward(cache any, dy *Tensor) *Tensor {
	x := cache.(inputCache).x
	dx := NewTensor(x.Shape...)
	var db []float32
	if l.Bias != nil {
		db = l.Bias.GradBuf()
	}
	compute.LinearBackward(x.Shape[0], l.Weight.Shape[1], l.Weight.Shape[0], x.Data, l.Weight.Data, dy.Data, dx.Data,
		l.Weight.GradBuf(), db)
	return dx
}

// ForwardTrain implements Trainable.
func (l *ReLU) ForwardTrain(x *Tensor, _ Mode) (*Tensor, any) {
	y := l.Forward(x)
	return y, inputCache{y}
}

// Backward implements Trainable: the gradient passes where the ANN's own
// output was positive.
func (l *ReLU) Backward(cache any, dy *Tensor) *Tensor {
	y := cache.(inputCache).x
	dx := NewTensor(y.Shape...)
	compute.ReLUBackward(y.Data, dy.Data, dx.Data)
	return dx
}

type poolCache struct {
	inShape []int
	argmax  []int32
}

// ForwardTrain implements Trainable.
func (l *Pool2d) ForwardTrain(x *Tensor, _ Mode) (*Tensor, any) {
	g := l.Geom(x.Shape[1:])
	out := NewTensor(x.Shape[0], g.C, g.OutH(), g.OutW())
	cc := poolCache{inShape: x.Shape}
	if l.Max {
		cc.argmax = make([]int32, len(out.Data))
		compute.MaxPool2dForward(g, x.Shape[0], x.Data, out.Data, cc.argmax)
	} else {
		compute.AvgPool2dForward(g, x.Shape[0], l.CountPad, x.Data, out.Data)
	}
	return out, cc
}

// Backward implements Trainable. Max pooling sends each gradient to the
// first maximum of its window, as PyTorch does.
func (l *Pool2d) Backward(cache any, dy *Tensor) *Tensor {
	cc := cache.(poolCache)
	dx := NewTensor(cc.inShape...)
	g := l.Geom(cc.inShape[1:])
	if l.Max {
		compute.MaxPool2dBackward(g, cc.inShape[0], cc.argmax, dy.Data, dx.Data)
	} else {
		compute.AvgPool2dBackward(g, cc.inShape[0], l.CountPad, dy.Data, dx.Data)
	}
	return dx
}

type shapeCache struct{ inShape []int }

// ForwardTrain implements Trainable.
func (l *GlobalAvgPool) ForwardTrain(x *Tensor, _ Mode) (*Tensor, any) {
	return l.Forward(x), shapeCache{x.Shape}
}

// Backward implements Trainable.
func (l *GlobalAvgPool) Backward(cache any, dy *Tensor) *Tensor {
	in := cache.(shapeCache).inShape
	dx := NewTensor(in...)
	hw := Numel(in[2:])
	for i, g := range dy.Data {
		v := g / float32(hw)
		for j := range dx.Data[i*hw : (i+1)*hw] {
			dx.Data[i*hw+j] = v
		}
	}
	return dx
}

// ForwardTrain implements Trainable.
func (l *Flatten) ForwardTrain(x *Tensor, _ Mode) (*Tensor, any) {
	return l.Forward(x), shapeCache{x.Shape}
}

// Backward implements Trainable.
func (l *Flatten) Backward(cache any, dy *Tensor) *Tensor {
	return &Tensor{Shape: cache.(shapeCache).inShape, Data: dy.Data}
}

// ForwardTrain implements Trainable.
func (l *Pad2d) ForwardTrain(x *Tensor, _ Mode) (*Tensor, any) {
	return l.Forward(x), shapeCache{x.Shape}
}

// Backward implements Trainable: the gradient of the padded border is dropped.
func (l *Pad2d) Backward(cache any, dy *Tensor) *Tensor {
	in := cache.(shapeCache).inShape
	dx := NewTensor(in...)
	h, w := in[2], in[3]
	ow := w + l.PL + l.PR
	oh := h + l.PT + l.PB
	for pc := 0; pc < in[0]*in[1]; pc++ {
		src := dy.Data[pc*oh*ow : (pc+1)*oh*ow]
		dst := dx.Data[pc*h*w : (pc+1)*h*w]
		for y := 0; y < h; y++ {
			copy(dst[y*w:(y+1)*w], src[(y+l.PT)*ow+l.PL:(y+l.PT)*ow+l.PL+w])
		}
	}
	return dx
}

// ForwardTrain implements Trainable.
func (l *Softmax) ForwardTrain(x *Tensor, _ Mode) (*Tensor, any) {
	y := l.Forward(x)
	return y, inputCache{y}
}

// Backward implements Trainable.
func (l *Softmax) Backward(cache any, dy *Tensor) *Tensor {
	y := cache.(inputCache).x
	n, k := y.Shape[0], y.Shape[1]
	dx := NewTensor(y.Shape...)
	for b := 0; b < n; b++ {
		yr, gr, dr := y.Data[b*k:(b+1)*k], dy.Data[b*k:(b+1)*k], dx.Data[b*k:(b+1)*k]
		if l.Log {
			var sum float32
			for _, g := range gr {
				sum += g
			}
			for i := range dr {
				dr[i] = gr[i] - exp32(yr[i])*sum
			}
		} else {
			var dot float32
			for i := range gr {
				dot += gr[i] * yr[i]
			}
			for i := range dr {
				dr[i] = yr[i] * (gr[i] - dot)
			}
		}
	}
	return dx
}
