// Package hdf5 writes and reads HDF5 files — groups, numeric datasets and
// strings — through the HDF5 C library, which it opens at run time
// (dlopen: libhdf5_serial.so.103 and the other names it has, or
// $PROXYKIT_HDF5): proxykit builds without HDF5's headers and starts
// without the library, and only NIR files need it. It is the little NIR
// needs, nothing more. Written objects carry no timestamps: the same
// content gives the same file, byte for byte. Reading takes what NIR's
// writers (proxykit, NIR's Python package through h5py) store: groups,
// integer and floating-point datasets of any width (compressed too, as the
// library decodes them) and variable- or fixed-length strings.
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
enum { H5S_SCALAR = 0, H5T_CSET_UTF8 = 1, H5F_ACC_TRUNC = 2, H5F_ACC_RDONLY = 0 };
enum { H5T_INTEGER = 0, H5T_FLOAT = 1, H5T_STRING = 3 };
enum { H5I_GROUP = 2, H5I_DATASET = 5 };
// H5G_info_t: nlinks follows a 4-byte enum, at offset 8 (HDF5 1.10 to
// 1.14); room to spare for the rest.
typedef struct { int storage_type; hsize_t nlinks; int64_t max_corder; char rest[32]; } pk_ginfo;
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
static hid_t (*p_fopen)(const char *, unsigned, hid_t);
static hid_t (*p_gopen)(hid_t, const char *, hid_t);
static herr_t (*p_gget_info)(hid_t, pk_ginfo *);
static long (*p_lget_name_by_idx)(hid_t, const char *, int, int, hsize_t, char *, size_t, hid_t);
static hid_t (*p_oopen)(hid_t, const char *, hid_t);
static herr_t (*p_oclose)(hid_t);
static int (*p_iget_type)(hid_t);
static hid_t (*p_dopen)(hid_t, const char *, hid_t);
static hid_t (*p_dget_space)(hid_t);
static hid_t (*p_dget_type)(hid_t);
static herr_t (*p_dread)(hid_t, hid_t, hid_t, hid_t, hid_t, void *);
static int (*p_sget_ndims)(hid_t);
static int (*p_sget_dims)(hid_t, hsize_t *, hsize_t *);
static int (*p_tget_class)(hid_t);
static size_t (*p_tget_size)(hid_t);
static int (*p_tis_variable_str)(hid_t);
static int (*p_tget_cset)(hid_t);
static herr_t (*p_free_memory)(void *);
static hid_t *g_double, *g_f32le, *g_f32be, *g_f64le, *g_f64be;
static int (*p_tequal)(hid_t, hid_t);
static size_t (*p_tget_precision)(hid_t);
static int (*p_tget_offset)(hid_t);

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
	SYM(p_fopen, "H5Fopen") SYM(p_gopen, "H5Gopen2") SYM(p_gget_info, "H5Gget_info")
	SYM(p_lget_name_by_idx, "H5Lget_name_by_idx") SYM(p_oopen, "H5Oopen") SYM(p_oclose, "H5Oclose")
	SYM(p_iget_type, "H5Iget_type") SYM(p_dopen, "H5Dopen2") SYM(p_dget_space, "H5Dget_space")
	SYM(p_dget_type, "H5Dget_type") SYM(p_dread, "H5Dread") SYM(p_sget_ndims, "H5Sget_simple_extent_ndims")
	SYM(p_sget_dims, "H5Sget_simple_extent_dims") SYM(p_tget_class, "H5Tget_class") SYM(p_tget_size, "H5Tget_size")
	SYM(p_tis_variable_str, "H5Tis_variable_str") SYM(p_tget_cset, "H5Tget_cset") SYM(p_free_memory, "H5free_memory")
	SYM(g_double, "H5T_NATIVE_DOUBLE_g") SYM(g_f32le, "H5T_IEEE_F32LE_g") SYM(g_f32be, "H5T_IEEE_F32BE_g")
	SYM(g_f64le, "H5T_IEEE_F64LE_g") SYM(g_f64be, "H5T_IEEE_F64BE_g") SYM(p_tequal, "H5Tequal")
	SYM(p_tget_precision, "H5Tget_precision") SYM(p_tget_offset, "H5Tget_offset")
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

