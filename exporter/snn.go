package exporter

import (
	"fmt"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// foldedSNN is the SNN's graph with its own BatchNorm statistics folded
// (lower.FoldBatchNorm), how many of its nodes are the static input layer
// and each node's per-sample output shape. It refuses what is not an SNN
// spiking.New makes: none, settings Validate refuses, no output IF layer,
// nodes whose shapes do not follow.
func foldedSNN(s *spiking.Network) (nodes []spiking.Node, static int, shapes [][]int, err error) {
	switch {
	case s == nil || s.ANN == nil:
		return nil, 0, nil, fmt.Errorf("no SNN to export (nil, or without its ANN: make one with spiking.New)")
	case len(s.Nodes) == 0 || !s.Nodes[len(s.Nodes)-1].IF:
		return nil, 0, nil, fmt.Errorf("the SNN must end in its output IF layer (make one with spiking.New)")
	}
	if err := s.Config.Validate(); err != nil {
		return nil, 0, nil, err
	}
	f, err := lower.FoldSNN(s.Lowering())
	if err != nil {
		return nil, 0, nil, err
	}
	layers, inputs := make([]nn.Layer, len(f.Nodes)), make([][]int, len(f.Nodes))
	for i, nd := range f.Nodes {
		layers[i], inputs[i] = nd.Layer, nd.Inputs
	}
	if shapes, err = nn.NodeShapes(layers, inputs, s.ANN.InputShape); err != nil {
		return nil, 0, nil, fmt.Errorf("SNN: %w", err)
	}
	return f.Nodes, f.Static, shapes, nil
}

// MaxUnrolledSteps bounds the T of an unrolled SNN export: its graph has a
// copy of the dynamic layers per step.
const MaxUnrolledSteps = 4096

// SNN encodes the spiking network as an ONNX model any runtime can run:
// input the image batch, output the spike counts [B, K] over T steps. The
// T steps are unrolled with standard operators — each IF layer is Add (v +=
// I), GreaterOrEqual and Cast (the spikes), Where (hard reset) — and the
// membrane potentials carried from step to step; weights are initializers
// stored once, whatever T. The SNN's own BatchNorm statistics are folded.
func SNN(s *spiking.Network, opt Options) ([]byte, error) {
	if err := opt.Check(); err != nil {
		return nil, err
	}
	if opt.Opset == 0 {
		opt.Opset = DefaultOpset
	}
	nodes, static, shapes, err := foldedSNN(s)
	if err != nil {
		return nil, err
	}
	if s.Config.Timesteps > MaxUnrolledSteps {
		return nil, fmt.Errorf("T = %d: an unrolled SNN repeats every layer each step, and at most %d steps are written (NIR export does not unroll: use --nir)", s.Config.Timesteps, MaxUnrolledSteps)
	}
	cfg, lowering := s.Config, s.Lowering()
	g := &graphBuilder{}
	vthDefault := g.Constant("snn.v_threshold", nil, []float32{cfg.Threshold})
	vreset := g.Constant("snn.v_reset", nil, []float32{cfg.Reset})
	// ifNodes emits an IF layer's step: v += I, spike when v >= v_th, reset
	ifNodes := func(base, prev, in string, threshold, start float32) (v, spikes string) {
		switch {
		case prev == "" && start == cfg.Reset:
			prev = vreset // v starts at v_reset
		case prev == "": // or charged (Config.InitialCharge)
			prev = g.Constant(fmt.Sprintf("snn.v_start_%g", start), nil, []float32{start})
		}
		vth := vthDefault
		if threshold != cfg.Threshold { // a layer's own (a clipped ReLU's)
			vth = g.Constant(fmt.Sprintf("snn.v_threshold_%g", threshold), nil, []float32{threshold})
		}
		g.node("Add", base+"/integrate", []string{prev, in}, []string{base + "_u"})
		g.node("GreaterOrEqual", base+"/fire", []string{base + "_u", vth}, []string{base + "_fired"})
		g.node("Cast", base+"/spikes", []string{base + "_fired"}, []string{base + "_s"}, aInt("to", onnxFloat))
		g.node("Where", base+"/reset", []string{base + "_fired", vreset, base + "_u"}, []string{base + "_v"})
		return base + "_v", base + "_s"
	}
	inShapes := func(nd spiking.Node) [][]int {
		var in [][]int
		for _, j := range nd.Inputs {
			if j < 0 {
				in = append(in, s.ANN.InputShape)
			} else {
				in = append(in, shapes[j])
			}
		}
		return in
	}
	// the static input layer once; then at each step every other node on
	// its inputs, and the output IF layer's spikes added to the counts
	staticName := func(j int) string {
		if j < 0 {
			return "input"
		}
		return nodes[j].Name() + "_static"
	}
	for i, nd := range nodes[:static] {
		var ins []string
		for _, j := range nd.Inputs {
			ins = append(ins, staticName(j))
		}
		if err := g.emit(nd.Layer, ins, inShapes(nd), staticName(i), nd.Name()+"/static"); err != nil {
			return nil, fmt.Errorf("static layer %d: %w", i, err)
		}
	}
	if !nodes[len(nodes)-1].IF {
		return nil, fmt.Errorf("the SNN's last node is %s, not its output IF layer", nodes[len(nodes)-1].Kind())
	}
	v := make([]string, len(nodes))     // IF layers' potentials
	names := make([]string, len(nodes)) // each node's value in the current step
	counts := ""
	for t := 0; t < cfg.Timesteps; t++ {
		for i := static; i < len(nodes); i++ {
			nd := nodes[i]
			var ins []string
			for _, j := range nd.Inputs {
				if j < static {
					ins = append(ins, staticName(j))
				} else {
					ins = append(ins, names[j])
				}
			}
			if nd.IF {
				v[i], names[i] = ifNodes(fmt.Sprintf("if%d_%s_t%d", i-static, nd.Name(), t), v[i], ins[0], nd.Threshold, lowering.StartPotential(nd))
				continue
			}
			names[i] = fmt.Sprintf("%s_t%d", nd.Name(), t)
			if err := g.emit(nd.Layer, ins, inShapes(nd), names[i], fmt.Sprintf("%s/t%d", nd.Name(), t)); err != nil {
				return nil, err
			}
		}
		out := names[len(nodes)-1]
		if counts == "" {
			counts = out
		} else {
			next := fmt.Sprintf("counts_t%d", t)
			g.node("Add", next, []string{counts, out}, []string{next})
			counts = next
		}
	}
	return snnModel(g, s, counts, v[len(nodes)-1], opt)
}

// snnModel finishes an SNN's ONNX model whose summed counts are the value
// counts and whose output layer's last potentials are the value potential.
func snnModel(g *graphBuilder, s *spiking.Network, counts, potential string, opt Options) ([]byte, error) {
	cfg := s.Config
	g.node("Identity", "counts", []string{counts}, []string{"output"})
	outShape, err := s.ANN.OutputShape()
	if err != nil {
		return nil, err
	}
	outputs := []*msg{valueInfo("output", outShape)}
	if opt.Potential {
		g.node("Identity", "potentials", []string{potential}, []string{"potential"})
		outputs = append(outputs, valueInfo("potential", outShape))
	}
	meta := map[string]string{"proxykit.network": "snn", "proxykit.timesteps": fmt.Sprint(cfg.Timesteps),
		"proxykit.v_threshold": fmt.Sprint(cfg.Threshold), "proxykit.v_reset": fmt.Sprint(cfg.Reset),
		"proxykit.firing_rule": "v >= v_threshold, hard reset to v_reset, dt = 1",
		"proxykit.output":      "spike counts of the IF layer after the last layer, summed over the time steps"}
	if s.Dropped != "" {
		meta["proxykit.dropped"] = s.Dropped
	}
	if cfg.InitialCharge != 0 { // every IF neuron starts charged (the file of an uncharged SNN is as before)
		meta["proxykit.initial_charge"] = fmt.Sprint(cfg.InitialCharge)
	}
	if twin := clipTwin(s); twin != "" {
		meta["proxykit.clip_twin"] = twin
	}
	if opt.Potential {
		meta["proxykit.potential"] = "the output IF layer's membrane potentials after the last step (after any reset); " +
			"prediction: the most spikes, ties broken by the higher potential, then by the lower index"
	}
	for k, val := range opt.Metadata {
		meta[k] = val
	}
	return g.model("proxykit_snn", opt.Opset, valueInfo("input", s.ANN.InputShape), outputs, meta,
		opt.ProducerVersion), nil
}

// WriteSNN writes the SNN's ONNX model to path atomically.
func WriteSNN(path string, s *spiking.Network, opt Options) error {
	b, err := SNN(s, opt)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, b)
}

// clipTwin describes the IF twin of the SNN's clipped ReLUs
// (docs/design.md §1, "ReLU6") for a file's metadata; "" for a network
// without any.
func clipTwin(s *spiking.Network) string {
	for _, nd := range s.Nodes {
		if _, ok := nd.Layer.(nn.Saturating); ok && nd.IF {
			if s.Config.ClipTwin() == spiking.ClipSaturate {
				return "saturate: a clipped ReLU's IF layer has v_th = v_reset + its ceiling, its own in each IF node"
			}
			return "relu: a clipped ReLU's IF layer has the network's v_th"
		}
	}
	return ""
}
