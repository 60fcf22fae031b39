package results

// The ways of reading an SNN's output as a class (docs/design.md §1
// Metrics), in one place for evaluation, sweeps and inference.

// FirstMax is the index of the first maximum of v: the ANN's prediction,
// and the SNN's under the reference's per-epoch rule (strict); -1 (no
// class) for an empty v.
func FirstMax(v []float32) int {
	if len(v) == 0 {
		return -1
	}
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// MembraneMax is the SNN's prediction with ties broken by the membrane:
// the class with the most output spikes; among classes tied at that count,
// the one whose output IF neuron ends the simulation with the highest
// membrane potential (its remaining charge: the potential after the last
// step, after any reset); among those, the lowest index. counts and
// potentials are one sample's, one value per class; -1 (no class) when
// counts is empty or potentials is not as long.
func MembraneMax(counts, potentials []float32) int {
	if len(counts) == 0 || len(potentials) != len(counts) {
		return -1
	}
	best := 0
	for i := 1; i < len(counts); i++ {
		if counts[i] > counts[best] || counts[i] == counts[best] && potentials[i] > potentials[best] {
			best = i
		}
	}
	return best
}

// Reading is how one sample's SNN output reads under each rule.
type Reading struct {
	// Strict is the first maximum of the counts.
	Strict int
	// Membrane is MembraneMax.
	Membrane int
	// TiesCorrect says the label's count equals the maximum (the
	// reference notebook's final rule); false when the label is not an
	// output class.
	TiesCorrect bool
	// Tied says two classes or more share the maximum count.
	Tied bool
	// Silent says the output layer did not fire: every count is 0 (so
	// every class ties, and the ties rule counts the sample correct).
	Silent bool
}

// Read reads one sample's counts (and the output layer's final
// potentials; nil reads Membrane as Strict) against its label. Empty
// counts read as no class (-1) under every rule, potentials not as long
// as counts as no class under Membrane.
func Read(counts, potentials []float32, label int) Reading {
	r := Reading{Strict: FirstMax(counts)}
	r.Membrane = r.Strict
	if potentials != nil {
		r.Membrane = MembraneMax(counts, potentials)
	}
	if r.Strict < 0 {
		return r
	}
	top := counts[r.Strict]
	r.TiesCorrect = label >= 0 && label < len(counts) && counts[label] == top
	shared := 0
	for _, c := range counts {
		if c == top {
			shared++
		}
	}
	r.Tied = shared > 1
	r.Silent = top == 0
	return r
}

// Tally adds up Readings over a test set.
type Tally struct {
	N, Strict, Ties, Membrane, Tied, Silent int
}

// Add counts one sample's Reading against its label.
func (t *Tally) Add(r Reading, label int) {
	t.N++
	if r.Strict == label {
		t.Strict++
	}
	if r.TiesCorrect {
		t.Ties++
	}
	if r.Membrane == label {
		t.Membrane++
	}
	if r.Tied {
		t.Tied++
	}
	if r.Silent {
		t.Silent++
	}
}

// Shares are the tally's accuracies (strict, ties, membrane) and tie
// share, over n samples (n ≥ 1 assumed; 0 gives zeros).
func (t Tally) Shares(n int) (strict, ties, membrane, tied float64) {
	if n < 1 {
		return 0, 0, 0, 0
	}
	f := float64(n)
	return float64(t.Strict) / f, float64(t.Ties) / f, float64(t.Membrane) / f, float64(t.Tied) / f
}

// SilentShare is the share of the n samples on which the output layer did
// not fire (0 for n < 1).
func (t Tally) SilentShare(n int) float64 {
	if n < 1 {
		return 0
	}
	return float64(t.Silent) / float64(n)
}
