package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/proxykit/proxykit/internal/limits"
)

// Architecture is one network proxykit builds from scratch, an entry of
// the architecture registry (Architectures): init writes it, bench times
// it, and a PyTorch state dict given --arch takes its structure.
type Architecture struct {
	// Name is what --arch calls it.
	Name string
	// Summary says what it is, for help texts.
	Summary string
	// Build makes the network, freshly initialised from o.Seed. Zero
	// fields of o take the architecture's defaults.
	Build func(o ArchOptions) (*Network, error)
	// Sized reads from a state dict's tensor shapes (by parameter name)
	// the options under which Build makes the network those tensors fill.
	Sized func(shapes map[string][]int) (ArchOptions, error)
}

// ArchOptions size an architecture; zero values mean its defaults.
type ArchOptions struct {
	// Width is the channel width (fmnist: 128, the paper's; resnet: 16,
	// the first stage's; tiny has none).
	Width int
	// Blocks is resnet's number of basic blocks per stage (1: ResNet-8).
	Blocks int
	// Input is resnet's per-sample input shape [C H W] (3×32×32).
	Input []int
	// Seed seeds the weight initialisation.
	Seed uint64
}

// Architectures is the architecture registry.
func Architectures() []Architecture {
	return []Architecture{
		{Name: "fmnist", Summary: "the paper's Fashion-MNIST network (width 128)",
			Build: func(o ArchOptions) (*Network, error) { return Reference(orDefault(o.Width, 128), o.Seed) },
			Sized: func(shapes map[string][]int) (ArchOptions, error) {
				w, ok := shapes["static_conv.0.weight"]
				if !ok || len(w) != 4 {
					return ArchOptions{}, fmt.Errorf("the state dict has no static_conv.0.weight [w 1 3 3], so it is not the paper's network")
				}
				return ArchOptions{Width: w[0]}, nil
			}},
		{Name: "tiny", Summary: "a small network for quick runs (conv 1→8, conv 8→16, linear 784→64→10)",
			Build: func(o ArchOptions) (*Network, error) { return Tiny(o.Seed) },
			Sized: func(map[string][]int) (ArchOptions, error) { return ArchOptions{}, nil }},
		{Name: "resnet", Summary: "a CIFAR-style ResNet of basic blocks (width 16, 1 block per stage: ResNet-8; input 3×32×32)",
			Build: func(o ArchOptions) (*Network, error) {
				in := o.Input
				if in == nil {
					in = []int{3, 32, 32}
				}
				return ResNet(in, orDefault(o.Width, 16), orDefault(o.Blocks, 1), 10, o.Seed)
			},
			Sized: func(shapes map[string][]int) (ArchOptions, error) {
				w, ok := shapes["conv1.weight"]
				if !ok || len(w) != 4 {
					return ArchOptions{}, fmt.Errorf("the state dict has no conv1.weight [w C 3 3], so it is not proxykit's ResNet")
				}
				blocks := 0
				for ; ; blocks++ {
					if _, ok := shapes[fmt.Sprintf("layer1.%d.conv1.weight", blocks)]; !ok {
						break
					}
				}
				// the state dict does not say the image size: 28×28 for one
				// channel (MNIST), 32×32 otherwise (CIFAR-10)
				hw := 32
				if w[1] == 1 {
					hw = 28
				}
				return ArchOptions{Width: w[0], Blocks: max(blocks, 1), Input: []int{w[1], hw, hw}}, nil
			}},
	}
}

// ArchitectureNamed finds an architecture of the registry.
func ArchitectureNamed(name string) (Architecture, error) {
	var names []string
	for _, a := range Architectures() {
		if a.Name == name {
			return a, nil
		}
		names = append(names, a.Name)
	}
	return Architecture{}, fmt.Errorf("unknown architecture %q: proxykit builds %s", name, strings.Join(names, ", "))
}

