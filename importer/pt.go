package importer

import (
	"fmt"
	"io"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// PTInfo describes an imported PyTorch checkpoint.
type PTInfo struct {
	// Kind is "module" (a whole pickled module, as the reference saves
	// ANN_Params.pt), "snn-module" (one holding SpikingJelly IF neurons) or
	// "state-dict".
	Kind string
	// Root is the top-level module's class, e.g. "__main__.ANN".
	Root string
	// SNN is an SNN module's setting: v_th and v_reset of its IF neurons,
	// and T where the module records it (0 when absent).
	SNN   spiking.Config
	Notes []string
}

// pyClass is a class named by a pickle. Creating an instance (NEWOBJ)
// only records its attributes; calling it (REDUCE) is refused: proxykit
// never executes anything a pickle asks for.
type pyClass struct{ module, name string }

func (c *pyClass) qualified() string { return c.module + "." + c.name }

// PyNew implements types.PyNewable.
func (c *pyClass) PyNew(args ...any) (any, error) {
	return &pyObject{class: c, dict: map[string]any{}}, nil
}

// Call implements types.Callable by refusing.
func (c *pyClass) Call(args ...any) (any, error) {
	return nil, fmt.Errorf("the pickle asks to call %s; proxykit never runs code from a pickle", c.qualified())
}

// pyObject is an instance rebuilt from a pickle: its class and __dict__.
type pyObject struct {
	class *pyClass
	dict  map[string]any
}

// PyDictSet implements types.PyDictSettable.
func (o *pyObject) PyDictSet(k, v any) error {
	s, ok := k.(string)
	if !ok {
		return fmt.Errorf("%s: attribute name %v is not a string", o.class.qualified(), k)
	}
	o.dict[s] = v
	return nil
}

// PySetAttr implements types.PyAttrSettable.
func (o *pyObject) PySetAttr(k string, v any) error { o.dict[k] = v; return nil }

// safeCall is a known, side-effect-free callable.
type safeCall func(args ...any) (any, error)

func (f safeCall) Call(args ...any) (any, error) { return f(args...) }

// findClass resolves the globals a pickle names. Tensor rebuilding and
// storages are gopickle's; these are the rest.
func findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return safeCall(func(args ...any) (any, error) {
			if len(args) == 0 {
				return nil, fmt.Errorf("_rebuild_parameter without data")
			}
			return args[0], nil
		}), nil
	case "__builtin__.set", "builtins.set", "builtins.frozenset", "__builtin__.frozenset":
		return safeCall(func(args ...any) (any, error) {
			if len(args) == 0 {
				return &types.List{}, nil
			}
			return args[0], nil
		}), nil
	}
	return &pyClass{module: module, name: name}, nil
}

// loadPickle reads a torch.save file (zip or legacy) without running any
// of its code.
func loadPickle(path string) (obj any, err error) {
	if err := checkStorageSizes(path); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("not a readable PyTorch file: %v", r)
		}
	}()
	if isZipFile(path) {
		obj, err = loadZipPT(path)
	} else {
		obj, err = pytorch.LoadWithUnpickler(path, func(r io.Reader) pickle.Unpickler {
			u := pickle.NewUnpickler(r)
			u.FindClass = findClass
			return u
		})
	}
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "proxykit never runs code") {
			return nil, err
		}
		return nil, fmt.Errorf("not a readable PyTorch file (%v); re-save it with torch.save(model, path) from PyTorch 1.6 or newer", err)
	}
	return obj, nil
}

