package train_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/distributed"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

// surrogateCase is a case of testdata/surrogate (scripts/make_surrogate_fixtures.py):
// one surrogate-gradient step of a network in plain PyTorch, written from
// docs/design.md §1's semantics.
type surrogateCase struct {
	Net         string    `json:"net"`
	Names       []string  `json:"names"`
	Sizes       []int     `json:"sizes"`
	T           int       `json:"T"`
	Threshold   float32   `json:"threshold"`
	Reset       float32   `json:"reset"`
	Charge      float32   `json:"initial_charge"`
	Alpha       float32   `json:"alpha"`
	LR          float32   `json:"lr"`
	Batch       int       `json:"batch"`
	DetachReset bool      `json:"detach_reset"`
	BatchStats  bool      `json:"batch_stats"`
	Margin      float64   `json:"margin"`
	Rates       []float64 `json:"rates"`
}

// surrogateFixture is a case with its network on be, ready to step.
type surrogateFixture struct {
	surrogateCase
	name   string
	params []*nn.Param // in the fixture's order
	eng    *train.Engine
	x      *nn.Tensor
	labels []uint8
}

func loadSurrogate(t *testing.T, be compute.Backend, name string) *surrogateFixture {
	t.Helper()
	f := &surrogateFixture{name: name}
	b, err := os.ReadFile(testutil.Path("surrogate/" + name + ".params.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &f.surrogateCase); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(testutil.Path("surrogate/" + f.Net + ".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*nn.Param{}
	for _, p := range m.ANN.Params() {
		byName[p.Name] = p
	}
	for i, n := range f.Names {
		p := byName[n]
		if p == nil || len(p.Data) != f.Sizes[i] {
			t.Fatalf("the fixture's parameter %s (%d values) is not the network's", n, f.Sizes[i])
		}
		f.params = append(f.params, p)
	}
	if len(f.params) != len(m.ANN.Params()) {
		t.Fatalf("the fixture has %d parameters, the network %d", len(f.params), len(m.ANN.Params()))
	}
	snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: f.T, Threshold: f.Threshold, Reset: f.Reset, InitialCharge: f.Charge})
	if err != nil {
		t.Fatal(err)
	}
	f.eng, err = train.NewMethodEngine(be, m.ANN, snn, f.Batch, train.Method{Surrogate: &lower.Surrogate{Alpha: f.Alpha, DetachReset: f.DetachReset}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.eng.Free(); snn.Release() })
	f.x = testutil.Array(t, "surrogate/"+f.Net+".x.npy")
	for _, v := range testutil.Array(t, "surrogate/"+f.Net+".labels.npy").Data {
		f.labels = append(f.labels, uint8(v))
	}
	return f
}

// step runs one surrogate step on batch k and returns every parameter's
// gradient, in the fixture's order.
func (f *surrogateFixture) step(t *testing.T, k int) [][]float32 {
	t.Helper()
	n, sz := f.Batch, nn.Numel(f.x.Shape[1:])
	x := &nn.Tensor{Shape: append([]int{n}, f.x.Shape[1:]...), Data: f.x.Data[k*n*sz : (k+1)*n*sz]}
	if _, err := f.eng.Step(x, f.labels[k*n:(k+1)*n], f.BatchStats); err != nil {
		t.Fatal(err)
	}
	var grads [][]float32
	for _, p := range f.params {
		g, err := p.Grad()
		if err != nil {
			t.Fatal(err)
		}
		grads = append(grads, g)
	}
	return grads
}

// compare holds got to the fixture's arrays, tensor by tensor: max |got −
// want| ≤ 1e-4 × max |want|.
func (f *surrogateFixture) compare(t *testing.T, what string, got [][]float32, file string) {
	t.Helper()
	want := testutil.Array(t, "surrogate/"+file).Data
	off := 0
	for i, g := range got {
		w := want[off : off+len(g)]
		off += len(g)
		var worst, scale float64
		for j := range g {
			worst = math.Max(worst, math.Abs(float64(g[j])-float64(w[j])))
			scale = math.Max(scale, math.Abs(float64(w[j])))
		}
		if scale == 0 {
			t.Errorf("%s %s: the reference is all zeros; the fixture tests nothing there", what, f.Names[i])
			continue
		}
		if worst > 1e-4*scale {
			t.Errorf("%s %s: max |difference| %.3g is %.3g of max |reference| %.3g (allowed 1e-4)", what, f.Names[i], worst, worst/scale, scale)
		} else if testing.Verbose() {
			t.Logf("%s %s: max |difference| %.3g of max |reference| %.3g", what, f.Names[i], worst/scale, scale)
		}
	}
	if off != len(want) {
		t.Fatalf("%s: %d values, the fixture has %d", what, off, len(want))
	}
}

