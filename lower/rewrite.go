package lower

import (
	"fmt"
	"slices"

	"github.com/proxykit/proxykit/compute"

	"github.com/proxykit/proxykit/program"
)

// Rule is a rewrite of a lowered program: a small rule that finds the
// places it applies to in the passes it is valid for and changes them,
// computing the same bits as the program it rewrites on every backend
// (each rule's test holds it to that; NoGradFill's written zeros may keep
// a sign where adding into a zeroed gradient gives +0, on a backend whose
// library writes −0).
type Rule struct {
	// Name names the rule in listings.
	Name string
	// Why says what the rewrite saves.
	Why string
	// Passes are the kinds of pass the rule may rewrite.
	Passes []program.PassKind
	// Apply rewrites pass k of p's ops and returns how many places it
	// changed (a fusion).
	Apply func(p *program.Program, k int) int
	// Graph, in a rule that rewrites a network's nodes before they are
	// lowered, returns the new nodes and where each old node's value is
	// (−1: folded away), and how many places it changed. Such a rule
	// changes what is computed up to rounding and applies only where
	// asked (Options.Rules), in passes without batch statistics.
	Graph func(nodes []Node) (out []Node, at []int, places int, err error)
}

// Rules are the rewrite rules a lowering applies by default, in order.
func Rules() []Rule {
	return []Rule{FuseBatchNormIF(), FuseStaticBatchNormIF(), FuseBiasIF(), FuseIFMaxPool(), StartIF(), FuseReLU(), FuseReLUGrad(), NoGradFill()}
}

// rewrite applies rules to every pass each is valid for, and the
// channels-last rewrite where asked, records them and plans the program's
// memory.
func (lw *Lowered) rewrite(opt Options) error {
	lw.Unshared = opt.Unshared
	rules := opt.rules()
	for _, r := range rules {
		if r.Apply == nil {
			continue // a graph rule, applied before lowering
		}
		places := 0
		for k := range lw.Passes {
			if slices.Contains(r.Passes, lw.Passes[k].Kind) {
				places += r.Apply(lw.Program, k)
			}
		}
		lw.Rewrites = append(lw.Rewrites, program.Applied{Rule: r.Name, Places: places})
	}
	if opt.ChannelsLast {
		places, err := channelsLast(lw)
		if err != nil {
			return err
		}
		lw.Rewrites = append(lw.Rewrites, program.Applied{Rule: ChannelsLastRule, Places: places})
	}
	if opt.HalfSpikes {
		lw.Rewrites = append(lw.Rewrites, program.Applied{Rule: HalfSpikesRule, Places: halfSpikes(lw.Program)})
	}
	_, err := lw.Plan()
	return err
}

// FuseBatchNormIF is the rule that computes a BatchNorm inside the IF
// layer that is its only reader: the IF kernel applies the per-channel
// scale and shift to its input current (compute.IFArgs.Scale), so the
// normalised values are never written. In the SNN's time steps, where
// each step's BatchNorm output is read once.
func FuseBatchNormIF() Rule {
	return Rule{Name: "fuse BatchNorm into IF", Why: "the IF kernel applies BatchNorm's per-channel scale and shift to its input current: the normalised values are never written",
		Passes: []program.PassKind{program.SNNChunk}, Apply: fuseBatchNormIF}
}

// applicable reports whether a rule may look at pass k of p: a pass p
// has, in a program its Plan accepts (ops that are set and name its
// slots, passes in order). A rule changes nothing elsewhere.
func applicable(p *program.Program, k int) bool {
	if p == nil || k < 0 || k >= len(p.Passes) {
		return false
	}
	_, err := p.Plan()
	return err == nil
}

func fuseBatchNormIF(p *program.Program, k int) int {
	if !applicable(p, k) {
		return 0
	}
	ps := p.Passes[k]
	places := 0
	for i := ps.Lo; i < p.Passes[k].Hi; i++ {
		aff, ok := p.Ops[i].(*program.ChannelAffine)
		if !ok {
			continue
		}
		reader, ok := soleReader(p, k, i, aff.Y)
		if !ok {
			continue
		}
		f, ok := p.Ops[reader].(*program.IF)
		if !ok || f.In != aff.Y || f.Constant || f.Scale != program.None {
			continue
		}
		f.In, f.Scale, f.Shift, f.PerStep, f.C, f.HW = aff.X, aff.Scale, aff.Shift, aff.PerGroup, aff.C, aff.HW
		p.Remove(i)
		i--
		places++
	}
	return places
}

