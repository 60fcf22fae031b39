package compute_test

import (
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
)

// TestCPURefusesHostileArguments (issue 34, F6): Alloc(2^62) is refused
// (on 8d3f05f its byte count overflowed to 0, passed the memory check and
// panicked in make), and a kernel given a buffer shorter than its sizes
// need, a negative size or a geometry without output fails through Err,
// naming the kernel and the argument, instead of panicking or writing out
// of bounds (on 8d3f05f: index out of range).
func TestCPURefusesHostileArguments(t *testing.T) {
	cpu := compute.NewCPU()
	if b, err := cpu.Alloc(1 << 62); err == nil {
		t.Fatalf("Alloc(2^62): %d values, no error", b.Len())
	}
	x, _ := cpu.Alloc(16)
	y, _ := cpu.Alloc(4)
	w, _ := cpu.Alloc(4)
	for _, c := range []struct {
		call func()
		want string
	}{
		{func() { cpu.LinearForward(2, 8, 4, x, w, nil, y, false) }, "LinearForward: w holds 4 values, 32 needed"},
		{func() { cpu.LinearForward(-2, 8, 4, x, w, nil, y, false) }, "size -2"},
		{func() {
			cpu.Conv2dForward(compute.ConvGeom{C: 1, H: 4, W: 4, O: 1, KH: 5, KW: 5, SH: 1, SW: 1, DH: 1, DW: 1}, 1, x, w, nil, y)
		}, "leaves no output"},
		{func() { cpu.MaxPool2dForward(compute.PoolGeom{C: 1, H: 4, W: 4, KH: 2, KW: 2}, 1, x, y) }, "SH is 0"},
		{func() { cpu.ReLUForward(x, y) }, "y holds 4 values, 16 needed"},
	} {
		c.call()
		if err := cpu.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v, want an error saying %q", err, c.want)
		}
	}
	if err := cpu.Err(); err != nil {
		t.Errorf("Err after it was read: %v", err)
	}
}