// tensorData copies a tensor's values in row-major order.
func tensorData(v any, what string) ([]float32, []int, error) {
	t, ok := v.(*pytorch.Tensor)
	if !ok {
		return nil, nil, fmt.Errorf("%s is %T, not a tensor", what, v)
	}
	var src []float32
	switch s := t.Source.(type) {
	case *pytorch.FloatStorage:
		src = s.Data
	case *pytorch.DoubleStorage:
		src = make([]float32, len(s.Data))
		for i, x := range s.Data {
			src[i] = float32(x)
		}
	case *pytorch.HalfStorage:
		src = s.Data
	case *pytorch.BFloat16Storage:
		src = s.Data
	default:
		return nil, nil, fmt.Errorf("%s holds %T values; proxykit reads floating-point tensors", what, t.Source)
	}
	shape := append([]int(nil), t.Size...)
	if len(t.Stride) != len(shape) {
		return nil, nil, fmt.Errorf("%s has %d strides for %d dimensions", what, len(t.Stride), len(shape))
	}
	// check the extent of the view before allocating anything
	n, lo, hi := 1, t.StorageOffset, t.StorageOffset
	for d, sz := range shape {
		if sz < 0 || (sz > 0 && n > (1<<28)/sz) {
			return nil, nil, fmt.Errorf("%s has an implausible shape %v", what, shape)
		}
		n *= sz
		if sz > 0 {
			step := (sz - 1) * t.Stride[d]
			if step < 0 {
				lo += step
			} else {
				hi += step
			}
		}
	}
	if n > 0 && (lo < 0 || hi >= len(src)) {
		return nil, nil, fmt.Errorf("%s reaches outside its storage", what)
	}
	out := make([]float32, n)
	if n > 0 && contiguous(shape, t.Stride) {
		// row-major already (torch.save's usual layout): one copy
		copy(out, src[t.StorageOffset:t.StorageOffset+n])
		return out, shape, nil
	}
	idx := make([]int, len(shape))
	for k := 0; k < n; k++ {
		off := t.StorageOffset
		for d := range idx {
			off += idx[d] * t.Stride[d]
		}
		if off < 0 || off >= len(src) {
			return nil, nil, fmt.Errorf("%s reaches outside its storage", what)
		}
		out[k] = src[off]
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, shape, nil
}

// contiguous says whether strides lay a tensor of this shape out in row-major
// order, element after element.
func contiguous(shape, stride []int) bool {
	want := 1
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] != 1 && stride[d] != want {
			return false
		}
		want *= shape[d]
	}
	return true
}

// entries lists an OrderedDict or dict in order.
func entries(v any) ([][2]any, bool) {
	switch d := v.(type) {
	case *types.OrderedDict:
		var out [][2]any
		for e := d.List.Front(); e != nil; e = e.Next() {
			en := e.Value.(*types.OrderedDictEntry)
			out = append(out, [2]any{en.Key, en.Value})
		}
		return out, true
	case *types.Dict:
		var out [][2]any
		for _, e := range *d {
			out = append(out, [2]any{e.Key, e.Value})
		}
		return out, true
	}
	return nil, false
}

func lookup(v any, key string) (any, bool) {
	es, ok := entries(v)
	if !ok {
		return nil, false
	}
	for _, e := range es {
		if k, ok := e[0].(string); ok && k == key {
			return e[1], true
		}
	}
	return nil, false
}

func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	if i, ok := toInt(v); ok {
		return float64(i), true
	}
	return 0, false
}

// pair reads an int or a 2-tuple of ints (PyTorch's _pair).
func pair(v any) ([2]int, bool) {
	if i, ok := toInt(v); ok {
		return [2]int{i, i}, true
	}
	if t, ok := v.(*types.Tuple); ok && t.Len() == 2 {
		a, ok1 := toInt(t.Get(0))
		b, ok2 := toInt(t.Get(1))
		return [2]int{a, b}, ok1 && ok2
	}
	return [2]int{}, false
}

// ptReader turns a pickled module tree into layers.
type ptReader struct {
	active map[*pyObject]bool // modules being walked: a module inside itself is refused
	layers []nn.Layer
	info   *PTInfo
	ifSeen bool
	custom bool // a custom module's children were taken in registration order
	snnBN  map[string][2][]float32
}

// torchModule is a module as a layer kind reads it (nn.TorchModule).
// Its errors leave out the module, which walk's message names.
type torchModule struct {
	m    *pyObject
	path string
}

func (t *torchModule) Path() string  { return t.path }
func (t *torchModule) Class() string { return t.m.class.name }

func (t *torchModule) Param(name string, required bool) (*nn.Param, error) {
	params, ok := t.m.dict["_parameters"]
	if !ok {
		return nil, fmt.Errorf("it has no _parameters")
	}
	v, ok := lookup(params, name)
	if !ok || v == nil {
		if required {
			return nil, fmt.Errorf("it has no %s", name)
		}
		return nil, nil
	}
	data, shape, err := tensorData(v, t.path+"."+name)
	if err != nil {
		return nil, err
	}
	return nn.NewParam(t.path+"."+name, data, shape...), nil
}

func (t *torchModule) Buffer(name string) ([]float32, error) {
	v, ok := lookup(t.m.dict["_buffers"], name)
	if !ok || v == nil {
		return nil, fmt.Errorf("it has no buffer %s", name)
	}
	data, _, err := tensorData(v, t.path+"."+name)
	return data, err
}

func (t *torchModule) IsSet(name string) bool {
	v, ok := t.m.dict[name]
	return ok && v != nil
}

func (t *torchModule) Int(name string) (int, bool)       { return toInt(t.m.dict[name]) }
func (t *torchModule) Float(name string) (float64, bool) { return toFloat(t.m.dict[name]) }

