package train

import (
	"context"
	"encoding/binary"
	"math"

	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/results"
)

// Data-parallel training (Trainer.Dist; docs/design.md §8): every rank
// runs the same loop over the same global batches — the sample order and
// augmentation draws are functions of (seed, epoch, batch), not of the
// number of ranks — and computes its share of each (distributed.Split). The
// gradients are summed across ranks once per step, so that every rank's
// Adam takes the same step from the same state; the step's loss and
// accuracy counts are summed, the evaluation is split across ranks and its
// counts summed. The position (epoch, batch) counts global batches, so a
// checkpoint resumes on any number of ranks.

// batch is the images of global batch b ([lo, hi) of perm) this trainer
// trains on — all of them in one process, its share under Dist —, the
// number that count (0: one stand-in image for an empty share) and the
// size of the global batch.
func (t *Trainer) batch(perm []int, epoch, b, lo, hi int) (x *nn.Tensor, labels []uint8, real, total int) {
	s, d := t.Settings, t.Train
	sz := d.C * d.H * d.W
	total = hi - lo
	from, to := 0, total
	if t.Dist != nil {
		from, to = distributed.Split(total, t.Dist.Size(), t.Dist.Rank())
	}
	real = to - from
	x = nn.NewTensor(max(real, 1), d.C, d.H, d.W)
	labels = make([]uint8, max(real, 1))
	if real == 0 { // a stand-in: the batch's first image, counted for nothing
		copy(x.Data, d.Image(perm[lo]))
		labels[0] = d.Labels[perm[lo]]
		return x, labels, 0, total
	}
	rng := augmentRNG(s, epoch, b)
	var skip []float32
	if s.Augment && from > 0 {
		skip = make([]float32, sz)
	}
	// the draws of the images before this share are drawn too, and dropped,
	// so that each image gets the draws it gets in one process
	for i, idx := range perm[lo : lo+to] {
		if i < from {
			if s.Augment {
				Augment(rng, d.C, d.H, d.W, d.Image(idx), skip)
			}
			continue
		}
		dst := x.Data[(i-from)*sz : (i-from+1)*sz]
		if s.Augment {
			Augment(rng, d.C, d.H, d.W, d.Image(idx), dst)
		} else {
			copy(dst, d.Image(idx))
		}
		labels[i-from] = d.Labels[idx]
	}
	return x, labels, real, total
}

// step runs one proxy step on a batch from batch() and the optimizer's
// update, and returns the global batch's result: under Dist the share's
// step over the global batch, the gradients' all-reduce and the counts
// summed across ranks.
func (t *Trainer) step(eng *Engine, x *nn.Tensor, labels []uint8, real, total int, batchStats bool) (StepResult, error) {
	if t.Dist == nil {
		r, err := eng.Step(x, labels, batchStats)
		if err != nil {
			return r, err
		}
		return r, t.Opt.Update(eng.Backend, t.ANN.Params())
	}
	t.shard.SetShare(x.Shape[0], real, total)
	r, err := eng.Step(x, labels, batchStats)
	t.shard.EndShare()
	if err == nil {
		err = t.shard.ReduceGradients()
	}
	if err != nil {
		return r, err
	}
	if err := t.Opt.Update(eng.Backend, t.ANN.Params()); err != nil {
		return r, err
	}
	// Σ(counts − onehot)² is a sum of integers, exact in float64: the
	// global loss below has one process's bits
	k := float64(eng.classes)
	sums := []float64{math.Round(r.Loss * float64(x.Shape[0]) * k), float64(r.ANNCorrect), float64(r.SNNCorrect)}
	if real == 0 {
		sums = []float64{0, 0, 0}
	}
	if err := t.Dist.Host().AllReduceF64(sums); err != nil {
		return r, err
	}
	return StepResult{Loss: sums[0] / (float64(total) * k), ANNCorrect: int(sums[1]), SNNCorrect: int(sums[2])}, nil
}

// stopping says whether to stop before the next batch: once ctx is
// cancelled, in one process; under Dist once any rank's is, agreed by all
// so that they stop at the same batch.
func (t *Trainer) stopping(ctx context.Context) (bool, error) {
	stop := ctx.Err() != nil
	if t.Dist == nil {
		return stop, nil
	}
	v := []float64{0}
	if stop {
		v[0] = 1
	}
	if err := t.Dist.Host().AllReduceF64(v); err != nil {
		return false, err
	}
	return v[0] > 0, nil
}

