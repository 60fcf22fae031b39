// Package hdf5 writes HDF5 files — groups, numeric datasets and scalar
// UTF-8 strings — through the HDF5 C library, which it opens at run time
// (dlopen: libhdf5_serial.so.103 and the other names it has, or
// $PROXYKIT_HDF5): proxykit builds without HDF5's headers and starts
// without the library, and only writing NIR needs it. It is the little NIR
// needs, nothing more. Objects carry no timestamps: the same content gives
// the same file, byte for byte.
package hdf5

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

// The HDF5 C API (1.10 and newer), declared here: the library is opened
// at run time, so that proxykit builds without its headers and starts
// without it.
typedef int64_t hid_t;
typedef int herr_t;
typedef unsigned long long hsize_t;
enum { H5S_SCALAR = 0, H5T_CSET_UTF8 = 1, H5F_ACC_TRUNC = 2 };
#define H5P_DEFAULT ((hid_t)0)
#define H5S_ALL ((hid_t)0)
#define H5E_DEFAULT ((hid_t)0)
#define H5T_VARIABLE ((size_t)(-1))

static void *lib;
static herr_t (*p_open)(void);
static hid_t (*p_fcreate)(const char *, unsigned, hid_t, hid_t);
static herr_t (*p_fclose)(hid_t);
static hid_t (*p_gcreate)(hid_t, const char *, hid_t, hid_t, hid_t);
static herr_t (*p_gclose)(hid_t);
static hid_t (*p_screate)(int);
static hid_t (*p_screate_simple)(int, const hsize_t *, const hsize_t *);
static herr_t (*p_sclose)(hid_t);
static hid_t (*p_dcreate)(hid_t, const char *, hid_t, hid_t, hid_t, hid_t, hid_t);
static herr_t (*p_dwrite)(hid_t, hid_t, hid_t, hid_t, hid_t, const void *);
static herr_t (*p_dclose)(hid_t);
static hid_t (*p_tcopy)(hid_t);
static herr_t (*p_tset_size)(hid_t, size_t);
static herr_t (*p_tset_cset)(hid_t, int);
static herr_t (*p_tclose)(hid_t);
static hid_t (*p_pcreate)(hid_t);
static herr_t (*p_pset_obj_track_times)(hid_t, bool);
static herr_t (*p_pclose)(hid_t);
static herr_t (*p_eset_auto)(hid_t, void *, void *);
static hid_t *g_float, *g_int64, *g_c_s1, *g_group_create, *g_dataset_create;

// pk_load opens the library named, resolves what proxykit uses and
// initialises HDF5: 0 on success, 1 when the file does not open, 2 when a
// symbol is missing (an HDF5 older than 1.10).
static int pk_load(const char *name) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) return 1;
#define SYM(p, s) if ((*(void **)&p = dlsym(h, s)) == NULL) { dlclose(h); return 2; }
	SYM(p_open, "H5open") SYM(p_fcreate, "H5Fcreate") SYM(p_fclose, "H5Fclose")
	SYM(p_gcreate, "H5Gcreate2") SYM(p_gclose, "H5Gclose") SYM(p_screate, "H5Screate")
	SYM(p_screate_simple, "H5Screate_simple") SYM(p_sclose, "H5Sclose") SYM(p_dcreate, "H5Dcreate2")
	SYM(p_dwrite, "H5Dwrite") SYM(p_dclose, "H5Dclose") SYM(p_tcopy, "H5Tcopy") SYM(p_tset_size, "H5Tset_size")
	SYM(p_tset_cset, "H5Tset_cset") SYM(p_tclose, "H5Tclose") SYM(p_pcreate, "H5Pcreate")
	SYM(p_pset_obj_track_times, "H5Pset_obj_track_times") SYM(p_pclose, "H5Pclose") SYM(p_eset_auto, "H5Eset_auto2")
	SYM(g_float, "H5T_NATIVE_FLOAT_g") SYM(g_int64, "H5T_NATIVE_INT64_g") SYM(g_c_s1, "H5T_C_S1_g")
	SYM(g_group_create, "H5P_CLS_GROUP_CREATE_ID_g") SYM(g_dataset_create, "H5P_CLS_DATASET_CREATE_ID_g")