func (t *torchModule) String(name string) (string, bool) {
	s, ok := t.m.dict[name].(string)
	return s, ok
}

func (t *torchModule) Ints(name string) ([]int, bool) {
	v := t.m.dict[name]
	if i, ok := toInt(v); ok {
		return []int{i}, true
	}
	tu, ok := v.(*types.Tuple)
	if !ok {
		return nil, false
	}
	out := make([]int, tu.Len())
	for i := range out {
		if out[i], ok = toInt(tu.Get(i)); !ok {
			return nil, false
		}
	}
	return out, true
}

func (t *torchModule) Pair(name string, def [2]int) ([2]int, error) {
	if !t.IsSet(name) {
		return def, nil
	}
	p, ok := pair(t.m.dict[name])
	if !ok {
		return def, fmt.Errorf("%s = %v is not an int or a pair", name, t.m.dict[name])
	}
	return p, nil
}

// walk appends the layers of module m (at path) in the order its forward
// applies them.
func (r *ptReader) walk(m *pyObject, path string) error {
	if r.active[m] {
		return fmt.Errorf("module %s contains itself", displayPath(path, m))
	}
	if r.active == nil {
		r.active = map[*pyObject]bool{}
	}
	r.active[m] = true
	defer delete(r.active, m)
	name := m.class.name
	isTorch := strings.HasPrefix(m.class.module, "torch.nn.modules")
	isSJ := strings.HasPrefix(m.class.module, "spikingjelly")
	kind, hasKind := nn.KindForTorch(name)
	switch {
	case isTorch && (name == "Sequential" || name == "ModuleList"):
		return r.children(m, path)
	case isTorch && (name == "Dropout" || name == "Identity"):
	case isTorch && hasKind:
		l, err := kind.FromTorch(&torchModule{m: m, path: path})
		if err != nil {
			return fmt.Errorf("module %s (%s): %w", path, name, err)
		}
		r.layers = append(r.layers, l)
	case isSJ && strings.HasSuffix(name, "IFNode") && name == "IFNode":
		vth, ok := toFloat(m.dict["v_threshold"])
		if !ok {
			return fmt.Errorf("module %s (IFNode): v_threshold = %v is not a number", path, m.dict["v_threshold"])
		}
		vr, ok := toFloat(m.dict["v_reset"])
		if !ok {
			return fmt.Errorf("module %s (IFNode): v_reset = %v: soft reset is not supported (proxykit's IF neurons reset to v_reset)", path, m.dict["v_reset"])
		}
		if r.ifSeen && (float32(vth) != r.info.SNN.Threshold || float32(vr) != r.info.SNN.Reset) {
			return fmt.Errorf("module %s (IFNode): v_threshold %g, v_reset %g differ from the earlier IF layers' %g, %g", path, vth, vr, r.info.SNN.Threshold, r.info.SNN.Reset)
		}
		r.ifSeen = true
		r.info.SNN.Threshold, r.info.SNN.Reset = float32(vth), float32(vr)
		r.layers = append(r.layers, &nn.ReLU{LayerName: path})
	case library(m.class.module):
		what := "the pickled module"
		if path != "" {
			what = "module " + path
		}
		return fmt.Errorf("%s is %s, whose forward is not its children in order (a residual Add, a Concat, a flatten between children), and a pickle does not record a forward; export the model with torch.onnx.export and import the ONNX file",
			what, m.class.qualified())
	case isTorch || isSJ:
		return fmt.Errorf("module %s: %s is not supported (proxykit reads Sequential, ModuleList, %s, Dropout, Identity and SpikingJelly's IFNode)",
			path, m.class.qualified(), strings.Join(nn.TorchModules(), ", "))
	default:
		kids, _ := entries(m.dict["_modules"])
		if len(kids) == 0 {
			return fmt.Errorf("module %s: %s has no child modules proxykit can read", path, m.class.qualified())
		}
		var names []string
		for _, k := range kids {
			names = append(names, fmt.Sprint(k[0]))
		}
		r.custom = true
		r.info.Notes = append(r.info.Notes, fmt.Sprintf("module %s is a custom module: proxykit applies its children (%s) in registration order, as the reference's forward does; a pickle records no forward, so if this one adds a shortcut, concatenates or reshapes, the network is not the file's — export the model with torch.onnx.export and read the ONNX file",
			displayPath(path, m), strings.Join(names, ", ")))
		return r.children(m, path)
	}
	return nil
}

func displayPath(path string, m *pyObject) string {
	if path == "" {
		return m.class.qualified()
	}
	return path + " (" + m.class.qualified() + ")"
}