// FuseStaticBatchNormIF is the rule that applies the static input layer's
// BatchNorm inside the IF layer that is its only reader, whose input is
// constant over the steps: the IF kernel maps the unnormalised values by
// the per-channel scale and shift at every step, rounding as the
// BatchNorm's own pass does, so the normalised values are never written.
// It rewrites the static pass, which applies the BatchNorm once per input,
// where the reader is an IF layer in a later pass (the time steps).
func FuseStaticBatchNormIF() Rule {
	return Rule{Name: "fuse the static layer's BatchNorm into IF", Why: "the constant-input IF kernel applies the static layer's BatchNorm at each step: the normalised values are never written",
		Passes: []program.PassKind{program.SNNStatic}, Apply: fuseStaticBatchNormIF}
}

func fuseStaticBatchNormIF(p *program.Program, k int) int {
	if !applicable(p, k) {
		return 0
	}
	places := 0
	for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
		aff, ok := p.Ops[i].(*program.ChannelAffine)
		if !ok || aff.PerGroup || aff.Rate != program.Batch {
			continue
		}
		f := constantReader(p, k, aff.Y)
		if f == nil || f.N != aff.C*aff.HW || f.Layout != aff.Layout {
			continue
		}
		f.In, f.Scale, f.Shift, f.PerStep, f.C, f.HW = aff.X, aff.Scale, aff.Shift, false, aff.C, aff.HW
		p.Remove(i)
		i--
		places++
	}
	return places
}

// constantReader is the IF layer with constant input that alone reads the
// value r, which pass k (the static pass) writes, in a later pass: r is
// neither a view, viewed, nor kept, and the IF layer applies no map of
// its own yet; nil where there is none.
func constantReader(p *program.Program, k int, r program.Ref) *program.IF {
	if p.Slots[r].Keep || p.Root(r) != r {
		return nil
	}
	readers := p.Readers(r)
	if len(readers) != 1 || readers[0] < p.Passes[k].Hi {
		return nil
	}
	f, ok := p.Ops[readers[0]].(*program.IF)
	if !ok || !f.Constant || f.In != r || f.Shift != program.None {
		return nil
	}
	return f
}

// FuseBiasIF is the rule that adds a convolution's or linear layer's bias
// inside the IF layer that is the layer's only reader: the layer writes
// its sums without the bias and the IF kernel adds it to its input
// current (compute.IFArgs.Shift without Scale), so no pass reads and
// writes the layer's output to add it. Both backends add a layer's bias
// after its sums, rounding once, as the IF kernel does: the same bits. In
// the SNN's time steps, where each step's current is read once, and in
// the static pass, whose layer's output the constant-input IF layer reads
// at every step (a network whose BatchNorm was folded into its
// convolutions, as converted and exported networks are, has a bias on
// every layer).
func FuseBiasIF() Rule {
	return Rule{Name: "fuse bias into IF", Why: "the IF kernel adds the layer's bias to its input current: no pass reads and writes the layer's output to add it",
		Passes: []program.PassKind{program.SNNChunk, program.SNNStatic}, Apply: fuseBiasIF}
}

func fuseBiasIF(p *program.Program, k int) int {
	if !applicable(p, k) {
		return 0
	}
	places := 0
	for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
		y, bias, c, hw, _ := biasedLayer(p.Ops[i])
		if bias == nil {
			continue
		}
		var f *program.IF
		if p.Passes[k].Kind == program.SNNStatic {
			f = constantReader(p, k, *y)
		} else if reader, ok := soleReader(p, k, i, *y); ok {
			if g, ok := p.Ops[reader].(*program.IF); ok && g.In == *y && !g.Constant && g.Shift == program.None {
				f = g
			}
		}
		if f == nil || f.N != c*hw {
			continue
		}
		f.Shift, f.PerStep, f.C, f.HW = *bias, false, c, hw
		*bias = program.None
		places++
	}
	return places
}

