package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/proxykit/proxykit/internal/limits"
)

// Reference builds the paper's Fashion-MNIST network (docs/design.md §1) at a
// given width (128 is the paper's): conv 1→w 3×3 pad 1 + BN; ReLU; conv w→w
// + BN; ReLU; maxpool 2; conv w→w + BN; ReLU; maxpool 2; flatten; linear
// 49w→20w; ReLU; 20w→9w; ReLU; 9w→2w; ReLU; 2w→10 (no biases). Weights get
// PyTorch's default initialisation, U(−1/√fan_in, 1/√fan_in), drawn from a
// generator seeded with seed; BN starts at γ = 1, β = 0, mean 0, variance 1.
// Layer and parameter names follow the reference's module names.
func Reference(width int, seed uint64) (*Network, error) {
	if width < 1 {
		return nil, fmt.Errorf("width must be at least 1, got %d", width)
	}
	w := width
	if err := checkReferenceSize(w); err != nil {
		return nil, err
	}
	b := newBuilder(seed)
	conv, bn, linear, pool := b.conv, b.bn, b.linear, b.pool
	h1, h2, h3 := 2560*w/128, 1152*w/128, 256*w/128
	if h3 < 1 {
		return nil, fmt.Errorf("width %d is too narrow for the fully connected layers", width)
	}
	net := &Network{Name: fmt.Sprintf("reference network, width %d", w), InputShape: []int{1, 28, 28}, Layers: []Layer{
		conv("static_conv.0", 1, w), bn("static_conv.1", w),
		&ReLU{LayerName: "conv.0"}, conv("conv.1", w, w), bn("conv.2", w), &ReLU{LayerName: "conv.3"}, pool("conv.4"),
		conv("conv.5", w, w), bn("conv.6", w), &ReLU{LayerName: "conv.7"}, pool("conv.8"),
		&Flatten{LayerName: "fc.0"}, linear("fc.1", 49*w, h1), &ReLU{LayerName: "fc.2"}, linear("fc.3", h1, h2),
		&ReLU{LayerName: "fc.4"}, linear("fc.5", h2, h3), &ReLU{LayerName: "fc.6"}, linear("fc.7", h3, 10),
	}}
	if _, err := net.Shapes(); err != nil {
		return nil, err
	}
	return net, nil
}

// checkReferenceSize refuses, before anything is allocated, a width whose
// parameters — with their gradients and Adam's two moments, four copies —
// would not fit in the memory available.
func checkReferenceSize(w int) error {
	if w > 1<<16 {
		return fmt.Errorf("width %d is above the limit of %d", w, 1<<16)
	}
	W := int64(w)
	h1, h2, h3 := 2560*W/128, 1152*W/128, 256*W/128
	params := 9*W + 2*9*W*W + 6*W + 49*W*h1 + h1*h2 + h2*h3 + h3*10
	return limits.CheckMemory(fmt.Sprintf("the reference network at width %d (%d parameters, with gradients and optimizer state)", w, params),
		uint64(params)*16, "choose a smaller --width")
}

// Tiny builds a small network for quick experiments and tests on 28×28
// images: conv 1→8 3×3 pad 1 + BN; ReLU; maxpool 2; conv 8→16 + BN; ReLU;
// maxpool 2; flatten; linear 784→64; ReLU; 64→10 (no biases), initialised
// as Reference is.
func Tiny(seed uint64) (*Network, error) {
	b := newBuilder(seed)
	net := &Network{Name: "tiny network", InputShape: []int{1, 28, 28}, Layers: []Layer{
		b.conv("conv1", 1, 8), b.bn("bn1", 8), &ReLU{LayerName: "relu1"}, b.pool("pool1"),
		b.conv("conv2", 8, 16), b.bn("bn2", 16), &ReLU{LayerName: "relu2"}, b.pool("pool2"),
		&Flatten{LayerName: "flatten"}, b.linear("fc1", 784, 64), &ReLU{LayerName: "relu3"}, b.linear("fc2", 64, 10),
	}}
	if _, err := net.Shapes(); err != nil {
		return nil, err
	}
	return net, nil
}

// builder makes layers with PyTorch's default initialisation from one generator.
type builder struct{ rng *rand.Rand }

func newBuilder(seed uint64) *builder { return &builder{rand.New(rand.NewPCG(seed, 0x5eed))} }

// uniform draws U(−1/√fan_in, 1/√fan_in): kaiming_uniform_ with a = √5, as
// PyTorch initialises Conv2d and Linear weights.
func (b *builder) uniform(name string, fanIn int, shape ...int) *Param {
	bound := 1 / math.Sqrt(float64(fanIn))
	data := make([]float32, Numel(shape))
	for i := range data {
		data[i] = float32((b.rng.Float64()*2 - 1) * bound)
	}
	return NewParam(name, data, shape...)
}

func (b *builder) conv(name string, in, out int) *Conv2d {
	return &Conv2d{LayerName: name, Weight: b.uniform(name+".weight", in*9, out, in, 3, 3), SH: 1, SW: 1,
		PT: 1, PL: 1, PB: 1, PR: 1, DH: 1, DW: 1}
}

func (b *builder) bn(name string, c int) *BatchNorm2d {
	g, v := make([]float32, c), make([]float32, c)
	for i := range g {
		g[i], v[i] = 1, 1
	}
	return &BatchNorm2d{LayerName: name, Gamma: NewParam(name+".weight", g, c), Beta: NewParam(name+".bias", make([]float32, c), c),
		RunningMean: make([]float32, c), RunningVar: v, Eps: 1e-5, Momentum: 0.1}
}

func (b *builder) linear(name string, in, out int) *Linear {
	return &Linear{LayerName: name, Weight: b.uniform(name+".weight", in, out, in)}
}

func (b *builder) pool(name string) *Pool2d {
	return &Pool2d{LayerName: name, Max: true, KH: 2, KW: 2, SH: 2, SW: 2}
}