func (r *ptReader) children(m *pyObject, path string) error {
	kids, ok := entries(m.dict["_modules"])
	if !ok {
		return fmt.Errorf("module %s has no _modules", displayPath(path, m))
	}
	for _, k := range kids {
		key := fmt.Sprint(k[0])
		child, ok := k[1].(*pyObject)
		if !ok {
			if k[1] == nil {
				continue
			}
			return fmt.Errorf("module %s: child %s is %T, not a module", displayPath(path, m), key, k[1])
		}
		p := key
		if path != "" {
			p = path + "." + key
		}
		if err := r.walk(child, p); err != nil {
			return err
		}
	}
	return nil
}

// inferInputShape finds the per-sample input shape of a module that does
// not record one: the channels from the first layer, and the square image
// size for which the shapes check (a Linear after Flatten pins it down).
func inferInputShape(layers []nn.Layer) ([]int, string, error) {
	if len(layers) == 0 {
		return nil, "", fmt.Errorf("the module holds no layers")
	}
	for _, l := range layers {
		p, ok := l.(nn.InputPinned)
		if !ok {
			continue
		}
		switch c, rank := p.PinnedInput(); rank {
		case 1:
			return []int{c}, "", nil
		case 3:
			net := &nn.Network{Layers: layers}
			var fits []int
			for s := 1; s <= 512; s++ {
				net.InputShape = []int{c, s, s}
				if out, err := net.OutputShape(); err == nil && len(out) == 1 {
					fits = append(fits, s)
				}
			}
			if len(fits) == 0 {
				// say why at the usual size: which layer does not fit
				s := 32
				if c == 1 {
					s = 28
				}
				net.InputShape = []int{c, s, s}
				out, err := net.OutputShape()
				if err == nil {
					err = fmt.Errorf("the last layer gives %s per sample, not a vector of class scores", nn.ShapeString(out))
				}
				return nil, "", fmt.Errorf("no square input size up to 512 fits the module's layers; at [%d %d %d]: %w", c, s, s, err)
			}
			// prefer the usual data set sizes: 28×28 grey, 32×32 colour
			pick := fits[0]
			for _, s := range fits {
				if (c == 1 && s == 28) || (c == 3 && s == 32) {
					pick = s
				}
			}
			note := ""
			if len(fits) > 1 {
				note = fmt.Sprintf("the layers fit inputs of %d to %d pixels square; taking [%d %d %d]", fits[0], fits[len(fits)-1], c, pick, pick)
			}
			return []int{c, pick, pick}, note, nil
		}
	}
	return nil, "", fmt.Errorf("the module has no layer that fixes its input's channels or features (Conv2d, Linear) to infer its input shape from")
}

// Structure gives a state dict its network: called with the state dict's
// tensor shapes by name, it returns a network of the same structure whose
// parameter names the state dict's keys match (nil: none is known).
type Structure func(shapes map[string][]int) (*nn.Network, error)

// LoadPT reads a PyTorch checkpoint from path: a whole pickled module (the
// reference's ANN_Params.pt, or SNN_Params.pt with SpikingJelly neurons),
// or a state dict, whose network structure gives (it may be nil for files
// that hold modules).
func LoadPT(path string, structure Structure) (*nn.Network, *PTInfo, error) {
	obj, err := loadPickle(path)
	if err != nil {
		return nil, nil, err
	}
	if d, ok := obj.(*types.Dict); ok {
		for _, key := range []string{"state_dict", "model_state_dict", "model"} {
			if v, ok := d.Get(key); ok {
				obj = v
				break
			}
		}
	}
	if root, ok := obj.(*pyObject); ok {
		return moduleNetwork(root)
	}
	if _, ok := entries(obj); ok {
		var like *nn.Network
		if structure != nil {
			shapes, err := stateDictShapes(obj)
			if err != nil {
				return nil, nil, err
			}
			if like, err = structure(shapes); err != nil {
				return nil, nil, err
			}
		}
		return stateDictNetwork(obj, like)
	}
	return nil, nil, fmt.Errorf("the file holds %T, neither a module nor a state dict", obj)
}

