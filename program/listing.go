package program

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Listing is what a program computes, for people and tools (proxykit plan):
// its passes with their ops, its slots with their sizes and lifetimes, the
// rewrites applied and the totals of one run.
type Listing struct {
	// Capacity is the batch and steps the program was planned for; Dims
	// the run the figures are for.
	Capacity Dims          `json:"capacity"`
	Dims     Dims          `json:"dims"`
	Rewrites []Applied     `json:"rewrites"`
	Passes   []PassListing `json:"passes"`
	Slots    []SlotListing `json:"slots"`
	Totals   Totals        `json:"totals"`
}

// PassListing is one pass: its ops, and how many times a run repeats it.
type PassListing struct {
	Kind    string      `json:"kind"`
	Repeats int         `json:"repeats"`
	Ops     []OpListing `json:"ops"`
}

// OpListing is one op with what it costs in one run of its pass.
type OpListing struct {
	Index  int      `json:"index"`
	Kernel string   `json:"kernel"`
	Detail string   `json:"detail,omitempty"`
	Reads  []string `json:"reads"`
	Writes []string `json:"writes"`
	// FLOPs of matrix products (2 per multiply-add) and the bytes of the
	// slots the op reads and writes (each operand once).
	FLOPs int64 `json:"flops"`
	Bytes int64 `json:"bytes"`
}

// SlotListing is one slot.
type SlotListing struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Shape  []int  `json:"shape"`
	Rate   string `json:"rate"`
	Layout string `json:"layout"`
	Elem   string `json:"elem"`
	// Bytes at the program's capacity; Buffer the buffer it shares (−1:
	// none of the plan's), ViewOf the slot whose memory it is.
	Bytes  int64  `json:"bytes"`
	Buffer int    `json:"buffer"`
	ViewOf string `json:"view_of,omitempty"`
	// First and Last are the ops that first and last use it (−1: unused).
	First int `json:"first"`
	Last  int `json:"last"`
}

// Totals are one run's sums over its ops (repeated passes as often as
// they run) and the program's memory.
type Totals struct {
	Ops   int64 `json:"ops"`
	FLOPs int64 `json:"flops"`
	Bytes int64 `json:"bytes"`
	// ActivationBytes is the plan's buffers at capacity (peak activation
	// memory); ExternalBytes the parameters, gradients and other memory
	// kept outside the program.
	ActivationBytes int64 `json:"activation_bytes"`
	ExternalBytes   int64 `json:"external_bytes"`
}

// List describes a run of p for d (within the program's capacity): each
// pass's ops once, repeats(k) times for pass k (nil: once each; a count
// below 0 counts as 0).
func (p *Program) List(d Dims, repeats func(k int) int) (Listing, error) {
	pl, err := p.Plan()
	if err != nil {
		return Listing{}, err
	}
	if d.N < 0 || d.N > p.Capacity.N || d.Steps < 0 || d.Steps > max(p.Capacity.Steps, 1) {
		return Listing{}, fmt.Errorf("figures for %d samples and %d steps of a program made for %d and %d", d.N, d.Steps, p.Capacity.N, p.Capacity.Steps)
	}
	l := Listing{Capacity: p.Capacity, Dims: d, Rewrites: p.Rewrites}
	slotName := func(r Ref) string {
		s := &p.Slots[r]
		return fmt.Sprintf("%s%v", s.Name, s.Shape)
	}
	for k, ps := range p.Passes {
		rep := 1
		if repeats != nil {
			rep = max(repeats(k), 0)
		}
		pass := PassListing{Kind: ps.Kind.String(), Repeats: rep}
		for i := ps.Lo; i < ps.Hi; i++ {
			op := p.Ops[i]
			reads, writes := op.Operands()
			o := OpListing{Index: i, Kernel: op.Kernel(), Detail: op.Detail(), Bytes: p.OpBytes(op, d)}
			for _, r := range reads {
				o.Reads = append(o.Reads, slotName(r))
			}
			for _, w := range writes {
				o.Writes = append(o.Writes, slotName(w))
			}
			if f, ok := op.(Flopper); ok {
				o.FLOPs = f.FLOPs(d)
			}
			pass.Ops = append(pass.Ops, o)
			l.Totals.Ops += int64(rep)
			l.Totals.FLOPs += int64(rep) * o.FLOPs
			l.Totals.Bytes += int64(rep) * o.Bytes
		}
		l.Passes = append(l.Passes, pass)
	}
	for i := range p.Slots {
		s := &p.Slots[i]
		sl := SlotListing{Name: s.Name, Kind: s.Kind.String(), Shape: s.Shape, Rate: s.Rate.String(), Layout: s.Layout.String(),
			Elem: s.Elem.String(), Bytes: int64(max(mul(s.Numel(), p.Capacity.Rows(s.Rate)), 0)) * s.Elem.Bytes(), Buffer: pl.Buffer[i],
			First: pl.First[p.Root(Ref(i))], Last: pl.Last[p.Root(Ref(i))]}
		if s.Alias != None {
			sl.ViewOf = p.Slots[s.Alias].Name
		}
		if s.Kind == External {
			l.Totals.ExternalBytes += sl.Bytes
		}
		l.Slots = append(l.Slots, sl)
	}
	l.Totals.ActivationBytes = pl.Bytes()
	return l, nil
}

