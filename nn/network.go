package nn

import (
	"errors"
	"fmt"
	"slices"

	"github.com/proxykit/proxykit/compute"
)

// Network is a feed-forward network of layers: the ANN. Its parameters
// are the ones the SNN built from it shares. It is a chain unless Inputs
// says otherwise.
type Network struct {
	// Name is a label for messages, usually the file the network came from.
	Name string
	// InputShape is the per-sample input shape, e.g. [1 28 28].
	InputShape []int
	// Layers run in order (a topological order of the graph).
	Layers []Layer
	// Inputs, if not nil, lists for each layer the nodes it reads: −1 is
	// the network's input, j is layer j's output (j before the layer).
	// Joins (Add, Concat) read two or more nodes, other layers one; the
	// last layer's output is the network's. nil: a chain.
	Inputs [][]int
}

// errNoNetwork is the error of a nil Network's methods.
var errNoNetwork = errors.New("no network (nil)")

// Body is the network without its head, a last layer whose role is Head
// (a softmax), and the head's kind ("" when there is none). The SNN and
// proxy learning run the body: spike counts stand in for its output. The
// body shares the network's layers.
func (n *Network) Body() (body *Network, head string) {
	if n == nil {
		return nil, ""
	}
	k := len(n.Layers)
	if k == 0 || !RoleOf(n.Layers[k-1]).Head {
		return n, ""
	}
	b := *n
	b.Layers = n.Layers[:k-1]
	if n.Inputs != nil {
		b.Inputs = n.Inputs[:k-1]
	}
	return &b, KindOf(n.Layers[k-1])
}

// Shapes returns the per-sample output shape of every layer, checking that
// each layer fits its input (and that the graph is well formed).
func (n *Network) Shapes() ([][]int, error) {
	if n == nil {
		return nil, errNoNetwork
	}
	return GraphShapes(n.Layers, n.Inputs, n.InputShape)
}

// OutputShape is the per-sample shape the network produces.
func (n *Network) OutputShape() ([]int, error) {
	if n == nil {
		return nil, errNoNetwork
	}
	shapes, err := n.Shapes()
	if err != nil {
		return nil, err
	}
	if len(shapes) == 0 {
		return n.InputShape, nil
	}
	return shapes[len(shapes)-1], nil
}

// CheckInput reports whether a batched input shape fits the network
// (FitsInput).
func (n *Network) CheckInput(shape []int) error {
	if n == nil {
		return errNoNetwork
	}
	if !FitsInput(n.InputShape, shape) {
		return fmt.Errorf("input has shape %s; the network takes [B %s", ShapeString(shape), ShapeString(n.InputShape)[1:])
	}
	return nil
}

// FitsInput reports whether a batch of shape [B, ...] fits a network whose
// per-sample input shape is in: its per-sample shape is in, or, where in
// is a flat vector of k values, any per-sample shape of k values, read in
// row-major order as torch's Flatten reads them (an MLP pickled with a
// Flatten first takes [k]; its data set's images are [C H W]). Every
// runner checks a batch by it, so that such a batch runs as its k values.
func FitsInput(in, shape []int) bool {
	if len(shape) < 2 {
		return false
	}
	if len(in) == 1 && !slices.ContainsFunc(shape[1:], func(d int) bool { return d < 1 }) && Numel(shape[1:]) == in[0] {
		return true
	}
	return slices.Equal(shape[1:], in)
}

// Params lists every trainable parameter, in layer order (none of nil
// layers).
func (n *Network) Params() []*Param {
	var ps []*Param
	for _, l := range n.Layers {
		if l != nil {
			ps = append(ps, l.Params()...)
		}
	}
	return ps
}

// ParamCount is the number of trainable scalars.
func (n *Network) ParamCount() int {
	c := 0
	for _, p := range n.Params() {
		c += len(p.Data)
	}
	return c
}

