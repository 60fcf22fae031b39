// Package data reads labelled image data sets — MNIST and Fashion-MNIST
// (IDX files, optionally gzipped) and CIFAR-10 (binary batches) — into
// memory, pixels scaled to [0, 1], checking every size against the bytes
// present.
package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/proxykit/proxykit/internal/limits"
	"github.com/proxykit/proxykit/setting"
)

// Dataset is a labelled image set in memory, pixels scaled to [0, 1].
type Dataset struct {
	Name       string
	Images     []float32 // N×C×H×W
	Labels     []uint8
	N, C, H, W int
	Classes    int
}

// New makes a data set of a program's own arrays: n = len(labels) images of
// c×h×w values each, row-major (NCHW), pixels scaled as the model was
// trained on (the bundled data sets use [0, 1]), and their labels, each
// below classes. It checks the sizes and that every value is finite; the
// arrays are used, not copied.
func New(name string, images []float32, labels []uint8, c, h, w, classes int) (*Dataset, error) {
	n := len(labels)
	switch {
	case c < 1 || h < 1 || w < 1 || classes < 1 || classes > 256:
		return nil, fmt.Errorf("data set %s: %d×%d×%d images of %d classes: each must be positive (at most 256 classes)", name, c, h, w, classes)
	case n == 0 || len(images) != n*c*h*w:
		return nil, fmt.Errorf("data set %s: %d values for %d images of %d×%d×%d", name, len(images), n, c, h, w)
	}
	for i, v := range images {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("data set %s: image %d holds %g", name, i/(c*h*w), v)
		}
	}
	if err := checkLabels(name, labels, classes); err != nil {
		return nil, err
	}
	return &Dataset{Name: name, Images: images, Labels: labels, N: n, C: c, H: h, W: w, Classes: classes}, nil
}

// Image returns sample i's pixels (nil when the set holds no sample i).
func (d *Dataset) Image(i int) []float32 {
	sz := d.C * d.H * d.W
	if i < 0 || sz <= 0 || i >= d.N || i >= len(d.Images)/sz {
		return nil
	}
	return d.Images[i*sz : (i+1)*sz]
}

// Subset keeps the first n samples (all when n <= 0 or n >= N; nil for a
// nil set).
func (d *Dataset) Subset(n int) *Dataset {
	if d == nil || n <= 0 || n >= d.N {
		return d
	}
	c := *d
	c.N = n
	c.Images = d.Images[:n*d.C*d.H*d.W]
	c.Labels = d.Labels[:n]
	return &c
}

// Datasets proxykit reads.
const (
	MNIST        = "mnist"
	FashionMNIST = "fashion-mnist"
	CIFAR10      = "cifar10"
)

// CheckName refuses a name that is none of the data sets Load reads, before
// any file is opened.
func CheckName(name string) error {
	switch name {
	case MNIST, FashionMNIST, CIFAR10:
		return nil
	}
	return setting.Errorf("unknown data set %q: %s must be %s, %s or %s", name, setting.Name("dataset"), MNIST, FashionMNIST, CIFAR10)
}

// FashionMNISTDir is where Debian's package dataset-fashion-mnist installs
// the official Fashion-MNIST files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// DefaultDir is the folder a data set is read from when no folder is
// given: Debian's package folder for Fashion-MNIST, none for the others.
func DefaultDir(name string) (string, error) {
	if name == FashionMNIST {
		if _, err := os.Stat(FashionMNISTDir); err != nil {
			return "", setting.Errorf("%s: none given, and %s is missing: install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or name the folder", setting.DataDir, FashionMNISTDir)
		}
		return FashionMNISTDir, nil
	}
	return "", setting.Errorf("%s: required for %s", setting.DataDir, name)
}

// ClassNames are a data set's class names, in label order.
func ClassNames(name string) []string {
	switch name {
	case FashionMNIST:
		return []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	case CIFAR10:
		return []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
	}
	return []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
}

// Load reads the training or test split of a data set from dir (""
// means DefaultDir), in the format it is distributed in: IDX files
// (optionally gzipped) for MNIST and Fashion-MNIST, the binary version for
// CIFAR-10.
func Load(dir, name string, trainSplit bool) (*Dataset, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if dir == "" {
		var err error
		if dir, err = DefaultDir(name); err != nil {
			return nil, err
		}
	}
	if st, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("data folder %s does not exist (no such file or directory)", dir)
	} else if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("data folder %s is not a folder", dir)
	}
	switch name {
	case MNIST, FashionMNIST:
		prefix := "t10k"
		if trainSplit {
			prefix = "train"
		}
		d, err := loadIDX(filepath.Join(dir, prefix+"-images-idx3-ubyte"), filepath.Join(dir, prefix+"-labels-idx1-ubyte"))
		if err != nil {
			return nil, err
		}
		d.Name = name
		return d, nil
	}
	return loadCIFAR10(dir, trainSplit) // CheckName let nothing else through
}

// openMaybeGz opens path, or path.gz when only that exists, refusing
// anything but regular files.
func openMaybeGz(path string) (io.ReadCloser, string, error) {
	if _, err := os.Stat(path); err == nil {
		f, err := limits.Open(path)
		return f, path, err
	}
	gz := path + ".gz"
	if _, err := os.Stat(gz); err != nil {
		return nil, path, fmt.Errorf("%s: neither %s nor %s exists", filepath.Dir(path), filepath.Base(path), filepath.Base(gz))
	}
	f, err := limits.Open(gz)
	if err != nil {
		return nil, gz, err
	}
	return f, gz, nil
}

