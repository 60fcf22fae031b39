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

// Runs is the pass runs of one run of l for a batch of n, in the order
// the trainer and the simulator run them (train.Engine, spiking.RunSteps):
// every pass once, in the program's order, except the chunk of time
// steps, which runs until T steps are done, the last chunk with the steps
// left.
func (l *Lowered) Runs(n int) []program.PassRun {
	var runs []program.PassRun
	for k := range l.Passes {
		if k != l.Chunk || l.SNN == nil {
			runs = append(runs, program.PassRun{Pass: k, Dims: program.Dims{N: n, Steps: 1}})
			continue
		}
		for t0 := 0; t0 < l.SNN.Timesteps; t0 += l.SNN.Steps {
			runs = append(runs, program.PassRun{Pass: k, Dims: program.Dims{N: n, Steps: min(l.SNN.Steps, l.SNN.Timesteps-t0), T0: t0}})
		}
	}
	return runs
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
	l, o, err := StepPrograms(body, s, opt)
	if err != nil {
		return program.Listing{}, err
	}
	return listStep(l, o, opt.Capacity)
}

// listStep lists a step's program for a batch of n followed by the
// optimizer's.
func listStep(step, update *Lowered, n int) (program.Listing, error) {
	list, err := step.List(n)
	if err != nil {
		return list, err
	}
	ul, err := update.List(1)
	if err != nil {
		return list, err
	}
	list.Append(ul)
	return list, nil
}

// StepPrograms lowers one proxy-learning step of body and its SNN s as the
// trainer runs it, for listings and costs (the programs are not to run:
// the optimizer's moments are bound nowhere): the step's program
// (lower.Step) and the optimizer's (Optimizer), run after it.
func StepPrograms(body *nn.Network, s SNN, opt SNNOptions) (step, update *Lowered, err error) {
	l, err := Step(body, s, opt)
	if err != nil {
		return nil, nil, err
	}
	var args compute.AdamArgs
	o := Optimizer(body.Params(), func(p *nn.Param) (m, v program.Binding) { return moment{p, "m"}, moment{p, "v"} }, &args)
	return l, o, nil
}

// moment names a moment for a listing, which never runs.
type moment struct {
	p     *nn.Param
	which string
}

// Buffer implements program.Binding; a listing's program is not run.
func (moment) Buffer(compute.Backend) compute.Buffer { return nil }

// Plan lowers what a network becomes for a batch of batch samples, steps
// time steps run at once, with settings (WithChannelsLast, WithRules):
// with train, one proxy-learning step of ann's body and its SNN s and the
// optimizer's update (StepPrograms, BatchNorm in training mode as in the
// recipe's first epoch); else the SNN's inference (Simulation, BatchNorm
// in eval mode). It returns the programs in the order they run and their
// listing.
func Plan(ann *nn.Network, s SNN, train bool, batch, steps int, settings ...Setting) ([]*Lowered, program.Listing, error) {
	opt := SNNOptions{Options: Options{Capacity: batch, BatchStats: train}, Steps: min(max(steps, 1), s.Timesteps)}
	opt.Apply(settings)
	if train {
		body, _ := ann.Body()
		step, update, err := StepPrograms(body, s, opt)
		if err != nil {
			return nil, program.Listing{}, err
		}
		list, err := listStep(step, update, batch)
		return []*Lowered{step, update}, list, err
	}
	l, err := Simulation(s, opt)
	if err != nil {
		return nil, program.Listing{}, err
	}
	list, err := l.List(batch)
	return []*Lowered{l}, list, err
}
