package train_test

import (
	"context"
	"os"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/train"
)

// TestFashionMNISTProxyLearning trains on the paper's data set: proxykit's
// tiny network with PyTorch's initialisation (testdata/fmnist_recipe_tiny.onnx),
// 10,000 Fashion-MNIST training images, 2 epochs, the reference's recipe
// with Adam at lr 2e-3, scored on 1,000 test images. PyTorch running the
// same recipe on the same data stream (scripts/make_recipe_fixture.sh)
// reached 67.1 % SNN strict (78.5 % ANN); with seeds 1 and 2 (other
// weights and stream) 69.0 and 71.5 %. The floor, 60 %, is PyTorch's
// lowest less 7 points: about three times that seed-to-seed spread, since
// the counts of a float32 run are chaotic and proxykit's run is another
// sample of the same recipe, not PyTorch's bits.
func TestFashionMNISTProxyLearning(t *testing.T) {
	if _, err := os.Stat(data.FashionMNISTDir); err != nil {
		t.Fatalf("%s is missing: install Debian's dataset-fashion-mnist (scripts/setup.sh does)", data.FashionMNISTDir)
	}
	m, err := model.Load(testutil.Path("fmnist_recipe_tiny.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s := recipe.Default()
	s.Dataset, s.Epochs, s.LR, s.MaxTrain, s.MaxTest = data.FashionMNIST, 2, 2e-3, 10000, 1000
	trainSet, err := data.Load(data.FashionMNISTDir, s.Dataset, true)
	if err != nil {
		t.Fatal(err)
	}
	testSet, err := data.Load(data.FashionMNISTDir, s.Dataset, false)
	if err != nil {
		t.Fatal(err)
	}
	snn, err := m.SNN(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.NewTrainer(s, m.ANN, snn, trainSet.Subset(s.MaxTrain), testSet.Subset(s.MaxTest))
	if err != nil {
		t.Fatal(err)
	}
	tr.OnEpoch = func(st results.EpochStats) error {
		t.Logf("epoch %d (BN %s): loss %.4f | test SNN strict %.1f %%, ties %.1f %%, membrane tie-break %.1f %%, ANN %.1f %%, tied %.1f %% | %.0f images/s",
			st.Epoch, st.BNMode, st.TrainLoss, 100*st.Test.SNNStrict, 100*st.Test.SNNTies, 100*st.Test.SNNMembrane, 100*st.Test.ANN,
			100*st.Test.TieShare, st.ImagesPerSec)
		if st.Paper == nil || st.Paper.NotebookFinal != st.Test.SNNTies || st.Paper.Paper != results.PaperFashionMNIST {
			t.Errorf("epoch %d: the paper comparison %+v does not carry the ties rule's figure", st.Epoch, st.Paper)
		}
		return nil
	}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	final := tr.Progress.History[len(tr.Progress.History)-1].Test
	if final.SNNStrict < 0.60 {
		t.Errorf("SNN strict test accuracy %.1f %% < 60 %%", 100*final.SNNStrict)
	}
}

// TestReportAddsUp: the per-class accuracies and the confusion matrices of
// eval's report agree with the totals (rows sum to each class's images,
// diagonals to the correct predictions), and carry the data set's names.
func TestReportAddsUp(t *testing.T) {
	m, err := model.Load(testutil.Path("proxy/net.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := data.Load(testutil.Path("proxy"), data.MNIST, false)
	if err != nil {
		t.Fatal(err)
	}
	d.Name = data.FashionMNIST // the names only
	snn, err := m.SNN(recipe.Default().Config)
	if err != nil {
		t.Fatal(err)
	}
	r, err := train.Evaluate(context.Background(), compute.NewCPU(), m.ANN, snn, d, 50)
	if err != nil {
		t.Fatal(err)
	}
	if r.Classes[9].Name != "Ankle boot" || r.Classes[0].Name != "T-shirt/top" {
		t.Errorf("class names %q … %q", r.Classes[0].Name, r.Classes[9].Name)
	}
	total, annDiag, snnDiag, memDiag := 0, 0, 0, 0
	for c, cl := range r.Classes {
		rowA, rowS, rowM := 0, 0, 0
		for j := range r.ConfusionANN[c] {
			rowA += r.ConfusionANN[c][j]
			rowS += r.ConfusionSNN[c][j]
			rowM += r.ConfusionSNNMembrane[c][j]
		}
		if rowA != cl.N || rowS != cl.N || rowM != cl.N {
			t.Errorf("class %d: %d images, confusion rows sum to %d (ANN), %d (SNN) and %d (SNN, membrane)", c, cl.N, rowA, rowS, rowM)
		}
		if got := float64(r.ConfusionSNN[c][c]) / float64(max(cl.N, 1)); got != cl.SNNStrict {
			t.Errorf("class %d: SNN strict %.4f, diagonal says %.4f", c, cl.SNNStrict, got)
		}
		if got := float64(r.ConfusionSNNMembrane[c][c]) / float64(max(cl.N, 1)); got != cl.SNNMembrane {
			t.Errorf("class %d: SNN membrane %.4f, diagonal says %.4f", c, cl.SNNMembrane, got)
		}
		total += cl.N
		annDiag += r.ConfusionANN[c][c]
		snnDiag += r.ConfusionSNN[c][c]
		memDiag += r.ConfusionSNNMembrane[c][c]
	}
	if total != d.N || float64(annDiag)/float64(d.N) != r.ANN || float64(snnDiag)/float64(d.N) != r.SNNStrict ||
		float64(memDiag)/float64(d.N) != r.SNNMembrane {
		t.Errorf("totals: %d images of %d, ANN %.4f vs %.4f, SNN %.4f vs %.4f, membrane %.4f vs %.4f", total, d.N,
			float64(annDiag)/float64(d.N), r.ANN, float64(snnDiag)/float64(d.N), r.SNNStrict, float64(memDiag)/float64(d.N), r.SNNMembrane)
	}
	if r.Paper == nil || r.Paper.NotebookFinal != r.SNNTies || r.Paper.Strict != r.SNNStrict || r.Paper.Membrane != r.SNNMembrane {
		t.Errorf("the paper comparison %+v does not carry the report's figures", r.Paper)
	}
}