// Bind puts the network's parameters and its layers' state (BatchNorm's
// running statistics) on be (an SNN built on the network binds its own
// state).
func (n *Network) Bind(be compute.Backend) error {
	if n == nil {
		return errNoNetwork
	}
	if be == nil {
		return errNoBackend
	}
	for _, p := range n.Params() {
		if _, err := p.Bind(be); err != nil {
			return err
		}
	}
	for _, s := range StatefulLayers(n.Layers) {
		if err := s.BindState(be); err != nil {
			return err
		}
	}
	return nil
}

// Sync copies parameters and the layers' state from the backend the
// network is bound to into host memory (Param.Data, Stateful.State), for
// a checkpoint or an export.
func (n *Network) Sync() error {
	if n == nil {
		return errNoNetwork
	}
	for _, p := range n.Params() {
		if err := p.Sync(); err != nil {
			return fmt.Errorf("parameter %s: %w", p.Name, err)
		}
	}
	for _, s := range StatefulLayers(n.Layers) {
		if err := s.SyncState(); err != nil {
			return err
		}
	}
	return nil
}

// Release copies parameters and the layers' state back into host memory
// and frees their backend buffers: the network then lives on the host
// alone, and the backend may be closed.
func (n *Network) Release() error {
	if n == nil {
		return errNoNetwork
	}
	for _, p := range n.Params() {
		if err := p.Release(); err != nil {
			return fmt.Errorf("parameter %s: %w", p.Name, err)
		}
	}
	for _, s := range StatefulLayers(n.Layers) {
		if err := s.ReleaseState(); err != nil {
			return err
		}
	}
	return nil
}

// Upload tells the bound backend that host values of parameters or of
// the layers' state changed (after a checkpoint was restored, say).
func (n *Network) Upload() {
	for _, p := range n.Params() {
		p.Upload()
	}
	for _, s := range StatefulLayers(n.Layers) {
		s.UploadState()
	}
}

// ZeroGrad clears every parameter's gradient.
func (n *Network) ZeroGrad() {
	for _, p := range n.Params() {
		p.ZeroGrad()
	}
}

// Chunk is the batch a runner plans for n samples taken batch at a time
// (batch 0: all at once).
func Chunk(n, batch int) int {
	if batch < 1 || batch > n {
		return max(n, 1)
	}
	return batch
}

// Chunks stages a host batch on be in chunks of up to capacity samples and
// calls run with each chunk's first sample index and its value (valid
// during the call). It refuses a nil backend, tensor or function, a
// tensor whose data is not its shape's, and a capacity below 1.
func Chunks(be compute.Backend, x *Tensor, capacity int, run func(lo int, v Value) error) error {
	switch {
	case be == nil:
		return errNoBackend
	case x == nil || len(x.Shape) == 0:
		return fmt.Errorf("no batch to stage (a nil tensor or one without a shape)")
	case run == nil:
		return fmt.Errorf("no function to run on the chunks (nil)")
	case capacity < 1:
		return fmt.Errorf("chunks of %d samples: the capacity must be at least 1", capacity)
	}
	if n := Numel(x.Shape); n < 0 || n != len(x.Data) {
		return fmt.Errorf("a batch of shape %s holds %d values", ShapeString(x.Shape), len(x.Data))
	}
	per := Numel(x.Shape[1:])
	size, err := compute.Elements(min(capacity, x.Shape[0]), per)
	if err != nil {
		return err
	}
	in, err := be.Alloc(size)
	if err != nil {
		return err
	}
	defer be.Free(in)
	n := x.Shape[0]
	for lo := 0; lo < n; lo += capacity {
		hi := min(lo+capacity, n)
		buf := in.Slice(0, (hi-lo)*per)
		be.Upload(buf, x.Data[lo*per:hi*per])
		if err := run(lo, Value{Shape: append([]int{hi - lo}, x.Shape[1:]...), Buf: buf}); err != nil {
			return err
		}
	}
	return nil
}
