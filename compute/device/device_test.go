package device

import (
	"strings"
	"testing"
)

// TestCheckAgreesWithOpen: Check, which opens nothing, refuses exactly the
// names Open fails to open in this build (cuda: without -tags cuda, or
// without a GPU), with the same words.
func TestCheckAgreesWithOpen(t *testing.T) {
	for _, name := range []string{"cpu", "cuda-emu", "cuda", "tpu", "", "CPU"} {
		cerr := Check(name)
		be, oerr := Open(name, Options{})
		if be != nil {
			be.Close()
		}
		if (cerr == nil) != (oerr == nil) {
			t.Errorf("%q: Check says %v, Open %v", name, cerr, oerr)
			continue
		}
		if cerr != nil && !strings.HasPrefix(oerr.Error(), strings.SplitN(cerr.Error(), ":", 2)[0]) {
			t.Errorf("%q: Check says %q, Open %q", name, cerr, oerr)
		}
	}
	if err := Check("tpu"); err == nil || !strings.Contains(err.Error(), Names) {
		t.Errorf("Check(tpu) = %v, want the names it takes", err)
	}
}
