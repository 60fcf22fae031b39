package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/results"
)

// TestConvertResidual converts the residual network (one identity
// shortcut, one projection shortcut): the command names the scaling layer
// it inserts on the identity shortcut, the checkpoint keeps it and its
// SNN evaluates and trains. (convert's tests hold the numbers to PyTorch.)
func TestConvertResidual(t *testing.T) {
	dir := t.TempDir()
	dataDir := testutil.Path("proxy")
	ck := filepath.Join(dir, "converted.ckpt")
	out, err := run(t, "convert-snn", testutil.Path("convert/resnet/ann.onnx"), "--data", dataDir, "--dataset", "mnist", "-o", ck, "--calib-images", "100")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "1 scaling layer(s) inserted before joins: add.scale1") {
		t.Errorf("convert-snn does not name the shortcut's scaling layer:\n%s", out)
	}
	out, err = run(t, "import", ck)
	if err != nil || !strings.Contains(out, "add.scale1") || !strings.Contains(out, "groups 8") || !strings.Contains(out, "shortcut_scaling") {
		t.Errorf("the checkpoint lacks the scaling layer (%v):\n%s", err, out)
	}
	if out, err = run(t, "eval", ck, "--data", dataDir, "--timesteps", "4,16"); err != nil || !strings.Contains(out, "rate relu_5") {
		t.Errorf("eval of the converted residual network (%v):\n%s", err, out)
	}
	if out, err = run(t, "train", ck, "--data", dataDir, "--dataset", "mnist", "--epochs", "1", "--max-train", "40", "--max-test", "20",
		"--batch-size", "20", "-o", filepath.Join(dir, "tuned.ckpt")); err != nil {
		t.Errorf("proxy fine-tuning of the converted residual network: %v\n%s", err, out)
	}
}