// Reading.
static hid_t pk_open_file(const char *name) {
	quiet();
	return p_fopen(name, H5F_ACC_RDONLY, H5P_DEFAULT);
}
static hid_t pk_open_group(hid_t loc, const char *name) {
	quiet();
	return p_gopen(loc, name, H5P_DEFAULT);
}
// pk_count is the number of links in a group, or -1.
static long long pk_count(hid_t g) {
	quiet();
	pk_ginfo info;
	if (p_gget_info(g, &info) < 0) return -1;
	return (long long)info.nlinks;
}
// pk_name_at copies the name of link i (in name order) into buf of size
// bytes and returns its length, or -1.
static long pk_name_at(hid_t g, hsize_t i, char *buf, size_t size) {
	quiet();
	return p_lget_name_by_idx(g, ".", 0, 0, i, buf, size, H5P_DEFAULT);
}
// pk_kind is 1 for a group, 2 for a dataset, 0 for anything else, -1 when
// the name does not open.
static int pk_kind(hid_t loc, const char *name) {
	quiet();
	hid_t o = p_oopen(loc, name, H5P_DEFAULT);
	if (o < 0) return -1;
	int t = p_iget_type(o);
	p_oclose(o);
	return t == H5I_GROUP ? 1 : t == H5I_DATASET ? 2 : 0;
}
static hid_t pk_open_dataset(hid_t loc, const char *name) {
	quiet();
	return p_dopen(loc, name, H5P_DEFAULT);
}
// pk_shape writes a dataset's rank into *rank and up to 32 dimensions
// into dims; -1 on failure.
static int pk_shape(hid_t ds, int *rank, hsize_t *dims) {
	quiet();
	hid_t space = p_dget_space(ds);
	if (space < 0) return -1;
	int r = p_sget_ndims(space);
	if (r < 0 || r > 32 || (r > 0 && p_sget_dims(space, dims, NULL) < 0)) { p_sclose(space); return -1; }
	*rank = r;
	p_sclose(space);
	return 0;
}
// pk_type writes a dataset's type class, size, whether it is a
// variable-length string and its character set; -1 on failure.
static int pk_type(hid_t ds, int *cls, size_t *size, int *vlen, int *cset) {
	quiet();
	hid_t t = p_dget_type(ds);
	if (t < 0) return -1;
	*cls = p_tget_class(t);
	*size = p_tget_size(t);
	*vlen = 0;
	*cset = 0;
	// only IEEE floats and plain integers: the library's conversion of a
	// float type with made-up bit fields (a damaged file) crashes it
	if (*cls == H5T_FLOAT && !(p_tequal(t, *g_f32le) > 0 || p_tequal(t, *g_f32be) > 0 ||
	                           p_tequal(t, *g_f64le) > 0 || p_tequal(t, *g_f64be) > 0)) *cls = -2;
	if (*cls == H5T_INTEGER && (p_tget_offset(t) != 0 || p_tget_precision(t) != 8 * *size ||
	                            (*size != 1 && *size != 2 && *size != 4 && *size != 8))) *cls = -2;
	if (*cls == H5T_STRING) {
		*vlen = p_tis_variable_str(t) > 0;
		*cset = p_tget_cset(t);
	}
	p_tclose(t);
	return 0;
}
static herr_t pk_read_float(hid_t ds, float *buf) { quiet(); return p_dread(ds, *g_float, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); }
static herr_t pk_read_double(hid_t ds, double *buf) { quiet(); return p_dread(ds, *g_double, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); }
static herr_t pk_read_int64(hid_t ds, int64_t *buf) { quiet(); return p_dread(ds, *g_int64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); }
// pk_read_strings reads strings: variable-length ones as pointers the
// library allocates (free them with pk_free), fixed ones of size bytes
// each into buf.
static herr_t pk_read_strings(hid_t ds, int vlen, size_t size, int cset, void *buf) {
	quiet();
	hid_t t = p_tcopy(*g_c_s1);
	if (t < 0) return -1;
	p_tset_size(t, vlen ? H5T_VARIABLE : size);
	p_tset_cset(t, cset);
	herr_t err = p_dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	p_tclose(t);
	return err;
}
static void pk_free(void *p) { if (p != NULL) p_free_memory(p); }
static herr_t pk_close_dataset(hid_t ds) { quiet(); return p_dclose(ds); }
*/
import "C"

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"github.com/proxykit/proxykit/internal/limits"
)

