package behaviour

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/internal/testutil"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/spiking"
	"github.com/proxykit/proxykit/train"
)

var update = flag.Bool("update", false, "rewrite testdata/behaviour/golden.json from this build's results")

// golden is the committed file: case → result → hash.
func goldenPath() string { return testutil.Path("behaviour/golden.json") }

// A network under test: how to make it (fresh each time: training changes
// it), its inputs and its SNN setting.
type netCase struct {
	name string
	make func(t *testing.T) *model.Model
	x    *nn.Tensor
	cfg  spiking.Config
}

// hashFloats is a short SHA-256 of float32 values' bits.
func hashFloats(v []float32) string {
	h := sha256.New()
	var b [4]byte
	for _, x := range v {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func hashFloat64s(v []float64) string {
	h := sha256.New()
	var b [8]byte
	for _, x := range v {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(x))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func hashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])[:16]
}

// seeded is a batch of n inputs of shape in, uniform in [0, 1) on a 2^-8
// grid (pixels), from seed.
func seeded(n int, in []int, seed uint64) *nn.Tensor {
	x, err := nn.NewTensor(append([]int{n}, in...)...)
	if err != nil {
		panic(err) // a test network's input shape
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range x.Data {
		x.Data[i] = float32(rng.IntN(256)) / 256
	}
	return x
}

// images takes the first n images of a data set's split as a batch.
func images(t *testing.T, dir, name string, n int) *nn.Tensor {
	d, err := data.Load(dir, name, false)
	if err != nil {
		t.Fatal(err)
	}
	sz := d.C * d.H * d.W
	return &nn.Tensor{Shape: []int{n, d.C, d.H, d.W}, Data: slices.Clone(d.Images[:n*sz])}
}

func fromFile(path string) func(t *testing.T) *model.Model {
	return func(t *testing.T) *model.Model {
		m, err := model.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func fromNet(mk func() (*nn.Network, error)) func(t *testing.T) *model.Model {
	return func(t *testing.T) *model.Model {
		net, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		return &model.Model{ANN: net}
	}
}

// converted is a model file normalised by robust conversion, calibrated on
// the first 64 images of the small MNIST set in testdata/proxy.
func converted(path string) func(t *testing.T) *model.Model {
	return func(t *testing.T) *model.Model {
		m := fromFile(path)(t)
		d, err := data.Load(testutil.Path("proxy"), data.MNIST, true)
		if err != nil {
			t.Fatal(err)
		}
		be := compute.NewCPU()
		scales, err := convert.Calibrate(context.Background(), be, m.ANN, d, 64, 32, 99.9)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.ANN.Release(); err != nil {
			t.Fatal(err)
		}
		if _, err := convert.Normalize(m.ANN, scales, spiking.Config{Threshold: 1}); err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func cases(t *testing.T) []netCase {
	def := spiking.DefaultConfig()
	low := spiking.Config{Timesteps: 8, Threshold: 1, Reset: 0}
	var cs []netCase
	for _, name := range append(slices.Clone(testutil.Models), testutil.Graphs...) {
		cs = append(cs, netCase{name: name, make: fromFile(testutil.Path(name + ".onnx")), x: testutil.Array(t, name+".x.npy"), cfg: def})
	}
	for _, name := range []string{"kinds", "kinds_softmax"} {
		x := testutil.Array(t, "kinds/"+name+".x.npy")
		cs = append(cs,
			netCase{name: "kinds/" + name + ".onnx", make: fromFile(testutil.Path("kinds/" + name + ".onnx")), x: x, cfg: low},
			netCase{name: "kinds/" + name + ".pt", make: fromFile(testutil.Path("kinds/" + name + ".pt")), x: x, cfg: low})
	}
	fmnist := images(t, data.FashionMNISTDir, data.FashionMNIST, 4)
	mnist := images(t, testutil.Path("proxy"), data.MNIST, 8)
	cs = append(cs,
		netCase{name: "tiny", make: fromNet(func() (*nn.Network, error) { return nn.Tiny(2020) }), x: fmnist, cfg: def},
		netCase{name: "reference-w128", make: fromNet(func() (*nn.Network, error) { return nn.Reference(128, 2020) }), x: fmnist, cfg: def},
		netCase{name: "resnet8-w8", make: fromNet(func() (*nn.Network, error) { return nn.ResNet([]int{1, 28, 28}, 8, 1, 10, 2020) }), x: fmnist, cfg: low},
		netCase{name: "resnet20-w4", make: fromNet(func() (*nn.Network, error) { return nn.ResNet([]int{1, 28, 28}, 4, 3, 10, 7) }), x: mnist, cfg: low},
		netCase{name: "convert/ann.onnx converted", make: converted(testutil.Path("convert/ann.onnx")), x: mnist, cfg: spiking.Config{Timesteps: 32, Threshold: 1}},
		netCase{name: "convert/resnet/ann.onnx converted", make: converted(testutil.Path("convert/resnet/ann.onnx")), x: mnist, cfg: spiking.Config{Timesteps: 32, Threshold: 1}},
	)
	tv := os.Getenv("PROXYKIT_TORCHVISION")
	switch {
	case tv != "":
		for _, name := range []string{"resnet18", "squeezenet1_1"} {
			path := filepath.Join(tv, name+".onnx")
			x, err := readNPY(filepath.Join(tv, name+".x.npy"))
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, netCase{name: "torchvision/" + name, make: fromFile(path), x: x, cfg: spiking.Config{Timesteps: 4, Threshold: 1}})
		}
	case os.Getenv("CI") == "true":
		t.Fatal("PROXYKIT_TORCHVISION is not set: scripts/test.sh generates torchvision's ResNet-18 and SqueezeNet and sets it")
	default:
		t.Log("PROXYKIT_TORCHVISION not set: torchvision's ResNet-18 and SqueezeNet are not checked (scripts/test.sh sets it)")
	}
	return cs
}

// results computes every pinned result of one network on one backend.
func results(t *testing.T, c netCase, devName string) map[string]string {
	out := map[string]string{}
	put := func(key, val string) { out[key] = val }
	be, err := device.Open(devName, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	m := c.make(t)
	n := c.x.Shape[0]

	// the ANN, eval mode
	y, err := lower.Forward(be, m.ANN, c.x, 0)
	if err != nil {
		t.Fatal(err)
	}
	put("ann", hashFloats(y.Data))

	// the SNN: counts and rates in both BatchNorm modes, a second setting
	// with a non-zero reset, a sweep with synaptic operations
	snn, err := m.SNN(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, batchStats := range []bool{false, true} {
		if batchStats {
			snn, err = m.SNN(c.cfg) // fresh statistics
			if err != nil {
				t.Fatal(err)
			}
		}
		r, err := snn.RunOn(context.Background(), be, c.x, batchStats, 0)
		if err != nil {
			t.Fatal(err)
		}
		put(fmt.Sprintf("snn counts batchStats=%v", batchStats), hashFloats(r.Counts.Data))
		put(fmt.Sprintf("snn rates batchStats=%v", batchStats), hashFloat64s(r.Rates))
	}
	other := spiking.Config{Timesteps: 5, Threshold: 1.5, Reset: 0.25}
	if snn, err = m.SNN(other); err != nil {
		t.Fatal(err)
	}
	r, err := snn.RunOn(context.Background(), be, c.x, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	put("snn counts T=5 v_th=1.5 v_reset=0.25", hashFloats(r.Counts.Data))
	if snn, err = m.SNN(c.cfg); err != nil {
		t.Fatal(err)
	}
	put("sweep", sweep(t, be, snn, c.x))

	// two proxy steps (BatchNorm in training, then in eval mode), each
	// followed by Adam; then every parameter and both networks' statistics
	m = c.make(t)
	if snn, err = m.SNN(c.cfg); err != nil {
		t.Fatal(err)
	}
	eng, err := train.NewEngine(be, m.ANN, snn, n)
	if err != nil {
		t.Fatal(err)
	}
	k := nn.Numel(mustOut(t, m.ANN))
	labels := make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(i % k)
	}
	opt := train.NewAdam(1e-3, 0.8, 0.99, 1e-8, 1e-6)
	var steps []float64
	for _, batchStats := range []bool{true, false} {
		r, err := eng.Step(c.x, labels, batchStats)
		if err != nil {
			t.Fatal(err)
		}
		if err := opt.Update(be, m.ANN.Params()); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, r.Loss, float64(r.ANNCorrect), float64(r.SNNCorrect))
	}
	if err := eng.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := opt.Sync(); err != nil {
		t.Fatal(err)
	}
	eng.Free()
	put("steps loss and correct", hashFloat64s(steps))
	var params []float32
	for _, p := range m.ANN.Params() {
		params = append(params, p.Data...)
	}
	put("steps params", hashFloats(params))
	var moments []float32
	for _, p := range m.ANN.Params() {
		moments = append(moments, opt.M[p.Name]...)
		moments = append(moments, opt.V[p.Name]...)
	}
	put("steps adam moments", hashFloats(moments))
	var stats []float32
	for _, st := range append(nn.StatefulLayers(m.ANN.Layers), snn.Stateful()...) {
		for _, a := range st.State() {
			stats = append(stats, a.Data...)
		}
	}
	put("steps batchnorm statistics", hashFloats(stats))
	if err := snn.Release(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sweep reads the counts, rates and synaptic operations at T = 1, 2 and
// the setting's T in one simulation.
func sweep(t *testing.T, be compute.Backend, snn *spiking.Network, x *nn.Tensor) string {
	if err := snn.Bind(be); err != nil {
		t.Fatal(err)
	}
	snn.ANN.Upload()
	snn.Upload()
	n := x.Shape[0]
	sim, err := spiking.NewSimulator(be, snn, n)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Free()
	if err := sim.CountSynOps(); err != nil {
		t.Fatal(err)
	}
	in, err := be.Alloc(len(x.Data))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(in)
	be.Upload(in, x.Data)
	var vals []float64
	ts := []int{1, 2, snn.Config.Timesteps}
	if ts[2] <= 2 {
		ts = ts[:ts[2]]
	}
	err = sim.RunAt(context.Background(), nn.Value{Shape: x.Shape, Buf: in}, false, true, ts, func(step int, counts nn.Value) error {
		c := make([]float32, counts.Buf.Len())
		if err := be.Download(c, counts.Buf); err != nil {
			return err
		}
		for _, v := range c {
			vals = append(vals, float64(v))
		}
		rates, err := sim.RatesAt(n, step)
		if err != nil {
			return err
		}
		_, ops := sim.SynOps()
		vals = append(append(vals, rates...), ops...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hashFloat64s(vals)
}

// exports hashes the three export formats of a network (or the error that
// refuses one), which do not depend on the backend.
func exports(t *testing.T, c netCase) map[string]string {
	out := map[string]string{}
	m := c.make(t)
	for _, fold := range []bool{false, true} {
		b, err := exporter.ANN(m.ANN, exporter.Options{FoldBN: fold})
		out[fmt.Sprintf("onnx ann fold=%v", fold)] = hashOrErr(b, err)
	}
	cfg := c.cfg
	cfg.Timesteps = 3
	snn, err := m.SNN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := exporter.SNN(snn, exporter.Options{})
	out["onnx snn T=3"] = hashOrErr(b, err)
	path := filepath.Join(t.TempDir(), "snn.nir")
	if err := exporter.WriteNIR(path, snn, exporter.NIROptions{}); err != nil {
		out["nir"] = "error: " + strings.ReplaceAll(err.Error(), path, "snn.nir")
	} else {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out["nir"] = hashBytes(b)
	}
	return out
}

func hashOrErr(b []byte, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return hashBytes(b)
}

func mustOut(t *testing.T, net *nn.Network) []int {
	s, err := net.OutputShape()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readNPY(path string) (*nn.Tensor, error) {
	a, err := npy.ReadFile(path, false)
	if err != nil {
		return nil, err
	}
	return &nn.Tensor{Shape: a.Shape, Data: a.Data}, nil
}

// TestBehaviour compares every result with the committed hashes (or, with
// -update, writes them).
func TestBehaviour(t *testing.T) {
	got := map[string]map[string]string{}
	for _, c := range cases(t) {
		for _, dev := range []string{"cpu", "cuda-emu"} {
			start := time.Now()
			key := c.name + " @" + dev
			got[key] = results(t, c, dev)
			t.Logf("%s: %.1f s", key, time.Since(start).Seconds())
		}
		got[c.name+" exports"] = exports(t, c)
	}
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(goldenPath()), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath(), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(goldenPath())
	if err != nil {
		t.Fatalf("%v (make it with -update on a build whose results are right)", err)
	}
	var want map[string]map[string]string
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, ok := got[k]
		if !ok {
			if strings.HasPrefix(k, "torchvision/") && os.Getenv("PROXYKIT_TORCHVISION") == "" {
				continue
			}
			t.Errorf("%s: not computed", k)
			continue
		}
		for item, w := range want[k] {
			if g[item] != w {
				t.Errorf("%s: %s is %s, was %s", k, item, g[item], w)
			}
		}
	}
}
