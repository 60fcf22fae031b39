package exporter

import (
	"fmt"

	"github.com/proxykit/proxykit/nn"
)

// FoldBatchNorm returns a graph (layers in topological order and each
// one's inputs, as nn.Network.Inputs; nil inputs: a chain) with every
// BatchNorm2d folded away by its running statistics: into the convolution
// it reads when nothing else reads that convolution (w' = w·γ/√(var+eps),
// b' = (b − mean)·γ/√(var+eps) + β), else as a 1×1 convolution with
// diagonal weights. Folded layers get new parameters ("<conv>.weight" keeps
// its name, holding folded values); the others are returned as they are.
// at[i] is the new node holding old node i's value (−1 for a convolution
// folded into the BatchNorm that read it; the BatchNorm's node holds the
// folded convolution). The returned inputs are explicit.
func FoldBatchNorm(layers []nn.Layer, inputs [][]int) (out []nn.Layer, outInputs [][]int, at []int, err error) {
	readers := nn.Readers(inputs, len(layers))
	at = make([]int, len(layers))
	newIndex := func(j int) int {
		if j < 0 {
			return -1
		}
		return at[j]
	}
	for i, l := range layers {
		var ins []int
		for _, j := range nn.NodeInputs(inputs, i) {
			ins = append(ins, newIndex(j))
		}
		bn, ok := l.(*nn.BatchNorm2d)
		if !ok {
			at[i] = len(out)
			out, outInputs = append(out, l), append(outInputs, ins)
			continue
		}
		c := len(bn.Gamma.Data)
		if c == 0 {
			return nil, nil, nil, fmt.Errorf("BatchNorm %q has no channels", bn.LayerName)
		}
		src := nn.NodeInputs(inputs, i)[0]
		if src >= 0 && len(readers[src]) == 1 {
			if conv, ok := out[at[src]].(*nn.Conv2d); ok && conv.Weight.Shape[0] == c {
				out[at[src]] = foldInto(conv, bn)
				at[i], at[src] = at[src], -1
				continue
			}
		}
		at[i] = len(out)
		out, outInputs = append(out, bn.AsConv()), append(outInputs, ins)
	}
	return out, outInputs, at, nil
}

// foldInto is conv followed by bn (eval mode), as one convolution.
func foldInto(conv *nn.Conv2d, bn *nn.BatchNorm2d) *nn.Conv2d {
	scale, shift := bn.Affine()
	c := len(scale)
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
	return &folded
}
