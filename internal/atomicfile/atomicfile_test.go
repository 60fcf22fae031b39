package atomicfile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