// graphRules applies the graph rules among opt's to nodes (an SNN's:
// static is its static input layer's size; else 0) and returns the new
// nodes, the new static size and where each old node's value is.
func graphRules(lw *Lowered, opt Options, nodes []Node, static int) ([]Node, int, []int, error) {
	at := make([]int, len(nodes))
	for i := range at {
		at[i] = i
	}
	for _, r := range opt.rules() {
		if r.Graph == nil {
			continue
		}
		if opt.BatchStats {
			return nil, 0, nil, fmt.Errorf("rewrite %q needs BatchNorm in eval mode", r.Name)
		}
		out, moved, places, err := r.Graph(nodes)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("rewrite %q: %w", r.Name, err)
		}
		if len(moved) != len(nodes) {
			return nil, 0, nil, fmt.Errorf("rewrite %q: where %d nodes went, for %d nodes", r.Name, len(moved), len(nodes))
		}
		for i, m := range moved {
			if m < -1 || m >= len(out) {
				return nil, 0, nil, fmt.Errorf("rewrite %q: node %d went to node %d of %d", r.Name, i, m, len(out))
			}
		}
		s := 0
		for i := 0; i < static; i++ {
			if moved[i] >= 0 {
				s = moved[i] + 1
			}
		}
		for i, a := range at {
			if a >= 0 {
				at[i] = moved[a]
			}
		}
		nodes, static = out, s
		lw.Rewrites = append(lw.Rewrites, program.Applied{Rule: r.Name, Places: places})
	}
	return nodes, static, at, nil
}

// soleReader is the one op that reads the value op i of pass k writes
// into r, where that op comes later in the same pass and the value is
// neither a view, viewed, nor kept for the caller: the value lives only
// between the two ops, so a fusion may do without it.
func soleReader(p *program.Program, k, i int, r program.Ref) (int, bool) {
	if p.Slots[r].Keep || p.Root(r) != r {
		return 0, false
	}
	readers := p.Readers(r)
	if len(readers) != 1 || readers[0] <= i || readers[0] >= p.Passes[k].Hi {
		return 0, false
	}
	return readers[0], true
}

// biasedLayer is op's output and bias, the channels and positions per
// channel the bias runs over and the output's rate, where op is a
// convolution or a linear layer with a bias; nil refs otherwise. A rule
// that takes the bias over sets *bias to None.
func biasedLayer(op program.Op) (y, bias *program.Ref, c, hw int, rate program.Rate) {
	switch o := op.(type) {
	case *program.Conv2d:
		y, bias, c, hw, rate = &o.Y, &o.Bias, o.G.O, o.G.OutH()*o.G.OutW(), o.Rate
	case *program.Linear:
		y, bias, c, hw, rate = &o.Y, &o.Bias, o.Out, 1, o.Rate
	}
	if bias == nil || *bias == program.None {
		return nil, nil, 0, 0, 0
	}
	return y, bias, c, hw, rate
}

// FuseIFMaxPool is the rule that max-pools an IF layer's spikes inside
// its kernel when a max-pooling is their only reader and its windows tile
// the planes (compute.PoolFits): the kernel writes only the pooled spikes,
// and the unpooled ones are never written nor read again. In the SNN's
// time steps, which never need the unpooled spikes (a pass that does —
// backpropagation through time — is not in Passes).
func FuseIFMaxPool() Rule {
	return Rule{Name: "fuse max-pooling into IF", Why: "the IF kernel writes only the pooled spikes: the unpooled ones are neither written nor read again",
		Passes: []program.PassKind{program.SNNChunk}, Apply: fuseIFMaxPool}
}

func fuseIFMaxPool(p *program.Program, k int) int {
	if !applicable(p, k) {
		return 0
	}
	places := 0
	for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
		f, ok := p.Ops[i].(*program.IF)
		if !ok || f.Pool != nil {
			continue
		}
		reader, ok := soleReader(p, k, i, f.Spikes)
		if !ok {
			continue
		}
		pool, ok := p.Ops[reader].(*program.Pool)
		if !ok || !pool.Max || pool.X != f.Spikes || pool.Rate != program.Steps || !compute.PoolFits(pool.G) ||
			pool.G.C*pool.G.H*pool.G.W != f.N {
			continue
		}
		g := pool.G
		f.Spikes, f.Pool = pool.Y, &g
		p.Remove(reader)
		places++
	}
	return places
}

// startsPlain says whether pass k fills IF op f's potentials with its
// v_reset and its counts, if it has any, with 0: the start Start stands
// for. Potentials charged above v_reset (lower.SNN.InitialCharge) keep
// both fills.
func startsPlain(p *program.Program, k int, f *program.IF) bool {
	filled := func(r program.Ref, v float32) bool {
		for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
			if fill, ok := p.Ops[i].(*program.Fill); ok && fill.Dst == r {
				return fill.Value == v
			}
		}
		return false
	}
	return filled(f.V, f.Reset) && (f.Counts == program.None || filled(f.Counts, 0))
}