// OpBytes is the bytes of the slots op reads and writes in a run for d,
// each operand counted once as read and once as written where it is
// (operands the program has not, and sizes beyond compute.MaxValues, count
// nothing).
func (p *Program) OpBytes(op Op, d Dims) int64 {
	if op == nil {
		return 0
	}
	reads, writes := op.Operands()
	var b int64
	for _, set := range [][]Ref{reads, writes} {
		seen := map[Ref]bool{}
		for _, r := range set {
			if seen[r] {
				continue
			}
			seen[r] = true
			if s := p.Slot(r); s != nil {
				b += int64(max(mul(s.Numel(), d.Rows(s.Rate)), 0)) * s.Elem.Bytes()
			}
		}
	}
	return b
}

// WriteText writes the listing as tables: the rewrites, each pass's ops,
// the slots, the totals.
func (l Listing) WriteText(w io.Writer) error {
	if w == nil {
		return errors.New("no writer to write the listing to (nil)")
	}
	fmt.Fprintf(w, "planned for batch %d, %d time steps at once; figures for batch %d\n", l.Capacity.N, l.Capacity.Steps, l.Dims.N)
	if len(l.Rewrites) > 0 {
		var rs []string
		for _, r := range l.Rewrites {
			rs = append(rs, fmt.Sprintf("%s (%d)", r.Rule, r.Places))
		}
		fmt.Fprintf(w, "rewrites applied: %s\n", strings.Join(rs, ", "))
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	for _, ps := range l.Passes {
		fmt.Fprintf(tw, "\n%s", ps.Kind)
		if ps.Repeats != 1 {
			fmt.Fprintf(tw, " (×%d)", ps.Repeats)
		}
		fmt.Fprintf(tw, "\n#\top\treads → writes\tGFLOP\tMB\n")
		for _, o := range ps.Ops {
			k := o.Kernel
			if o.Detail != "" {
				k += " " + o.Detail
			}
			fmt.Fprintf(tw, "%d\t%s\t%s → %s\t%.3f\t%.2f\n", o.Index, k, strings.Join(o.Reads, " "), strings.Join(o.Writes, " "),
				float64(o.FLOPs)/1e9, float64(o.Bytes)/1e6)
		}
	}
	fmt.Fprintf(tw, "\nslot\tkind\tshape×rate\tMB\tbuffer\tlives\n")
	for _, s := range l.Slots {
		if s.First < 0 {
			continue
		}
		buf := fmt.Sprint(s.Buffer)
		switch {
		case s.ViewOf != "":
			buf = "view of " + s.ViewOf
		case s.Buffer < 0:
			buf = "-"
		}
		lives := fmt.Sprintf("%d–%d", s.First, s.Last)
		fmt.Fprintf(tw, "%s\t%s\t%v×%s\t%.2f\t%s\t%s\n", s.Name, s.Kind, s.Shape, s.Rate, float64(s.Bytes)/1e6, buf, lives)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t := l.Totals
	_, err := fmt.Fprintf(w, "\ntotal: %d ops, %.2f GFLOP, %.1f MB read and written; activations %.1f MB, parameters and other memory kept outside %.1f MB\n",
		t.Ops, float64(t.FLOPs)/1e9, float64(t.Bytes)/1e6, float64(t.ActivationBytes)/1e6, float64(t.ExternalBytes)/1e6)
	return err
}

// Kernels counts a listing's ops by kernel, repeats included, in order of
// first appearance.
func (l Listing) Kernels() (names []string, counts []int64) {
	for _, ps := range l.Passes {
		for _, o := range ps.Ops {
			i := slices.Index(names, o.Kernel)
			if i < 0 {
				names, counts = append(names, o.Kernel), append(counts, 0)
				i = len(names) - 1
			}
			counts[i] += int64(ps.Repeats)
		}
	}
	return names, counts
}

// Append adds another program's listing run after this one's (the
// optimizer after the step): its passes, its slots not listed yet (by
// name: the parameters both use), and its totals.
func (l *Listing) Append(o Listing) {
	l.Passes = append(l.Passes, o.Passes...)
	l.Rewrites = append(l.Rewrites, o.Rewrites...)
	for _, s := range o.Slots {
		if slices.ContainsFunc(l.Slots, func(t SlotListing) bool { return t.Name == s.Name }) {
			continue
		}
		if s.Kind == External.String() {
			l.Totals.ExternalBytes += s.Bytes
		}
		l.Slots = append(l.Slots, s)
	}
	l.Totals.Ops += o.Totals.Ops
	l.Totals.FLOPs += o.Totals.FLOPs
	l.Totals.Bytes += o.Totals.Bytes
	l.Totals.ActivationBytes = max(l.Totals.ActivationBytes, o.Totals.ActivationBytes)
}