// TestSurrogateGradientsMatchPyTorch: one surrogate-gradient step's
// gradients, before any optimizer, equal a plain-PyTorch BPTT reference
// (scripts/make_surrogate_fixtures.py) per tensor within 1e-4 of the
// reference's largest value, on the paper's network at width 4 (BatchNorm
// in training and in eval mode, the reset kept in the gradient and
// detached), on a residual network, and on the paper's network with every
// IF neuron starting charged halfway to v_th; then three steps of plain SGD land
// on the reference's weights within the same bound. On the CPU and on the
// emulated CUDA device.
func TestSurrogateGradientsMatchPyTorch(t *testing.T) {
	emu, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, be := range []compute.Backend{compute.NewCPU(), emu} {
		for _, name := range []string{"paper", "paper_detach", "paper_eval", "resnet", "paper_charged"} {
			t.Run(fmt.Sprintf("%s/%s", be.Name(), name), func(t *testing.T) {
				f := loadSurrogate(t, be, name)
				f.compare(t, "gradient of", f.step(t, 0), name+".grads.npy")
				if _, err := os.Stat(testutil.Path("surrogate/" + name + ".sgd3.npy")); err != nil {
					return // a case of gradients only
				}
				f = loadSurrogate(t, be, name) // from the start again
				var before [][]float32
				for _, p := range f.params {
					before = append(before, append([]float32(nil), p.Data...))
				}
				for k := 0; k < 3; k++ {
					grads := f.step(t, k)
					for i, p := range f.params {
						if err := p.Sync(); err != nil {
							t.Fatal(err)
						}
						for j, g := range grads[i] {
							p.Data[j] -= f.LR * g
						}
						p.Upload()
					}
				}
				var after [][]float32
				for _, p := range f.params {
					if err := p.Sync(); err != nil {
						t.Fatal(err)
					}
					after = append(after, p.Data)
				}
				f.compare(t, "after 3 SGD steps:", after, name+".sgd3.npy")
				// the steps must move the weights well beyond the bound, or
				// the comparison proves nothing
				moved := 0.0
				for i, a := range after {
					var d, scale float64
					for j := range a {
						d = math.Max(d, math.Abs(float64(a[j])-float64(before[i][j])))
						scale = math.Max(scale, math.Abs(float64(a[j])))
					}
					moved = math.Max(moved, d/scale)
				}
				t.Logf("3 SGD steps moved a tensor by up to %.3g of its largest weight (the bound is 1e-4)", moved)
				if moved < 1e-2 {
					t.Errorf("the SGD steps moved the weights by at most %.3g of their largest; the fixture proves little", moved)
				}
			})
		}
	}
}

// surrogateTrainer is a surrogate-gradient run on testdata/proxy's digits:
// the paper's network at width 4, T = 8, BatchNorm in training mode for
// the first epoch, shuffled and augmented batches of 50.
func surrogateTrainer(t testing.TB, epochs int) *train.Trainer {
	t.Helper()
	s := recipe.Default()
	s.Dataset, s.Epochs, s.BatchSize, s.LR, s.FreezeBNAfter, s.Timesteps = data.MNIST, epochs, 50, 1e-3, 1, 8
	g := recipe.DefaultSurrogate()
	s.Method, s.Surrogate = recipe.MethodSurrogate, &g
	return proxyTrainer(t, testutil.Path("proxy/net.onnx"), s)
}

