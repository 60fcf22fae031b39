package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/proxykit/proxykit/internal/atomicfile"
)

// fileSet writes a command's files all or none (atomicfile.Set): an error
// names the file by its flag, an interrupt between two files stops the
// command with nothing written, and commit says what was written. The
// first error stops the set: later adds do nothing and commit returns it.
// Every set ends in commit, which leaves no temporary file either way.
type fileSet struct {
	atomicfile.Set
	cmd   *cobra.Command
	wrote []string
	err   error
}

// add writes the bytes encode makes for path (named by flag; an empty path
// is skipped), noting "wrote path: what (N bytes)".
func (s *fileSet) add(flag, path, what string, encode func() ([]byte, error)) {
	s.addFunc(flag, path, func() (string, error) {
		b, err := encode()
		if err == nil {
			err = s.Add(path, b)
		}
		return fmt.Sprintf("%s (%d bytes)", what, len(b)), err
	})
}

// addFunc is add for a file that write puts in the set itself (AddFunc);
// write says what the file holds.
func (s *fileSet) addFunc(flag, path string, write func() (what string, err error)) {
	if s.err == nil {
		s.err = stopped(s.cmd, "nothing was written")
	}
	if s.err != nil || path == "" {
		return
	}
	what, err := write()
	if err != nil {
		s.err = fmt.Errorf("%s %s: %w", flag, path, err)
		return
	}
	s.wrote = append(s.wrote, fmt.Sprintf("wrote %s: %s", path, what))
}

// commit puts the files in place and says so on w (nil: nothing); or
// returns the set's first error, writing nothing (removing what it
// prepared).
func (s *fileSet) commit(w io.Writer) error {
	if s.err == nil {
		s.err = stopped(s.cmd, "nothing was written")
	}
	if s.err != nil {
		s.Abort()
		return s.err
	}
	if err := s.Commit(); err != nil {
		return err
	}
	for _, l := range s.wrote {
		if w != nil {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}
