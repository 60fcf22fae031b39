package nn

import "fmt"

// The planner. Every pass over a network — the ANN's forward and backward
// passes, the SNN's static input layer and its time steps, the exporters'
// walks — sees the network as one graph: nodes in topological order, each
// reading earlier nodes (a chain is the graph whose nodes read their
// predecessor). The planner decides, by rule and once per network:
//
//   - where every value lives: buffers ("slots") are shared by liveness,
//     a slot being reused once nothing will read the value it holds;
//   - views: a layer that only reshapes (Role.View) gets its input's slot,
//     in the forward pass and, where its input has no other reader, in the
//     backward pass;
//   - fusions: a node computed inside its only reader's kernel gets no
//     slot (Fusions lists the rules).
//
// Executors allocate the slots once and then run the nodes: a pass
// allocates nothing.

// PlanNode describes one node of a forward pass to the planner.
type PlanNode struct {
	// Inputs are the nodes read: j ≥ 0 an earlier node, −1 the pass's input.
	Inputs []int
	// Numel is the number of values per sample of the node's output.
	Numel int
	// View: the output is input 0's value, reshaped (the same buffer).
	View bool
	// Fused: the node is computed inside its only reader's kernel and
	// needs no buffer; its reader reads the node's inputs instead.
	Fused bool
	// Keep: the value must stay valid until the pass ends (it is the
	// pass's output, the backward pass needs it, or a later pass reads it).
	Keep bool
}

// BufferPlan is where the values of a pass live.
type BufferPlan struct {
	// Slot is each node's buffer slot: −1 for a fused node and for a view
	// of the pass's input (which lives in the caller's buffer).
	Slot []int
	// Sizes is each slot's size in values per sample.
	Sizes []int
}

// Fusion is a planner rule: a node of kind Producer whose only reader is a
// node of kind Consumer, both running at the same rate, is computed inside
// the consumer's kernel.
type Fusion struct {
	Producer, Consumer string
	// Why says what the consumer's kernel does with the producer.
	Why string
}

// Fusions are the planner's fusion rules. Kinds are Layer.Kind names; the
// SNN's integrate-and-fire layers are "IF".
func Fusions() []Fusion {
	return []Fusion{
		{Producer: "BatchNorm2d", Consumer: "IF", Why: "the IF kernel applies BatchNorm's per-channel scale and shift to its input current"},
	}
}

// Fuses reports whether a node of kind producer, read only by a node of
// kind consumer at the same rate, is computed inside the consumer's kernel.
func Fuses(producer, consumer string) bool {
	for _, f := range Fusions() {
		if f.Producer == producer && f.Consumer == consumer {
			return true
		}
	}
	return false
}

// Readers lists, for each of the n nodes of a graph (inputs as
// Network.Inputs), the nodes that read it, in order; a node reading
// another twice is listed once.
func Readers(inputs [][]int, n int) [][]int {
	readers := make([][]int, n)
	for i := 0; i < n; i++ {
		in := NodeInputs(inputs, i)
		for k, j := range in {
			if j >= 0 && !containsInt(in[:k], j) {
				readers[j] = append(readers[j], i)
			}
		}
	}
	return readers
}

// slotPool hands out buffer slots for values that live over intervals of
// a pass's positions.
type slotPool struct {
	sizes  []int
	freeAt []int // the position after which the slot is free
}

// get returns a slot free at position pos for a value of numel values per
// sample that lives until position until: the smallest free slot large
// enough, else the largest free one (grown), else a new one.
func (p *slotPool) get(numel, pos, until int) int {
	best := -1
	for s, size := range p.sizes {
		if p.freeAt[s] >= pos {
			continue
		}
		switch {
		case best < 0:
			best = s
		case size >= numel && (p.sizes[best] < numel || size < p.sizes[best]):
			best = s
		case p.sizes[best] < numel && size > p.sizes[best]:
			best = s
		}
	}
	if best < 0 {
		best = len(p.sizes)
		p.sizes, p.freeAt = append(p.sizes, 0), append(p.freeAt, 0)
	}
	p.sizes[best] = max(p.sizes[best], numel)
	p.freeAt[best] = until
	return best
}

// hold keeps slot s until position until at least.
func (p *slotPool) hold(s, until int) { p.freeAt[s] = max(p.freeAt[s], until) }

const forever = int(^uint(0) >> 1)

