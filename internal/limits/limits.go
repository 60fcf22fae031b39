// Package limits guards proxykit against inputs that would exhaust the
// machine: it reads files only when they are regular and fit in memory,
// and tells how much memory an allocation may take.
package limits

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// AvailableMemory is the memory the system can give this process now
// (MemAvailable of /proc/meminfo), or 8 GiB where that cannot be read.
func AvailableMemory() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 8 << 30
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			if kb, err := strconv.ParseUint(fields[1], 10, 64); err == nil {
				return kb << 10
			}
		}
	}
	return 8 << 30
}

// CheckMemory refuses an allocation of bytes for what when it exceeds the
// available memory, naming the need, the limit and how to lower the need.
func CheckMemory(what string, bytes uint64, lower string) error {
	if avail := AvailableMemory(); bytes > avail {
		return fmt.Errorf("%s needs %s but only %s of memory is available; %s", what, Size(bytes), Size(avail), lower)
	}
	return nil
}

// Size prints a byte count for people.
func Size(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", b)
}

// ReadFile reads a whole regular file. Devices, FIFOs, sockets and
// folders are refused before any read (reading /dev/zero would never end),
// and so is a file larger than the available memory.
func ReadFile(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := CheckMemory("reading "+path, uint64(st.Size()), "this file is too large for this machine"); err != nil {
		return nil, err
	}
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

// Open opens a regular file for reading, refusing anything else.
func Open(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a regular file", path, FileKind(st.Mode()))
	}
	return os.Open(path)
}

// FileKind names what a file that is not regular is, for errors.
func FileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m.IsRegular():
		return "a regular file"
	}
	return "a special file"
}
