package contract_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/device"
	"github.com/proxykit/proxykit/convert"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/npy"
	"github.com/proxykit/proxykit/plots"
	"github.com/proxykit/proxykit/recipe"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
)

// Entries of npy, results, recipe, data, checkpoint, plots, convert and
// compute/device.

func init() {
	// npy
	entries["npy.Encode"] = func(c *C) {
		c.Err("shape [2 3], 5 values", func() error { _, err := npy.Encode([]int{2, 3}, make([]float32, 5)); return err })
		c.Err("shape [-1 -1], 1 value", func() error { _, err := npy.Encode([]int{-1, -1}, make([]float32, 1)); return err })
		c.Err("shape [2^62 4], nil", func() error { _, err := npy.Encode([]int{huge, 4}, nil); return err })
		c.Err("65 dimensions", func() error { _, err := npy.Encode(make([]int, 65), nil); return err })
		c.Ok("shape [0], nil", func() error { _, err := npy.Encode([]int{0}, nil); return err })
	}
	entries["npy.WriteFile"] = func(c *C) {
		dir := c.t.TempDir()
		c.Err("a shape that is not the data", func() error { return npy.WriteFile(filepath.Join(dir, "a.npy"), []int{3}, nil) })
		c.Err(`"", shape [0]`, func() error { return npy.WriteFile("", []int{0}, nil) })
	}
	entries["npy.Read"] = func(c *C) {
		c.Err("nil", func() error { _, err := npy.Read(nil, false); return err })
		c.Err("no bytes", func() error { _, err := npy.Read(bytes.NewReader(nil), true); return err })
		big := []byte("\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n")
		c.Err("a header of 2^62×4 values", func() error { _, err := npy.Read(bytes.NewReader(big), false); return err })
	}
	entries["npy.ReadFile"] = func(c *C) {
		c.Err(`""`, func() error { _, err := npy.ReadFile("", false); return err })
		c.Err("a folder", func() error { _, err := npy.ReadFile(c.t.TempDir(), false); return err })
	}

	// results
	entries["results.FirstMax"] = func(c *C) {
		c.NoPanic("nil", func() { c.Check(results.FirstMax(nil) == -1, "FirstMax(nil) is not -1") })
		c.NoPanic("NaN", func() { results.FirstMax([]float32{float32(math.NaN()), 1}) })
	}
	entries["results.MembraneMax"] = func(c *C) {
		c.NoPanic("nil, nil", func() { c.Check(results.MembraneMax(nil, nil) == -1, "MembraneMax(nil, nil) is not -1") })
		c.NoPanic("3 counts, 1 potential", func() {
			c.Check(results.MembraneMax([]float32{1, 1, 1}, []float32{0}) == -1, "a short potentials slice is read")
		})
	}
	entries["results.Read"] = func(c *C) {
		c.NoPanic("nil, nil, -1", func() {
			r := results.Read(nil, nil, -1)
			c.Check(r.Strict == -1 && r.Membrane == -1 && !r.TiesCorrect, "Read(nil) is %+v", r)
		})
		c.NoPanic("2 counts, 1 potential, label 9", func() {
			r := results.Read([]float32{1, 1}, []float32{3}, 9)
			c.Check(r.Membrane == -1 && !r.TiesCorrect, "Read with a short potentials slice is %+v", r)
		})
		c.NoPanic("label 1<<62", func() { results.Read([]float32{1}, nil, huge) })
	}
	entries["results.ComparePaper"] = func(c *C) {
		c.NoPanic(`"", zero`, func() { results.ComparePaper("", results.Accuracy{}) })
		c.NoPanic("fashion-mnist, NaN", func() { results.ComparePaper("fashion-mnist", results.Accuracy{SNNTies: math.NaN()}) })
	}
	entries["results.Sweep.Reach"] = func(c *C) {
		c.NoPanic("zero sweep, NaN", func() { results.Sweep{}.Reach(math.NaN()) })
		c.NoPanic("zero sweep, -1", func() { results.Sweep{Points: []results.SweepPoint{{}}}.Reach(-1) })
	}
	entries["results.Sweep.ReachMembrane"] = func(c *C) {
		c.NoPanic("zero sweep, +Inf", func() { results.Sweep{}.ReachMembrane(math.Inf(1)) })
	}
	entries["results.Tally.Add"] = func(c *C) {
		c.NoPanic("zero tally, a Reading of -1s, label -1", func() {
			var t results.Tally
			t.Add(results.Reading{Strict: -1, Membrane: -1}, -1)
		})
	}
	entries["results.Tally.Shares"] = func(c *C) {
		c.NoPanic("zero tally, 0 and -1", func() {
			var t results.Tally
			t.Shares(0)
			t.Shares(-1)
		})
	}

	// recipe
	entries["recipe.Default"] = func(c *C) {
		c.Ok("", func() error { return recipe.Default().Validate() })
	}
	entries["recipe.Settings.Validate"] = func(c *C) {
		c.Err("zero settings", func() error { return recipe.Settings{}.Validate() })
		s := recipe.Default()
		s.BatchSize, s.LR = -1, math.NaN()
		c.Err("batch -1, lr NaN", func() error { return s.Validate() })
		s = recipe.Default()
		s.BNStats = "both"
		c.Err(`BatchNorm statistics "both"`, func() error { return s.Validate() })
		s = recipe.Default()
		s.Timesteps = -1
		c.Err("T -1", func() error { return s.Validate() })
	}
	entries["recipe.Settings.ValidateExceptSNN"] = func(c *C) {
		c.Err("zero settings", func() error { return recipe.Settings{}.ValidateExceptSNN() })
		c.Ok("zero SNN setting", func() error { s := recipe.Default(); s.Config = spiking.Config{}; return s.ValidateExceptSNN() })
	}
	entries["recipe.Settings.Betas"] = func(c *C) {
		c.NoPanic("zero settings", func() { _ = recipe.Settings{}.Betas() })
	}
	entries["recipe.Settings.SetBetas"] = func(c *C) {
		for _, text := range []string{"", ",", "NaN,Inf", strings.Repeat("9", 1<<16) + ",1"} {
			c.NoPanic(fmt.Sprintf("%.20q", text), func() { s := recipe.Settings{}; _ = s.SetBetas(text) })
		}
		c.Err("one number", func() error { s := recipe.Default(); return s.SetBetas("0.9") })
	}
	entries["recipe.CheckBatchSize"] = func(c *C) {
		for _, n := range []int{0, -1, math.MinInt, math.MaxInt, recipe.MaxBatchSize + 1} {
			c.Err(fmt.Sprint(n), func() error { return recipe.CheckBatchSize("", n) })
		}
		c.Ok("1", func() error { return recipe.CheckBatchSize("", 1) })
	}
	entries["recipe.Settings.Fields"] = func(c *C) {
		c.NoPanic("zero settings", func() { recipe.Settings{}.Fields() })
	}
	entries["recipe.Settings.BatchNormStats"] = func(c *C) {
		c.NoPanic("zero settings", func() {
			c.Check(recipe.Settings{}.BatchNormStats() == recipe.BNSync, "zero settings' statistics are not %s", recipe.BNSync)
		})
	}

	// data
	entries["data.New"] = func(c *C) {
		c.Err("nil", func() error { _, err := data.New("x", nil, nil, 1, 1, 1, 1); return err })
		c.Err("negative sizes", func() error { _, err := data.New("x", make([]float32, 1), []uint8{0}, -1, -1, 1, 1); return err })
		c.Err("sizes whose product overflows", func() error {
			_, err := data.New("x", make([]float32, 16), make([]uint8, 4), huge, huge, 2, 10)
			return err
		})
		c.Err("a label beyond the classes", func() error { _, err := data.New("x", make([]float32, 1), []uint8{5}, 1, 1, 1, 2); return err })
	}
	entries["data.Dataset.Image"] = func(c *C) {
		d := tinySet(c.t, 2)
		c.NoPanic("-1", func() { c.Check(d.Image(-1) == nil, "Image(-1) is not nil") })
		c.NoPanic("2 of 2", func() { c.Check(d.Image(2) == nil, "Image(2) of 2 is not nil") })
		c.NoPanic("zero data set, 0", func() { (&data.Dataset{}).Image(0) })
		c.NoPanic("1<<62", func() { d.Image(huge) })
	}
	entries["data.Dataset.Subset"] = func(c *C) {
		d := tinySet(c.t, 2)
		c.NoPanic("-1, 1<<62", func() { d.Subset(-1); d.Subset(huge) })
		c.NoPanic("zero data set", func() { (&data.Dataset{}).Subset(1) })
		c.NoPanic("nil data set", func() { (*data.Dataset)(nil).Subset(1) })
	}
	entries["data.CheckName"] = func(c *C) {
		c.Err(`""`, func() error { return data.CheckName("") })
		c.Err("a name of 1 MB", func() error { return data.CheckName(strings.Repeat("x", 1<<20)) })
		c.Ok(data.MNIST, func() error { return data.CheckName(data.MNIST) })
	}
	entries["data.DefaultDir"] = func(c *C) {
		c.Err(`""`, func() error { _, err := data.DefaultDir(""); return err })
	}
	entries["data.ClassNames"] = func(c *C) {
		c.NoPanic(`""`, func() { data.ClassNames("") })
	}
	entries["data.Load"] = func(c *C) {
		c.Err(`"", ""`, func() error { _, err := data.Load("", "", true); return err })
		c.Err("an empty folder, mnist", func() error { _, err := data.Load(c.t.TempDir(), data.MNIST, false); return err })
		c.Err("a folder, an unknown set", func() error { _, err := data.Load(c.t.TempDir(), "imagenet", false); return err })
	}

	// checkpoint
	entries["checkpoint.Checkpoint.Save"] = func(c *C) {
		dir := c.t.TempDir()
		c.Err("nil receiver", func() error { return (*checkpoint.Checkpoint)(nil).Save(filepath.Join(dir, "a.safetensors")) })
		c.Err("a nil parameter", func() error {
			return (&checkpoint.Checkpoint{Params: map[string]*nn.Param{"w": nil}}).Save(filepath.Join(dir, "b.safetensors"))
		})
		c.Err(`zero checkpoint, ""`, func() error { return (&checkpoint.Checkpoint{}).Save("") })
	}
	entries["checkpoint.Checkpoint.Network"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := (*checkpoint.Checkpoint)(nil).Network("x"); return err })
		c.Err("zero checkpoint", func() error { _, err := (&checkpoint.Checkpoint{}).Network(""); return err })
	}
	entries["checkpoint.Checkpoint.CheckResumable"] = func(c *C) {
		net, snn := tinyNet(c.t)
		c.Err("nil receiver", func() error { return (*checkpoint.Checkpoint)(nil).CheckResumable(net, snn, 1) })
		c.Err("zero checkpoint, nil networks, -1", func() error { return (&checkpoint.Checkpoint{}).CheckResumable(nil, nil, -1) })
		c.Err("zero checkpoint", func() error { return (&checkpoint.Checkpoint{}).CheckResumable(net, snn, 1) })
	}
	entries["checkpoint.New"] = func(c *C) {
		net, snn := tinyNet(c.t)
		c.NoPanic("nil, nil, zero settings", func() { checkpoint.New(nil, nil, recipe.Settings{}) })
		c.NoPanic("a network, nil SNN", func() { checkpoint.New(net, nil, recipe.Settings{}) })
		c.NoPanic("a network and its SNN", func() { checkpoint.New(net, snn, recipe.Default()) })
	}
	entries["checkpoint.Decode"] = func(c *C) {
		c.Err("nil", func() error { _, err := checkpoint.Decode(nil); return err })
		c.Err("a header of 2^62 bytes", func() error {
			_, err := checkpoint.Decode([]byte{0, 0, 0, 0, 0, 0, 0, 0x40, '{', '}'})
			return err
		})
	}
	entries["checkpoint.Load"] = func(c *C) {
		c.Err(`""`, func() error { _, err := checkpoint.Load(""); return err })
	}
	entries["checkpoint.Is"] = func(c *C) {
		c.NoPanic("nil", func() { c.Check(!checkpoint.Is(nil), "Is(nil)") })
	}
	entries["checkpoint.IsHead"] = func(c *C) {
		c.NoPanic("nil, -1", func() { c.Check(!checkpoint.IsHead(nil, -1), "IsHead(nil, -1)") })
		c.NoPanic("a header of 2^62 bytes, 2^62", func() { checkpoint.IsHead([]byte{0, 0, 0, 0, 0, 0, 0, 0x40, '{'}, huge) })
	}
	entries["checkpoint.StateOf"] = func(c *C) {
		net, snn := tinyNet(c.t)
		c.NoPanic("nil", func() { checkpoint.StateOf(nil) })
		c.NoPanic("a nil layer", func() { checkpoint.StateOf([]nn.Stateful{nil}) })
		c.NoPanic("the tiny network's layers and its SNN's", func() {
			checkpoint.StateOf(nn.StatefulLayers(net.Layers))
			checkpoint.StateOf(snn.Stateful())
		})
	}
	entries["checkpoint.RestoreState"] = func(c *C) {
		net, _ := tinyNet(c.t)
		layers := nn.StatefulLayers(net.Layers)
		c.Ok(`"", nil, nil`, func() error { return checkpoint.RestoreState("", nil, nil) })
		c.Err("a nil layer", func() error { return checkpoint.RestoreState("ANN", nil, []nn.Stateful{nil}) })
		c.Err("no state for the layers", func() error { return checkpoint.RestoreState("ANN", nil, layers) })
		c.Err("a state of NaN", func() error {
			st := checkpoint.StateOf(layers)
			for _, ls := range st {
				for _, a := range ls {
					for i := range a {
						a[i] = float32(math.NaN())
					}
				}
			}
			return checkpoint.RestoreState("ANN", st, layers)
		})
	}
	entries["checkpoint.SameArch"] = func(c *C) {
		c.NoPanic("zero, zero", func() { checkpoint.SameArch(nn.Arch{}, nn.Arch{}) })
	}

	// plots
	entries["plots.CheckPath"] = func(c *C) {
		c.Err(`""`, func() error { return plots.CheckPath("") })
	}
	entries["plots.CSVPath"] = func(c *C) {
		c.NoPanic(`""`, func() { plots.CSVPath("") })
	}
	entries["plots.Label"] = func(c *C) {
		c.NoPanic("zero sweep, -1 and 1<<62", func() { plots.Label(results.Sweep{}, -1); plots.Label(results.Sweep{}, huge) })
	}
	entries["plots.CheckSweep"] = func(c *C) {
		c.Err("zero sweep", func() error { return plots.CheckSweep(results.Sweep{}) })
		c.Err("a point without rates", func() error {
			return plots.CheckSweep(results.Sweep{IFLayers: []string{"a", "b"}, Points: []results.SweepPoint{{T: 1}}})
		})
	}
	entries["plots.CheckHistory"] = func(c *C) {
		c.Err("nil", func() error { return plots.CheckHistory(nil) })
		c.Err("epoch -1", func() error { return plots.CheckHistory([]results.EpochStats{{Epoch: -1}}) })
	}
	entries["plots.SweepRecords"] = func(c *C) {
		c.NoPanic("nil", func() { plots.SweepRecords(nil) })
		c.NoPanic("a point without rates", func() {
			plots.SweepRecords([]results.Sweep{{IFLayers: []string{"a", "b"}, Points: []results.SweepPoint{{T: 1}}}})
		})
	}
	entries["plots.Sweeps"] = func(c *C) {
		dir := c.t.TempDir()
		c.Err("nil", func() error { return plots.Sweeps(filepath.Join(dir, "a.png"), nil) })
		c.Err("a zero sweep", func() error { return plots.Sweeps(filepath.Join(dir, "b.png"), []results.Sweep{{}}) })
		c.Err(`"", nil`, func() error { return plots.Sweeps("", nil) })
	}
	entries["plots.Training"] = func(c *C) {
		dir := c.t.TempDir()
		c.Err("nil", func() error { return plots.Training(filepath.Join(dir, "a.png"), "", nil) })
		c.Err("a NaN loss", func() error {
			return plots.Training(filepath.Join(dir, "b.png"), "", []results.EpochStats{{TrainLoss: math.NaN()}})
		})
	}
	entries["plots.Read"] = func(c *C) {
		c.Err(`""`, func() error { _, _, err := plots.Read(""); return err })
		p := filepath.Join(c.t.TempDir(), "x.json")
		os.WriteFile(p, []byte(strings.Repeat("[", 100000)), 0o644)
		c.Err("100000 brackets", func() error { _, _, err := plots.Read(p); return err })
	}

	// convert
	entries["convert.Calibrate"] = func(c *C) {
		net, _ := tinyNet(c.t)
		d := tinySet(c.t, 2)
		be := compute.NewCPU()
		c.Err("nil everything", func() error { _, err := convert.Calibrate(nil, nil, nil, nil, -1, -1, math.NaN()); return err })
		c.Err("nil backend", func() error { _, err := convert.Calibrate(context.Background(), nil, net, d, 1, 1, 99); return err })
		c.Err("nil network", func() error { _, err := convert.Calibrate(context.Background(), be, nil, d, 1, 1, 99); return err })
		c.Err("nil data", func() error { _, err := convert.Calibrate(context.Background(), be, net, nil, 1, 1, 99); return err })
		c.NoPanic("batch 1<<62", func() { convert.Calibrate(context.Background(), be, net, d, 1, huge, 99) })
	}
	entries["convert.Convert"] = func(c *C) {
		net, _ := tinyNet(c.t)
		d := tinySet(c.t, 2)
		c.Err("nil everything", func() error { _, err := convert.Convert(nil, nil, nil, nil, convert.Options{}); return err })
		c.Err("zero options", func() error {
			_, err := convert.Convert(context.Background(), compute.NewCPU(), net, d, convert.Options{})
			return err
		})
		c.Err("batch -1", func() error {
			_, err := convert.Convert(context.Background(), compute.NewCPU(), net, d, convert.Options{Percentile: 99, Batch: -1, SNN: spiking.DefaultConfig()})
			return err
		})
	}
	entries["convert.Normalize"] = func(c *C) {
		net, _ := tinyNet(c.t)
		one := spiking.Config{Threshold: 1}
		c.Err("nil, nil, NaN", func() error {
			_, err := convert.Normalize(nil, nil, spiking.Config{Threshold: float32(math.NaN())})
			return err
		})
		c.Err("nil network", func() error { _, err := convert.Normalize(nil, nil, one); return err })
		c.Err("no scales", func() error { _, err := convert.Normalize(net, nil, one); return err })
		c.Err("scales of -Inf", func() error {
			_, err := convert.Normalize(net, []convert.Scale{{Layer: "relu1", Lambda: math.Inf(-1)}, {Layer: "relu2"}, {Layer: "relu3"}, {Layer: "output"}}, one)
			return err
		})
	}
	entries["convert.CheckPercentile"] = func(c *C) {
		for _, p := range []float64{0, -1, math.NaN(), math.Inf(1), 100.0001} {
			c.Err(fmt.Sprint(p), func() error { return convert.CheckPercentile(p) })
		}
		c.Ok("100", func() error { return convert.CheckPercentile(100) })
	}
	entries["convert.Options.Check"] = func(c *C) {
		c.Err("zero options", func() error { return convert.Options{}.Check() })
		c.Err("hostile options", func() error {
			return convert.Options{Percentile: math.Inf(1), Images: math.MinInt, Batch: math.MaxInt, SNN: spiking.Config{Timesteps: -1}}.Check()
		})
		c.Ok("defaults", func() error {
			return convert.Options{Percentile: convert.DefaultPercentile, Batch: 1, SNN: spiking.DefaultConfig()}.Check()
		})
	}
	entries["convert.Result.Notes"] = func(c *C) {
		c.NoPanic("zero result", func() { convert.Result{}.Notes("", "", math.NaN()) })
	}

	// compute/device
	entries["compute/device.Open"] = func(c *C) {
		c.Err(`""`, func() error { _, err := device.Open("", device.Options{}); return err })
		c.Err("cuda-emu, GPU -1", func() error { _, err := device.Open("cuda-emu", device.Options{GPU: -1}); return err })
		c.Err("cuda, GPU 1<<62", func() error { _, err := device.Open("cuda", device.Options{GPU: huge}); return err })
	}
	entries["compute/device.Describe"] = func(c *C) {
		c.NoPanic("nil", func() { c.Check(device.Describe(nil) != "", "Describe(nil) is empty") })
		c.NoPanic("a CPU", func() { device.Describe(compute.NewCPU()) })
	}
	entries["compute/device.GPUs"] = func(c *C) {
		c.NoPanic("", func() { device.GPUs() })
	}
	entries["compute/device.Check"] = func(c *C) {
		c.Err(`""`, func() error { return device.Check("") })
		c.Err("a name of 1 MB", func() error { return device.Check(strings.Repeat("x", 1<<20)) })
		c.Ok("cpu", func() error { return device.Check("cpu") })
		c.NoPanic("cuda", func() { device.Check("cuda") })
	}
	entries["compute/device.Options.SetPrecision"] = func(c *C) {
		c.Err("nil options", func() error { return (*device.Options)(nil).SetPrecision("fp16") })
		c.Err("a name of 1 MB", func() error { return (&device.Options{}).SetPrecision(strings.Repeat("x", 1<<20)) })
		c.Err("fp16 after strict FP32", func() error { return (&device.Options{StrictFP32: true}).SetPrecision("fp16") })
		for _, p := range []string{"", "fp32", "tf32", "fp16"} {
			c.Ok(p, func() error { return (&device.Options{}).SetPrecision(p) })
		}
		c.NoPanic("fp16 sets 16-bit spikes, fp32 strict FP32 without them", func() {
			o := device.Options{}
			c.Check(o.SetPrecision("fp16") == nil && o.HalfSpikes && !o.StrictFP32, "fp16: %+v", o)
			c.Check(o.SetPrecision("fp32") == nil && !o.HalfSpikes && o.StrictFP32, "fp32: %+v", o)
		})
	}
	entries["compute/device.Options.Check"] = func(c *C) {
		c.Err("16-bit spikes on the CPU", func() error { return device.Options{HalfSpikes: true}.Check("cpu") })
		c.Err("16-bit spikes on the CPU, opened", func() error { _, err := device.Open("cpu", device.Options{HalfSpikes: true}); return err })
		for _, name := range []string{"", "cpu", "cuda-emu", strings.Repeat("x", 1<<20)} {
			c.Ok("zero options: "+name[:min(len(name), 8)], func() error { return device.Options{}.Check(name) })
		}
		c.Ok("16-bit spikes on the emulated device", func() error { return device.Options{HalfSpikes: true}.Check("cuda-emu") })
	}
}
