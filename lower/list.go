package lower

import (
	"fmt"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Repeats is how many times a run of l for T time steps runs each of
// its passes: the chunk of time steps ⌈T/steps⌉ times (the last chunk
// counted as a whole one where steps does not divide T), the others once.
func (l *Lowered) Repeats(k int) int {
	if k == l.Chunk && l.SNN != nil && l.SNN.Steps >= 1 {
		return (max(l.SNN.Timesteps, 0) + l.SNN.Steps - 1) / l.SNN.Steps
	}
	return 1
}

// Runs is the pass runs of one run of l for a batch of n, in the order
// the trainer and the simulator run them (train.Engine, spiking.RunSteps):
// every pass once, in the program's order, except the chunk of time
// steps, which runs until T steps are done, the last chunk with the steps
// left. A surrogate step's passes (SurrogateStep) each run once over all
// T steps.
func (l *Lowered) Runs(n int) []program.PassRun {
	if l.Program == nil {
		return nil
	}
	var runs []program.PassRun
	once := 1 // the steps of a pass run once
	if l.SNN != nil && l.Chunk < 0 {
		once = max(l.SNN.Steps, 1) // a surrogate step's: all T steps at once
	}
	for k := range l.Passes {
		if k != l.Chunk || l.SNN == nil || l.SNN.Steps < 1 {
			runs = append(runs, program.PassRun{Pass: k, Dims: program.Dims{N: n, Steps: once}})
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
	if body == nil {
		return nil, nil, fmt.Errorf("no network to lower (nil)")
	}
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
// with train, one training step and the optimizer's update (BatchNorm in
// training mode as in the recipe's first epoch) — proxy learning's of
// ann's body and its SNN s (StepPrograms), or with sg surrogate-gradient
// training's of s (SurrogatePrograms, all T steps at once whatever
// steps); else the SNN's inference (Simulation, BatchNorm in eval mode).
// It returns the programs in the order they run and their listing.
func Plan(ann *nn.Network, s SNN, train bool, batch, steps int, sg *Surrogate, settings ...Setting) ([]*Lowered, program.Listing, error) {
	opt := SNNOptions{Options: Options{Capacity: batch, BatchStats: train}, Steps: min(max(steps, 1), s.Timesteps)}
	opt.Apply(settings)
	if train && sg != nil {
		step, update, err := SurrogatePrograms(s, *sg, opt.Options)
		if err != nil {
			return nil, program.Listing{}, err
		}
		list, err := listStep(step, update, batch)
		return []*Lowered{step, update}, list, err
	}
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
