package train

import (
	"context"

	"github.com/proxykit/proxykit/compute"
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

// Report is an evaluation in detail: the accuracies, per class, and the
// confusion matrices (rows: the label; columns: the prediction).
type Report struct {
	Accuracy
	Classes []ClassAccuracy `json:"classes"`
	// ConfusionANN counts, per label, the ANN's predictions (argmax).
	ConfusionANN [][]int `json:"confusion_ann"`
	// ConfusionSNN counts, per label, the SNN's strict predictions (the
	// first maximum of the counts).
	ConfusionSNN [][]int `json:"confusion_snn"`
}

// ClassAccuracy is one class's share of the test set and its accuracies.
type ClassAccuracy struct {
	Name      string  `json:"name"`
	N         int     `json:"n"`
	ANN       float64 `json:"ann"`
	SNNStrict float64 `json:"snn_strict"`
	SNNTies   float64 `json:"snn_ties"`
}

// Evaluate runs both networks, BatchNorm in eval mode, over a data set on
// be, batch images at a time.
func Evaluate(be compute.Backend, ann *nn.Network, snn *spiking.Network, d *Dataset, batch int) (Report, error) {
	e, err := NewEngine(be, ann, snn, min(batch, max(d.N, 1)))
	if err != nil {
		return Report{}, err
	}
	defer e.Free()
	return e.Report(context.Background(), d)
}
