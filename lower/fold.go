package lower

import (
	"fmt"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// FoldBatchNorm is the rule that folds every BatchNorm away by its running
// statistics (BatchNorm in eval mode): into the convolution or linear
// layer it reads when nothing else reads that layer (w' = w·γ/√(var+eps),
// b' = (b − mean)·γ/√(var+eps) + β, per output channel or feature), else
// as an Affine layer of its per-channel map (nn.BatchNorm2d.Affine). It rewrites a network's nodes before they are lowered, so it
// changes the parameters' rounding: the exporters write the folded
// network (ONNX with folding, the unrolled SNN, NIR), and a program
// lowered with it computes what they wrote. Folded layers get new
// parameters ("<conv>.weight" keeps its name, holding folded values).
func FoldBatchNorm() Rule {
	return Rule{Name: "fold BatchNorm",
		Why:    "a BatchNorm in eval mode is an affine map per channel: folded into the convolution or linear layer before it, it costs nothing",
		Passes: []program.PassKind{program.ANNForward, program.SNNStatic, program.SNNChunk}, Graph: Fold}
}

// Fold returns nodes with every BatchNorm folded away (FoldBatchNorm) and
// at[i], the node now holding old node i's value (−1 for a convolution or
// linear layer folded into the BatchNorm that read it; the BatchNorm's node holds the
// folded convolution). Inputs in the result are explicit.
func Fold(nodes []Node) (out []Node, at []int, places int, err error) {
	inputs := make([][]int, len(nodes))
	for i, nd := range nodes {
		if nd.Layer == nil || len(nd.Inputs) == 0 {
			return nil, nil, 0, fmt.Errorf("node %d has no layer or no input", i)
		}
		for _, j := range nd.Inputs {
			if j < -1 || j >= i {
				return nil, nil, 0, fmt.Errorf("node %d reads node %d, which is not an earlier node or the input", i, j)
			}
		}
		inputs[i] = nd.Inputs
	}
	readers := nn.Readers(inputs, len(nodes))
	at = make([]int, len(nodes))
	moved := func(j int) int {
		if j < 0 {
			return -1
		}
		return at[j]
	}
	for i, nd := range nodes {
		var ins []int
		for _, j := range nd.Inputs {
			ins = append(ins, moved(j))
		}
		bn, ok := nd.Layer.(*nn.BatchNorm2d)
		if !ok {
			at[i] = len(out)
			nd.Inputs = ins
			out = append(out, nd)
			continue
		}
		if bn.Gamma == nil || len(bn.Gamma.Data) == 0 || len(bn.RunningMean) != len(bn.Gamma.Data) || len(bn.RunningVar) != len(bn.Gamma.Data) {
			return nil, nil, 0, fmt.Errorf("BatchNorm %q has no channels or statistics that do not match them", bn.LayerName)
		}
		if err := nn.ValidateLayers([]nn.Layer{bn}); err != nil {
			return nil, nil, 0, fmt.Errorf("BatchNorm %q: %w", bn.LayerName, err)
		}
		places++
		src := nd.Inputs[0]
		if src >= 0 && len(readers[src]) == 1 && !nodes[src].IF {
			if l, ok := foldInto(out[at[src]].Layer, bn); ok {
				out[at[src]].Layer = l
				at[i], at[src] = at[src], -1
				continue
			}
		}
		at[i] = len(out)
		out = append(out, Node{Layer: bn.AsAffine(), Inputs: ins})
	}
	return out, at, places, nil
}

// foldInto is l, a convolution or linear layer of as many outputs as bn
// has channels, followed by bn (eval mode), as one layer of its kind;
// false for any other l.
func foldInto(l nn.Layer, bn *nn.BatchNorm2d) (nn.Layer, bool) {
	switch l := l.(type) {
	case *nn.Conv2d:
		folded := *l
		return &folded, foldParams(&folded, &folded.Weight, &folded.Bias, folded.LayerName, bn)
	case *nn.Linear:
		folded := *l
		return &folded, foldParams(&folded, &folded.Weight, &folded.Bias, folded.LayerName, bn)
	}
	return nil, false
}

// foldParams replaces the weight *w and bias *bias (nil: none) of l, a
// valid layer called name with one output channel per channel of bn, by
// bn folded in — each output's weights times its scale, its bias times its
// scale plus its shift — and reports whether l was such a layer.
func foldParams(l nn.Layer, w, bias **nn.Param, name string, bn *nn.BatchNorm2d) bool {
	scale, shift := bn.Affine()
	c := len(scale)
	if nn.ValidateLayers([]nn.Layer{l}) != nil || *w == nil || len((*w).Shape) == 0 || (*w).Shape[0] != c {
		return false
	}
	per := nn.Numel((*w).Shape[1:])
	wd := make([]float32, len((*w).Data))
	b := make([]float32, c)
	for o := 0; o < c; o++ {
		for k := 0; k < per; k++ {
			wd[o*per+k] = (*w).Data[o*per+k] * scale[o]
		}
		b[o] = shift[o]
		if *bias != nil {
			b[o] += (*bias).Data[o] * scale[o]
		}
	}
	biasName := name + ".bias"
	if *bias != nil {
		biasName = (*bias).Name
	}
	*w, *bias = nn.NewParam((*w).Name, wd, (*w).Shape...), nn.NewParam(biasName, b, c)
	return true
}

// FoldSNN is an SNN with its own BatchNorm statistics folded (Fold): its
// nodes and how many of them are the static input layer.
func FoldSNN(s SNN) (SNN, error) {
	if s.Static < 0 || s.Static > len(s.Nodes) {
		return s, fmt.Errorf("static input layer of %d nodes in an SNN of %d", s.Static, len(s.Nodes))
	}
	nodes, at, _, err := Fold(s.Nodes)
	if err != nil {
		return s, err
	}
	static := 0
	for i := 0; i < s.Static; i++ {
		if at[i] >= 0 {
			static = at[i] + 1
		}
	}
	s.Nodes, s.Static = nodes, static
	return s, nil
}
