package train_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
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
	snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: f.T, Threshold: f.Threshold, Reset: f.Reset})
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
// detached) and on a residual network; then three steps of plain SGD land
// on the reference's weights within the same bound. On the CPU and on the
// emulated CUDA device.
func TestSurrogateGradientsMatchPyTorch(t *testing.T) {
	emu, err := cuda.Open(cuda.Options{Emulate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, be := range []compute.Backend{compute.NewCPU(), emu} {
		for _, name := range []string{"paper", "paper_detach", "paper_eval", "resnet"} {
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
