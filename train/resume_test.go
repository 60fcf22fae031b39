package train_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

func newTrainer(t testing.TB, model string, epochs int) *train.Trainer {
	t.Helper()
	s := recipe.Default()
	s.Dataset, s.Epochs, s.BatchSize, s.LR, s.FreezeBNAfter = data.MNIST, epochs, 50, 1e-3, 1
	return proxyTrainer(t, model, s)
}

// proxyTrainer prepares a run on testdata/proxy's IDX set with settings s
// (s.MaxTrain limits the training images).
func proxyTrainer(t testing.TB, modelPath string, s recipe.Settings) *train.Trainer {
	t.Helper()
	m, err := model.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	trainSet, err := data.Load(testutil.Path("proxy"), data.MNIST, true)
	if err != nil {
		t.Fatal(err)
	}
	testSet, err := data.Load(testutil.Path("proxy"), data.MNIST, false)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := m.SNN(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.NewTrainer(s, m.ANN, snn, trainSet.Subset(s.MaxTrain), testSet)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// saveCheckpoint writes tr's checkpoint to path.
func saveCheckpoint(tb testing.TB, tr *train.Trainer, path string) error {
	tb.Helper()
	c, err := tr.Checkpoint()
	if err != nil {
		return err
	}
	return c.Save(path)
}

// state flattens everything a resumed run must reproduce.
func state(tr *train.Trainer) []float32 {
	var out []float32
	for _, p := range tr.ANN.Params() {
		out = append(out, p.Data...)
	}
	for _, st := range append(nn.StatefulLayers(tr.ANN.Layers), tr.SNN.Stateful()...) {
		for _, a := range st.State() {
			out = append(out, a.Data...)
		}
	}
	return out
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if *(*uint32)(unsafe.Pointer(&a[i])) != *(*uint32)(unsafe.Pointer(&b[i])) {
			return false
		}
	}
	return true
}

// TestResumeIsExact: 2 epochs in one run give the same weights and
// statistics as 1 epoch, a checkpoint, a resume and 1 more epoch — and as
// a run interrupted in the middle of an epoch and resumed. Shuffling and
// augmentation are on, BN switches from training to eval mode.
func TestResumeIsExact(t *testing.T) {
	model := testutil.Path("proxy/net.onnx")
	dir := t.TempDir()

	whole := newTrainer(t, model, 2)
	if err := whole.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := state(whole)

	again := newTrainer(t, model, 2)
	if err := again.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sameBits(state(again), want) {
		t.Fatal("two runs with the same seed differ")
	}

	first := newTrainer(t, model, 1)
	if err := first.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(dir, "epoch1.ckpt")
	if err := saveCheckpoint(t, first, ck); err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	second := newTrainer(t, model, 2)
	if err := second.Resume(c); err != nil {
		t.Fatal(err)
	}
	if err := second.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sameBits(state(second), want) {
		t.Error("1 epoch + resume + 1 epoch differs from 2 epochs")
	}
	// the first epoch's record travels in the checkpoint
	if h := second.Progress.History; len(h) != 2 || h[0].Test != whole.Progress.History[0].Test || h[0].TrainLoss != whole.Progress.History[0].TrainLoss {
		t.Errorf("history after resume: %+v", h)
	}

	// Interrupted after 3 batches of the second epoch (as Ctrl-C does).
	ctx, cancel := context.WithCancel(context.Background())
	mid := newTrainer(t, model, 2)
	mid.OnBatch = func(p train.BatchProgress) {
		if p.Epoch == 1 && p.Batch == 3 {
			cancel()
		}
	}
	if err := mid.Run(ctx); err != train.ErrInterrupted {
		t.Fatalf("interrupted run returned %v", err)
	}
	ck2 := filepath.Join(dir, "mid.ckpt")
	if err := saveCheckpoint(t, mid, ck2); err != nil {
		t.Fatal(err)
	}
	c2, err := checkpoint.Load(ck2)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Progress.Epoch != 1 || c2.Progress.Batch != 3 {
		t.Fatalf("checkpoint at epoch %d batch %d, want 1, 3", c2.Progress.Epoch, c2.Progress.Batch)
	}
	rest := newTrainer(t, model, 2)
	if err := rest.Resume(c2); err != nil {
		t.Fatal(err)
	}
	if err := rest.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sameBits(state(rest), want) {
		t.Error("a run interrupted mid-epoch and resumed differs from an uninterrupted one")
	}
	// Interrupted during the first epoch's evaluation: the resumed run
	// evaluates and carries on.
	ctx3, cancel3 := context.WithCancel(context.Background())
	atEval := newTrainer(t, model, 2)
	atEval.OnBatch = func(p train.BatchProgress) {
		if p.Epoch == 0 && p.Batch == p.Batches {
			cancel3()
		}
	}
	if err := atEval.Run(ctx3); err != train.ErrInterrupted {
		t.Fatalf("run interrupted before evaluation returned %v", err)
	}
	if atEval.Progress.Epoch != 0 || atEval.Progress.Batch != atEval.Batches() {
		t.Fatalf("stopped at epoch %d batch %d", atEval.Progress.Epoch, atEval.Progress.Batch)
	}
	ck3 := filepath.Join(dir, "eval.ckpt")
	if err := saveCheckpoint(t, atEval, ck3); err != nil {
		t.Fatal(err)
	}
	c3, err := checkpoint.Load(ck3)
	if err != nil {
		t.Fatal(err)
	}
	fin := newTrainer(t, model, 2)
	if err := fin.Resume(c3); err != nil {
		t.Fatal(err)
	}
	if err := fin.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sameBits(state(fin), want) || fin.Progress.History[0].Test != whole.Progress.History[0].Test {
		t.Error("a run interrupted during evaluation and resumed differs from an uninterrupted one")
	}

	last := rest.Progress.History[1]
	if last.TrainLoss != whole.Progress.History[1].TrainLoss {
		t.Errorf("epoch 1 train loss after a mid-epoch resume %g, uninterrupted %g", last.TrainLoss, whole.Progress.History[1].TrainLoss)
	}
}

// TestCheckpointIsAModel: a checkpoint loads wherever a model does, with
// the SNN's own BN statistics, and gives the trained network's outputs.
func TestCheckpointIsAModel(t *testing.T) {
	tr := newTrainer(t, testutil.Path("proxy/net.onnx"), 1)
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := saveCheckpoint(t, tr, path); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	x := testutil.Array(t, "proxy/x.npy")
	y0, _ := lower.Forward(compute.NewCPU(), tr.ANN, x, 0)
	y1, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(y0.Data, y1.Data) {
		t.Error("the checkpoint's ANN gives other outputs")
	}
	snn, err := m.SNN(tr.Settings.Config)
	if err != nil {
		t.Fatal(err)
	}
	r0, _ := tr.SNN.Run(x)
	r1, err := snn.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(r0.Counts.Data, r1.Counts.Data) {
		t.Error("the checkpoint's SNN gives other counts")
	}
	// The SNN's statistics are its own, not the ANN's. (The static input
	// layer's BN sees the same analog input in both, so look further in.)
	annBN := nn.StatefulLayers(m.ANN.Layers)[1].(*nn.BatchNorm2d)
	snnBN := snn.Stateful()[1].(*nn.BatchNorm2d)
	if annBN.LayerName != "conv.2" {
		t.Fatalf("second ANN BN layer is %q", annBN.LayerName)
	}
	if snnBN.LayerName != "conv.2" {
		t.Fatalf("second SNN BN layer is %q", snnBN.LayerName)
	}
	if sameBits(annBN.RunningMean, snnBN.RunningMean) {
		t.Error("after a BN-training epoch the SNN's statistics equal the ANN's: they were not kept apart")
	}
}

func TestResumeRefusesOtherArchitecture(t *testing.T) {
	tr := newTrainer(t, testutil.Path("proxy/net.onnx"), 1)
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := saveCheckpoint(t, tr, path); err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	other, err := nn.Reference(8, 1)
	if err != nil {
		t.Fatal(err)
	}
	tr2 := newTrainer(t, testutil.Path("proxy/net.onnx"), 1)
	tr2.ANN = other
	if err := tr2.Resume(c); err == nil {
		t.Error("resumed a width-4 checkpoint into a width-8 network")
	}
}

// FuzzDecodeCheckpoint: a damaged checkpoint is refused, never a panic,
// and one that decodes builds a network whose shapes check.
func FuzzDecodeCheckpoint(f *testing.F) {
	tr := newTrainer(f, testutil.Path("proxy/net.onnx"), 1)
	path := filepath.Join(f.TempDir(), "c.ckpt")
	if err := saveCheckpoint(f, tr, path); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	// a branching network's checkpoint: its layers carry their inputs
	g := newTrainer(f, testutil.Path("graph/resnet_tiny.onnx"), 1)
	gpath := filepath.Join(f.TempDir(), "g.ckpt")
	if err := saveCheckpoint(f, g, gpath); err != nil {
		f.Fatal(err)
	}
	if b, err = os.ReadFile(gpath); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := checkpoint.Decode(data)
		if err != nil {
			return
		}
		if net, err := c.Network("fuzz"); err == nil {
			if _, err := net.Shapes(); err != nil {
				t.Fatalf("built a network whose shapes do not check: %v", err)
			}
		}
	})
}

