package train

import (
	"fmt"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// StepResult is what one proxy step measured on its batch.
type StepResult struct {
	Loss       float64 // mean over B×K of (counts − onehot)²
	ANNCorrect int     // argmax of the ANN's output equals the label
	SNNCorrect int     // argmax of the counts (first maximum) equals the label
}

// trainedUpto is how many of the ANN's layers proxy learning runs: all but
// a trailing softmax, which the SNN leaves out too (the counts stand in for
// the output of the layer before it).
func trainedUpto(ann *nn.Network) int {
	n := len(ann.Layers)
	if n > 0 {
		if _, ok := ann.Layers[n-1].(*nn.Softmax); ok {
			return n - 1
		}
	}
	return n
}

// ProxyStep computes the gradients of one proxy-learning step (DESIGN.md §1):
// the ANN's forward pass keeping its activations, the SNN's forward pass on
// the same batch giving counts, the loss on the counts as if they were the
// ANN's output, and backpropagation through the ANN. The caller applies the
// optimizer. batchStats selects BatchNorm's training mode in both networks.
func ProxyStep(ann *nn.Network, snn *spiking.Network, x *nn.Tensor, labels []uint8, batchStats bool) (StepResult, error) {
	var r StepResult
	y, trace, err := ann.ForwardTrain(x, nn.Mode{BatchStats: batchStats}, trainedUpto(ann))
	if err != nil {
		return r, err
	}
	sim, err := snn.Simulate(x, batchStats)
	if err != nil {
		return r, err
	}
	counts := sim.Counts
	b, k := counts.Shape[0], counts.Shape[1]
	if len(labels) != b || len(y.Data) != len(counts.Data) {
		return r, fmt.Errorf("batch of %d labels for %d outputs", len(labels), b)
	}
	dy := nn.NewTensor(b, k)
	scale := float32(2) / float32(b*k)
	for i := 0; i < b; i++ {
		for j := 0; j < k; j++ {
			target := float32(0)
			if int(labels[i]) == j {
				target = 1
			}
			d := counts.Data[i*k+j] - target
			r.Loss += float64(d * d)
			dy.Data[i*k+j] = scale * d
		}
		if argmax(y.Data[i*k:(i+1)*k]) == int(labels[i]) {
			r.ANNCorrect++
		}
		if argmax(counts.Data[i*k:(i+1)*k]) == int(labels[i]) {
			r.SNNCorrect++
		}
	}
	r.Loss /= float64(b * k)
	ann.ZeroGrad()
	trace.Backward(dy)
	return r, nil
}

// argmax is the index of the first maximum.
func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