#undef SYM
	if (p_open() < 0) { dlclose(h); return 2; }
	lib = h;
	return 0;
}

// quiet turns off the HDF5 library's printing of its error stack (a full
// disk printed hundreds of lines): errors come back as return values. The
// setting belongs to the calling thread, and cgo calls may run on any, so
// every entry point sets it.
static void quiet(void) { p_eset_auto(H5E_DEFAULT, NULL, NULL); }

static hid_t pk_float(void) { return *g_float; }
static hid_t pk_int64(void) { return *g_int64; }
static hid_t pk_vlen_utf8(void) {
	quiet();
	hid_t t = p_tcopy(*g_c_s1);
	if (t < 0) return t;
	p_tset_size(t, H5T_VARIABLE);
	p_tset_cset(t, H5T_CSET_UTF8);
	return t;
}
static hid_t pk_create_file(const char *name) {
	quiet();
	return p_fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}
static herr_t pk_close_group(hid_t g) {
	quiet();
	return p_gclose(g);
}
static herr_t pk_close_type(hid_t t) {
	quiet();
	return p_tclose(t);
}
static herr_t pk_close_file(hid_t f) {
	quiet();
	return p_fclose(f);
}
// Objects are created without modification times, so that the same
// content always gives the same bytes.
static hid_t pk_group(hid_t loc, const char *name) {
	quiet();
	hid_t gcpl = p_pcreate(*g_group_create);
	if (gcpl < 0) return gcpl;
	p_pset_obj_track_times(gcpl, 0);
	hid_t g = p_gcreate(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
	p_pclose(gcpl);
	return g;
}
static herr_t pk_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const void *buf) {
	quiet();
	hid_t space = rank == 0 ? p_screate(H5S_SCALAR) : p_screate_simple(rank, dims, NULL);
	if (space < 0) return -1;
	hid_t dcpl = p_pcreate(*g_dataset_create);
	if (dcpl < 0) { p_sclose(space); return -1; }
	p_pset_obj_track_times(dcpl, 0);
	hid_t ds = p_dcreate(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	p_pclose(dcpl);
	if (ds < 0) { p_sclose(space); return -1; }
	herr_t err = p_dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	p_dclose(ds);
	p_sclose(space);
	return err;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
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

// loaded is the outcome of opening the library, once per process (the
// library, once open, is the process's).
var loaded = sync.OnceValue(func() error {
	// the names the HDF5 C library has on common systems, Debian's serial
	// build first
	names := []string{"libhdf5_serial.so.103", "libhdf5.so.103", "libhdf5.so.310", "libhdf5.so.200",
		"libhdf5_serial.so.100", "libhdf5.so.100", "libhdf5.so", "libhdf5_serial.so"}
	if p := os.Getenv("PROXYKIT_HDF5"); p != "" {
		names = []string{p}
	}
	for _, name := range names {
		cs := C.CString(name)
		rc := C.pk_load(cs)
		C.free(unsafe.Pointer(cs))
		switch rc {
		case 0:
			return nil
		case 2:
			return fmt.Errorf("the HDF5 library %s lacks what proxykit uses (HDF5 1.10 or newer is needed)", name)
		}
	}
	return fmt.Errorf("writing NIR needs the HDF5 C library, and none was found (tried %s): install it (Debian: apt-get install libhdf5-103-1) or name it with PROXYKIT_HDF5",
		strings.Join(names, ", "))
})

// Available reports whether the HDF5 library can be used, and if not why.
func Available() error { return loaded() }

// Create makes (or truncates) an HDF5 file.
func Create(path string) (*File, error) {
	if err := loaded(); err != nil {
		return nil, err
	}
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
