package atomicfile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

func TestLongNamesAndStaleTemporaries(t *testing.T) {
	dir := t.TempDir()
	// 255 bytes is the longest name the file system takes; the temporary
	// name must not be longer than the destination's.
	long := filepath.Join(dir, strings.Repeat("x", 255))
	if err := Write(long, []byte("a")); err != nil {
		t.Fatalf("a 255-byte name: %v", err)
	}
	// what a killed process left behind goes with the next write; what a
	// running process is writing stays
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, fmt.Sprintf("%s.%d.123456", tempPrefix(long), dead.Process.Pid))
	os.WriteFile(stale, make([]byte, 1000), 0o600)
	live := filepath.Join(dir, fmt.Sprintf("%s.%d.654321", tempPrefix(long), os.Getppid()))
	os.WriteFile(live, nil, 0o600)
	other := filepath.Join(dir, tempPrefix(filepath.Join(dir, "other"))+".1.999")
	os.WriteFile(other, nil, 0o600)
	if err := Write(long, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale temporary file is still there")
	}
	if _, err := os.Stat(live); err != nil {
		t.Error("a running process's temporary file was removed")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("another destination's temporary file was removed")
	}
	if b, _ := os.ReadFile(long); string(b) != "b" {
		t.Errorf("content %q", b)
	}
}

func TestSpecialDestinationsRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "t")
	os.WriteFile(target, []byte("keep"), 0o644)
	link := filepath.Join(dir, "l")
	os.Symlink(target, link)
	for _, p := range []string{fifo, link, dir, "/dev/null"} {
		err := Write(p, []byte("x"))
		if err == nil || !strings.Contains(err.Error(), "proxykit replaces only regular files") {
			t.Errorf("%s: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Error("the link's target changed")
	}
	if err := Write(filepath.Join(dir, "no", "such"), nil); err == nil {
		t.Error("a missing folder was accepted")
	}
}

func TestAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	a, err := Prepare(filepath.Join(dir, "a"), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(filepath.Join(dir, "missing", "b"), []byte("b")); err == nil {
		t.Fatal("prepared into a missing folder")
	}
	a.Abort()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("an aborted set of writes left %d files", len(entries))
	}
}

// TestLockRefusesASecondWriter: while one writer holds a file's lock, a
// second is refused with the holder's process ID; after Unlock it may.
func TestLockRefusesASecondWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.ckpt")
	a, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	// another open file description, as another process has
	if _, err := Lock(path); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Errorf("second lock: %v", err)
	}
	a.Unlock()
	b, err := Lock(path)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	b.Unlock()
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Errorf("unlocked, the folder still holds %v", entries)
	}
}

// TestLockLeftByAKilledWriter: a lock file nobody holds (its writer was
// killed) is taken over, and removed once the new writer is done.
func TestLockLeftByAKilledWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.ckpt")
	name := filepath.Join(filepath.Dir(path), ".pk-"+hashOf(path)+".lock")
	if err := os.WriteFile(name, []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Lock(path)
	if err != nil {
		t.Fatalf("a stale lock file: %v", err)
	}
	l.Unlock()
	if _, err := os.Stat(name); err == nil {
		t.Error("the stale lock file is still there")
	}
}

// TestLockExcludesUnderRemoval: writers that lock, work and unlock over and
// over (each Lock its own open file description, as processes have) never
// overlap, although every Unlock removes the file that others may have
// opened already.
func TestLockExcludesUnderRemoval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.ckpt")
	var inside, overlaps, taken atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				l, err := Lock(path)
				if err != nil {
					continue // held by another: refused, as it must be
				}
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				taken.Add(1)
				runtime.Gosched()
				inside.Add(-1)
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d locks taken, %d overlaps", taken.Load(), overlaps.Load())
	if overlaps.Load() > 0 || taken.Load() == 0 {
		t.Errorf("%d of %d locks overlapped another", overlaps.Load(), taken.Load())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Errorf("the folder still holds %v", entries)
	}
}

// TestRemoveTemporaries: what a write in progress created is removed when
// the process is told to stop.
func TestRemoveTemporaries(t *testing.T) {
	dir := t.TempDir()
	p, err := Prepare(filepath.Join(dir, "a.onnx"), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	RemoveTemporaries()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
	if err := p.Commit(); err == nil {
		t.Error("a removed temporary file was committed")
	}
}
