package importer

import (
	"archive/zip"
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"path"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/proxykit/proxykit/internal/floats"
	"github.com/proxykit/proxykit/internal/limits"
)

// storageClasses are gopickle's classes of torch's storage types, by name.
var storageClasses = map[string]func() pytorch.StorageClassInterface{
	"FloatStorage":    func() pytorch.StorageClassInterface { return &pytorch.FloatStorageClass{} },
	"DoubleStorage":   func() pytorch.StorageClassInterface { return &pytorch.DoubleStorageClass{} },
	"HalfStorage":     func() pytorch.StorageClassInterface { return &pytorch.HalfStorageClass{} },
	"BFloat16Storage": func() pytorch.StorageClassInterface { return &pytorch.BFloat16StorageClass{} },
	"LongStorage":     func() pytorch.StorageClassInterface { return &pytorch.LongStorageClass{} },
	"IntStorage":      func() pytorch.StorageClassInterface { return &pytorch.IntStorageClass{} },
	"ShortStorage":    func() pytorch.StorageClassInterface { return &pytorch.ShortStorageClass{} },
	"CharStorage":     func() pytorch.StorageClassInterface { return &pytorch.CharStorageClass{} },
	"ByteStorage":     func() pytorch.StorageClassInterface { return &pytorch.ByteStorageClass{} },
	"BoolStorage":     func() pytorch.StorageClassInterface { return &pytorch.BoolStorageClass{} },
}

// loadZipPT reads a torch.save file in the zip format (PyTorch 1.6 and
// newer) as gopickle's pytorch.Load does — the same objects, tensors and
// storages — but reads a float32 storage that the archive stores
// uncompressed (as torch.save does, each record aligned to 64 bytes)
// straight from the file's bytes, after checking its CRC-32: no per-value
// decoding, no copy on little-endian machines. gopickle reads each value
// through a buffered reader, which took most of a full-width load. Other
// storages are gopickle's. The storages may share the file's memory.
func loadZipPT(p string) (any, error) {
	data, err := limits.ReadFile(p)
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	records := map[string]*zip.File{}
	for _, f := range zr.File {
		_, base := path.Split(f.Name)
		records[base] = f
	}
	if _, ok := records["constants.pkl"]; ok {
		return nil, fmt.Errorf("TorchScript is not supported")
	}
	pkl, ok := records["data.pkl"]
	if !ok {
		return nil, fmt.Errorf("data.pkl not found in zip file")
	}
	rc, err := pkl.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	loaded := map[string]pytorch.StorageInterface{}
	u := pickle.NewUnpickler(rc)
	u.FindClass = func(module, name string) (any, error) {
		if module == "torch" {
			if c, ok := storageClasses[name]; ok {
				return c(), nil
			}
		}
		if module+"."+name == "torch._utils._rebuild_tensor_v2" {
			return &pytorch.RebuildTensorV2{}, nil
		}
		return findClass(module, name)
	}
	u.PersistentLoad = func(id any) (any, error) {
		t, ok := id.(*types.Tuple)
		if !ok || t.Len() < 5 {
			return nil, fmt.Errorf("PersistentLoad: a storage tuple expected, got %#v", id)
		}
		if s, _ := t.Get(0).(string); s != "storage" {
			return nil, fmt.Errorf("PersistentLoad: typename %v, want 'storage'", t.Get(0))
		}
		class, ok1 := t.Get(1).(pytorch.StorageClassInterface)
		key, ok2 := t.Get(2).(string)
		location, ok3 := t.Get(3).(string)
		size, ok4 := t.Get(4).(int)
		if !ok1 || !ok2 || !ok3 || !ok4 || size < 0 {
			return nil, fmt.Errorf("PersistentLoad: unexpected data types in %v", id)
		}
		if s, ok := loaded[key]; ok {
			return s, nil
		}
		f, ok := records[key]
		if !ok {
			return nil, fmt.Errorf("cannot find zip record '%s'", key)
		}
		s, err := readStorage(data, f, class, size, location)
		if err != nil {
			return nil, fmt.Errorf("storage %s: %w", key, err)
		}
		loaded[key] = s
		return s, nil
	}
	return u.Load()
}

// readStorage reads one storage of size elements from its zip record f of
// the archive data.
func readStorage(data []byte, f *zip.File, class pytorch.StorageClassInterface, size int, location string) (pytorch.StorageInterface, error) {
	if _, isFloat := class.(*pytorch.FloatStorageClass); isFloat && f.Method == zip.Store {
		off, err := f.DataOffset()
		if err != nil {
			return nil, err
		}
		n := f.UncompressedSize64
		if off < 0 || uint64(off) > uint64(len(data)) || n > uint64(len(data))-uint64(off) || uint64(size)*4 > n {
			return nil, fmt.Errorf("%d float32 values do not fit the record's %d bytes", size, n)
		}
		rec := data[off : uint64(off)+n]
		if crc32.ChecksumIEEE(rec) != f.CRC32 {
			return nil, fmt.Errorf("zip: checksum error")
		}
		return &pytorch.FloatStorage{BaseStorage: pytorch.BaseStorage{Size: size, Location: location}, Data: floats.FromLE(rec[:4*size])}, nil
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	s := class.New(size, location)
	if err := s.SetFromFileWithSize(rc, size); err != nil {
		return nil, err
	}
	return s, nil
}

// isZipFile says whether the file at p begins as a zip archive does.
func isZipFile(p string) bool {
	f, err := limits.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4)
	_, err = io.ReadFull(f, head)
	return err == nil && string(head) == "PK\x03\x04"
}
