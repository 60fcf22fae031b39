package exporter_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// nirFile is a NIR file as scripts/nir_layout.py reads it with h5py.
type nirFile struct {
	Version  string            `json:"version"`
	Type     string            `json:"type"`
	Metadata map[string]string `json:"metadata"`
	Edges    [][2]string       `json:"edges"`
	Nodes    map[string]struct {
		Type     string              `json:"type"`
		Metadata map[string]string   `json:"metadata"`
		Fields   map[string]nirField `json:"fields"`
	} `json:"nodes"`
}

type nirField struct {
	Kind     string    `json:"kind"`
	Dtype    string    `json:"dtype"`
	Shape    []int     `json:"shape"`
	Values   []float64 `json:"values"`
	Distinct int       `json:"distinct"`
}

// readNIRLayout writes s as NIR with o and reads the file back with h5py.
func readNIRLayout(t *testing.T, s *spiking.Network, o exporter.NIROptions) nirFile {
	t.Helper()
	p := filepath.Join(t.TempDir(), "snn.nir")
	if err := exporter.WriteNIR(p, s, o); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(testutil.Dir(), "..", "scripts", "nir_layout.py")
	b, err := exec.Command("/usr/bin/python3", script, p).Output()
	if err != nil {
		t.Fatalf("scripts/nir_layout.py (python3-h5py): %v", err)
	}
	var f nirFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// consumer is what one NIR consumer's loader maps and how, as its source
// reads at the commit named (docs/nir.md): the node types it loads (its
// own mapping, and nirtorch's defaults where it goes through
// nirtorch.nir_to_torch), and whether it can order a graph with joins.
type consumer struct {
	name  string
	types []string
	joins bool
}

var consumers = []consumer{
	// norse/torch/utils/import_nir.py (norse 065a3b4) maps Affine, Conv2d,
	// Flatten, IF, LI, LIF, CubaLIF, SumPool2d, then nirtorch.nir_to_torch
	// (nirtorch 2604ce2, nir_interpreter.py DEFAULT_MAP) adds Input,
	// Output, AvgPool2d, Conv1d, Linear; the interpreter sums a node's edges.
	{"norse", []string{"Input", "Output", "Affine", "Linear", "Conv1d", "Conv2d", "Flatten", "IF", "LI", "LIF", "CubaLIF", "SumPool2d", "AvgPool2d"}, true},
	// snntorch/import_nir.py (snnTorch 634fc22) maps Affine, Linear,
	// Conv2d, Flatten, AvgPool2d, IF, LIF, CubaLIF; nirtorch's defaults add
	// Input, Output, SumPool2d, Conv1d.
	{"snnTorch", []string{"Input", "Output", "Affine", "Linear", "Conv1d", "Conv2d", "Flatten", "AvgPool2d", "SumPool2d", "IF", "LIF", "CubaLIF"}, true},
	// sinabs/nir.py (sinabs 904eb89) _import_sinabs_module maps Affine,
	// Conv1d, Conv2d, LI, IF, LIF, SumPool2d, Flatten, Input, Output and
	// returns None for anything else (no Linear, no AvgPool2d); from_nir
	// goes through nirtorch.load, which orders nodes depth-first and
	// cannot run a graph with joins.
	{"sinabs.from_nir", []string{"Input", "Output", "Affine", "Conv1d", "Conv2d", "LI", "IF", "LIF", "SumPool2d", "Flatten"}, false},
}

// checkConsumers holds a file's layout to what each consumer's loader
// needs to load it and run it batched, and returns the consumers that can
// (sinabs.from_nir cannot take AvgPool2d or joins).
func checkConsumers(t *testing.T, name string, f nirFile) (loads []string) {
	t.Helper()
	if f.Type != "NIRGraph" {
		t.Fatalf("%s: graph type %q", name, f.Type)
	}
	in := map[string]int{}
	for _, e := range f.Edges {
		in[e[1]]++
	}
	joins := false
	for _, k := range in {
		joins = joins || k > 1
	}
	for _, c := range consumers {
		ok := c.joins || !joins
		for n, nd := range f.Nodes {
			if !slices.Contains(c.types, nd.Type) {
				ok = false
				if c.name != "sinabs.from_nir" || nd.Type != "AvgPool2d" {
					t.Errorf("%s: node %s is %s, which %s does not map", name, n, nd.Type, c.name)
				}
			}
		}
		if ok {
			loads = append(loads, c.name)
		}
	}
	for n, nd := range f.Nodes {
		fl := nd.Fields
		switch nd.Type {
		case "Flatten":
			// norse (import_nir.py:93-94), snnTorch (import_nir.py:216) and
			// nirtorch (nir_interpreter.py:57-58) build torch.nn.Flatten(start_dim,
			// end_dim) and run it on [batch, ...]: only negative dims keep the
			// batch; sinabs (nir.py:113-116) adds 1 to non-negative ones and keeps negative ones.
			sd, ed := fl["start_dim"], fl["end_dim"]
			if len(sd.Values) != 1 || sd.Values[0] >= 0 || len(ed.Values) != 1 || ed.Values[0] >= 0 {
				t.Errorf("%s: Flatten %s: start_dim %v, end_dim %v; batched consumers need negative dims", name, n, sd.Values, ed.Values)
			}
			if it := fl["input_type"]; it.Kind != "int" || len(it.Shape) != 1 || int(-sd.Values[0]) != len(it.Values) {
				t.Errorf("%s: Flatten %s: start_dim %v does not count back over the per-sample shape %v", name, n, sd.Values, it.Values)
			}
		case "Affine":
			// sinabs (nir.py:28-35) and snnTorch (import_nir.py:185) need a bias
			w, b := fl["weight"], fl["bias"]
			if len(w.Shape) != 2 || b.Kind != "float" || !slices.Equal(b.Shape, w.Shape[:1]) {
				t.Errorf("%s: Affine %s: weight %v, bias %v", name, n, w.Shape, b.Shape)
			}
		case "Linear":
			t.Errorf("%s: node %s is Linear, which sinabs does not map: write Affine with a zero bias", name, n)
		case "IF":
			// snnTorch (import_nir.py:226-233) asserts one threshold and r = 1
			// per node; norse (import_nir.py:98-101) warns unless r = 1;
			// none of the three reads v_reset (they reset to 0)
			r, th, vr := fl["r"], fl["v_threshold"], fl["v_reset"]
			if r.Distinct != 1 || r.Values[0] != 1 {
				t.Errorf("%s: IF %s: r takes values %v, want 1 everywhere", name, n, r.Values)
			}
			if th.Distinct != 1 {
				t.Errorf("%s: IF %s: %d distinct thresholds; snnTorch needs one per node", name, n, th.Distinct)
			}
			if !slices.Equal(r.Shape, th.Shape) || !slices.Equal(r.Shape, vr.Shape) {
				t.Errorf("%s: IF %s: r %v, v_threshold %v, v_reset %v differ in shape", name, n, r.Shape, th.Shape, vr.Shape)
			}
			if vr.Distinct != 1 || vr.Values[0] != 0 {
				if !strings.Contains(f.Metadata["warnings"], "v_reset") {
					t.Errorf("%s: IF %s: v_reset %v without a warning in the metadata", name, n, vr.Values)
				}
			}
		case "SumPool2d":
			// norse, nirtorch (LPPool2d) and sinabs (sl.SumPool2d) pool without padding
			if p := fl["padding"]; slices.ContainsFunc(p.Values, func(v float64) bool { return v != 0 }) {
				t.Errorf("%s: SumPool2d %s pads %v", name, n, p.Values)
			}
		case "Conv2d":
			if g := fl["groups"]; len(g.Values) != 1 || g.Values[0] != 1 {
				t.Errorf("%s: Conv2d %s: groups %v; NIR's reader takes only 1", name, n, g.Values)
			}
		}
	}
	return loads
}

// nirCase is one of the files docs/nir.md reports per consumer.
type nirCase struct {
	name  string
	snn   func(t *testing.T, cfg spiking.Config) *spiking.Network
	loads []string // the consumers that load it without a hand edit
}

func nirCases() []nirCase {
	all := []string{"norse", "snnTorch", "sinabs.from_nir"}
	return []nirCase{
		{"the paper's network at width 8 (testdata/fmnist_w8_bn.onnx)", func(t *testing.T, cfg spiking.Config) *spiking.Network {
			m, err := model.Load(testutil.Path("fmnist_w8_bn.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := m.SNN(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, all},
		{"ResNet-8 (init --arch resnet --input 1x28x28 --width 8)", func(t *testing.T, cfg spiking.Config) *spiking.Network {
			net, err := nn.ResNet([]int{1, 28, 28}, 8, 1, 10, 7)
			if err != nil {
				t.Fatal(err)
			}
			s, err := spiking.New(net, cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, all[:2]},
		{"converted ResNet (testdata/convert/resnet/ann.onnx, convert-snn)", func(t *testing.T, cfg spiking.Config) *spiking.Network {
			m, err := model.Load(testutil.Path("convert/resnet/ann.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			d, err := data.Load(testutil.Path("proxy"), data.MNIST, true)
			if err != nil {
				t.Fatal(err)
			}
			scales, err := convert.Calibrate(context.Background(), compute.NewCPU(), m.ANN, d, 64, 32, convert.DefaultPercentile)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.ANN.Release(); err != nil {
				t.Fatal(err)
			}
			if _, err := convert.Normalize(m.ANN, scales, spiking.Config{Threshold: 1}); err != nil {
				t.Fatal(err)
			}
			s, err := m.SNN(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, all[:2]},
	}
}

// TestNIRLayoutForConsumers pins, field by field, what norse, sinabs and
// snnTorch need to load proxykit's NIR files and run them on a batch
// (none of them can be installed where CI runs; docs/nir.md has the runs
// by hand): negative Flatten dims, Affine (never Linear), one threshold
// and r = 1 per IF node, unpadded SumPool2d, ungrouped Conv2d, and node
// types each maps. sinabs's own loader takes only chains without
// AvgPool2d: the ResNets load there once average pooling is written as a
// convolution, and still not in sinabs.from_nir, which cannot order joins.
func TestNIRLayoutForConsumers(t *testing.T) {
	for _, c := range nirCases() {
		s := c.snn(t, spiking.DefaultConfig())
		f := readNIRLayout(t, s, exporter.NIROptions{})
		if got := checkConsumers(t, c.name, f); !slices.Equal(got, c.loads) {
			t.Errorf("%s: loads in %v, want %v", c.name, got, c.loads)
		}
		warnings, err := exporter.NIRWarnings(s, exporter.NIROptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := !slices.Contains(c.loads, "sinabs.from_nir"); want != (len(warnings) > 0) {
			t.Errorf("%s: warnings %q", c.name, warnings)
		}
		if got := f.Metadata["warnings"]; got != strings.Join(warnings, "\n") {
			t.Errorf("%s: the metadata's warnings %q, NIRWarnings %q", c.name, got, warnings)
		}
		for _, k := range []string{"timesteps", "v_threshold", "v_reset", "initial_potential"} {
			if f.Metadata[k] == "" {
				t.Errorf("%s: graph metadata lacks %q", c.name, k)
			}
		}
		t.Logf("%s: %d nodes, %d edges; the layout loads in %v; warnings %q", c.name, len(f.Nodes), len(f.Edges), c.loads, warnings)

		// average pooling as a convolution: every node type is sinabs's
		f = readNIRLayout(t, s, exporter.NIROptions{AvgPoolAsConv: true})
		for n, nd := range f.Nodes {
			if nd.Type == "AvgPool2d" {
				t.Errorf("%s: AvgPoolAsConv still writes AvgPool2d %s", c.name, n)
			}
		}
		checkConsumers(t, c.name+" (AvgPoolAsConv)", f)
	}
}

// TestNIRWarnsOfVReset: a non-zero v_reset (also the initial potential) is
// read by none of the consumers; export says so and the file records it.
func TestNIRWarnsOfVReset(t *testing.T) {
	c := nirCases()[0]
	s := c.snn(t, spiking.Config{Timesteps: 15, Threshold: 2, Reset: 0.05})
	warnings, err := exporter.NIRWarnings(s, exporter.NIROptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "v_reset = 0.05") {
		t.Fatalf("warnings %q, want one on v_reset", warnings)
	}
	f := readNIRLayout(t, s, exporter.NIROptions{})
	if f.Metadata["warnings"] != warnings[0] || f.Metadata["v_reset"] != "0.05" || !strings.HasPrefix(f.Metadata["initial_potential"], "0.05") {
		t.Errorf("metadata %v", f.Metadata)
	}
	checkConsumers(t, c.name+" (v_reset 0.05)", f)
	// and the file still simulates to proxykit's counts by NIR's rules,
	// which do read v_reset (TestNIRSimulatesToProxykitsCounts runs v_reset 0.5)
}