// StartIF is the rule that leaves out the fills of the IF layers'
// potentials (to v_reset) and counts (to 0) before a simulation: the IF
// kernel starts from those values itself in the first chunk of steps,
// without reading the buffers (program.IF.Start). It rewrites the static
// pass, whose fills it drops, where the IF op is the slot's first user
// after the fill and its only writer, and both fills are those values
// (startsPlain).
func StartIF() Rule {
	return Rule{Name: "IF starts without fills", Why: "the IF kernel starts its neurons at v_reset and its counts at 0 in the first chunk: no fill writes them first",
		Passes: []program.PassKind{program.SNNStatic}, Apply: startIF}
}

func startIF(p *program.Program, k int) int {
	if !applicable(p, k) {
		return 0
	}
	places := 0
	for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
		fill, ok := p.Ops[i].(*program.Fill)
		if !ok || p.Root(fill.Dst) != fill.Dst {
			continue
		}
		// the slot's next user: an IF op using it as its potentials
		// (filled with v_reset) or its counts (with 0), which every later
		// user only reads (the proxy loss reads the output's counts)
		var users []int
		writers := 0
		for j, op := range p.Ops {
			if j == i {
				continue
			}
			reads, writes := op.Operands()
			on := func(r program.Ref) bool { return p.Root(r) == fill.Dst }
			if slices.ContainsFunc(writes, on) {
				writers++
				users = append(users, j)
			} else if slices.ContainsFunc(reads, on) {
				users = append(users, j)
			}
		}
		if len(users) == 0 || writers != 1 {
			continue
		}
		f, ok := p.Ops[users[0]].(*program.IF)
		if !ok || users[0] < p.Passes[k].Hi || !(f.V == fill.Dst && fill.Value == f.Reset || f.Counts == fill.Dst && fill.Value == 0) ||
			!f.Start && !startsPlain(p, k, f) {
			continue
		}
		f.Start = true
		p.Remove(i)
		i--
		places++
	}
	return places
}

// FuseReLU is the rule that computes a ReLU in the pass that produces its
// input, where the ReLU is that value's only reader, in the ANN's forward
// pass: a BatchNorm's affine map writes the ReLU of its values
// (program.ChannelAffine.ReLU), and a convolution or linear layer leaves
// its bias to one affine pass that adds it and takes the ReLU (Scale
// None) in place of the bias's pass and the ReLU's. Both backends add a
// bias after the sums and take a ReLU as ReLUForward does: the same bits.
// The values before the ReLU are never written; the backward pass reads
// the ReLU's output, not its input.
func FuseReLU() Rule {
	return Rule{Name: "fuse ReLU into the pass before it", Why: "the BatchNorm's map, or the pass adding a layer's bias, writes the ReLU of its values: the values before the ReLU are neither written nor read again",
		Passes: []program.PassKind{program.ANNForward}, Apply: fuseReLU}
}

func fuseReLU(p *program.Program, k int) int {
	if !applicable(p, k) {
		return 0
	}
	places := 0
	for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
		aff := &program.ChannelAffine{Scale: program.None}
		y, bias, c, hw, rate := biasedLayer(p.Ops[i])
		if o, ok := p.Ops[i].(*program.ChannelAffine); ok && !o.ReLU {
			y, aff = &o.Y, o
		} else if bias == nil {
			continue
		} else {
			aff.C, aff.HW, aff.Rate = c, hw, rate
		}
		reader, ok := soleReader(p, k, i, *y)
		if !ok {
			continue
		}
		relu, ok := p.Ops[reader].(*program.ReLU)
		if !ok || relu.X != *y {
			continue
		}
		if bias == nil { // the affine map writes the ReLU's output
			aff.Y, aff.ReLU = relu.Y, true
			p.Remove(reader)
			places++
			continue
		}
		// the layer writes its sums; an affine pass in the ReLU's place
		// adds the bias and takes the ReLU
		aff.X, aff.Shift, aff.Y, aff.ReLU = *y, *bias, relu.Y, true
		if p.Insert(k, reader, aff) != nil {
			continue // not reached: the reader lies in pass k
		}
		*bias = program.None
		p.Remove(reader + 1)
		places++
	}
	return places
}

