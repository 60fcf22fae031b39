package exporter

import (
	"fmt"

	"github.com/proxykit/proxykit/nn"
)

// FoldBatchNorm returns the layers with every BatchNorm2d folded away, using
// its running statistics: into the convolution right before it
// (w' = w·γ/√(var+eps), b' = (b − mean)·γ/√(var+eps) + β), or, where none
// precedes it, as a 1×1 convolution with diagonal weights. Folded layers get
// new parameters ("<conv>.weight" keeps its name, holding folded values);
// the others are returned as they are.
func FoldBatchNorm(layers []nn.Layer) ([]nn.Layer, error) {
	var out []nn.Layer
	for _, l := range layers {
		bn, ok := l.(*nn.BatchNorm2d)
		if !ok {
			out = append(out, l)
			continue
		}
		c := len(bn.Gamma.Data)
		if c == 0 {
			return nil, fmt.Errorf("BatchNorm %q has no channels", bn.LayerName)
		}
		scale, shift := bn.Affine()
		if n := len(out); n > 0 {
			if conv, ok := out[n-1].(*nn.Conv2d); ok && conv.Weight.Shape[0] == c {
				per := nn.Numel(conv.Weight.Shape[1:])
				w := make([]float32, len(conv.Weight.Data))
				b := make([]float32, c)
				for o := 0; o < c; o++ {
					for k := 0; k < per; k++ {
						w[o*per+k] = conv.Weight.Data[o*per+k] * scale[o]
					}
					b[o] = shift[o]
					if conv.Bias != nil {
						b[o] += conv.Bias.Data[o] * scale[o]
					}
				}
				folded := *conv
				folded.Weight = nn.NewParam(conv.Weight.Name, w, conv.Weight.Shape...)
				biasName := conv.LayerName + ".bias"
				if conv.Bias != nil {
					biasName = conv.Bias.Name
				}
				folded.Bias = nn.NewParam(biasName, b, c)
				out[n-1] = &folded
				continue
			}
		}
		out = append(out, bn.AsConv())
	}
	return out, nil
}