// evaluate is the test set's accuracy: under Dist each rank evaluates its
// share of the test set and the counts are summed. A data-parallel
// evaluation runs to its end (every rank takes part in the sums); an
// interruption stops the run before the next batch.
func (t *Trainer) evaluate(ctx context.Context, eng *Engine) (results.Accuracy, error) {
	if t.Dist == nil {
		return eng.Evaluate(ctx, t.Test)
	}
	if err := t.syncRankStats(); err != nil {
		return results.Accuracy{}, err
	}
	r, err := ShardedReport(context.Background(), eng, t.Test, t.Dist)
	return r.Accuracy, err
}

// syncRankStats gives every rank rank 0's layer state (BatchNorm's running statistics)
// with distributed.RankBN (each rank's own otherwise; with SyncBN they are equal
// already), as PyTorch DDP's broadcast of buffers does.
func (t *Trainer) syncRankStats() error {
	if t.Dist == nil || t.Dist.Options().BatchNorm != distributed.RankBN || t.engine == nil {
		return nil
	}
	states := append(nn.StatefulLayers(t.ANN.Layers), t.SNN.Stateful()...)
	var vals []float32
	for _, st := range states {
		if err := st.SyncState(); err != nil {
			return err
		}
		for _, a := range st.State() {
			vals = append(vals, a.Data...)
		}
	}
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	if err := t.Dist.Host().Broadcast(0, b); err != nil {
		return err
	}
	for i := range vals {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	for _, st := range states {
		for _, a := range st.State() {
			vals = vals[copy(a.Data, vals):]
		}
		st.UploadState()
	}
	return nil
}

// ShardedReport evaluates d split across g's ranks (distributed.Split): each rank
// runs its share on eng, and the counts behind the report — per class, the
// three confusion matrices, ties — are summed across ranks, so that every rank
// gets the whole set's report.
func ShardedReport(ctx context.Context, eng *Engine, d *data.Dataset, g *distributed.Group) (results.Report, error) {
	lo, hi := distributed.Split(d.N, g.Size(), g.Rank())
	sz := d.C * d.H * d.W
	share := *d
	share.N, share.Images, share.Labels = hi-lo, d.Images[lo*sz:hi*sz], d.Labels[lo:hi]
	r, err := eng.Report(ctx, &share)
	if err != nil {
		return r, err
	}
	// the report as counts: exact in float64 and in any order
	k := len(r.ConfusionANN[0])
	count := func(frac float64, n int) float64 { return math.Round(frac * float64(n)) }
	var v []float64
	v = append(v, count(r.SNNTies, r.N), count(r.TieShare, r.N), count(r.SilentShare, r.N))
	for c, ca := range r.Classes {
		v = append(v, float64(ca.N), count(ca.SNNTies, ca.N))
		for j := 0; j < k; j++ {
			v = append(v, float64(r.ConfusionANN[c][j]), float64(r.ConfusionSNN[c][j]), float64(r.ConfusionSNNMembrane[c][j]))
		}
	}
	if err := g.Host().AllReduceF64(v); err != nil {
		return r, err
	}
	n := float64(max(d.N, 1))
	var ann, strict, membrane int
	r.Accuracy = results.Accuracy{N: d.N, SNNTies: v[0] / n, TieShare: v[1] / n, SilentShare: v[2] / n}
	v = v[3:]
	for c := range r.Classes {
		ca := &r.Classes[c]
		ca.N = int(v[0])
		m := float64(max(ca.N, 1))
		ca.SNNTies = v[1] / m
		for j := 0; j < k; j++ {
			r.ConfusionANN[c][j], r.ConfusionSNN[c][j], r.ConfusionSNNMembrane[c][j] = int(v[2+3*j]), int(v[3+3*j]), int(v[4+3*j])
		}
		if c < k {
			ann += r.ConfusionANN[c][c]
			strict += r.ConfusionSNN[c][c]
			membrane += r.ConfusionSNNMembrane[c][c]
			ca.ANN, ca.SNNStrict, ca.SNNMembrane = float64(r.ConfusionANN[c][c])/m, float64(r.ConfusionSNN[c][c])/m, float64(r.ConfusionSNNMembrane[c][c])/m
		} else {
			ca.ANN, ca.SNNStrict, ca.SNNMembrane = 0, 0, 0
		}
		v = v[2+3*k:]
	}
	r.Accuracy.ANN, r.Accuracy.SNNStrict, r.Accuracy.SNNMembrane = float64(ann)/n, float64(strict)/n, float64(membrane)/n
	r.Paper = nil
	if cmp, ok := results.ComparePaper(d.Name, r.Accuracy); ok {
		r.Paper = &cmp
	}
	return r, nil
}