// FuseReLUGrad is the rule that takes a ReLU's gradient inside the
// max-pooling's backward pass that produces it, in the ANN's backward
// pass: where the pooling's input is the ReLU's output and the pooling's
// input gradient is read only by the ReLU's backward op, the pooling's
// kernel writes the gradient through the ReLU (program.PoolGrad.ReLU: 0
// where the ReLU's output is not positive, ReLUBackward's rule), which
// it reads already to find each window's maximum. The gradient before
// the ReLU is neither written nor read again.
func FuseReLUGrad() Rule {
	return Rule{Name: "fuse ReLU's gradient into max-pooling's", Why: "the max-pooling's backward kernel, which reads the ReLU's output anyway, writes the gradient through the ReLU: the gradient before it is neither written nor read again",
		Passes: []program.PassKind{program.ANNBackward}, Apply: fuseReLUGrad}
}

func fuseReLUGrad(p *program.Program, k int) int {
	if !applicable(p, k) {
		return 0
	}
	places := 0
	for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
		pg, ok := p.Ops[i].(*program.PoolGrad)
		if !ok || !pg.Max || pg.ReLU {
			continue
		}
		reader, ok := soleReader(p, k, i, pg.DX)
		if !ok {
			continue
		}
		rg, ok := p.Ops[reader].(*program.ReLUGrad)
		if !ok || rg.DY != pg.DX || p.Root(rg.Y) != p.Root(pg.X) || rg.Y != pg.X {
			continue
		}
		pg.DX, pg.ReLU = rg.DX, true
		p.Remove(reader)
		places++
	}
	return places
}

// NoGradFill is the rule that drops the zeroing of parameter gradients
// before the ANN's backward pass: where a gradient is filled with 0 and
// then written by one backward op alone (a convolution's, a linear
// layer's or a BatchNorm's, every gradient it writes zeroed so and read by
// nothing between), that op writes the gradients instead of adding into
// them (Overwrite: GEMMs with β = 0, cuDNN's backward filter with β = 0,
// the sums written). Adding into zeros and writing give the same values;
// a backend may differ in the sign of an exact zero.
func NoGradFill() Rule {
	return Rule{Name: "no fill before a gradient's writer", Why: "the backward op writes the parameter's gradient instead of adding into a zeroed one: no fill pass writes it first",
		Passes: []program.PassKind{program.ANNBackward}, Apply: noGradFill}
}

func noGradFill(p *program.Program, k int) int {
	if !applicable(p, k) {
		return 0
	}
	places := 0
	for i := p.Passes[k].Lo; i < p.Passes[k].Hi; i++ {
		var grads []program.Ref
		var overwrite *bool
		switch o := p.Ops[i].(type) {
		case *program.Conv2dGrad:
			grads, overwrite = []program.Ref{o.DW, o.DB}, &o.Overwrite
		case *program.LinearGrad:
			grads, overwrite = []program.Ref{o.DW, o.DB}, &o.Overwrite
		case *program.BatchNormGrad:
			grads, overwrite = []program.Ref{o.DG, o.DB}, &o.Overwrite
		default:
			continue
		}
		var fills []int
		for _, g := range grads {
			if g == program.None {
				continue
			}
			f, ok := zeroedFor(p, k, i, g)
			if !ok {
				fills = nil
				break
			}
			fills = append(fills, f)
		}
		if len(fills) == 0 || *overwrite {
			continue
		}
		*overwrite = true
		slices.Sort(fills)
		for j := len(fills) - 1; j >= 0; j-- {
			p.Remove(fills[j])
			i--
		}
		places++
	}
	return places
}

// zeroedFor is the op of pass k that fills slot g with 0 for op i alone:
// g is no view and viewed by none, the fill and op i are its only
// writers, and nothing reads it between them.
func zeroedFor(p *program.Program, k, i int, g program.Ref) (int, bool) {
	if !unaliased(p, g) {
		return 0, false
	}
	ws := writers(p, g)
	if len(ws) != 2 || ws[1] != i || ws[0] < p.Passes[k].Lo {
		return 0, false
	}
	fill, ok := p.Ops[ws[0]].(*program.Fill)
	if !ok || fill.Value != 0 || fill.Dst != g {
		return 0, false
	}
	for _, r := range p.Readers(g) {
		if r > ws[0] && r < i {
			return 0, false
		}
	}
	return ws[0], true
}
