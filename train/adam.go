package train

import (
	"errors"
	"fmt"
	"slices"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Adam is PyTorch's Adam with L2 weight decay added to the gradient. Its
// moments live on the backend of the parameters it updates; M and V are
// their host copies, current after Sync.
type Adam struct {
	// AdamState holds the hyper-parameters, the step count and the host
	// copies of the moments (current after Sync), as checkpoints keep them.
	checkpoint.AdamState

	bound map[string]*moments
	// the update as a program (lower.Optimizer), for the parameters and
	// backend it was made for
	update     *lower.Lowered
	args       compute.AdamArgs
	updateFor  []*nn.Param
	updateBE   compute.Backend
	updateMach *program.Machine
}

// moment is one of a parameter's moments as program memory.
type moment struct {
	a      *Adam
	name   string
	second bool
}

// Buffer implements program.Binding.
func (m moment) Buffer(be compute.Backend) compute.Buffer {
	st := m.a.bound[m.name]
	if m.second {
		return st.v
	}
	return st.m
}

// moments are one parameter's Adam moments on a backend.
type moments struct {
	be   compute.Backend
	m, v compute.Buffer
}

// NewAdam makes an optimizer with the given settings.
func NewAdam(lr, beta1, beta2, eps, weightDecay float64) *Adam {
	return &Adam{AdamState: checkpoint.AdamState{LR: lr, Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay,
		M: map[string][]float32{}, V: map[string][]float32{}}}
}

// moments returns p's moments on be, binding them there first (from M and
// V, zero for a parameter seen for the first time).
func (a *Adam) moments(be compute.Backend, p *nn.Param) (*moments, error) {
	if a.bound == nil {
		a.bound = map[string]*moments{}
	}
	if a.M == nil || a.V == nil {
		a.M, a.V = map[string][]float32{}, map[string][]float32{}
	}
	if st, ok := a.bound[p.Name]; ok && st.be == be {
		return st, nil
	}
	m, ok := a.M[p.Name]
	if !ok || len(m) != len(p.Data) || len(a.V[p.Name]) != len(p.Data) {
		m = make([]float32, len(p.Data))
		a.M[p.Name], a.V[p.Name] = m, make([]float32, len(p.Data))
	}
	mb, err := be.Adopt(m)
	if err != nil {
		return nil, err
	}
	vb, err := be.Adopt(a.V[p.Name])
	if err != nil {
		be.Free(mb)
		return nil, err
	}
	st := &moments{be: be, m: mb, v: vb}
	a.bound[p.Name] = st
	return st, nil
}

// Update applies one step to every parameter from its gradient, on be:
// the program lower.Optimizer makes, run by a program.Machine.
//
// It refuses a nil optimizer or backend and nil parameters; the zero Adam
// works (its hyper-parameters are zero: a learning rate of 0).
func (a *Adam) Update(be compute.Backend, params []*nn.Param) error {
	switch {
	case a == nil:
		return errNoAdam
	case be == nil:
		return fmt.Errorf("no backend to update on (nil)")
	}
	for i, p := range params {
		if p == nil {
			return fmt.Errorf("parameter %d to update is nil", i)
		}
	}
	for _, p := range params {
		if _, err := a.moments(be, p); err != nil {
			return err
		}
	}
	if a.update == nil || a.updateBE != be || !slices.Equal(a.updateFor, params) {
		a.update = lower.Optimizer(params, func(p *nn.Param) (m, v program.Binding) {
			return moment{a, p.Name, false}, moment{a, p.Name, true}
		}, &a.args)
		a.updateFor, a.updateBE = slices.Clone(params), be
		a.updateMach = program.NewMachine(be)
		if err := a.updateMach.Load(a.update.Program); err != nil {
			return err
		}
	}
	a.args = compute.AdamArgs{Step: a.Step + 1, LR: a.LR, Beta1: a.Beta1, Beta2: a.Beta2, Eps: a.Eps, WeightDecay: a.WeightDecay}
	if err := a.updateMach.Run(a.update.Program, 0, program.Dims{N: 1, Steps: 1}); err != nil {
		return err
	}
	a.Step++
	return nil
}

// Program is the update's program for params, as the last Update made it
// (nil before).
func (a *Adam) Program() *lower.Lowered { return a.update }

// errNoAdam is the error of a nil Adam's methods.
var errNoAdam = errors.New("no optimizer (nil)")

// Sync copies the moments from their backend into M and V.
func (a *Adam) Sync() error {
	if a == nil {
		return errNoAdam
	}
	for name, st := range a.bound {
		if err := st.be.Download(a.M[name], st.m); err != nil {
			return err
		}
		if err := st.be.Download(a.V[name], st.v); err != nil {
			return err
		}
	}
	return nil
}

// Free gives the moments' backend buffers back (after syncing them).
func (a *Adam) Free() error {
	if a == nil {
		return errNoAdam
	}
	err := a.Sync()
	for name, st := range a.bound {
		st.be.Free(st.m)
		st.be.Free(st.v)
		delete(a.bound, name)
	}
	a.update, a.updateFor, a.updateBE, a.updateMach = nil, nil, nil, nil
	return err
}
