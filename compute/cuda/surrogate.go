package cuda

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/program"
)

// The kernels of surrogate-gradient training (backpropagation through
// time; compute/surrogate.go is their CPU form).

// IFRecord implements compute.Backend: pk_if's recurrence, also writing
// each step's potential before the spike.
func (be *Backend) IFRecord(a compute.IFArgs, h compute.Buffer) {
	if a.Pool != nil || a.Start {
		be.fail(fmt.Errorf("cuda: IFRecord takes no pooling and no start: the backward pass reads every spike, and the potentials are filled before"))
		return
	}
	c, hw := int32(max(a.C, 1)), int64(max(a.HW, 1))
	n, steps := int64(a.N), int64(a.Steps)
	t := rw(steps*n+n, 2*steps*n+n) // input per step and potentials in; spikes and potentials per step, and potentials out
	if a.Constant {
		t.read -= 4 * (steps - 1) * n
	}
	if a.Counts != nil {
		t.read, t.written = t.read+4*n, t.written+4*n
	}
	if a.Shift != nil {
		t.read += 4 * int64(max(a.C, 1))
		if a.Scale != nil {
			t.read += 4 * int64(max(a.C, 1))
		}
	}
	be.launch1d("pk_if_record", n, t, ptr(a.In), b2i(a.Constant), ptr(a.Scale), ptr(a.Shift), b2i(a.PerStep), c, hw,
		ptr(a.V), ptr(a.Spikes), ptr(a.Counts), ptr(h), n, int32(a.Steps), a.Threshold, a.Reset)
}

// IFSurrogateGrad implements compute.Backend: one thread per neuron,
// from the last step back.
func (be *Backend) IFSurrogateGrad(a compute.IFGradArgs) {
	n, steps := int64(a.N), int64(a.Steps)
	t := rw(2*steps*n, steps*n) // potentials and spike gradients per step in; input gradients per step out
	if a.ConstantGrad {
		t.read -= 4 * (steps - 1) * n
	}
	if a.ConstantInput {
		t.written = 4 * n
	}
	be.launch1d("pk_if_surrogate_grad", n, t, ptr(a.H), ptr(a.DS), b2i(a.ConstantGrad), ptr(a.DU), b2i(a.ConstantInput),
		n, int32(a.Steps), a.Threshold, a.Reset, a.Alpha, b2i(a.DetachReset))
}

// surrogate is the launches of the surrogate-gradient ops (RunLaunches):
// one kernel over the neurons each, moving the slots' values once.
func (q *queue) surrogate(op program.Op) {
	switch o := op.(type) {
	case *program.IFRecord:
		q.kernel("pk_if_record", int64(q.d.N)*int64(o.N), q.bytes(o.In, o.V, o.Counts), q.bytes(o.V, o.Spikes, o.H, o.Counts))
	case *program.IFSurrogateGrad:
		q.kernel("pk_if_surrogate_grad", int64(q.d.N)*int64(o.N), q.bytes(o.H, o.DS), q.bytes(o.DU))
	}
}
