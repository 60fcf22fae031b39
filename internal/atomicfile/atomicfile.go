// Package atomicfile writes files so that readers never see a partial one:
// the bytes go to a temporary file in the destination's folder, which is
// renamed over the destination only once complete.
//
// Temporary names are short (".pk-", a hash of the destination's name
// whatever its length, and the writer's process ID), so a destination
// name of up to 255 bytes works. The temporary files a killed process
// left behind for a destination are removed by the next write to it —
// never those of a process still running — and a process that is
// stopped by a signal removes its own (RemoveTemporaries). Lock keeps a
// second process from writing a file another one is writing (a
// checkpoint during a training run); its hidden lock file is removed when
// the writer unlocks. Existing destinations that are not
// regular files (devices, named pipes, symbolic links, folders) are never
// replaced.
package atomicfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/proxykit/proxykit/internal/limits"
)

// tempPrefix is the start of every temporary name for path; the writer's
// process ID and a random part follow (".pk-HASH.tmp.PID.RANDOM").
func tempPrefix(path string) string {
	sum := sha256.Sum256([]byte(filepath.Base(path)))
	return ".pk-" + hex.EncodeToString(sum[:8]) + ".tmp"
}

// cleanStale removes the temporary files that writes to path by processes
// no longer running left behind.
func cleanStale(path string) {
	prefix := tempPrefix(path) + "."
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(path), prefix+"*"))
	for _, f := range old {
		pid, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(f), prefix), ".")
		if n, err := strconv.Atoi(pid); ok && err == nil && alive(n) {
			continue // another process is writing it
		}
		os.Remove(f)
	}
}

// alive reports whether process pid runs (or may: one we cannot signal).
func alive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// temporaries are this process's temporary files not yet renamed or
// removed, for RemoveTemporaries. They are the process's by nature: a
// signal stops the process, whatever write is under way.
var temporaries = struct {
	sync.Mutex
	files map[string]bool
}{files: map[string]bool{}}

func track(name string, live bool) {
	temporaries.Lock()
	defer temporaries.Unlock()
	if live {
		temporaries.files[name] = true
	} else {
		delete(temporaries.files, name)
	}
}

// RemoveTemporaries removes every temporary file of this process's writes
// in progress: a command stopped by a signal calls it before it exits, so
// that an interrupted write leaves nothing behind.
func RemoveTemporaries() {
	temporaries.Lock()
	defer temporaries.Unlock()
	for f := range temporaries.files {
		os.Remove(f)
		delete(temporaries.files, f)
	}
}

// Check reports, before any work, whether path can be written: its folder
// exists and takes new files, and path is absent or a regular file.
func Check(path string) error {
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("cannot write %s: it is %s; proxykit replaces only regular files (give the path a link points to)",
			path, limits.FileKind(st.Mode()))
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("cannot write %s: %s is not a folder", path, dir)
	}
	tmp, err := os.CreateTemp(dir, fmt.Sprintf("%s.%d.*", tempPrefix(path), os.Getpid()))
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	tmp.Close()
	os.Remove(tmp.Name())
	return nil
}

// A FileLock keeps other processes from writing a file while this one
// does: an advisory lock (flock) on a hidden file beside it,
// ".pk-<hash of the path>.lock", holding the PID. The file exists only
// while the lock is held: Unlock removes it. A writer that was killed
// leaves its lock file behind, unlocked; the next Lock of that path takes
// it over and its Unlock removes it.
type FileLock struct {
	f    *os.File
	path string
}

// Lock takes path's lock, or says which process holds it.
func Lock(path string) (*FileLock, error) {
	name := filepath.Join(filepath.Dir(path), ".pk-"+hashOf(path)+".lock")
	for {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("cannot lock %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			holder, _ := os.ReadFile(name)
			f.Close()
			who := "another process"
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				who = "process " + pid
			}
			return nil, fmt.Errorf("%s is being written by %s; wait for it to finish or choose another output", path, who)
		}
		// The holder may have removed the file (Unlock) between our open
		// and our lock: then we locked a file no one else will open, and
		// must lock the one now at that name instead.
		if same, err := isAt(f, name); err != nil || !same {
			f.Close()
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("cannot lock %s: %w", path, err)
			}
			continue
		}
		f.Truncate(0)
		fmt.Fprintf(f, "%d\n", os.Getpid())
		return &FileLock{f: f, path: name}, nil
	}
}

// isAt says whether the open file f is the file now at name.
func isAt(f *os.File, name string) (bool, error) {
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(name)
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}

