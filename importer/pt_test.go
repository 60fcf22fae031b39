package importer_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// The fixtures in testdata/pt were saved by Debian's torch the way the
// reference saves its networks (scripts/make_pt_fixtures.py).

func checkANN(t *testing.T, net *nn.Network, dir string) {
	t.Helper()
	x, err := readArray(filepath.Join(dir, "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := readArray(filepath.Join(dir, "ann.npy"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := lower.Forward(compute.NewCPU(), net, x, 0)
	if err != nil {
		t.Fatal(err)
	}
	rel := testutil.RelErr(y.Data, want.Data)
	t.Logf("ANN relative error %.2e", rel)
	if rel > 1e-4 {
		t.Errorf("ANN relative error %.3g > 1e-4", rel)
	}
}

func checkSNN(t *testing.T, path, dir string) {
	t.Helper()
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := m.PT
	if p.Kind != "snn-module" || p.SNN.Timesteps != 12 || p.SNN.Threshold != 1.5 || p.SNN.Reset != 0 || p.Root != "__main__.SNN" {
		t.Fatalf("SNN file read as %+v", p)
	}
	snn, err := spiking.New(m.ANN, spiking.Config{Timesteps: p.SNN.Timesteps, Threshold: p.SNN.Threshold, Reset: p.SNN.Reset})
	if err != nil {
		t.Fatal(err)
	}
	x, err := readArray(filepath.Join(dir, "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := snn.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	want, err := readArray(filepath.Join(dir, "snn.npy"))
	if err != nil {
		t.Fatal(err)
	}
	d := testutil.Differing(res.Counts.Data, want.Data)
	t.Logf("SNN from %s: %d of %d counts differ from torch's; rates %.3f", filepath.Base(path), d, len(want.Data), res.Rates)
	if float64(d) > 0.005*float64(len(want.Data)) {
		t.Errorf("%d of %d counts differ", d, len(want.Data))
	}
}

func TestWholeModulePickle(t *testing.T) {
	dir := testutil.Path("pt")
	m, err := model.Load(filepath.Join(dir, "ANN_Params.pt"))
	if err != nil {
		t.Fatal(err)
	}
	if m.PT.Kind != "module" || m.PT.Root != "__main__.ANN" || len(m.PT.Notes) == 0 || !strings.Contains(m.PT.Notes[0], "registration order") {
		t.Errorf("ANN file read as %+v", m.PT)
	}
	if got := nn.ShapeString(m.ANN.InputShape); got != "[1 28 28]" {
		t.Errorf("input shape %s", got)
	}
	checkANN(t, m.ANN, dir)
	// the legacy (non-zip) format, which gopickle also reads
	legacy, err := model.Load(filepath.Join(dir, "legacy.pt"))
	if err != nil {
		t.Fatal(err)
	}
	checkANN(t, legacy.ANN, dir)
}

func TestSNNModulePickle(t *testing.T) {
	checkSNN(t, testutil.Path("pt/SNN_Params.pt"), testutil.Path("pt"))
}

func TestStateDict(t *testing.T) {
	dir := testutil.Path("pt")
	path := filepath.Join(dir, "ANN_state.pt")
	// the error names the settings that give the structure, which a
	// program spells as its flags
	_, err := model.Load(path)
	var se *setting.Error
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "give its structure: architecture (fmnist, tiny, resnet) or structure model") {
		t.Fatalf("a state dict without structure: %v", err)
	}
	flags := map[setting.Name]string{setting.Arch: "--arch", setting.Like: "--like"}
	if got := se.Spell(func(n setting.Name) string { return flags[n] }); !strings.Contains(got, "--arch (fmnist, tiny, resnet) or --like") {
		t.Errorf("a state dict without structure, spelt with flags: %s", got)
	}
	m, err := model.LoadWith(path, model.Options{Arch: "fmnist"})
	if err != nil {
		t.Fatal(err)
	}
	checkANN(t, m.ANN, dir)
	// --like: an ONNX file with the same parameter names (here proxykit's
	// own export of the whole-module file)
	whole, err := model.Load(filepath.Join(dir, "ANN_Params.pt"))
	if err != nil {
		t.Fatal(err)
	}
	like := filepath.Join(t.TempDir(), "like.onnx")
	if err := exporter.WriteANN(like, whole.ANN, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	m2, err := model.LoadWith(path, model.Options{Like: like})
	if err != nil {
		t.Fatal(err)
	}
	checkANN(t, m2.ANN, dir)
	// --like a proxykit checkpoint: any model file gives the structure
	ck := filepath.Join(t.TempDir(), "like.ckpt")
	snn, err := whole.SNN(spiking.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.New(whole.ANN, snn, recipe.Default()).Save(ck); err != nil {
		t.Fatal(err)
	}
	m3, err := model.LoadWith(path, model.Options{Like: ck})
	if err != nil {
		t.Fatalf("--like a checkpoint: %v", err)
	}
	checkANN(t, m3.ANN, dir)
	// --arch names the registry's architectures
	if _, err := model.LoadWith(path, model.Options{Arch: "vgg"}); err == nil || !strings.Contains(err.Error(), "fmnist, tiny, resnet") {
		t.Errorf("--arch vgg: %v", err)
	}
	if _, err := model.LoadWith(path, model.Options{Arch: "resnet"}); err == nil || !strings.Contains(err.Error(), "conv1.weight") {
		t.Errorf("--arch resnet for the paper's state dict: %v", err)
	}
	// a structure that does not match: names matched, shapes checked
	other := filepath.Join(t.TempDir(), "other.onnx")
	ref16, _ := nn.Reference(16, 1)
	if err := exporter.WriteANN(other, ref16, exporter.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := model.LoadWith(path, model.Options{Like: other}); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("state dict into a wider structure: %v", err)
	}
	if _, err := model.LoadWith(path, model.Options{Like: testutil.Path("lenet_opset11.onnx")}); err == nil {
		t.Error("state dict into LeNet's structure accepted")
	}
}

func TestBadPickles(t *testing.T) {
	dir := t.TempDir()
	good := testutil.ReadFile(t, "pt/ANN_Params.pt")
	trunc := filepath.Join(dir, "trunc.pt")
	if err := os.WriteFile(trunc, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	badPickle := filepath.Join(dir, "bad.pt")
	if err := os.WriteFile(badPickle, []byte{0x80, 0x02, 'X', 0xff, 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		testutil.Path("pt/evil.pt"): "asks to call posix.system",
		trunc:                       "trunc.pt",
		badPickle:                   "bad.pt",
	}
	for path, want := range cases {
		_, err := model.Load(path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", filepath.Base(path), err, want)
		}
	}
	// random damage to the zip and to the raw pickle must give errors, not panics
	legacy := testutil.ReadFile(t, "pt/legacy.pt")
	rng := rand.New(rand.NewSource(5))
	for i := 0; i < 300; i++ {
		src := good
		if i%2 == 1 {
			src = legacy
		}
		b := append([]byte(nil), src...)
		for k := 0; k < 1+rng.Intn(6); k++ {
			b[rng.Intn(len(b))] = byte(rng.Intn(256))
		}
		if i%3 == 0 {
			b = b[:rng.Intn(len(b))]
		}
		p := filepath.Join(dir, "m.pt")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("mutation %d: panic %v", i, r)
				}
			}()
			if m, err := model.Load(p); err == nil {
				if _, err := m.ANN.Shapes(); err != nil {
					t.Fatalf("mutation %d: imported a network whose shapes do not check: %v", i, err)
				}
			}
		}()
	}
}

// TestFullWidthPT reads the full-width ANN_Params.pt and SNN_Params.pt that
// scripts/test.sh generates (PROXYKIT_FULL_DIR/pt).
func TestFullWidthPT(t *testing.T) {
	dir := testutil.Env(t, "PROXYKIT_FULL_DIR", "the folder of the full-width network (scripts/test.sh generates it with scripts/make_fixtures.py --full and sets the variable)")
	dir = filepath.Join(dir, "pt")
	m, err := model.Load(filepath.Join(dir, "ANN_Params.pt"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ANN.ParamCount() < 19_000_000 {
		t.Fatalf("%d parameters", m.ANN.ParamCount())
	}
	checkANN(t, m.ANN, dir)
	checkSNN(t, filepath.Join(dir, "SNN_Params.pt"), dir)
}

// FuzzLoadPT feeds damaged torch.save files (the legacy format has no
// checksums, so mutations reach the pickle and the module reader): they
// may be refused but must never panic.
func FuzzLoadPT(f *testing.F) {
	for _, name := range []string{"pt/legacy.pt", "pt/ANN_Params.pt", "pt/ANN_state.pt", "kinds/kinds.pt", "kinds/kinds_softmax.pt"} {
		f.Add(testutil.ReadFile(f, name))
	}
	// hostile seeds: a zip directory that lies, modules PyTorch refuses
	f.Add(hugeStorageZip(f, 1<<40))
	for _, name := range []string{"conv_stride0.pt", "linear_1d.pt", "self_module.pt", "snn_T_2e40.pt"} {
		f.Add(testutil.ReadFile(f, "hostile/"+name))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, fmt.Sprintf("m%d.pt", rand.Int()))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
		if m, err := model.LoadWith(p, model.Options{Arch: "fmnist"}); err == nil {
			if _, err := m.ANN.Shapes(); err != nil {
				t.Fatalf("imported a network whose shapes do not check: %v", err)
			}
		}
	})
}

// hugeStorageZip wraps testdata/hostile/huge_storage.pkl (a state dict
// whose tensor declares 2^38 floats) in a torch.save zip whose directory
// claims declared bytes for the storage while holding 16.
func hugeStorageZip(t testing.TB, declared uint64) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	raw := func(name string, data []byte, size uint64) {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Store, CRC32: crc32.ChecksumIEEE(data),
			CompressedSize64: uint64(len(data)), UncompressedSize64: size})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	pkl := testutil.ReadFile(t, "hostile/huge_storage.pkl")
	raw("archive/data.pkl", pkl, uint64(len(pkl)))
	raw("archive/data/0", make([]byte, 16), declared)
	raw("archive/version", []byte("3\n"), 2)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestZipDirectoryIsNotTrusted loads small files whose zip directory
// declares a storage of 1 TiB and 32 GiB: the sizes must be checked against
// the bytes present, before anything is allocated.
func TestZipDirectoryIsNotTrusted(t *testing.T) {
	dir := t.TempDir()
	for _, declared := range []uint64{1 << 40, 32 << 30} {
		p := filepath.Join(dir, fmt.Sprintf("huge%d.pt", declared))
		data := hugeStorageZip(t, declared)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := model.LoadWith(p, model.Options{Arch: "fmnist"})
		if err == nil || !strings.Contains(err.Error(), "archive/data/0") {
			t.Errorf("%d-byte file declaring %d bytes: %v", len(data), declared, err)
		}
	}
}

// TestGroupedConvolutionModule reads a whole pickled module with grouped
// and depthwise convolutions (scripts/make_fixtures.py's GroupNet) and
// holds its ANN to torch's outputs.
func TestGroupedConvolutionModule(t *testing.T) {
	m, err := model.Load(testutil.Path("groupnet.pt"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := lower.Forward(compute.NewCPU(), m.ANN, testutil.Array(t, "groupnet_opset13.x.npy"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := testutil.Array(t, "groupnet_opset13.ann.npy")
	if e := testutil.RelErr(y.Data, want.Data); e > 1e-5 {
		t.Errorf("relative error %.3g against torch", e)
	}
	groups := 0
	for _, l := range m.ANN.Layers {
		if c, ok := l.(*nn.Conv2d); ok && c.Groups > 1 {
			groups++
		}
	}
	if groups != 3 {
		t.Errorf("%d grouped convolutions, want 3", groups)
	}
}