func moduleNetwork(root *pyObject) (*nn.Network, *PTInfo, error) {
	info := &PTInfo{Kind: "module", Root: root.class.qualified()}
	r := &ptReader{info: info}
	if err := r.walk(root, ""); err != nil {
		return nil, nil, err
	}
	layers := r.layers
	if r.ifSeen {
		info.Kind = "snn-module"
		n := len(layers)
		if nn.RoleOf(layers[n-1]).Neuron {
			layers = layers[:n-1] // the IF layer after the last layer: proxykit adds it itself
		} else {
			info.Notes = append(info.Notes, "the SNN module has no IF layer after its last layer; proxykit adds one")
		}
		if v, present := root.dict["T"]; !present || v == nil {
			info.Notes = append(info.Notes, "the SNN module has no attribute T; the default number of time steps applies")
		} else if t, ok := toInt(v); ok && t > 0 && t <= spiking.MaxTimesteps {
			info.SNN.Timesteps = t
		} else {
			return nil, nil, fmt.Errorf("module %s: T = %v is not a number of time steps (an integer from 1 to %d)", info.Root, v, spiking.MaxTimesteps)
		}
	}
	if err := nn.ValidateLayers(layers); err != nil {
		return nil, nil, fmt.Errorf("module %s: %w", info.Root, err)
	}
	// A custom module's children were taken in order; if the layers then
	// do not fit together, that guess is the likelier culprit.
	hint := ""
	if r.custom {
		hint = " (proxykit applied the children of custom modules in registration order; if a forward does more — a residual Add, a Concat, a reshape — export the model with torch.onnx.export and import the ONNX file)"
	}
	shape, note, err := inferInputShape(layers)
	if err != nil {
		return nil, nil, fmt.Errorf("module %s: %w%s", info.Root, err, hint)
	}
	if note != "" {
		info.Notes = append(info.Notes, note)
	}
	net := &nn.Network{InputShape: shape, Layers: layers}
	if _, err := net.Shapes(); err != nil {
		return nil, nil, fmt.Errorf("module %s: %w%s", info.Root, err, hint)
	}
	return net, info, nil
}

// library reports whether a module's classes come from a model library
// (torchvision, timm) whose forward methods proxykit knows not to be their
// children in order.
func library(module string) bool {
	return strings.HasPrefix(module, "torchvision.") || strings.HasPrefix(module, "timm.")
}

// stateDictShapes is the shape of every tensor of a state dict, by key.
func stateDictShapes(sd any) (map[string][]int, error) {
	es, _ := entries(sd)
	shapes := map[string][]int{}
	for _, e := range es {
		k, ok := e[0].(string)
		if !ok {
			return nil, fmt.Errorf("state dict key %v is not a string", e[0])
		}
		if t, ok := e[1].(*pytorch.Tensor); ok {
			shapes[k] = append([]int(nil), t.Size...)
		}
	}
	return shapes, nil
}

func stateDictNetwork(sd any, like *nn.Network) (*nn.Network, *PTInfo, error) {
	info := &PTInfo{Kind: "state-dict"}
	if like == nil {
		return nil, nil, setting.Errorf("the file is a state dict (weights without the architecture): give its structure: %s (%s) or %s (a model file with the same parameter names)",
			setting.Arch, nn.ArchitectureNames(), setting.Like)
	}
	es, _ := entries(sd)
	values := map[string]any{}
	for _, e := range es {
		k, ok := e[0].(string)
		if !ok {
			return nil, nil, fmt.Errorf("state dict key %v is not a string", e[0])
		}
		values[k] = e[1]
	}
	used := map[string]bool{}
	take := func(name string, want []int) ([]float32, error) {
		v, ok := values[name]
		if !ok {
			return nil, fmt.Errorf("the state dict has no %q", name)
		}
		data, shape, err := tensorData(v, name)
		if err != nil {
			return nil, err
		}
		if nn.ShapeString(shape) != nn.ShapeString(want) {
			return nil, fmt.Errorf("%q has shape %s in the state dict, %s in the structure", name, nn.ShapeString(shape), nn.ShapeString(want))
		}
		used[name] = true
		return data, nil
	}
	for _, p := range like.Params() {
		data, err := take(p.Name, p.Shape)
		if err != nil {
			return nil, nil, err
		}
		copy(p.Data, data)
	}
	for _, l := range like.Layers {
		if bn, ok := l.(*nn.BatchNorm2d); ok {
			c := []int{len(bn.RunningMean)}
			mean, err := take(bn.LayerName+".running_mean", c)
			if err != nil {
				return nil, nil, err
			}
			variance, err := take(bn.LayerName+".running_var", c)
			if err != nil {
				return nil, nil, err
			}
			copy(bn.RunningMean, mean)
			copy(bn.RunningVar, variance)
		}
	}
	for k := range values {
		if !used[k] && !strings.HasSuffix(k, "num_batches_tracked") {
			return nil, nil, fmt.Errorf("the state dict's %q has no place in the structure", k)
		}
	}
	return like, info, nil
}