// Unlock removes the lock file and releases the lock. It removes the file
// while still holding the lock, so that a process that opened it in the
// meantime finds, once it gets the lock, that the name no longer leads to
// it (Lock then starts over).
func (l *FileLock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	os.Remove(l.path)
	l.f.Close()
	l.f = nil
}

// hashOf names path's hidden files: the same for every spelling of one
// path (the folder's absolute form and the base name).
func hashOf(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:8])
}

// Write writes b to path atomically. On error, path is left as it was.
func Write(path string, b []byte) error {
	p, err := Prepare(path, b)
	if err != nil {
		return err
	}
	return p.Commit()
}

// WriteFunc is Write for writers that need a path (PrepareFunc).
func WriteFunc(path string, write func(tmp string) error) error {
	p, err := PrepareFunc(path, write)
	if err != nil {
		return err
	}
	return p.Commit()
}

// Pending is a file written in full under a temporary name, waiting to be
// renamed into place: several outputs can be prepared first and committed
// only when all were written (all or nothing).
type Pending struct {
	path, tmp string
}

// Prepare writes b to a temporary file beside path.
func Prepare(path string, b []byte) (*Pending, error) {
	return PrepareFunc(path, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// PrepareFunc is Prepare for writers that need a path (a C library, say):
// write creates the contents at the temporary path it is given.
func PrepareFunc(path string, write func(tmp string) error) (*Pending, error) {
	if err := Check(path); err != nil {
		return nil, err
	}
	cleanStale(path)
	tmp, err := os.CreateTemp(filepath.Dir(path), fmt.Sprintf("%s.%d.*", tempPrefix(path), os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	name := tmp.Name()
	tmp.Close()
	track(name, true)
	fail := func(err error) (*Pending, error) {
		os.Remove(name)
		track(name, false)
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := write(name); err != nil {
		return fail(err)
	}
	if err := os.Chmod(name, 0o644); err != nil {
		return fail(err)
	}
	return &Pending{path: path, tmp: name}, nil
}

// Commit renames the temporary file over the destination.
func (p *Pending) Commit() error {
	defer track(p.tmp, false)
	if err := os.Rename(p.tmp, p.path); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("cannot write %s: %w", p.path, err)
	}
	return nil
}

// Abort removes the temporary file.
func (p *Pending) Abort() {
	os.Remove(p.tmp)
	track(p.tmp, false)
}

// Output is a file a program will write, named as its user knows it (the
// program's flag for it, or a description such as "the figure's CSV").
type Output struct {
	Name, Path string
}

// CheckOutputs checks, before any work, every file a command will write:
// each can be written (Check), none is one of the inputs, and no two are
// the same file (so that one output never overwrites another).
func CheckOutputs(outs []Output, inputs ...string) error {
	for i, o := range outs {
		for _, in := range inputs {
			if SameFile(o.Path, in) {
				return fmt.Errorf("%s %s is the input file %s; write the result elsewhere", o.Name, o.Path, in)
			}
		}
		for _, p := range outs[:i] {
			if SameFile(o.Path, p.Path) {
				return fmt.Errorf("%s %s and %s %s name the same file; give each output its own name", p.Name, p.Path, o.Name, o.Path)
			}
		}
		if err := Check(o.Path); err != nil {
			return err
		}
	}
	return nil
}

// SameFile reports whether a and b name one file: the same cleaned absolute
// path, or existing files that are one (links).
func SameFile(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == bb {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// Set writes several files all or nothing: each is written in full under
// a temporary name beside its path; Commit renames them into place once
// all were written, Abort removes them.
type Set struct {
	pending []*Pending
}

// Add writes b for path under a temporary name.
func (s *Set) Add(path string, b []byte) error {
	p, err := Prepare(path, b)
	if err != nil {
		return err
	}
	s.pending = append(s.pending, p)
	return nil
}

// AddFunc is Add for writers that need a path (PrepareFunc).
func (s *Set) AddFunc(path string, write func(tmp string) error) error {
	p, err := PrepareFunc(path, write)
	if err != nil {
		return err
	}
	s.pending = append(s.pending, p)
	return nil
}

// Commit renames every file into place; after a failed rename the files
// not yet renamed are removed.
func (s *Set) Commit() error {
	for i, p := range s.pending {
		if err := p.Commit(); err != nil {
			for _, q := range s.pending[i+1:] {
				q.Abort()
			}
			s.pending = nil
			return err
		}
	}
	s.pending = nil
	return nil
}

// Abort removes the temporary files of a Set not committed.
func (s *Set) Abort() {
	for _, p := range s.pending {
		p.Abort()
	}
	s.pending = nil
}
