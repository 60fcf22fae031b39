package results_test

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/results"
)

// membraneBySorting is the membrane tie-break as docs/design.md §1 words
// it, by another route: order the classes by count (descending), then by
// final potential (descending), then by index (ascending), and take the
// first.
func membraneBySorting(counts, potentials []float32) int {
	idx := make([]int, len(counts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		i, j := idx[a], idx[b]
		if counts[i] != counts[j] {
			return counts[i] > counts[j]
		}
		if potentials[i] != potentials[j] {
			return potentials[i] > potentials[j]
		}
		return i < j
	})
	return idx[0]
}

// TestReadingRules holds FirstMax, MembraneMax and Read to the rules'
// definitions on random outputs with many ties (small integer counts,
// potentials on a coarse grid, so that both tie).
func TestReadingRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	differ := 0
	for n := 0; n < 20000; n++ {
		k := 1 + rng.IntN(10)
		counts, v := make([]float32, k), make([]float32, k)
		for i := range counts {
			counts[i] = float32(rng.IntN(4))
			v[i] = float32(rng.IntN(5)-1) * 0.5 // below v_reset too
		}
		label := rng.IntN(k + 1) // k: a label that is no output class
		r := results.Read(counts, v, label)
		if want := membraneBySorting(counts, v); r.Membrane != want || results.MembraneMax(counts, v) != want {
			t.Fatalf("counts %v potentials %v: membrane reading %d, want %d", counts, v, r.Membrane, want)
		}
		first, top, shared := -1, float32(-1), 0
		for i, c := range counts {
			if c > top {
				first, top, shared = i, c, 1
			} else if c == top {
				shared++
			}
		}
		if r.Strict != first || results.FirstMax(counts) != first {
			t.Fatalf("counts %v: strict reading %d, want %d", counts, r.Strict, first)
		}
		if want := label < k && counts[label] == top; r.TiesCorrect != want {
			t.Fatalf("counts %v label %d: ties-correct %v", counts, label, r.TiesCorrect)
		}
		if r.Tied != (shared > 1) {
			t.Fatalf("counts %v: tied %v", counts, r.Tied)
		}
		if r.Membrane != r.Strict {
			differ++
		}
		if nil2 := results.Read(counts, nil, label); nil2.Membrane != nil2.Strict {
			t.Fatalf("without potentials the membrane reading must be the strict one")
		}
	}
	if differ == 0 {
		t.Fatal("no case where the tie-break matters")
	}
}

// TestTally adds readings up as the accuracies are defined.
func TestTally(t *testing.T) {
	var ta results.Tally
	// label 1; counts tie between 0 and 1; the membrane favours 1
	ta.Add(results.Read([]float32{3, 3, 1}, []float32{0.5, 1.5, 0}, 1), 1)
	// label 0, clear winner
	ta.Add(results.Read([]float32{4, 1, 1}, []float32{0, 0, 0}, 0), 0)
	// label 2, silent network: all tied, the membrane picks 1
	ta.Add(results.Read([]float32{0, 0, 0}, []float32{0.1, 0.2, 0.1}, 2), 2)
	strict, ties, membrane, tied := ta.Shares(ta.N)
	if ta.N != 3 || strict != 1.0/3 || ties != 1 || membrane != 2.0/3 || tied != 2.0/3 {
		t.Errorf("tally %+v: strict %g ties %g membrane %g tied %g", ta, strict, ties, membrane, tied)
	}
}

// TestSilentShare counts the samples whose every count is 0, and only
// those: a tie of every class that is not all zeros is not silence.
func TestSilentShare(t *testing.T) {
	var ta results.Tally
	ta.Add(results.Read([]float32{0, 0, 0}, nil, 0), 0)
	ta.Add(results.Read([]float32{2, 2, 2}, nil, 1), 1) // tied, not silent
	ta.Add(results.Read([]float32{0, 1, 0}, nil, 1), 1)
	ta.Add(results.Read([]float32{0, 0, 0}, []float32{0.5, 0, 0}, 2), 2)
	if ta.Silent != 2 || ta.SilentShare(ta.N) != 0.5 || ta.Tied != 3 {
		t.Errorf("tally %+v: silent share %g", ta, ta.SilentShare(ta.N))
	}
	if (results.Tally{}).SilentShare(0) != 0 {
		t.Error("the silent share of no samples must be 0")
	}
}

// TestWarningWhenTiesFlatter: the words appear exactly when half or more
// of the predictions are ties or the SNN is silent on half or more of the
// images, and the paper comparison carries them and prints them first.
func TestWarningWhenTiesFlatter(t *testing.T) {
	for _, c := range []struct {
		tie, silent float64
		want        string // in the warning; "" for none
	}{
		{0.1, 0.05, ""},
		{0.49, 0.49, ""},
		{0.5, 0.1, "50.0% of the SNN's predictions on the 1000 test images are ties"},
		{1, 1, "the SNN is silent on 100.0% of the 1000 test images"},
		{0.8, 0.6, "the SNN is silent on 60.0% of the 1000 test images (its output layer never fired, so every class ties), and 80.0% of its predictions are ties"},
	} {
		acc := results.Accuracy{N: 1000, SNNStrict: 0.1, SNNTies: 0.97, SNNMembrane: 0.3, TieShare: c.tie, SilentShare: c.silent}
		w := acc.Warning()
		if c.want == "" {
			if w != "" {
				t.Errorf("ties %g silent %g: warning %q, want none", c.tie, c.silent, w)
			}
		} else if !strings.Contains(w, c.want) || !strings.Contains(w, "97.00%") || !strings.Contains(w, "rewards silence") {
			t.Errorf("ties %g silent %g: warning %q, want one with %q", c.tie, c.silent, w, c.want)
		}
		p, ok := results.ComparePaper("fashion-mnist", acc)
		if !ok || p.Warning != w {
			t.Fatalf("the comparison's warning %q, the accuracy's %q", p.Warning, w)
		}
		lines := p.Lines()
		paperAt := len(lines) - 1
		if !strings.Contains(lines[paperAt], "paper 94.56%") || !strings.Contains(lines[paperAt], "97.00%") {
			t.Errorf("comparison %q", lines)
		}
		if (w != "") != (len(lines) == 2) || w != "" && !strings.Contains(lines[0], w) {
			t.Errorf("warning %q, comparison printed as %q", w, lines)
		}
		sp := results.SweepPoint{SNNStrict: 0.1, SNNTies: 0.97, SNNMembrane: 0.3, TieShare: c.tie, SilentShare: c.silent}
		if sp.Warning(1000) != w {
			t.Errorf("a sweep point's warning %q differs from the accuracy's %q", sp.Warning(1000), w)
		}
	}
	if _, ok := results.ComparePaper("mnist", results.Accuracy{}); ok {
		t.Error("the paper reports no MNIST figure")
	}
}