// File is an HDF5 file open for writing (Create) or reading (Open).
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
	return fmt.Errorf("NIR files need the HDF5 C library, and none was found (tried %s): install it (Debian: apt-get install libhdf5-103-1) or name it with PROXYKIT_HDF5",
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

// Open opens an existing HDF5 file for reading.
func Open(path string) (*File, error) {
	if err := loaded(); err != nil {
		return nil, err
	}
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	id := C.pk_open_file(cs)
	if id < 0 {
		return nil, fmt.Errorf("HDF5 cannot open %s", path)
	}
	return &File{id: id, path: path}, nil
}

func (g *Group) where(name string) string { return g.name + name + " in " + g.file.path }

// Members lists the names of a group's members (groups and datasets), in
// name order.
func (g *Group) Members() ([]string, error) {
	n := int64(C.pk_count(g.id))
	if n < 0 {
		return nil, fmt.Errorf("HDF5: cannot list group %s of %s", g.name, g.file.path)
	}
	if n > 1<<20 {
		return nil, fmt.Errorf("HDF5: group %s of %s has %d members", g.name, g.file.path, n)
	}
	names := make([]string, 0, n)
	buf := make([]byte, 1024)
	for i := int64(0); i < n; i++ {
		l := int64(C.pk_name_at(g.id, C.hsize_t(i), (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf))))
		if l < 0 {
			return nil, fmt.Errorf("HDF5: cannot list group %s of %s", g.name, g.file.path)
		}
		if l >= int64(len(buf)) {
			if l > 1<<16 {
				return nil, fmt.Errorf("HDF5: a member name of %d bytes in group %s of %s", l, g.name, g.file.path)
			}
			buf = make([]byte, l+1)
			i--
			continue
		}
		names = append(names, string(buf[:l]))
	}
	return names, nil
}

// Kind of a group member.
const (
	IsOther = iota
	IsGroup
	IsDataset
)

// Kind says what the member name of g is (IsGroup, IsDataset or
// IsOther), or that there is none.
func (g *Group) Kind(name string) (int, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	k := int(C.pk_kind(g.id, cs))
	if k < 0 {
		return 0, fmt.Errorf("HDF5: no %s", g.where(name))
	}
	return k, nil
}

// Open opens the child group name.
func (g *Group) Open(name string) (*Group, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	id := C.pk_open_group(g.id, cs)
	if id < 0 {
		return nil, fmt.Errorf("HDF5: cannot open group %s", g.where(name))
	}
	return &Group{id: id, file: g.file, name: g.name + name + "/"}, nil
}

// Class of a dataset's values: integers of 1 to 8 bytes, IEEE 754 binary32
// or binary64 floats, strings; anything else (including float and integer
// types with other bit layouts, which only a damaged file has) is Other.
const (
	Integer = "integer"
	Float   = "float"
	String  = "string"
	Other   = "other"
)

// Dataset is a dataset open for reading: its shape (empty for a scalar)
// and the class of its values.
type Dataset struct {
	id    C.hid_t
	where string
	Shape []int
	Class string
	size  int // bytes per value in the file
	vlen  bool
	cset  C.int
}

// maxElems bounds the values of one dataset proxykit reads.
const maxElems = 1 << 31

// Dataset opens the dataset name of g.
func (g *Group) Dataset(name string) (*Dataset, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	id := C.pk_open_dataset(g.id, cs)
	if id < 0 {
		return nil, fmt.Errorf("HDF5: cannot open dataset %s", g.where(name))
	}
	d := &Dataset{id: id, where: g.where(name)}
	var rank C.int
	var dims [32]C.hsize_t
	var cls, vlen C.int
	var size C.size_t
	if C.pk_shape(id, &rank, &dims[0]) < 0 || C.pk_type(id, &cls, &size, &vlen, &d.cset) < 0 {
		d.Close()
		return nil, fmt.Errorf("HDF5: cannot read the shape and type of dataset %s", d.where)
	}
	n := uint64(1)
	for i := 0; i < int(rank); i++ {
		v := uint64(dims[i])
		if v > maxElems || n*v > maxElems {
			d.Close()
			return nil, fmt.Errorf("HDF5: dataset %s has %d values or more, too many", d.where, n*v)
		}
		n *= v
		d.Shape = append(d.Shape, int(v))
	}
	d.size, d.vlen = int(size), vlen != 0
	switch cls {
	case C.H5T_INTEGER:
		d.Class = Integer
	case C.H5T_FLOAT:
		d.Class = Float
	case C.H5T_STRING:
		d.Class = String
	default:
		d.Class = Other
	}
	return d, nil
}

