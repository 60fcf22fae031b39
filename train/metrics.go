package train

import (
	"context"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// Accuracy is a test-set evaluation of both networks.
type Accuracy struct {
	N int `json:"n"`
	// ANN is the ANN's accuracy (argmax of its outputs).
	ANN float64 `json:"ann"`
	// SNNStrict counts a sample correct when the first maximum of the
	// counts is its label (the reference's per-epoch figure).
	SNNStrict float64 `json:"snn_strict"`
	// SNNTies counts it correct when the label's count equals the maximum
	// (the reference's final figure): a silent SNN scores 100 %.
	SNNTies float64 `json:"snn_ties"`
	// TieShare is the share of samples whose maximum count is shared by
	// two classes or more.
	TieShare float64 `json:"tie_share"`
}

// Evaluate runs both networks, BatchNorm in eval mode, over a data set.
func Evaluate(ann *nn.Network, snn *spiking.Network, d *Dataset, batch int) (Accuracy, error) {
	return EvaluateContext(context.Background(), ann, snn, d, batch)
}

// EvaluateContext is Evaluate, stopping with ErrInterrupted between batches
// once ctx is cancelled.
func EvaluateContext(ctx context.Context, ann *nn.Network, snn *spiking.Network, d *Dataset, batch int) (Accuracy, error) {
	var a Accuracy
	var annOK, strict, ties, tied int
	sz := d.C * d.H * d.W
	for lo := 0; lo < d.N; lo += batch {
		if ctx.Err() != nil {
			return a, ErrInterrupted
		}
		hi := min(lo+batch, d.N)
		x := &nn.Tensor{Shape: []int{hi - lo, d.C, d.H, d.W}, Data: d.Images[lo*sz : hi*sz]}
		y, err := ann.Forward(x)
		if err != nil {
			return a, err
		}
		res, err := snn.Run(x)
		if err != nil {
			return a, err
		}
		k := res.Counts.Shape[1]
		for i := 0; i < hi-lo; i++ {
			label := int(d.Labels[lo+i])
			if argmax(y.Data[i*k:(i+1)*k]) == label {
				annOK++
			}
			c := res.Counts.Data[i*k : (i+1)*k]
			m := argmax(c)
			if m == label {
				strict++
			}
			if c[label] == c[m] {
				ties++
			}
			shared := 0
			for _, v := range c {
				if v == c[m] {
					shared++
				}
			}
			if shared > 1 {
				tied++
			}
		}
	}
	n := float64(d.N)
	a = Accuracy{N: d.N, ANN: float64(annOK) / n, SNNStrict: float64(strict) / n, SNNTies: float64(ties) / n,
		TieShare: float64(tied) / n}
	return a, nil
}
