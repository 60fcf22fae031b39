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
	list, err := l.List(opt.Capacity)
	if err != nil {
		return list, err
	}
	var args compute.AdamArgs
	o := Optimizer(body.Params(), func(p *nn.Param) (m, v program.Binding) { return moment{p, "m"}, moment{p, "v"} }, &args)
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

// Plan lists what a network becomes for a batch of batch samples, steps
// time steps run at once: with train, one proxy-learning step of ann's
// body and its SNN s with the optimizer's update (StepListing, BatchNorm
// in training mode as in the recipe's first epoch); else the SNN's
// inference (Simulation, BatchNorm in eval mode).
func Plan(ann *nn.Network, s SNN, train bool, batch, steps int) (program.Listing, error) {
	opt := SNNOptions{Options: Options{Capacity: batch, BatchStats: train}, Steps: min(max(steps, 1), s.Timesteps)}
	if train {
		body, _ := ann.Body()
		return StepListing(body, s, opt)
	}
	l, err := Simulation(s, opt)
	if err != nil {
		return program.Listing{}, err
	}
	return l.List(batch)
}
