package importer

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/proxykit/proxykit/internal/limits"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// storageMarker stands for a torch.*Storage class during the size check.
type storageMarker struct{ elem int }

// storageElemSize is the byte size of each torch storage type's elements.
var storageElemSize = map[string]int{
	"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
	"IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
}

// storageRef is a storage a pickle declares: its key, element size and count.
type storageRef struct {
	key        string
	elem, size int
}

// scanPickle unpickles r without loading storages, recording the ones it declares.
func scanPickle(r io.Reader) (obj any, refs []storageRef, err error) {
	u := pickle.NewUnpickler(r)
	u.FindClass = func(module, name string) (any, error) {
		if module == "torch" {
			if e, ok := storageElemSize[name]; ok {
				return storageMarker{e}, nil
			}
		}
		if module == "torch._utils" && strings.HasPrefix(name, "_rebuild_") {
			return safeCall(func(args ...any) (any, error) { return nil, nil }), nil
		}
		return findClass(module, name)
	}
	u.PersistentLoad = func(id any) (any, error) {
		t, ok := id.(*types.Tuple)
		if !ok || t.Len() < 2 {
			return nil, nil
		}
		if s, _ := t.Get(0).(string); s == "module" {
			return t.Get(1), nil // legacy files name module classes this way
		} else if s != "storage" || t.Len() < 5 {
			return nil, nil
		}
		m, ok1 := t.Get(1).(storageMarker)
		key, ok2 := t.Get(2).(string)
		size, ok3 := t.Get(4).(int)
		if !ok1 || !ok2 || !ok3 || size < 0 {
			return nil, fmt.Errorf("malformed storage reference %v", id)
		}
		refs = append(refs, storageRef{key: key, elem: m.elem, size: size})
		return nil, nil
	}
	obj, err = u.Load()
	return obj, refs, err
}

// checkStorageSizes verifies, before gopickle allocates anything, that
// every storage a torch.save file declares fits in the bytes the file
// holds for it: gopickle sizes its buffers from the declarations.
func checkStorageSizes(p string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("not a readable PyTorch file: %v", r)
		}
	}()
	if zr, zerr := zip.OpenReader(p); zerr == nil {
		defer zr.Close()
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		entries := map[string]*zip.File{}
		var data *zip.File
		for _, f := range zr.File {
			// The directory's sizes are claims: an entry cannot hold more
			// bytes than the file, stored entries hold exactly what they
			// claim, and deflate expands at most 1032-fold.
			size := uint64(st.Size())
			switch {
			case f.CompressedSize64 > size:
				return fmt.Errorf("not a readable PyTorch file: zip entry %s claims %d bytes in a file of %d", f.Name, f.CompressedSize64, size)
			case f.Method == zip.Store && f.UncompressedSize64 != f.CompressedSize64:
				return fmt.Errorf("not a readable PyTorch file: zip entry %s claims %d bytes but stores %d", f.Name, f.UncompressedSize64, f.CompressedSize64)
			case f.UncompressedSize64 > 1032*f.CompressedSize64+1024:
				return fmt.Errorf("not a readable PyTorch file: zip entry %s claims %d bytes from %d compressed", f.Name, f.UncompressedSize64, f.CompressedSize64)
			}
			dir, base := path.Split(f.Name)
			if base == "data.pkl" {
				data = f
			}
			if strings.HasSuffix(dir, "data/") {
				entries[base] = f
			}
		}
		if data == nil {
			return fmt.Errorf("not a PyTorch file: the zip archive has no data.pkl")
		}
		if data.UncompressedSize64 > 1<<28 {
			return fmt.Errorf("not a PyTorch file: data.pkl of %d bytes", data.UncompressedSize64)
		}
		rc, err := data.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		pkl, err := io.ReadAll(io.LimitReader(rc, 1<<28))
		if err != nil {
			return fmt.Errorf("not a readable PyTorch file: %v", err)
		}
		if _, err := pickleEnd(pkl, 0); err != nil {
			return fmt.Errorf("not a readable PyTorch file: %v", err)
		}
		_, refs, err := scanPickle(bytes.NewReader(pkl))
		if err != nil {
			return err
		}
		for _, s := range refs {
			f, ok := entries[s.key]
			if !ok {
				return fmt.Errorf("storage %s is missing from the archive", s.key)
			}
			if uint64(s.size)*uint64(s.elem) > f.UncompressedSize64 {
				return fmt.Errorf("storage %s declares %d elements but holds %d bytes", s.key, s.size, f.UncompressedSize64)
			}
		}
		return nil
	}
	// Legacy format: magic number, protocol, system info, the object, the
	// storage keys — five pickles — then each storage as an int64 count and
	// its bytes.
	b, err := limits.ReadFile(p)
	if err != nil {
		return err
	}
	var refs []storageRef
	var keys any
	off := 0
	for i := 0; i < 5; i++ {
		end, err := pickleEnd(b, off)
		if err != nil {
			return fmt.Errorf("not a readable PyTorch file: %v", err)
		}
		obj, r, err := scanPickle(bytes.NewReader(b[off:end]))
		if err != nil {
			return fmt.Errorf("not a readable PyTorch file: %v", err)
		}
		switch i {
		case 3:
			refs = r
		case 4:
			keys = obj
		}
		off = end
	}
	elem := map[string]int{}
	for _, s := range refs {
		elem[s.key] = s.elem
	}
	list, ok := keys.(*types.List)
	if !ok {
		return fmt.Errorf("not a readable PyTorch file: no storage key list")
	}
	remaining := int64(len(b) - off)
	for _, k := range *list {
		key, _ := k.(string)
		e, ok := elem[key]
		if !ok {
			return fmt.Errorf("not a readable PyTorch file: storage %q is not declared", key)
		}
		if remaining < 8 {
			return fmt.Errorf("not a readable PyTorch file: truncated storage %s", key)
		}
		n := int64(binary.LittleEndian.Uint64(b[off:]))
		off += 8
		remaining -= 8
		if n < 0 || n > remaining/int64(e) {
			return fmt.Errorf("not a readable PyTorch file: storage %s declares %d elements with %d bytes left", key, n, remaining)
		}
		off += int(n) * e
		remaining -= n * int64(e)
	}
	return nil
}
