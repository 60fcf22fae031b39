package results

import (
	"strings"
	"testing"
)

// TestTextWarnsOfSilence: a silent SNN's report, epoch line and paper
// comparison say so in words, and the notebook's rule never stands beside
// the paper's figure without the warning; a firing SNN's print none.
func TestTextWarnsOfSilence(t *testing.T) {
	silent := Accuracy{N: 100, ANN: 0.8, SNNStrict: 0.1, SNNTies: 1, SNNMembrane: 0.1, TieShare: 1, SilentShare: 1}
	firing := Accuracy{N: 100, ANN: 0.8, SNNStrict: 0.7, SNNTies: 0.75, SNNMembrane: 0.72, TieShare: 0.1, SilentShare: 0.02}
	for _, c := range []struct {
		acc  Accuracy
		warn bool
	}{{silent, true}, {firing, false}} {
		var texts []string
		var b strings.Builder
		if err := (EpochStats{Test: c.acc}).WriteText(&b); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, b.String())
		b.Reset()
		if err := (Report{Accuracy: c.acc}).WriteText(&b, "m.ckpt", "mnist", 15, 2); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, b.String())
		b.Reset()
		cmp, _ := ComparePaper("fashion-mnist", c.acc)
		if err := (Report{Accuracy: c.acc, Paper: &cmp}).WriteText(&b, "m.ckpt", "fashion-mnist", 15, 2); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, b.String())
		for _, s := range texts {
			if got := strings.Contains(s, "the SNN is silent on 100.0%"); got != c.warn {
				t.Errorf("warning printed: %v, want %v:\n%s", got, c.warn, s)
			}
			if c.warn && strings.Contains(s, "paper 94.56%") && !strings.Contains(s, "not comparable") {
				t.Errorf("the notebook's rule beside the paper without the warning:\n%s", s)
			}
		}
	}
}