// PlanBuffers assigns the outputs of a forward pass's nodes to slots by
// liveness: a slot is free for reuse after the last node that reads its
// value (through views and fused readers) has run, unless the value is
// kept. A node never gets the slot of a value it reads.
func PlanBuffers(nodes []PlanNode) (BufferPlan, error) {
	n := len(nodes)
	p := BufferPlan{Slot: make([]int, n)}
	last := make([]int, n) // the last position reading each node's value
	for i, nd := range nodes {
		last[i] = i
		for _, j := range nd.Inputs {
			if j >= i || j < -1 {
				return p, fmt.Errorf("node %d reads node %d, which is not an earlier node or the input", i, j)
			}
		}
		if nd.View && (len(nd.Inputs) != 1 || nd.Fused) {
			return p, fmt.Errorf("node %d: a view reads exactly one value and is not fused", i)
		}
	}
	// a fused node's reader reads the fused node's inputs
	var reads func(i, at int)
	reads = func(i, at int) {
		for _, j := range nodes[i].Inputs {
			switch {
			case j < 0:
			case nodes[j].Fused:
				reads(j, at)
			default:
				last[j] = max(last[j], at)
			}
		}
	}
	for i, nd := range nodes {
		if !nd.Fused {
			reads(i, i)
		}
	}
	var pool slotPool
	for i, nd := range nodes {
		p.Slot[i] = -1
		until := last[i]
		if nd.Keep {
			until = forever
		}
		switch {
		case nd.Fused:
		case nd.View:
			if src := nd.Inputs[0]; src >= 0 {
				if nodes[src].Fused {
					return p, fmt.Errorf("node %d views node %d, which is fused into its reader", i, src)
				}
				p.Slot[i] = p.Slot[src]
				pool.hold(p.Slot[i], until)
			}
		default:
			p.Slot[i] = pool.get(nd.Numel, i, until)
		}
	}
	p.Sizes = pool.sizes
	return p, nil
}

// GradNode describes one node of a backward pass to the planner: the
// gradient at the node's output.
type GradNode struct {
	// Inputs as PlanNode.Inputs; the backward pass writes a gradient into
	// each input j ≥ 0 that needs one.
	Inputs []int
	// Numel is the number of values per sample of the node's output.
	Numel int
	// View: the node only reshapes, so that where it is its input's only
	// reader the input's gradient is its own (the same buffer).
	View bool
}

// Gradient slots that are not slots.
const (
	noGrad  = -1 // no gradient reaches the node
	gradOut = -2 // the pass's own input: the gradient at the last node's output
)

// GradPlan is where the gradients of a backward pass live.
type GradPlan struct {
	// Slot is the slot of the gradient at each node's output: −1 for none
	// (no path from the node reaches the loss), −2 for the gradient the
	// pass starts from (the last node's, and its views' inputs').
	Slot []int
	// Scratch is, per node, the slot each input's gradient is computed
	// into when it must be added to a gradient already there (the input's
	// second and later readers, counting backwards), else −1.
	Scratch [][]int
	// Sizes is each slot's size in values per sample.
	Sizes []int
}

// PlanGradients assigns the gradients of a backward pass (which runs the
// nodes from last to first) to slots by liveness. The gradient at node j's
// output is written by its last reader (the first to run backwards), added
// to by its other readers through scratch slots, and read by node j's own
// backward step; the last node's gradient is the pass's input.
func PlanGradients(nodes []GradNode) GradPlan {
	n := len(nodes)
	g := GradPlan{Slot: make([]int, n), Scratch: make([][]int, n)}
	readers := make([][]int, n)
	for i, nd := range nodes {
		g.Slot[i] = noGrad
		for k, j := range nd.Inputs {
			if j >= 0 && !containsInt(nd.Inputs[:k], j) {
				readers[j] = append(readers[j], i)
			}
		}
	}
	pos := func(i int) int { return n - 1 - i } // backward positions
	var pool slotPool
	if n > 0 {
		g.Slot[n-1] = gradOut
	}
	for i := n - 1; i >= 0; i-- {
		nd := nodes[i]
		g.Scratch[i] = make([]int, len(nd.Inputs))
		for k, j := range nd.Inputs {
			g.Scratch[i][k] = -1
			if j < 0 || g.Slot[i] == noGrad {
				continue
			}
			if g.Slot[j] != noGrad || containsInt(nd.Inputs[:k], j) {
				// added to what is there: computed into scratch first
				g.Scratch[i][k] = pool.get(nodes[j].Numel, pos(i), pos(i))
				continue
			}
			if nd.View && len(readers[j]) == 1 {
				g.Slot[j] = g.Slot[i]
				if g.Slot[j] >= 0 {
					pool.hold(g.Slot[j], pos(j))
				}
				continue
			}
			g.Slot[j] = pool.get(nodes[j].Numel, pos(i), pos(j))
		}
	}
	g.Sizes = pool.sizes
	return g
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