// Len is the number of values (1 for a scalar).
func (d *Dataset) Len() int {
	n := 1
	for _, v := range d.Shape {
		n *= v
	}
	return n
}

// Close closes the dataset.
func (d *Dataset) Close() {
	if d.id >= 0 {
		C.pk_close_dataset(d.id)
		d.id = -1
	}
}

func (d *Dataset) numeric(want string, bytes int) error {
	if d.Class != Integer && d.Class != Float {
		return fmt.Errorf("HDF5: dataset %s holds %s values, not %s", d.where, d.Class, want)
	}
	return limits.CheckMemory("reading "+d.where, uint64(d.Len())*uint64(bytes), "the dataset is too large for this machine")
}

// Float32 reads numeric values as float32 (converted by the library,
// rounding float64 to nearest).
func (d *Dataset) Float32() ([]float32, error) {
	if err := d.numeric("numbers", 4); err != nil {
		return nil, err
	}
	out := make([]float32, d.Len())
	if len(out) > 0 && C.pk_read_float(d.id, (*C.float)(unsafe.Pointer(&out[0]))) < 0 {
		return nil, fmt.Errorf("HDF5: cannot read dataset %s", d.where)
	}
	return out, nil
}

// Float64 reads numeric values as float64.
func (d *Dataset) Float64() ([]float64, error) {
	if err := d.numeric("numbers", 8); err != nil {
		return nil, err
	}
	out := make([]float64, d.Len())
	if len(out) > 0 && C.pk_read_double(d.id, (*C.double)(unsafe.Pointer(&out[0]))) < 0 {
		return nil, fmt.Errorf("HDF5: cannot read dataset %s", d.where)
	}
	return out, nil
}

// Int64 reads integer values.
func (d *Dataset) Int64() ([]int64, error) {
	if d.Class != Integer {
		return nil, fmt.Errorf("HDF5: dataset %s holds %s values, not integers", d.where, d.Class)
	}
	if err := d.numeric("integers", 8); err != nil {
		return nil, err
	}
	out := make([]int64, d.Len())
	if len(out) > 0 && C.pk_read_int64(d.id, (*C.int64_t)(unsafe.Pointer(&out[0]))) < 0 {
		return nil, fmt.Errorf("HDF5: cannot read dataset %s", d.where)
	}
	return out, nil
}

// Strings reads string values, variable- or fixed-length (a fixed one
// ends at its first NUL; trailing spaces are kept).
func (d *Dataset) Strings() ([]string, error) {
	if d.Class != String {
		return nil, fmt.Errorf("HDF5: dataset %s holds %s values, not strings", d.where, d.Class)
	}
	n := d.Len()
	if d.vlen {
		if err := limits.CheckMemory("reading "+d.where, uint64(n)*8, "the dataset is too large for this machine"); err != nil {
			return nil, err
		}
		ptrs := C.calloc(C.size_t(max(n, 1)), C.size_t(unsafe.Sizeof(uintptr(0))))
		defer C.free(ptrs)
		arr := unsafe.Slice((**C.char)(ptrs), max(n, 1))
		if C.pk_read_strings(d.id, 1, 0, d.cset, ptrs) < 0 {
			return nil, fmt.Errorf("HDF5: cannot read strings %s", d.where)
		}
		out := make([]string, n)
		for i := 0; i < n; i++ {
			if arr[i] != nil {
				out[i] = C.GoString(arr[i])
			}
			C.pk_free(unsafe.Pointer(arr[i]))
		}
		return out, nil
	}
	size := d.size
	if size < 1 || uint64(size)*uint64(n) > maxElems {
		return nil, fmt.Errorf("HDF5: dataset %s holds %d strings of %d bytes", d.where, n, size)
	}
	buf := C.calloc(C.size_t(max(n, 1)), C.size_t(size))
	defer C.free(buf)
	if C.pk_read_strings(d.id, 0, C.size_t(size), d.cset, buf) < 0 {
		return nil, fmt.Errorf("HDF5: cannot read strings %s", d.where)
	}
	raw := unsafe.Slice((*byte)(buf), n*size)
	out := make([]string, n)
	for i := range out {
		b := raw[i*size : (i+1)*size]
		if j := bytes.IndexByte(b, 0); j >= 0 {
			b = b[:j]
		}
		out[i] = string(b)
	}
	return out, nil
}
