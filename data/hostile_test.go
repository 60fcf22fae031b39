package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// idx builds an IDX file of unsigned bytes.
func idx(magic uint32, dims []uint32, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(data)
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// TestHostileIDX writes broken IDX files, plain and gzipped, as an MNIST
// folder: each must be refused naming the file, and a header that claims
// far more than the file holds must not allocate for it.
func TestHostileIDX(t *testing.T) {
	labels := idx(0x801, []uint32{4}, []byte{1, 2, 3, 4})
	images := idx(0x803, []uint32{4, 2, 2}, make([]byte, 16))
	badCRC := gz(images)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC-32 in gzip's trailer
	corrupt := gz(images)
	corrupt = append(corrupt[:len(corrupt)/2], 0xff, 0xff, 0xff)
	for name, c := range map[string]struct {
		file string
		data []byte
		want string
	}{
		"bad CRC":        {"train-images-idx3-ubyte.gz", badCRC, "checksum"},
		"corrupt stream": {"train-images-idx3-ubyte.gz", corrupt, "train-images-idx3-ubyte.gz"},
		"trailing bytes": {"train-images-idx3-ubyte", append(append([]byte(nil), images...), 9), "bytes after the 16"},
		"trailing in gz": {"train-images-idx3-ubyte.gz", gz(append(append([]byte(nil), images...), 9)), "bytes after the 16"},
		"truncated":      {"train-images-idx3-ubyte", images[:len(images)-1], "truncated"},
		"huge claim":     {"train-images-idx3-ubyte", idx(0x803, []uint32{1 << 20, 1 << 5, 1 << 5}, make([]byte, 100)), "truncated"},
		"zero width":     {"train-images-idx3-ubyte", idx(0x803, []uint32{4, 2, 0}, nil), "implausible"},
		"wrong magic":    {"train-images-idx3-ubyte", idx(0x801, []uint32{16}, make([]byte, 16)), "magic"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "train-labels-idx1-ubyte"), labels, 0o644)
		os.WriteFile(filepath.Join(dir, c.file), c.data, 0o644)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Load(dir, MNIST, true)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "train-images-idx3-ubyte") {
			t.Errorf("%s: error %v, want one naming the file and %q", name, err, c.want)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
			t.Errorf("%s: allocated %d bytes for a %d-byte file", name, grew, len(c.data))
		}
	}
}

// TestSpecialFilesRefused puts a named pipe where a data file belongs:
// reading it would block for ever.
func TestSpecialFilesRefused(t *testing.T) {
	dir := t.TempDir()
	if err := mkfifo(filepath.Join(dir, "train-images-idx3-ubyte")); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "train-labels-idx1-ubyte"), idx(0x801, []uint32{1}, []byte{1}), 0o644)
	_, err := Load(dir, MNIST, true)
	if err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("a FIFO as the images file: %v", err)
	}
}

// FuzzIDX feeds damaged IDX streams, gzipped when they start with gzip's
// magic: refused or read, never a panic, and what is read has the size its
// header states.
func FuzzIDX(f *testing.F) {
	f.Add(idx(0x803, []uint32{2, 2, 2}, make([]byte, 8)))
	f.Add(gz(idx(0x801, []uint32{3}, []byte{1, 2, 3})))
	f.Add(idx(0x803, []uint32{1 << 20, 1 << 5, 1 << 5}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r = bytes.NewReader(data)
		for _, magic := range []uint32{0x801, 0x803} {
			r.Reset(data)
			var src io.Reader = r
			if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
				zr, err := gzip.NewReader(r)
				if err != nil {
					continue
				}
				src = zr
			}
			out, dims, err := decodeIDX(src, magic)
			if err != nil {
				continue
			}
			n := 1
			for _, d := range dims {
				n *= d
			}
			if n != len(out) {
				t.Fatalf("dims %v but %d bytes", dims, len(out))
			}
		}
	})
}

// FuzzCIFAR feeds damaged CIFAR-10 batches.
func FuzzCIFAR(f *testing.F) {
	rec := make([]byte, 1+3*32*32)
	rec[0] = 3
	f.Add(rec)
	f.Add(append(append([]byte(nil), rec...), rec...))
	f.Add(rec[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &Dataset{C: 3, H: 32, W: 32}
		if err := decodeCIFAR(d, data); err != nil {
			return
		}
		if len(d.Images) != len(d.Labels)*3*32*32 {
			t.Fatalf("%d labels, %d pixels", len(d.Labels), len(d.Images))
		}
		for _, l := range d.Labels {
			if l >= 10 {
				t.Fatalf("label %d accepted", l)
			}
		}
	})
}
