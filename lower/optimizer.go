package lower

import (
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/program"
)

// Optimizer lowers one Adam step over params (program.Update): for each
// parameter in order, its update from its gradient and its two moments,
// which moments names (memory the optimizer keeps, bound to the backend
// before the program runs). args are the step's settings, read at every
// run. Nil parameters are skipped; a nil moments or args makes a program
// whose runs fail (program.Machine refuses memory bound nowhere, and an
// Adam op without settings).
func Optimizer(params []*nn.Param, moments func(p *nn.Param) (m, v program.Binding), args *compute.AdamArgs) *Lowered {
	b := program.NewBuilder(program.Dims{N: 1, Steps: 1})
	lw := newLowered(b)
	s := nn.NewSite(b, -1, "", nil)
	b.Begin(program.Update, false)
	for _, p := range params {
		if p == nil {
			continue
		}
		var m, v program.Binding
		if moments != nil {
			m, v = moments(p)
		}
		b.Emit(&program.Adam{Args: args, P: s.Param(p), Grad: s.Grad(p),
			M: b.External(p.Name+".adam_m", p.Shape, m), V: b.External(p.Name+".adam_v", p.Shape, v)})
	}
	b.End()
	return lw
}
