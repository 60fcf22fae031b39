package results

import "fmt"

// The paper's Fashion-MNIST result and the reference notebook's rules for
// reading it (SRKH/ProxyLearning, code cell; docs/design.md §7).
const (
	// PaperFashionMNIST is the SNN accuracy the paper reports on
	// Fashion-MNIST (arXiv 2109.13208, T = 15).
	PaperFashionMNIST = 0.9456
	// ReleasedFashionMNIST is the authors' released pretrained model's
	// accuracy under the notebook's final rule (the output saved in the
	// repository's first notebook upload).
	ReleasedFashionMNIST = 0.9337
	// NotebookFinalRule says how the reference notebook's final figure,
	// and so the paper's and the released model's, counts a sample; its
	// per-epoch figure is the first maximum (strict).
	NotebookFinalRule = "correct when the label's count equals the maximum count (ties count), last epoch's model"
)

// PaperComparison sets an SNN's test accuracy beside the paper's, each
// figure under the rule it was measured with.
type PaperComparison struct {
	Dataset string `json:"dataset"`
	// NotebookFinal is the accuracy under the notebook's final rule
	// (ties count: Accuracy.SNNTies), the rule of the paper's and the
	// released model's figures.
	NotebookFinal float64 `json:"snn_notebook_final_rule"`
	// Strict is the notebook's per-epoch rule (Accuracy.SNNStrict);
	// Membrane breaks ties by the output layer's membrane potential
	// (Accuracy.SNNMembrane), a reading that needs no tie credit.
	Strict   float64 `json:"snn_strict"`
	Membrane float64 `json:"snn_membrane"`
	// Paper and ReleasedModel are the paper's figure and the released
	// pretrained model's, both under the notebook's final rule.
	Paper         float64 `json:"paper"`
	ReleasedModel float64 `json:"released_model_notebook_final_rule"`
	// Rule is NotebookFinalRule.
	Rule string `json:"notebook_final_rule"`
	// Warning is Accuracy.Warning: set when the notebook's rule flatters
	// this SNN (half or more ties, or silent on half or more of the
	// images), and then printed with the comparison (Lines).
	Warning string `json:"warning,omitempty"`
}

// Lines is the comparison as text: the notebook-rule figure beside the
// paper's and the released model's, with strict and membrane; preceded by
// the warning when the notebook's rule flatters the SNN, so that the
// figure never stands beside the paper's without it.
func (p PaperComparison) Lines() []string {
	line := fmt.Sprintf("notebook's final rule (ties count) %.2f%% — paper %.2f%%, released model %.2f%% (same rule); strict %.2f%%, membrane %.2f%%",
		100*p.NotebookFinal, 100*p.Paper, 100*p.ReleasedModel, 100*p.Strict, 100*p.Membrane)
	if p.Warning == "" {
		return []string{line}
	}
	return []string{"warning: " + p.Warning, line + " — not comparable: see the warning"}
}

// ComparePaper sets acc beside the paper's figure for the data set, if the
// paper reports one (Fashion-MNIST, named "fashion-mnist").
func ComparePaper(dataset string, acc Accuracy) (PaperComparison, bool) {
	if dataset != "fashion-mnist" {
		return PaperComparison{}, false
	}
	return PaperComparison{Dataset: dataset, NotebookFinal: acc.SNNTies, Strict: acc.SNNStrict, Membrane: acc.SNNMembrane,
		Paper: PaperFashionMNIST, ReleasedModel: ReleasedFashionMNIST, Rule: NotebookFinalRule, Warning: acc.Warning()}, true
}
