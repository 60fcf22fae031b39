package conformance

import (
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/refmath"
)

// surrogate holds the kernels of surrogate-gradient training: IFRecord
// (the IF recurrence keeping each step's potential before the spike) to
// its float32 definition bit for bit and to the backend's own IF, and
// IFSurrogateGrad (its backward pass through time) to its float64
// definition.
func (s *suite) surrogate(t *testing.T) {
	type record struct {
		name             string
		constant, affine bool
		perStep, counts  bool
		threshold, reset float32
		steps, n, c, hw  int
	}
	records := []struct {
		record
		lo, hi float32
	}{
		{record{name: "plain", steps: 9, n: 1500, threshold: 2}, -0.5, 1.5},
		{record{name: "constant input, counts", constant: true, counts: true, steps: 7, n: 700, threshold: 2}, 0, 1},
		{record{name: "reset 0.5, counts", counts: true, steps: 5, n: 333, threshold: 1.5, reset: 0.5}, -1, 2},
		{record{name: "fused affine per step", affine: true, perStep: true, counts: true, steps: 4, n: 3 * 5 * 8, c: 5, hw: 8, threshold: 1}, -1, 1},
		{record{name: "many neurons, counts", counts: true, steps: 3, n: 20011, threshold: 1}, -0.5, 1},
	}
	for _, v := range records {
		t.Run("IFRecord/"+v.name, func(t *testing.T) {
			ss := &suite{t: t, be: s.be, tol: s.tol, rng: s.rng}
			inLen := v.steps * v.n
			if v.constant {
				inLen = v.n
			}
			inH := ss.uniform(inLen, v.lo, v.hi)
			a := compute.IFArgs{Steps: v.steps, N: v.n, Constant: v.constant, Threshold: v.threshold, Reset: v.reset}
			var scH, shH []float32
			if v.affine {
				rows := 1
				if v.perStep {
					rows = v.steps
				}
				scH, shH = ss.uniform(rows*v.c, 0.5, 2), ss.uniform(rows*v.c, -0.5, 0.5)
				a.Scale, a.Shift, a.PerStep, a.C, a.HW = ss.up(scH), ss.up(shH), v.perStep, v.c, v.hw
			}
			vh := make([]float32, v.n)
			for i := range vh {
				vh[i] = v.reset
			}
			want := append([]float32(nil), vh...)
			wantSpikes, wantCounts, wantH := refmath.IFRecord(a, inH, scH, shH, want)
			run := func(record bool) (spikes, pot, counts, h []float32) {
				a := a
				a.In, a.V, a.Spikes = ss.up(inH), ss.up(vh), ss.out(v.steps*v.n)
				if v.counts {
					a.Counts = ss.up(make([]float32, v.n))
				}
				var hb compute.Buffer
				if record {
					hb = ss.out(v.steps * v.n)
					ss.be.IFRecord(a, hb)
					h = ss.down(hb)
				} else {
					ss.be.IF(a)
				}
				spikes, pot = ss.down(a.Spikes), ss.down(a.V)
				if v.counts {
					counts = ss.down(a.Counts)
				}
				ss.free(a.In, a.V, a.Spikes, a.Counts, hb)
				return
			}
			spikes, pot, counts, h := run(true)
			ss.exact("spikes", spikes, wantSpikes)
			ss.exact("potentials", pot, want)
			ss.exact("potentials before the spike", h, wantH)
			if v.counts {
				ss.exact("counts", counts, wantCounts)
			}
			ifSpikes, ifPot, ifCounts, _ := run(false)
			ss.exact("spikes beside the backend's IF", spikes, ifSpikes)
			ss.exact("potentials beside the backend's IF", pot, ifPot)
			if v.counts {
				ss.exact("counts beside the backend's IF", counts, ifCounts)
			}
			ss.free(a.Scale, a.Shift)
		})
	}

	grads := []struct {
		name                        string
		steps, n                    int
		constantGrad, constantInput bool
		detach                      bool
		threshold, reset, alpha     float32
	}{
		{name: "plain", steps: 9, n: 1200, threshold: 2, alpha: 4},
		{name: "output layer (gradient the same at every step)", steps: 15, n: 400, constantGrad: true, threshold: 2, alpha: 4},
		{name: "constant input (summed over the steps)", steps: 6, n: 900, constantInput: true, threshold: 2, alpha: 4},
		{name: "reset detached", steps: 7, n: 500, detach: true, threshold: 2, alpha: 4},
		{name: "reset 0.5, alpha 2, both constant", steps: 5, n: 300, constantGrad: true, constantInput: true, threshold: 1.5, reset: 0.5, alpha: 2},
		{name: "many neurons", steps: 3, n: 20011, threshold: 2, alpha: 4},
		{name: "many neurons, constant input", steps: 3, n: 20011, constantInput: true, threshold: 2, alpha: 4},
	}
	for _, v := range grads {
		t.Run("IFSurrogateGrad/"+v.name, func(t *testing.T) {
			ss := &suite{t: t, be: s.be, tol: s.tol, rng: s.rng}
			// potentials as a forward pass leaves them, some exactly at the
			// threshold (a spike)
			hH := ss.uniform(v.steps*v.n, v.reset-1, v.threshold+1.5)
			for i := 0; i < len(hH); i += 17 {
				hH[i] = v.threshold
			}
			dsLen := v.steps * v.n
			if v.constantGrad {
				dsLen = v.n
			}
			duLen := v.steps * v.n
			if v.constantInput {
				duLen = v.n
			}
			dsH := ss.uniform(dsLen, -1, 1)
			a := compute.IFGradArgs{Steps: v.steps, N: v.n, ConstantGrad: v.constantGrad, ConstantInput: v.constantInput,
				Threshold: v.threshold, Reset: v.reset, Alpha: v.alpha, DetachReset: v.detach}
			want := refmath.IFSurrogateGrad(a, hH, dsH)
			a.H, a.DS, a.DU = ss.up(hH), ss.up(dsH), ss.out(duLen)
			ss.be.IFSurrogateGrad(a)
			ss.check("input gradient", ss.down(a.DU), want, s.tol.Elementwise)
			ss.free(a.H, a.DS, a.DU)
		})
	}
}
