package importer

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/nn"
)

// kindFixtures are the ONNX files exported by PyTorch (scripts/
// make_fixtures.py, make_opset_fixtures.py, make_graph_fixtures.py,
// make_zoo_fixtures.py) with torch's outputs beside them.
func kindFixtures() []string {
	return append(append([]string{"fmnist_w8_raw", "proxy/net", "kinds/kinds", "kinds/kinds_softmax", "zoo/relu6net", "zoo/splitnet", "zoo/normnet"},
		testutil.Models...), testutil.Graphs...)
}

// torchKindFixtures are whole pickled modules saved by torch
// (scripts/make_kind_fixtures.py, make_zoo_fixtures.py), with the torch.nn
// class of each module.
var torchKindFixtures = []string{"kinds/kinds", "kinds/kinds_softmax", "zoo/kinds_zoo", "zoo/mlp_bn1d"}

const ptSuffix = ".pt" // marks a pickled fixture in a list of names

// TestEveryKindFromPyTorch holds the layer-kind registry to PyTorch: every
// kind, every ONNX operator a kind reads and every torch.nn class it reads
// occurs in a fixture PyTorch wrote, and each such fixture imports and
// gives torch's outputs (relative error ≤ 1e-4). A kind added without a
// PyTorch fixture fails here.
func TestEveryKindFromPyTorch(t *testing.T) {
	seenKind, seenOp, seenClass := map[string]bool{}, map[string]bool{}, map[string]bool{}
	check := func(name string, net *nn.Network, x, want string) {
		t.Helper()
		y, err := lower.Forward(compute.NewCPU(), net, testutil.Array(t, x), 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rel := testutil.RelErr(y.Data, testutil.Array(t, want).Data); rel > 1e-4 {
			t.Errorf("%s: relative error %.3g against torch", name, rel)
		}
		for _, l := range net.Layers {
			seenKind[nn.KindOf(l)] = true
		}
	}
	for _, name := range kindFixtures() {
		path := testutil.Path(name + ".onnx")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		outline, err := scanONNX(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range outline.Nodes {
			seenOp[n.OpType] = true
		}
		net, _, err := LoadONNX(path, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		x, want := name+".x.npy", name+".ann.npy"
		if name == "proxy/net" {
			x, want = "proxy/x.npy", "proxy/before.npy"
		}
		check(name, net, x, want)
	}
	for _, name := range torchKindFixtures {
		net, _, err := LoadPT(testutil.Path(name+".pt"), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		check(name, net, name+".x.npy", name+".ann.npy")
		var classes map[string]string
		if err := json.Unmarshal(testutil.ReadFile(t, name+".classes.json"), &classes); err != nil {
			t.Fatal(err)
		}
		for _, cls := range classes {
			seenClass[cls] = true
		}
		for _, l := range net.Layers {
			k, ok := nn.KindForTorch(classes[nn.NameOf(l)])
			if !ok || !slices.Contains(k.Names, nn.KindOf(l)) {
				t.Errorf("%s: module %s (%s) became a %s", name, nn.NameOf(l), classes[nn.NameOf(l)], nn.KindOf(l))
			}
		}
	}
	for _, k := range nn.Kinds() {
		for _, n := range k.Names {
			if !seenKind[n] {
				t.Errorf("kind %s occurs in no PyTorch fixture", n)
			}
		}
		for _, op := range k.ONNXOps {
			if !seenOp[op] {
				t.Errorf("ONNX operator %s (kind %s) occurs in no PyTorch export among the fixtures", op, k.Names[0])
			}
		}
		for _, cls := range k.TorchModules {
			if !seenClass[cls] {
				t.Errorf("torch.nn.%s (kind %s) occurs in no pickled module among the fixtures", cls, k.Names[0])
			}
		}
	}
}

// TestKindRegistry checks the registry's entries: names, operators and
// classes each belong to one kind, and every layer of the fixtures comes
// back from its checkpoint description (Attrs, FromArch) as the same layer,
// with the same outputs.
func TestKindRegistry(t *testing.T) {
	owners := []map[string]string{{}, {}, {}} // names, operators, classes
	for _, k := range nn.Kinds() {
		if len(k.Names) == 0 || k.FromArch == nil || (len(k.ONNXOps) > 0) != (k.FromONNX != nil) ||
			(len(k.TorchModules) > 0) != (k.FromTorch != nil) {
			t.Errorf("kind %v: incomplete entry", k.Names)
		}
		for i, list := range [][]string{k.Names, k.ONNXOps, k.TorchModules} {
			for _, n := range list {
				if o, dup := owners[i][n]; dup {
					t.Errorf("%s belongs to kinds %s and %s", n, o, k.Names[0])
				}
				owners[i][n] = k.Names[0]
			}
		}
	}
	var names []string
	for _, name := range torchKindFixtures {
		names = append(names, name+ptSuffix)
	}
	for _, name := range append(kindFixtures(), names...) {
		var net *nn.Network
		var err error
		if base, ok := strings.CutSuffix(name, ptSuffix); ok {
			name = base
			net, _, err = LoadPT(testutil.Path(name+ptSuffix), nil)
		} else {
			net, _, err = LoadONNX(testutil.Path(name+".onnx"), testutil.ReadFile(t, name+".onnx"))
		}
		if err != nil {
			t.Fatal(err)
		}
		arch := nn.ArchOf(net)
		b, err := json.Marshal(arch) // as checkpoints store it
		if err != nil {
			t.Fatal(err)
		}
		var stored nn.Arch
		if err := json.Unmarshal(b, &stored); err != nil {
			t.Fatal(err)
		}
		params := map[string]*nn.Param{}
		for _, p := range net.Params() {
			params[p.Name] = p
		}
		back, err := stored.Build(filepath.Base(name), params)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		from := nn.StatefulLayers(net.Layers)
		for k, st := range nn.StatefulLayers(back.Layers) {
			for j, a := range st.State() {
				copy(a.Data, from[k].State()[j].Data)
			}
		}
		for i, l := range back.Layers {
			if nn.KindOf(l) != nn.KindOf(net.Layers[i]) || l.Info().Summary != net.Layers[i].Info().Summary {
				t.Errorf("%s layer %d: %s %q after the round trip, %s %q before", name, i, nn.KindOf(l), l.Info().Summary,
					nn.KindOf(net.Layers[i]), net.Layers[i].Info().Summary)
			}
		}
		x := name + ".x.npy"
		if name == "proxy/net" {
			x = "proxy/x.npy"
		}
		y0, err := lower.Forward(compute.NewCPU(), net, testutil.Array(t, x), 0)
		if err != nil {
			t.Fatal(err)
		}
		y1, err := lower.Forward(compute.NewCPU(), back, testutil.Array(t, x), 0)
		if err != nil {
			t.Fatal(err)
		}
		if d := testutil.Differing(y0.Data, y1.Data); d != 0 {
			t.Errorf("%s: %d outputs differ after the checkpoint round trip", name, d)
		}
	}
}

// TestPickledForwardsRefused: a pickle records a module's children, not
// its forward. torchvision's modules (here a BasicBlock, which adds a
// shortcut) are refused with the way out, and a custom module whose
// children in order do not fit (its forward concatenates them) says that
// this guess is the likelier culprit. (scripts/make_kind_fixtures.py.)
func TestPickledForwardsRefused(t *testing.T) {
	for name, want := range map[string]string{
		"kinds/torchvision_block.pt": "module 1 is torchvision.models.resnet.BasicBlock, whose forward is not its children in order",
		"kinds/custom_concat.pt":     "proxykit applied the children of custom modules in registration order",
	} {
		_, _, err := LoadPT(testutil.Path(name), nil)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "torch.onnx.export") {
			t.Errorf("%s: error %v, want one saying %q and how to export", name, err, want)
		}
	}
}

var updateKinds = flag.Bool("update-kinds", false, "rewrite docs/guide.md's table of layer kinds from the registry")

const (
	kindsBegin = "<!-- layer kinds: generated from nn.Kinds by go test ./importer -run TestGuideListsEveryKind -update-kinds -->"
	kindsEnd   = "<!-- end of layer kinds -->"
)

// kindsTable is the registry as a table: each kind, the ONNX operators and
// the torch.nn classes read as it.
func kindsTable() string {
	var b strings.Builder
	b.WriteString("| layer kind | ONNX operators | torch.nn classes |\n| --- | --- | --- |\n")
	quote := func(names []string) string {
		var q []string
		for _, n := range names {
			q = append(q, "`"+n+"`")
		}
		return strings.Join(q, ", ")
	}
	for _, k := range nn.Kinds() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", strings.Join(k.Names, ", "), quote(k.ONNXOps), quote(k.TorchModules))
	}
	return b.String()
}

// TestGuideListsEveryKind: docs/guide.md's table of layer kinds is the
// registry's, so that the guide cannot fall behind it.
func TestGuideListsEveryKind(t *testing.T) {
	path := testutil.Path("../docs/guide.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, kindsBegin), strings.Index(doc, kindsEnd)
	if i < 0 || j < i {
		t.Fatalf("docs/guide.md lacks the markers of its layer-kind table (%q … %q)", kindsBegin, kindsEnd)
	}
	want := kindsBegin + "\n" + kindsTable() + kindsEnd
	if *updateKinds {
		if err := os.WriteFile(path, []byte(doc[:i]+want+doc[j+len(kindsEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := doc[i : j+len(kindsEnd)]; got != want {
		t.Errorf("docs/guide.md's layer-kind table is not the registry's; regenerate it (go test ./importer -run TestGuideListsEveryKind -update-kinds):\n%s", want)
	}
}
