package lower

import (
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Repeats is how many times a run of l for T time steps runs each of
// its passes: the chunk of time steps ⌈T/steps⌉ times (the last chunk
// counted as a whole one where steps does not divide T), the others once.
func (l *Lowered) Repeats(k int) int {
	if k == l.Chunk && l.SNN != nil {
		return (l.SNN.Timesteps + l.SNN.Steps - 1) / l.SNN.Steps
	}
	return 1
}

// List describes a run of l for a batch of n (program.Listing).
func (l *Lowered) List(n int) (program.Listing, error) {
	steps := 1
	if l.SNN != nil {
		steps = l.SNN.Steps
	}
	return l.Program.List(program.Dims{N: n, Steps: steps}, l.Repeats)
}

// StepListing lists one proxy-learning step of body and its SNN s for a
// batch of opt.Capacity: the step's program (lower.Step) followed by the
// optimizer's (Optimizer), as the trainer runs them.
func StepListing(body *nn.Network, s SNN, opt SNNOptions) (program.Listing, error) {
	l, err := Step(body, s, opt)
	if err != nil {
		return program.Listing{}, err
	}
	return withOptimizer(l, body.Params(), opt.Capacity)
}

// withOptimizer lists a run of l for a batch of n followed by the
// optimizer's program over params.
func withOptimizer(l *Lowered, params []*nn.Param, n int) (program.Listing, error) {
	list, err := l.List(n)
	if err != nil {
		return list, err
	}
	var args compute.AdamArgs
	o := Optimizer(params, func(p *nn.Param) (m, v program.Binding) { return moment{p, "m"}, moment{p, "v"} }, &args)
	ol, err := o.List(1)
	if err != nil {
		return list, err
	}
	list.Append(ol)
	return list, nil
}

// moment names a moment for a listing, which never runs.
type moment struct {
	p     *nn.Param
	which string
}

// Buffer implements program.Binding; a listing's program is not run.
func (moment) Buffer(compute.Backend) compute.Buffer { return nil }
