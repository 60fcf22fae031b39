package compute

import "sync/atomic"

// KernelWork is what one kind of matrix-product kernel of the CPU backend
// did since the backend was created or last reset (CPU.Work): how much of
// its input was non-zero and how much of the dense arithmetic it skipped.
type KernelWork struct {
	// Kernel names the kernel: "conv forward", "linear forward (spikes)"
	// (linear layers called with the hint that their inputs are spikes,
	// the SNN's) or "linear forward (dense)".
	Kernel string
	// Calls counts the kernel's calls; Samples the samples (rows, for a
	// linear layer) they computed, EventSamples those of them that ran
	// event-driven (their share of non-zero inputs was low enough).
	Calls, Samples, EventSamples int64
	// Inputs counts the input values the kernel read, ActiveInputs the
	// non-zero ones (for the dense linear kernel, which does not look,
	// all of them).
	Inputs, ActiveInputs int64
	// DenseMACs is the multiply-adds a dense kernel does for those calls;
	// MACs those this kernel did (an event-driven product does one per
	// weight of an active input that reaches an output).
	DenseMACs, MACs int64
}

// ActiveShare is ActiveInputs/Inputs, the share of non-zero inputs (for a
// product fed by spikes, their firing rate), 0 when there were none.
func (w KernelWork) ActiveShare() float64 {
	if w.Inputs == 0 {
		return 0
	}
	return float64(w.ActiveInputs) / float64(w.Inputs)
}

// Skipped is the share of the dense multiply-adds the kernel did not do.
func (w KernelWork) Skipped() float64 {
	if w.DenseMACs == 0 {
		return 0
	}
	return 1 - float64(w.MACs)/float64(w.DenseMACs)
}

// The kinds of kernel CPU.Work reports, in its order.
const (
	workConv = iota
	workLinearSpikes
	workLinearDense
	workKinds
)

var workNames = [workKinds]string{"conv forward", "linear forward (spikes)", "linear forward (dense)"}

// workCounters accumulate KernelWork per kind; kernels add to them
// atomically.
type workCounters [workKinds]struct {
	calls, samples, events, inputs, active, denseMACs, macs atomic.Int64
}

func (w *workCounters) add(kind int, samples, inputs, active, denseMACs, macs int64, events int) {
	k := &w[kind]
	k.calls.Add(1)
	k.samples.Add(samples)
	k.events.Add(int64(events))
	k.inputs.Add(inputs)
	k.active.Add(active)
	k.denseMACs.Add(denseMACs)
	k.macs.Add(macs)
}

// Work reports, for each kind of matrix-product kernel, the work done
// since the backend was created or since the last ResetWork: inputs and
// non-zero inputs, and the multiply-adds done against those of a dense
// kernel. Over an SNN's run, the convolutions' and the spiking linear
// layers' ActiveShare is their inputs' firing rate and Skipped the share
// of the dense arithmetic the event-driven kernels left out: why the SNN
// runs fast, or not, on this network. Kinds that did not run are left
// out.
func (c *CPU) Work() []KernelWork {
	var out []KernelWork
	for kind := range workKinds {
		k := &c.work[kind]
		if k.calls.Load() == 0 {
			continue
		}
		out = append(out, KernelWork{Kernel: workNames[kind], Calls: k.calls.Load(), Samples: k.samples.Load(),
			EventSamples: k.events.Load(), Inputs: k.inputs.Load(), ActiveInputs: k.active.Load(),
			DenseMACs: k.denseMACs.Load(), MACs: k.macs.Load()})
	}
	return out
}

// ResetWork sets the counters Work reports to zero.
func (c *CPU) ResetWork() {
	for kind := range workKinds {
		k := &c.work[kind]
		for _, v := range []*atomic.Int64{&k.calls, &k.samples, &k.events, &k.inputs, &k.active, &k.denseMACs, &k.macs} {
			v.Store(0)
		}
	}
}