// TestConvertEvalPlot runs the conversion workflow end to end: convert-snn,
// eval at several T (JSON, a figure and its CSV), plot of two evaluations,
// proxy fine-tuning of the converted checkpoint with its training curve.
// Every figure is decoded by a reader nobody here wrote: Go's PNG decoder,
// its XML parser for SVG.
func TestConvertEvalPlot(t *testing.T) {
	dir := t.TempDir()
	dataDir := testutil.Path("proxy")
	ck := filepath.Join(dir, "converted.ckpt")
	out, err := run(t, "convert-snn", testutil.Path("convert/ann.onnx"), "--data", dataDir, "--dataset", "mnist", "-o", ck, "--calib-images", "150")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, w := range []string{"150 mnist training images", "relu1", "output", "v_th=1"} {
		if !strings.Contains(out, w) {
			t.Errorf("convert-snn output lacks %q:\n%s", w, out)
		}
	}
	if out, err = run(t, "import", ck); err != nil || !strings.Contains(out, "robust normalisation") {
		t.Errorf("import of the converted checkpoint (%v):\n%s", err, out)
	}
	fig := filepath.Join(dir, "sweep.svg")
	out, err = run(t, "eval", ck, "--data", dataDir, "--timesteps", "1,4,16-64:48", "--plot", fig)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, w := range []string{"T  SNN strict", "64  ", "rate relu1", "reaches 95%", "wrote " + fig} {
		if !strings.Contains(out, w) && !(w == "reaches 95%" && strings.Contains(out, "below 95%")) {
			t.Errorf("eval output lacks %q:\n%s", w, out)
		}
	}
	checkSVG(t, fig)
	rows := readCSV(t, strings.TrimSuffix(fig, ".svg")+".csv")
	if len(rows) != 1+4*4 || rows[0][1] != "t" {
		t.Errorf("sweep CSV has %d rows, header %v; want 1 + 4 T × 4 IF layers", len(rows), rows[0])
	}
	js, err := run(t, "eval", ck, "--data", dataDir, "--timesteps", "1,4,16,64", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var sw results.Sweep
	if err := json.Unmarshal([]byte(js), &sw); err != nil {
		t.Fatalf("eval --json printed %q: %v", js, err)
	}
	if len(sw.Points) != 4 || sw.Points[3].T != 64 || sw.N != 100 || sw.Threshold != 1 || sw.ANNMACs <= 0 || sw.Points[3].SynOps <= sw.Points[0].SynOps {
		t.Errorf("sweep %+v", sw)
	}
	jsonPath := filepath.Join(dir, "converted.json")
	if err := os.WriteFile(jsonPath, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	cmp := filepath.Join(dir, "cmp.png")
	if out, err = run(t, "plot", jsonPath, jsonPath, "--label", "a,b", "-o", cmp); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	checkPNG(t, cmp)
	// export takes the converted checkpoint like any model
	if out, err = run(t, "export", ck, "--ann", filepath.Join(dir, "c.onnx"), "--snn", filepath.Join(dir, "cs.onnx"),
		"--nir", filepath.Join(dir, "c.nir"), "--timesteps", "16"); err != nil {
		t.Fatalf("export of the converted checkpoint: %v\n%s", err, out)
	}
	curve := filepath.Join(dir, "curve.png")
	tuned := filepath.Join(dir, "tuned.ckpt")
	if out, err = run(t, "train", ck, "--data", dataDir, "--epochs", "2", "--timesteps", "8", "--batch-size", "50",
		"-o", tuned, "--plot", curve); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	checkPNG(t, curve)
	if n := len(readCSV(t, filepath.Join(dir, "curve.csv"))); n != 3 {
		t.Errorf("training CSV has %d rows, want header + 2 epochs", n)
	}
	pdf := filepath.Join(dir, "curve.pdf")
	if out, err = run(t, "plot", tuned, "-o", pdf); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, _ := os.ReadFile(pdf); !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Errorf("%s is not a PDF", pdf)
	}
}

func TestConvertEvalPlotBadInput(t *testing.T) {
	dir := t.TempDir()
	dataDir := testutil.Path("proxy")
	model := testutil.Path("convert/ann.onnx")
	copyOf := filepath.Join(dir, "ann.onnx")
	b, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyOf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.json")
	os.WriteFile(junk, []byte("{\"hello\": 1}\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"convert-snn", copyOf, "--data", dataDir, "--dataset", "mnist", "-o", copyOf}, "is the input file"},
		{[]string{"convert-snn", model, "--data", dataDir, "--dataset", "mnist", "-o", filepath.Join(dir, "x.ckpt"), "--percentile", "0"}, "percentile"},
		{[]string{"convert-snn", model, "--data", dataDir, "--dataset", "mnist", "-o", filepath.Join(dir, "x.ckpt"), "--threshold", "0"}, "threshold"},
		{[]string{"convert-snn", model, "--data", dir, "--dataset", "mnist", "-o", filepath.Join(dir, "x.ckpt")}, dir},
		{[]string{"eval", model, "--data", dataDir, "--dataset", "mnist", "--timesteps", "0,4"}, "at least 1"},
		{[]string{"eval", model, "--data", dataDir, "--dataset", "mnist", "--timesteps", "1,x"}, `"x"`},
		{[]string{"eval", model, "--data", dataDir, "--dataset", "mnist", "--timesteps", "1,4", "--plot", filepath.Join(dir, "f.gif")}, ".png, .svg or .pdf"},
		{[]string{"plot", junk, "-o", filepath.Join(dir, "f.png")}, "junk.json"},
		{[]string{"plot", junk, "-o", filepath.Join(dir, "f.bmp")}, ".png, .svg or .pdf"},
		{[]string{"plot", junk, junk, "--label", "a", "-o", filepath.Join(dir, "f.png")}, "2 files"},
	} {
		out, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %q\n%s", c.args, err, c.want, out)
		}
	}
	for _, f := range []string{"x.ckpt", "f.png", "f.gif", "f.bmp"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("a failed command left %s behind", f)
		}
	}
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 200 {
		t.Errorf("%s is only %v", path, b)
	}
	colours := map[[4]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colours) < 5 {
		t.Errorf("%s has %d colours: nothing drawn", path, len(colours))
	}
}

func checkSVG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	paths, texts := 0, []string{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "path" {
				paths++
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(tok)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	joined := strings.Join(texts, " ")
	for _, w := range []string{"Accuracy against simulation length", "time steps T", "SNN strict", "relu1"} {
		if !strings.Contains(joined, w) {
			t.Errorf("%s lacks the text %q", path, w)
		}
	}
	if paths < 20 {
		t.Errorf("%s has %d paths: nothing drawn", path, paths)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}