func readIDX(path string, wantMagic uint32) ([]uint8, []int, error) {
	f, name, err := openMaybeGz(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bufio.NewReader(f))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		r = zr
	}
	data, dims, err := decodeIDX(r, wantMagic)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, dims, nil
}

// decodeIDX reads an IDX array of unsigned bytes with the given magic
// number to its very end: a gzip stream's checksum is checked only there,
// and bytes after the array are an error.
func decodeIDX(r io.Reader, wantMagic uint32) ([]uint8, []int, error) {
	br := bufio.NewReader(r)
	var magic uint32
	if err := binary.Read(br, binary.BigEndian, &magic); err != nil {
		return nil, nil, fmt.Errorf("truncated IDX header")
	}
	if magic != wantMagic {
		return nil, nil, fmt.Errorf("IDX magic number %#x, want %#x", magic, wantMagic)
	}
	dims := make([]int, magic&0xff)
	total := 1
	for i := range dims {
		var d uint32
		if err := binary.Read(br, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("truncated IDX header")
		}
		if d > 1<<26 || (i > 0 && d == 0) {
			return nil, nil, fmt.Errorf("IDX dimension %d of %d is implausible", i, d)
		}
		dims[i] = int(d)
		total *= int(d)
		if total > 1<<31 {
			return nil, nil, fmt.Errorf("IDX array too large")
		}
	}
	// The buffer grows with the bytes that arrive: a header promising more
	// than the file holds allocates nothing big.
	data, err := io.ReadAll(io.LimitReader(br, int64(total)))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the IDX data: %w", err)
	}
	if len(data) < total {
		return nil, nil, fmt.Errorf("truncated: the header promises %d bytes of data, the file holds %d", total, len(data))
	}
	switch n, err := br.Read(make([]byte, 1)); {
	case n > 0:
		return nil, nil, fmt.Errorf("bytes after the %d the header promises", total)
	case err != io.EOF:
		return nil, nil, fmt.Errorf("after the data: %w", err)
	}
	return data, dims, nil
}

func loadIDX(imagesPath, labelsPath string) (*Dataset, error) {
	pix, idims, err := readIDX(imagesPath, 0x803)
	if err != nil {
		return nil, err
	}
	labels, ldims, err := readIDX(labelsPath, 0x801)
	if err != nil {
		return nil, err
	}
	if idims[0] != ldims[0] {
		return nil, fmt.Errorf("%s has %d images but %s has %d labels", filepath.Base(imagesPath), idims[0],
			filepath.Base(labelsPath), ldims[0])
	}
	d := &Dataset{N: idims[0], C: 1, H: idims[1], W: idims[2], Classes: 10, Labels: labels}
	if err := checkLabels(labelsPath, labels, 10); err != nil {
		return nil, err
	}
	d.Images = make([]float32, len(pix))
	for i, p := range pix {
		d.Images[i] = float32(p) / 255
	}
	return d, nil
}

func checkLabels(name string, labels []uint8, classes int) error {
	for i, l := range labels {
		if int(l) >= classes {
			return fmt.Errorf("%s: label %d of sample %d is out of range (want 0 to %d)", name, l, i, classes-1)
		}
	}
	return nil
}

// decodeCIFAR appends the records of one CIFAR-10 binary batch to d.
func decodeCIFAR(d *Dataset, b []byte) error {
	const rec = 1 + 3*32*32
	if len(b) == 0 || len(b)%rec != 0 {
		return fmt.Errorf("%d bytes is not a whole number of %d-byte CIFAR-10 records", len(b), rec)
	}
	for off := 0; off < len(b); off += rec {
		if b[off] >= 10 {
			return fmt.Errorf("label %d of record %d is out of range (want 0 to 9)", b[off], off/rec)
		}
		d.Labels = append(d.Labels, b[off])
		for _, p := range b[off+1 : off+rec] {
			d.Images = append(d.Images, float32(p)/255)
		}
	}
	return nil
}

func loadCIFAR10(dir string, trainSplit bool) (*Dataset, error) {
	if _, err := os.Stat(filepath.Join(dir, "cifar-10-batches-bin")); err == nil {
		dir = filepath.Join(dir, "cifar-10-batches-bin")
	}
	files := []string{"test_batch.bin"}
	if trainSplit {
		files = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	}
	var missing []string
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("CIFAR-10 in %s: %s missing; the data set's binary version (cifar-10-binary.tar.gz from "+
			"https://www.cs.toronto.edu/~kriz/cifar.html) has data_batch_1.bin … data_batch_5.bin and test_batch.bin, "+
			"read directly in the folder or in its cifar-10-batches-bin", dir, andList(missing))
	}
	d := &Dataset{Name: CIFAR10, C: 3, H: 32, W: 32, Classes: 10}
	for _, f := range files {
		path := filepath.Join(dir, f)
		b, err := limits.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := decodeCIFAR(d, b); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	d.N = len(d.Labels)
	if d.N == 0 {
		return nil, errors.New("no CIFAR-10 records")
	}
	return d, nil
}

// andList writes names as "a is", "a and b are", "a, b and c are".
func andList(names []string) string {
	switch len(names) {
	case 1:
		return names[0] + " is"
	default:
		return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " are"
	}
}
