// Package hdf5 writes HDF5 files — groups, numeric datasets and scalar
// UTF-8 strings — through the HDF5 C library (cgo; Debian's libhdf5-dev).
// It is the little NIR needs, nothing more. Objects carry no timestamps:
// the same content gives the same file, byte for byte.
package hdf5

/*
#cgo pkg-config: hdf5
#include <stdlib.h>
#include <hdf5.h>

static hid_t pk_float(void) { return H5T_NATIVE_FLOAT; }
static hid_t pk_int64(void) { return H5T_NATIVE_INT64; }
static void quiet(void);
static hid_t pk_vlen_utf8(void) {
	quiet();
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0) return t;
	H5Tset_size(t, H5T_VARIABLE);
	H5Tset_cset(t, H5T_CSET_UTF8);
	return t;
}
// quiet turns off the HDF5 library's printing of its error stack (a full
// disk printed hundreds of lines): errors come back as return values. The
// setting belongs to the calling thread, and cgo calls may run on any, so
// every entry point sets it.
static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
static hid_t pk_create_file(const char *name) {
	quiet();
	return H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}
static herr_t pk_close_group(hid_t g) {
	quiet();
	return H5Gclose(g);
}
static herr_t pk_close_type(hid_t t) {
	quiet();
	return H5Tclose(t);
}
static herr_t pk_close_file(hid_t f) {
	quiet();
	return H5Fclose(f);
}
// Objects are created without modification times, so that the same
// content always gives the same bytes.
static hid_t pk_group(hid_t loc, const char *name) {
	quiet();
	hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
	if (gcpl < 0) return gcpl;
	H5Pset_obj_track_times(gcpl, 0);
	hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
	H5Pclose(gcpl);
	return g;
}
static herr_t pk_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const void *buf) {
	quiet();
	hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
	if (space < 0) return -1;
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	if (dcpl < 0) { H5Sclose(space); return -1; }
	H5Pset_obj_track_times(dcpl, 0);
	hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	H5Pclose(dcpl);
	if (ds < 0) { H5Sclose(space); return -1; }
	herr_t err = H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	H5Dclose(ds);
	H5Sclose(space);
	return err;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// File is an HDF5 file open for writing.
type File struct {
	id   C.hid_t
	path string
}

// Group is a group in a file (the file's root is one too).
type Group struct {
	id   C.hid_t
	file *File
	name string
}

// Create makes (or truncates) an HDF5 file.
func Create(path string) (*File, error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	id := C.pk_create_file(cs)
	if id < 0 {
		return nil, fmt.Errorf("HDF5 cannot create %s", path)
	}
	return &File{id: id, path: path}, nil
}

// Root is the file's root group.
func (f *File) Root() *Group { return &Group{id: f.id, file: f, name: "/"} }

// Close flushes and closes the file.
func (f *File) Close() error {
	if C.pk_close_file(f.id) < 0 {
		return fmt.Errorf("HDF5 cannot close %s", f.path)
	}
	return nil
}

func (g *Group) fail(what, name string) error {
	return fmt.Errorf("HDF5: cannot write %s %q in %s of %s", what, name, g.name, g.file.path)
}

// Group creates a child group.
func (g *Group) Group(name string) (*Group, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	id := C.pk_group(g.id, cs)
	if id < 0 {
		return nil, g.fail("group", name)
	}
	return &Group{id: id, file: g.file, name: g.name + name + "/"}, nil
}

// Close closes the group.
func (g *Group) Close() {
	if g.id != g.file.id {
		C.pk_close_group(g.id)
	}
}

// dims converts a shape for the C library (nil for a scalar).
func dims(shape []int) *C.hsize_t {
	if len(shape) == 0 {
		return nil
	}
	d := make([]C.hsize_t, len(shape))
	for i, v := range shape {
		d[i] = C.hsize_t(v)
	}
	return &d[0]
}

// Float32 writes a float32 dataset of the given shape (nil: a scalar).
func (g *Group) Float32(name string, shape []int, data []float32) error {
	if len(data) == 0 {
		data = []float32{0}
		if len(shape) > 0 {
			return g.fail("empty dataset", name)
		}
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	p := dims(shape)
	buf := C.malloc(C.size_t(4 * len(data)))
	defer C.free(buf)
	copy(unsafe.Slice((*float32)(buf), len(data)), data)
	if C.pk_write(g.id, cs, C.pk_float(), C.int(len(shape)), p, buf) < 0 {
		return g.fail("dataset", name)
	}
	return nil
}

// Int64 writes an int64 dataset of the given shape (nil: a scalar).
func (g *Group) Int64(name string, shape []int, data []int64) error {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	p := dims(shape)
	buf := C.malloc(C.size_t(8 * max(len(data), 1)))
	defer C.free(buf)
	copy(unsafe.Slice((*int64)(buf), len(data)), data)
	if C.pk_write(g.id, cs, C.pk_int64(), C.int(len(shape)), p, buf) < 0 {
		return g.fail("dataset", name)
	}
	return nil
}

// Strings writes variable-length UTF-8 strings shaped like shape (nil: one
// scalar string). h5py reads them back as bytes.
func (g *Group) Strings(name string, shape []int, values []string) error {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	t := C.pk_vlen_utf8()
	if t < 0 {
		return g.fail("string type for", name)
	}
	defer C.pk_close_type(t)
	ptrs := C.malloc(C.size_t(max(len(values), 1)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(ptrs)
	arr := unsafe.Slice((**C.char)(ptrs), max(len(values), 1))
	for i, v := range values {
		arr[i] = C.CString(v)
	}
	defer func() {
		for i := range values {
			C.free(unsafe.Pointer(arr[i]))
		}
	}()
	p := dims(shape)
	if C.pk_write(g.id, cs, t, C.int(len(shape)), p, ptrs) < 0 {
		return g.fail("strings", name)
	}
	return nil
}

// String writes one scalar string.
func (g *Group) String(name, value string) error { return g.Strings(name, nil, []string{value}) }
