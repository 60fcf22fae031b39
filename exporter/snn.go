package exporter

import (
	"fmt"

	"github.com/proxykit/proxykit/internal/atomicfile"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// snnLayers is the SNN with its own BatchNorm statistics folded: the static
// input layers and the per-step layers (*spiking.IF marks IF layers).
func snnLayers(s *spiking.Network) (static []nn.Layer, dynamic []any, err error) {
	if static, err = FoldBatchNorm(s.Static); err != nil {
		return nil, nil, err
	}
	var run []nn.Layer
	flush := func() error {
		folded, err := FoldBatchNorm(run)
		if err != nil {
			return err
		}
		for _, l := range folded {
			dynamic = append(dynamic, l)
		}
		run = nil
		return nil
	}
	for _, l := range s.Dynamic {
		switch l := l.(type) {
		case *spiking.IF:
			if err := flush(); err != nil {
				return nil, nil, err
			}
			dynamic = append(dynamic, l)
		case nn.Layer:
			run = append(run, l)
		}
	}
	return static, dynamic, flush()
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
	if opt.Opset == 0 {
		opt.Opset = DefaultOpset
	}
	if opt.Opset < 13 || opt.Opset > 21 {
		return nil, fmt.Errorf("opset %d: proxykit writes opsets 13 to 21", opt.Opset)
	}
	if s.Config.Timesteps > MaxUnrolledSteps {
		return nil, fmt.Errorf("T = %d: an unrolled SNN repeats every layer each step, and at most %d steps are written (NIR export does not unroll: use --nir)", s.Config.Timesteps, MaxUnrolledSteps)
	}
	cfg := s.Config
	g := &graphBuilder{}
	vth := g.Constant("snn.v_threshold", nil, []float32{cfg.Threshold})
	vreset := g.Constant("snn.v_reset", nil, []float32{cfg.Reset})
	// ifNodes emits an IF layer's step: v += I, spike when v >= v_th, reset
	ifNodes := func(base, prev, in string) (v, spikes string) {
		if prev == "" {
			prev = vreset // v starts at v_reset
		}
		g.node("Add", base+"/integrate", []string{prev, in}, []string{base + "_u"})
		g.node("GreaterOrEqual", base+"/fire", []string{base + "_u", vth}, []string{base + "_fired"})
		g.node("Cast", base+"/spikes", []string{base + "_fired"}, []string{base + "_s"}, aInt("to", onnxFloat))
		g.node("Where", base+"/reset", []string{base + "_fired", vreset, base + "_u"}, []string{base + "_v"})
		return base + "_v", base + "_s"
	}
	if s.DynInputs != nil {
		counts, err := snnGraph(g, s, ifNodes)
		if err != nil {
			return nil, err
		}
		return snnModel(g, s, counts, opt)
	}
	static, dynamic, err := snnLayers(s)
	if err != nil {
		return nil, err
	}
	cur := "input"
	for _, l := range static {
		out := l.Name() + "_static"
		if err := g.emit(l, []string{cur}, out, l.Name()+"/static"); err != nil {
			return nil, err
		}
		cur = out
	}
	current := cur
	v := make([]string, len(dynamic))
	counts := ""
	for t := 0; t < cfg.Timesteps; t++ {
		cur = current
		for i, l := range dynamic {
			switch l := l.(type) {
			case *spiking.IF:
				v[i], cur = ifNodes(fmt.Sprintf("if%d_%s_t%d", i, l.LayerName, t), v[i], cur)
			case nn.Layer:
				out := fmt.Sprintf("%s_t%d", l.Name(), t)
				if err := g.emit(l, []string{cur}, out, fmt.Sprintf("%s/t%d", l.Name(), t)); err != nil {
					return nil, err
				}
				cur = out
			}
		}
		if counts == "" {
			counts = cur
		} else {
			next := fmt.Sprintf("counts_t%d", t)
			g.node("Add", next, []string{counts, cur}, []string{next})
			counts = next
		}
	}
	return snnModel(g, s, counts, opt)
}

// snnModel finishes an SNN's ONNX model whose summed counts are the value
// counts.
func snnModel(g *graphBuilder, s *spiking.Network, counts string, opt Options) ([]byte, error) {
	cfg := s.Config
	g.node("Identity", "counts", []string{counts}, []string{"output"})
	outShape, err := s.ANN.OutputShape()
	if err != nil {
		return nil, err
	}
	meta := map[string]string{"proxykit.network": "snn", "proxykit.timesteps": fmt.Sprint(cfg.Timesteps),
		"proxykit.v_threshold": fmt.Sprint(cfg.Threshold), "proxykit.v_reset": fmt.Sprint(cfg.Reset),
		"proxykit.firing_rule": "v >= v_threshold, hard reset to v_reset, dt = 1",
		"proxykit.output":      "spike counts of the IF layer after the last layer, summed over the time steps"}
	if s.Dropped != "" {
		meta["proxykit.dropped"] = s.Dropped
	}
	for k, val := range opt.Metadata {
		meta[k] = val
	}
	return g.model("proxykit_snn", opt.Opset, valueInfo("input", s.ANN.InputShape), valueInfo("output", outShape), meta,
		opt.ProducerVersion), nil
}

// snnGraph emits a branching SNN: the static layers once (BatchNorm kept,
// with the SNN's own statistics), then at each step every dynamic entry on
// its sources, and returns the value holding the summed output counts.
func snnGraph(g *graphBuilder, s *spiking.Network, ifNodes func(base, prev, in string) (string, string)) (string, error) {
	staticName := func(j int) string {
		if j < 0 {
			return "input"
		}
		return fmt.Sprintf("%s_static", s.Static[j].Name())
	}
	for i, l := range s.Static {
		var ins []string
		for _, j := range nn.NodeInputs(s.StaticInputs, i) {
			ins = append(ins, staticName(j))
		}
		if err := g.emit(l, ins, staticName(i), l.Name()+"/static"); err != nil {
			return "", fmt.Errorf("static layer %d: %w", i, err)
		}
	}
	v := make([]string, len(s.Dynamic))
	counts := ""
	for t := 0; t < s.Config.Timesteps; t++ {
		names := make([]string, len(s.Dynamic))
		for i, d := range s.Dynamic {
			var ins []string
			for _, src := range s.DynInputs[i] {
				if src.Static {
					ins = append(ins, staticName(src.Index))
				} else {
					ins = append(ins, names[src.Index])
				}
			}
			switch l := d.(type) {
			case *spiking.IF:
				v[i], names[i] = ifNodes(fmt.Sprintf("if%d_%s_t%d", i, l.LayerName, t), v[i], ins[0])
			case nn.Layer:
				names[i] = fmt.Sprintf("%s_t%d", l.Name(), t)
				if err := g.emit(l, ins, names[i], fmt.Sprintf("%s/t%d", l.Name(), t)); err != nil {
					return "", err
				}
			}
		}
		out := names[len(names)-1]
		if counts == "" {
			counts = out
		} else {
			next := fmt.Sprintf("counts_t%d", t)
			g.node("Add", next, []string{counts, out}, []string{next})
			counts = next
		}
	}
	return counts, nil
}

// WriteSNN writes the SNN's ONNX model to path atomically.
func WriteSNN(path string, s *spiking.Network, opt Options) error {
	b, err := SNN(s, opt)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, b)
}
