package atomicfile

import (
	"os"
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
	// what a killed write left behind goes with the next write
	stale := filepath.Join(dir, tempPrefix(long)+"123456")
	os.WriteFile(stale, make([]byte, 1000), 0o600)
	other := filepath.Join(dir, tempPrefix(filepath.Join(dir, "other"))+"999")
	os.WriteFile(other, nil, 0o600)
	if err := Write(long, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale temporary file is still there")
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