// TestBranchingResumeIsExact: a branching network's checkpoint (layers with
// their inputs) resumes to the same bits as an uninterrupted run.
func TestBranchingResumeIsExact(t *testing.T) {
	model := testutil.Path("graph/resnet_tiny.onnx")
	whole := newTrainer(t, model, 2)
	if err := whole.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := newTrainer(t, model, 1)
	if err := first.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(t.TempDir(), "g.ckpt")
	if err := saveCheckpoint(t, first, ck); err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	if net, err := c.Network(ck); err != nil || net.IsChain() {
		t.Fatalf("the checkpoint's network (%v) lost its branches", err)
	}
	second := newTrainer(t, model, 2)
	if err := second.Resume(c); err != nil {
		t.Fatal(err)
	}
	if err := second.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sameBits(state(second), state(whole)) {
		t.Error("1 epoch + resume + 1 epoch differs from 2 epochs")
	}
}

// FuzzCheckpointMetadata mutates a checkpoint's metadata — settings,
// progress and history, Adam's state, architecture, notes: the JSON a user
// can edit by hand — around real tensors: the checkpoint is refused with an
// error, or it resumes into a trainer and plots, never a panic.
func FuzzCheckpointMetadata(f *testing.F) {
	tr := newTrainer(f, testutil.Path("proxy/net.onnx"), 1)
	path := filepath.Join(f.TempDir(), "c.ckpt")
	if err := saveCheckpoint(f, tr, path); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		f.Fatal(err)
	}
	var meta map[string]string
	if err := json.Unmarshal(header["__metadata__"], &meta); err != nil {
		f.Fatal(err)
	}
	keys := []string{"settings", "progress", "adam", "arch", "notes"}
	f.Add(meta["settings"], meta["progress"], meta["adam"], meta["arch"], `{"a":"b"}`)
	f.Add(strings.Replace(meta["settings"], `"lr":0.0001`, `"lr":-0.5`, 1), meta["progress"], strings.Replace(meta["adam"], `"step":`, `"step":9`, 1), meta["arch"], "")
	f.Add(meta["settings"], strings.Replace(meta["progress"], `"epoch":1`, `"epoch":1000000000000`, 1), meta["adam"], meta["arch"], "null")
	f.Fuzz(func(t *testing.T, settings, progress, adam, arch, notes string) {
		m := map[string]string{"format": checkpoint.Format}
		for i, v := range []string{settings, progress, adam, arch, notes} {
			if v != "" {
				m[keys[i]] = v
			}
		}
		mb, _ := json.Marshal(m)
		h := map[string]json.RawMessage{}
		for k, v := range header {
			h[k] = v
		}
		h["__metadata__"] = mb
		hb, _ := json.Marshal(h)
		file := binary.LittleEndian.AppendUint64(nil, uint64(len(hb)))
		file = append(append(file, hb...), b[8+n:]...)
		c, err := checkpoint.Decode(file)
		if err != nil {
			return
		}
		net, err := c.Network("fuzz")
		if err != nil {
			return
		}
		snn, err := spiking.New(net, c.Settings.Config)
		if err != nil {
			return
		}
		_ = c.CheckResumable(net, snn, 1+c.Progress.Batch)
		_ = plots.CheckHistory(c.Progress.History)
	})
}