// TestSurrogateResumeIsExact: surrogate-gradient training gives the same
// bits on 1 core and on 3, and 2 epochs in one run equal 1 epoch, a
// checkpoint, a resume and 1 more — and a run interrupted mid-epoch and
// resumed. The checkpoint records the method and the surrogate's setting.
func TestSurrogateResumeIsExact(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(1)
	whole := surrogateTrainer(t, 2)
	if err := whole.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := state(whole)
	h := whole.Progress.History
	t.Logf("epochs: %+v", h)
	if h[0].Method != "surrogate" || h[1].TrainSNN == 0 {
		t.Errorf("history %+v", h)
	}
	runtime.GOMAXPROCS(3)
	again := surrogateTrainer(t, 2)
	if err := again.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sameBits(state(again), want) {
		t.Fatalf("3 cores: %d of %d values differ from the run on 1 core", testutil.Differing(state(again), want), len(want))
	}

	dir := t.TempDir()
	first := surrogateTrainer(t, 1)
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
	if g := c.Settings.Surrogate; c.Settings.Method != recipe.MethodSurrogate || g == nil || *g != recipe.DefaultSurrogate() {
		t.Fatalf("the checkpoint records method %q, surrogate %+v", c.Settings.Method, g)
	}
	second := surrogateTrainer(t, 2)
	if err := second.Resume(c); err != nil {
		t.Fatal(err)
	}
	if err := second.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sameBits(state(second), want) {
		t.Error("1 epoch + resume + 1 epoch differs from 2 epochs")
	}

	ctx, cancel := context.WithCancel(context.Background())
	mid := surrogateTrainer(t, 2)
	mid.OnBatch = func(p train.BatchProgress) {
		if p.Epoch == 1 && p.Batch == 2 {
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
	rest := surrogateTrainer(t, 2)
	if err := rest.Resume(c2); err != nil {
		t.Fatal(err)
	}
	if err := rest.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sameBits(state(rest), want) {
		t.Error("a run interrupted mid-epoch and resumed differs from an uninterrupted one")
	}
}

// TestMethodInCheckpoints: a checkpoint that names no method is a proxy
// run; a resumed run keeps the checkpoint's method and surrogate, refusing
// a flag that would change them.
func TestMethodInCheckpoints(t *testing.T) {
	tr := newTrainer(t, testutil.Path("proxy/net.onnx"), 1)
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := saveCheckpoint(t, tr, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `\"method\":\"proxy\"`) {
		t.Fatalf("a proxy run's checkpoint does not name its method")
	}
	// the same file as an older proxykit wrote it: no method (the header's
	// length is unchanged by padding the removed text with spaces)
	old := strings.Replace(string(b), `,\"method\":\"proxy\"`, strings.Repeat(" ", len(`,\"method\":\"proxy\"`)), 1)
	c, err := checkpoint.Decode([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if c.Settings.Method != recipe.MethodProxy || c.Settings.Surrogate != nil {
		t.Errorf("a checkpoint without a method reads as method %q, surrogate %+v", c.Settings.Method, c.Settings.Surrogate)
	}

	saved := surrogateTrainer(t, 1).Settings
	asked := recipe.Default()
	changed := func(flags ...string) func(string) bool {
		return func(name string) bool { return slices.Contains(flags, name) }
	}
	s, err := train.Resumed(saved, asked, changed())
	if err != nil || s.Method != recipe.MethodSurrogate || s.Surrogate == nil || *s.Surrogate != *saved.Surrogate {
		t.Errorf("resumed without flags: %+v, %v", s, err)
	}
	if _, err := train.Resumed(saved, asked, changed("method")); err == nil || !strings.Contains(err.Error(), "method proxy differs from the checkpoint's surrogate") {
		t.Errorf("method proxy on a surrogate checkpoint: %v", err)
	}
	asked.Surrogate = &recipe.Surrogate{Function: "sigmoid", Alpha: 2}
	if _, err := train.Resumed(saved, asked, changed("surrogate-alpha")); err == nil || !strings.Contains(err.Error(), "surrogate-alpha 2 differs") {
		t.Errorf("another α: %v", err)
	}
}

// TestSurrogateDataParallel: surrogate-gradient training of the tiny
// network (T = 6, v_th = 0.5, so that it fires), one epoch of 403 real
// MNIST digits (BatchNorm in training mode, per step), global batch 100
// split over 2 ranks in this process — on the CPU over its host sums and
// on the emulated CUDA device over NCCL's calls with small buckets, which
// start as the backward pass completes the gradients — lands within 10⁻³
// of the training's effect from one process, every rank with the same
// bits. (Unlike proxy learning's, the CPU's ranks do not give one
// process's bits: the weights' gradients sum over T·B rows of steps and
// samples, and a rank's rows are not a subtree of the batch's tree.)
func TestSurrogateDataParallel(t *testing.T) {
	s := recipe.Default()
	g := recipe.DefaultSurrogate()
	s.Dataset, s.Epochs, s.LR, s.BatchSize, s.Timesteps, s.Threshold = data.MNIST, 1, 1e-3, 100, 6, 0.5
	s.Method, s.Surrogate = recipe.MethodSurrogate, &g
	mk := func() *train.Trainer { return mnistTrainer(t, s, 403, 100) }
	for _, c := range []struct {
		dev   string
		ranks int
		opt   distributed.Options
	}{{"cpu", 2, distributed.Options{}}, {"cuda-emu", 2, distributed.Options{BucketBytes: 16 << 10}}} {
		one := runRanks(t, 0, c.dev, device.Options{}, distributed.Options{}, mk)
		many := runRanks(t, c.ranks, c.dev, device.Options{}, c.opt, mk)
		what := fmt.Sprintf("%s, %d ranks", c.dev, c.ranks)
		_, rel := compareRuns(t, what, one, many)
		t.Logf("%s: %.2g of the training's effect from one process; loss %.6f vs %.6f", what, rel, many.history[0].TrainLoss, one.history[0].TrainLoss)
		if rel > 1e-3 {
			t.Errorf("%s land %.3g of the training's effect from one process", what, rel)
		}
		if math.Abs(one.history[0].TrainLoss-0.1) < 0.01 {
			t.Errorf("%s: loss %.4f, a silent output layer's; the test wants a network that fires", what, one.history[0].TrainLoss)
		}
		if many.history[0].Method != "surrogate" {
			t.Errorf("%s: the history's method is %q", what, many.history[0].Method)
		}
	}
}