// ArchitectureNames lists the registry's names, for help texts.
func ArchitectureNames() string {
	var names []string
	for _, a := range Architectures() {
		names = append(names, a.Name)
	}
	return strings.Join(names, ", ")
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

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

// ResNet builds a CIFAR-style residual network of basic blocks (He, Zhang,
// Ren and Sun, "Deep residual learning for image recognition", 2016, §4.2):
// conv 3×3 to width channels + BN, ReLU; three stages of blocks at width,
// 2·width and 4·width channels, the first block of stages 2 and 3 halving
// the resolution with a projection shortcut (1×1 convolution + BN); global
// average pooling; linear to classes. A block is conv 3×3 + BN, ReLU, conv
// 3×3 + BN, added to the shortcut, ReLU. blocks = 1 is ResNet-8, 3 is
// ResNet-20. in is the per-sample input shape [C, H, W]. Initialised as
// Reference is (no biases in convolutions, as torchvision's).
func ResNet(in []int, width, blocks, classes int, seed uint64) (*Network, error) {
	if len(in) != 3 || in[0] < 1 || in[1] < 4 || in[2] < 4 {
		return nil, fmt.Errorf("input shape %v: want [C H W] of at least 4x4 pixels", in)
	}
	if err := checkIn(in); err != nil {
		return nil, err
	}
	if width < 1 || blocks < 1 || classes < 1 || classes > MaxValuesPerSample {
		return nil, fmt.Errorf("width (%d), blocks per stage (%d) and classes (%d) must be positive, and the classes at most %d", width, blocks, classes, MaxValuesPerSample)
	}
	if err := checkResNetSize(in, width, blocks, classes); err != nil {
		return nil, err
	}
	b := newBuilder(seed)
	net := &Network{Name: fmt.Sprintf("ResNet-%d, width %d", 6*blocks+2, width), InputShape: in}
	add := func(l Layer, inputs ...int) int {
		net.Layers = append(net.Layers, l)
		net.Inputs = append(net.Inputs, inputs)
		return len(net.Layers) - 1
	}
	conv := func(name string, cin, cout, k, stride, from int) int {
		p := (k - 1) / 2
		c := &Conv2d{LayerName: name, Weight: b.uniform(name+".weight", cin*k*k, cout, cin, k, k), SH: stride, SW: stride,
			PT: p, PL: p, PB: p, PR: p, DH: 1, DW: 1}
		return add(c, from)
	}
	bn := func(name string, c, from int) int { return add(b.bn(name, c), from) }
	relu := func(name string, from int) int { return add(&ReLU{LayerName: name}, from) }
	x := conv("conv1", in[0], width, 3, 1, -1)
	x = bn("bn1", width, x)
	x = relu("relu1", x)
	c := width
	for stage := 0; stage < 3; stage++ {
		out := width << stage
		for blk := 0; blk < blocks; blk++ {
			name := fmt.Sprintf("layer%d.%d", stage+1, blk)
			stride := 1
			if stage > 0 && blk == 0 {
				stride = 2
			}
			h := conv(name+".conv1", c, out, 3, stride, x)
			h = bn(name+".bn1", out, h)
			h = relu(name+".relu1", h)
			h = conv(name+".conv2", out, out, 3, 1, h)
			h = bn(name+".bn2", out, h)
			short := x
			if stride != 1 || c != out {
				short = conv(name+".downsample.0", c, out, 1, stride, x)
				short = bn(name+".downsample.1", out, short)
			}
			sum := add(&Add{LayerName: name + ".add"}, h, short)
			x = relu(name+".relu2", sum)
			c = out
		}
	}
	x = add(&GlobalAvgPool{LayerName: "avgpool"}, x)
	x = add(&Flatten{LayerName: "flatten"}, x)
	add(&Linear{LayerName: "fc", Weight: b.uniform("fc.weight", c, classes, c), Bias: b.uniform("fc.bias", c, classes)}, x)
	if _, err := net.Shapes(); err != nil {
		return nil, err
	}
	return net, nil
}

// checkResNetSize refuses, before allocating, a ResNet whose parameters
// (four copies for training) would not fit in memory.
func checkResNetSize(in []int, width, blocks, classes int) error {
	if width > 1<<14 || blocks > 1<<10 {
		return fmt.Errorf("width %d or %d blocks per stage is above the limit (16384, 1024)", width, blocks)
	}
	W, B := int64(width), int64(blocks)
	params := 9*int64(in[0])*W + 9*(W*W+4*W*W+16*W*W)*2*B + 1000*W + 4*W*int64(classes)
	return limits.CheckMemory(fmt.Sprintf("a ResNet of width %d and %d blocks per stage (about %d parameters)", width, blocks, params),
		uint64(params)*16, "choose a smaller --width or fewer --blocks")
}
