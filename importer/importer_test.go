package importer_test

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/importer"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// TestANNMatchesPyTorch runs every fixture's ANN and compares it with
// torch's output on the same input (scripts/make_fixtures.py).
func TestANNMatchesPyTorch(t *testing.T) {
	for _, name := range append(testutil.Models, "fmnist_w8_raw") {
		t.Run(name, func(t *testing.T) {
			m, err := model.Load(testutil.Path(name + ".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			x := testutil.Array(t, name+".x.npy")
			want := testutil.Array(t, name+".ann.npy")
			y, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
			if err != nil {
				t.Fatal(err)
			}
			if nn.ShapeString(y.Shape) != nn.ShapeString(want.Shape) {
				t.Fatalf("output shape %v, torch %v", y.Shape, want.Shape)
			}
			rel := testutil.RelErr(y.Data, want.Data)
			t.Logf("%s: opset %d, %d layers, relative error %.2e", name, m.ONNX.Opset, len(m.ANN.Layers), rel)
			if rel > 1e-4 {
				t.Errorf("relative error %.3g > 1e-4", rel)
			}
		})
	}
}

// TestImportedStructure checks what each export style turns into.
func TestImportedStructure(t *testing.T) {
	kinds := func(net *nn.Network) string {
		var k []string
		for _, l := range net.Layers {
			k = append(k, nn.KindOf(l))
		}
		return strings.Join(k, " ")
	}
	cases := map[string]string{
		// BN folded into Conv by torch's exporter; bias-free Linear as MatMul.
		"fmnist_w8_folded": "Conv2d ReLU Conv2d ReLU MaxPool2d Conv2d ReLU MaxPool2d Flatten Linear ReLU Linear ReLU Linear ReLU Linear",
		// BN kept; Transpose of an initializer before each MatMul, folded.
		"fmnist_w8_bn": "Conv2d BatchNorm2d ReLU Conv2d BatchNorm2d ReLU MaxPool2d Conv2d BatchNorm2d ReLU MaxPool2d Flatten Linear ReLU Linear ReLU Linear ReLU Linear",
		// A Pad before each AveragePool at opset 11, with all-zero pads: dropped.
		"lenet_opset11": "Conv2d ReLU AvgPool2d Conv2d ReLU AvgPool2d Flatten Linear ReLU Linear ReLU Linear",
		// ZeroPad2d's constant subgraph and x.view(x.size(0), -1) folded.
		"viewnet":       "Pad2d Conv2d ReLU Conv2d ReLU MaxPool2d Flatten Linear ReLU Linear",
		"gapnet_opset9": "Conv2d ReLU Conv2d ReLU GlobalAvgPool Flatten Linear LogSoftmax",
		"asym_opset21":  "Conv2d ReLU Flatten Linear",
	}
	for name, want := range cases {
		m, err := model.Load(testutil.Path(name + ".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		if got := kinds(m.ANN); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	m, err := model.Load(testutil.Path("asym_opset21.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	c := m.ANN.Layers[0].(*nn.Conv2d)
	if c.PT != 1 || c.PL != 0 || c.PB != 2 || c.PR != 1 || c.SH != 2 || c.SW != 1 {
		t.Errorf("asymmetric conv read as pads %d,%d,%d,%d strides %d,%d", c.PT, c.PL, c.PB, c.PR, c.SH, c.SW)
	}
	if m.ONNX.Opset != 21 {
		t.Errorf("opset %d, want 21", m.ONNX.Opset)
	}
}

// TestBadModels checks that what proxykit cannot read is refused with a
// message naming the file and the node or field.
func TestBadModels(t *testing.T) {
	dir := t.TempDir()
	good := testutil.ReadFile(t, "lenet_opset11.onnx")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rng := rand.New(rand.NewSource(1))
	noise := make([]byte, 4096)
	rng.Read(noise)
	cases := []struct {
		path string
		want []string
	}{
		{testutil.Path("bad_sigmoid.onnx"), []string{"bad_sigmoid.onnx", "/Sigmoid", "operator Sigmoid is not supported"}},
		{write("truncated.onnx", good[:len(good)/2]), []string{"truncated.onnx", "not a valid ONNX file"}},
		{write("noise.onnx", noise), []string{"noise.onnx"}},
		{write("text.onnx", []byte("hello, this is not a model\n")), []string{"text.onnx"}},
		{write("empty.onnx", nil), []string{"empty.onnx", "empty"}},
		{write("model.pt", []byte("PK\x03\x04rest")), []string{"model.pt", "PyTorch"}},
		{filepath.Join(dir, "missing.onnx"), []string{"missing.onnx", "no such file"}},
	}
	for _, c := range cases {
		_, err := model.Load(c.path)
		if err == nil {
			t.Errorf("%s: imported without error", c.path)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", filepath.Base(c.path), err, w)
			}
		}
	}
}

// FuzzDecode feeds mutated fixtures to the import entry point: it may
// refuse them, but must never panic or hang.
func FuzzDecode(f *testing.F) {
	for _, name := range append(testutil.Models, "bad_sigmoid", "bad_residual", "hostile/concat_bomb", "kinds/kinds", "kinds/kinds_softmax") {
		b, err := os.ReadFile(testutil.Path(name + ".onnx"))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		net, _, err := importer.LoadONNX("fuzz.onnx", data)
		if err == nil {
			if _, err := net.Shapes(); err != nil {
				t.Fatalf("imported a network whose shapes do not check: %v", err)
			}
		}
	})
}

// TestFullWidth imports the paper's full-width network (78 MB, generated
// by `scripts/make_fixtures.py --full DIR`; .ci/run sets PROXYKIT_FULL_DIR).
func TestFullWidth(t *testing.T) {
	dir := testutil.Env(t, "PROXYKIT_FULL_DIR", "the folder of the full-width network (scripts/test.sh generates it with scripts/make_fixtures.py --full and sets the variable)")
	m, err := model.Load(filepath.Join(dir, "fmnist_w128.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ANN.ParamCount(); got < 19_000_000 {
		t.Fatalf("full-width network has %d parameters", got)
	}
	x, err := readArray(filepath.Join(dir, "fmnist_w128.x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := readArray(filepath.Join(dir, "fmnist_w128.ann.npy"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := lower.Forward(compute.NewCPU(), m.ANN, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	rel := testutil.RelErr(y.Data, want.Data)
	t.Logf("full width: %d parameters, ANN relative error %.2e", m.ANN.ParamCount(), rel)
	if rel > 1e-4 {
		t.Errorf("relative error %.3g > 1e-4", rel)
	}
	snn, err := spiking.New(m.ANN, spiking.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	res, err := snn.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	wantC, err := readArray(filepath.Join(dir, "fmnist_w128.snn.npy"))
	if err != nil {
		t.Fatal(err)
	}
	d := testutil.Differing(res.Counts.Data, wantC.Data)
	t.Logf("full width SNN: %d of %d counts differ from PyTorch's; IF rates %.3f", d, len(wantC.Data), res.Rates)
	if float64(d) > 0.005*float64(len(wantC.Data)) {
		t.Errorf("%d of %d counts differ", d, len(wantC.Data))
	}
}

// TestMutatedModelsNeverPanic complements FuzzDecode: Go's fuzzer spends
// seconds per input here (its coverage snapshot covers all of gorgonia,
// which onnx-go links), so this test applies thousands of cheap random
// mutations — byte changes, truncations, duplicated and deleted spans — to
// every small fixture. Decode may refuse them but must not panic.
func TestMutatedModelsNeverPanic(t *testing.T) {
	rng := rand.New(rand.NewSource(2020))
	n := 0
	for _, name := range append(testutil.Models, "bad_sigmoid", "bad_residual") {
		seed := testutil.ReadFile(t, name+".onnx")
		if len(seed) > 64<<10 {
			continue
		}
		for i := 0; i < 1500; i++ {
			b := append([]byte(nil), seed...)
			switch i % 4 {
			case 0:
				for k := 0; k < 1+rng.Intn(8); k++ {
					b[rng.Intn(len(b))] = byte(rng.Intn(256))
				}
			case 1:
				b = b[:rng.Intn(len(b))]
			case 2:
				at, span := rng.Intn(len(b)), 1+rng.Intn(64)
				end := min(at+span, len(b))
				b = append(b[:end:end], append(append([]byte(nil), b[at:end]...), b[end:]...)...)
			case 3:
				at := rng.Intn(len(b))
				end := min(at+1+rng.Intn(64), len(b))
				b = append(b[:at:at], b[end:]...)
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s mutation %d: panic: %v", name, i, r)
					}
				}()
				if net, _, err := importer.LoadONNX(name+".onnx", b); err == nil {
					if _, err := net.Shapes(); err != nil {
						t.Fatalf("%s mutation %d: imported a network whose shapes do not check: %v", name, i, err)
					}
				}
			}()
			n++
		}
	}
	t.Logf("%d mutated models decoded or refused without a panic", n)
}
