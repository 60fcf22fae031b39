package exporter

import (
	"fmt"
	"math"

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
		scale, shift := make([]float32, c), make([]float32, c)
		for i := 0; i < c; i++ {
			s := float64(bn.Gamma.Data[i]) / math.Sqrt(float64(bn.RunningVar[i])+float64(bn.Eps))
			scale[i] = float32(s)
			shift[i] = float32(float64(bn.Beta.Data[i]) - float64(bn.RunningMean[i])*s)
		}
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
		w := make([]float32, c*c)
		for i := 0; i < c; i++ {
			w[i*c+i] = scale[i]
		}
		if c == 0 {
			return nil, fmt.Errorf("BatchNorm %q has no channels", bn.LayerName)
		}
		out = append(out, &nn.Conv2d{LayerName: bn.LayerName, Weight: nn.NewParam(bn.LayerName+".weight", w, c, c, 1, 1),
			Bias: nn.NewParam(bn.LayerName+".bias", shift, c), SH: 1, SW: 1, DH: 1, DW: 1})
	}
	return out, nil
}
