package contract_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/compute/cuda"
	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/gpumodel"
	"github.com/proxykit/proxykit/importer"
	"github.com/proxykit/proxykit/lower"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// Entries of exporter, model, importer and gpumodel: nil and zero
// networks, SNNs and models, SNNs that are not what spiking.New makes,
// files that are not there or hold garbage, nil writers, programs and
// launches that price nothing.

// garbage is a file of bytes no reader takes.
func garbage(c *C, name string) string {
	p := filepath.Join(c.t.TempDir(), name)
	os.WriteFile(p, []byte("\x08\xff\xff\xff\xff\x0f garbage"), 0o644)
	return p
}

func init() {
	var out bytes.Buffer
	// exporter
	badSNNs := func(c *C) map[string]*spiking.Network {
		_, snn := tinyNet(c.t)
		noOut := *snn
		noOut.Nodes = noOut.Nodes[:len(noOut.Nodes)-1]
		nilLayer := *snn
		nilLayer.Nodes = append([]spiking.Node{{Inputs: []int{-1}}}, snn.Nodes[1:]...)
		badIn := *snn
		badIn.Nodes = append([]spiking.Node{{Layer: snn.Nodes[0].Layer, Inputs: []int{7}}}, snn.Nodes[1:]...)
		badStatic := *snn
		badStatic.Static = 99
		badT := *snn
		badT.Config.Timesteps = 0
		return map[string]*spiking.Network{"nil": nil, "zero": {}, "without its output IF layer": &noOut, "with a nil layer": &nilLayer,
			"reading a later node": &badIn, "a static part beyond it": &badStatic, "T 0": &badT}
	}
	entries["exporter.SNN"] = func(c *C) {
		for what, s := range badSNNs(c) {
			c.Err("an SNN "+what, func() error { _, err := exporter.SNN(s, exporter.Options{}); return err })
		}
		_, snn := tinyNet(c.t)
		c.Err("opset -1", func() error { _, err := exporter.SNN(snn, exporter.Options{Opset: -1}); return err })
		c.Ok("the tiny network's SNN", func() error { _, err := exporter.SNN(snn, exporter.Options{Potential: true}); return err })
	}
	entries["exporter.WriteSNN"] = func(c *C) {
		c.Err(`"", nil`, func() error { return exporter.WriteSNN("", nil, exporter.Options{}) })
		c.Err("zero SNN", func() error {
			return exporter.WriteSNN(filepath.Join(c.t.TempDir(), "a.onnx"), &spiking.Network{}, exporter.Options{})
		})
	}
	for _, f := range []string{"NIRWarnings", "WriteNIR", "CheckNIR", "WriteNIRFile"} {
		call := func(c *C, s *spiking.Network) error {
			p := filepath.Join(c.t.TempDir(), "a.nir")
			switch f {
			case "NIRWarnings":
				_, err := exporter.NIRWarnings(s, exporter.NIROptions{})
				return err
			case "WriteNIR":
				return exporter.WriteNIR(p, s, exporter.NIROptions{})
			case "CheckNIR":
				return exporter.CheckNIR(s, exporter.NIROptions{})
			}
			return exporter.WriteNIRFile(p, s, exporter.NIROptions{AvgPoolAsConv: true})
		}
		entries["exporter."+f] = func(c *C) {
			for what, s := range badSNNs(c) {
				c.Err("an SNN "+what, func() error { return call(c, s) })
			}
			c.NoPanic("the tiny network's SNN", func() { _, snn := tinyNet(c.t); call(c, snn) })
		}
	}
	entries["exporter.ANN"] = func(c *C) {
		net, _ := tinyNet(c.t)
		c.Err("nil network", func() error { _, err := exporter.ANN(nil, exporter.Options{}); return err })
		c.Err("zero network", func() error { _, err := exporter.ANN(&nn.Network{}, exporter.Options{}); return err })
		c.Err("a nil layer", func() error {
			_, err := exporter.ANN(&nn.Network{InputShape: []int{4}, Layers: []nn.Layer{nil}}, exporter.Options{FoldBN: true})
			return err
		})
		c.Err("a zero Linear", func() error {
			_, err := exporter.ANN(&nn.Network{InputShape: []int{4}, Layers: []nn.Layer{&nn.Linear{}}}, exporter.Options{})
			return err
		})
		c.Err("opset 99", func() error { _, err := exporter.ANN(net, exporter.Options{Opset: 99}); return err })
		c.Ok("the tiny network, BatchNorm folded", func() error { _, err := exporter.ANN(net, exporter.Options{FoldBN: true}); return err })
	}
	entries["exporter.WriteANN"] = func(c *C) {
		net, _ := tinyNet(c.t)
		c.Err(`"", nil`, func() error { return exporter.WriteANN("", nil, exporter.Options{}) })
		c.Err("a folder", func() error { return exporter.WriteANN(c.t.TempDir(), net, exporter.Options{}) })
	}

	// model
	entries["model.Load"] = func(c *C) {
		c.Err(`""`, func() error { _, err := model.Load(""); return err })
		c.Err("a folder", func() error { _, err := model.Load(c.t.TempDir()); return err })
		c.Err("garbage", func() error { _, err := model.Load(garbage(c, "x.onnx")); return err })
	}
	entries["model.LoadWith"] = func(c *C) {
		c.Err(`"", an unknown architecture`, func() error { _, err := model.LoadWith("", model.Options{Arch: "nope"}); return err })
		c.Err("garbage like itself", func() error { g := garbage(c, "y.pt"); _, err := model.LoadWith(g, model.Options{Like: g}); return err })
	}
	entries["model.Sniff"] = func(c *C) {
		c.Err(`""`, func() error { _, err := model.Sniff(""); return err })
		c.Err("an empty file", func() error {
			p := filepath.Join(c.t.TempDir(), "e")
			os.WriteFile(p, nil, 0o644)
			_, err := model.Sniff(p)
			return err
		})
	}
	entries["model.Printable"] = func(c *C) {
		c.NoPanic("control characters, invalid UTF-8", func() {
			c.Check(model.Printable("a\x1b[2Jb\xff") == `a\x1b[2Jb\xfffd`, "escaped as %q", model.Printable("a\x1b[2Jb\xff"))
		})
	}
	entries["model.WriteLayers"] = func(c *C) {
		net, _ := tinyNet(c.t)
		c.Err("nil writer", func() error { return model.WriteLayers(nil, net) })
		c.Err("nil network", func() error { return model.WriteLayers(&out, nil) })
		c.Ok("a network without layers", func() error { return model.WriteLayers(&out, &nn.Network{InputShape: []int{3}}) })
		c.Ok("the tiny network", func() error { return model.WriteLayers(&out, net) })
	}
	nilM := (*model.Model)(nil)
	entries["model.Model.SNN"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilM.SNN(spiking.DefaultConfig()); return err })
		c.Err("zero model", func() error { _, err := (&model.Model{}).SNN(spiking.DefaultConfig()); return err })
	}
	entries["model.Model.Input"] = func(c *C) {
		c.Err("nil receiver", func() error { _, err := nilM.Input("", false); return err })
		c.Err("zero model, garbage", func() error { _, err := (&model.Model{}).Input(garbage(c, "x.npy"), true); return err })
	}
	entries["model.Model.WriteSummary"] = func(c *C) {
		c.Err("nil receiver", func() error { return nilM.WriteSummary(&out, "") })
		c.Err("zero model", func() error { return (&model.Model{}).WriteSummary(&out, "") })
		net, _ := tinyNet(c.t)
		c.Err("nil writer", func() error { return (&model.Model{ANN: net}).WriteSummary(nil, "") })
	}
	for _, m := range []string{"Metadata", "Notes", "SNNDefaults"} {
		entries["model.Model."+m] = func(c *C) {
			c.NoPanic("zero model", func() {
				z := &model.Model{}
				switch m {
				case "Metadata":
					z.Metadata("")
				case "Notes":
					z.Notes()
				case "SNNDefaults":
					z.SNNDefaults()
				}
			})
		}
	}

	// importer
	entries["importer.LoadONNX"] = func(c *C) {
		for _, data := range [][]byte{nil, {0x08}, []byte("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), bytes.Repeat([]byte{0x0a, 0xff}, 1000)} {
			c.Err("hostile bytes", func() error { _, _, err := importer.LoadONNX("", data); return err })
		}
	}
	entries["importer.LoadPT"] = func(c *C) {
		c.Err(`"", nil`, func() error { _, _, err := importer.LoadPT("", nil); return err })
		c.Err("garbage, a structure of nil", func() error {
			_, _, err := importer.LoadPT(garbage(c, "x.pt"), func(map[string][]int) (*nn.Network, error) { return nil, nil })
			return err
		})
	}
	entries["importer.LoadNIR"] = func(c *C) {
		c.Err(`""`, func() error { _, _, err := importer.LoadNIR(""); return err })
		c.Err("garbage", func() error { _, _, err := importer.LoadNIR(garbage(c, "x.nir")); return err })
	}

	// gpumodel
	nan := math.NaN()
	entries["gpumodel.ForGPU"] = func(c *C) {
		c.Err(`""`, func() error { _, err := gpumodel.ForGPU(""); return err })
		c.Ok("h100", func() error { _, err := gpumodel.ForGPU("h100"); return err })
	}
	for _, f := range []string{"GPUs", "H100", "H200", "H200Params", "Kinds", "ProfiledWorkload"} {
		entries["gpumodel."+f] = func(c *C) {
			c.NoPanic("", func() {
				switch f {
				case "GPUs":
					gpumodel.GPUs()
				case "H100":
					gpumodel.H100()
				case "H200":
					gpumodel.H200()
				case "H200Params":
					gpumodel.H200Params()
				case "Kinds":
					gpumodel.Kinds()
				case "ProfiledWorkload":
					_ = gpumodel.ProfiledWorkload().String()
				}
			})
		}
	}
	entries["gpumodel.KindOf"] = func(c *C) {
		c.NoPanic(`""`, func() { _, ok := gpumodel.KindOf(""); c.Check(!ok, "a kind for no kernel") })
	}
	entries["gpumodel.Workload.String"] = func(c *C) { c.NoPanic("zero workload", func() { _ = gpumodel.Workload{Batch: -1}.String() }) }
	entries["gpumodel.H200Calibration"] = func(c *C) { c.Ok("", func() error { _, err := gpumodel.H200Calibration(); return err }) }
	entries["gpumodel.Calibration.Workloads"] = func(c *C) { c.NoPanic("zero calibration", func() { gpumodel.Calibration{}.Workloads() }) }
	entries["gpumodel.Fit"] = func(c *C) {
		c.Err("zero calibration", func() error { _, _, err := gpumodel.Fit(gpumodel.Calibration{}); return err })
	}
	entries["gpumodel.Checks"] = func(c *C) {
		cal, _ := gpumodel.H200Calibration()
		c.Err("zero model", func() error { _, _, err := gpumodel.Checks(gpumodel.Model{}, cal); return err })
		c.NoPanic("zero calibration", func() { m, _ := gpumodel.ForGPU("h200"); gpumodel.Checks(m, gpumodel.Calibration{}) })
	}
	entries["gpumodel.Check.RelativeError"] = func(c *C) { c.NoPanic("zero check", func() { gpumodel.Check{}.RelativeError() }) }
	entries["gpumodel.Model.Price"] = func(c *C) {
		m, _ := gpumodel.ForGPU("h200")
		c.Err("zero model, a launch", func() error { _, err := gpumodel.Model{}.Price([]compute.Launch{{Kernel: "pk_relu"}}); return err })
		c.Err("a kernel of no kind", func() error { _, err := m.Price([]compute.Launch{{Kernel: "nope"}}); return err })
		c.Err("a library call of no arithmetic", func() error {
			_, err := m.Price([]compute.Launch{{Kernel: compute.CallGEMM, Library: true, Math: compute.Math("x")}})
			return err
		})
		c.NoPanic("hostile sizes", func() {
			m.Price([]compute.Launch{{Kernel: compute.CallGEMM, Library: true, FLOPs: math.MaxInt64, Read: math.MaxInt64, Written: math.MaxInt64}})
		})
		c.Ok("nil", func() error { _, err := m.Price(nil); return err })
	}
	entries["gpumodel.Estimate.Shares"] = func(c *C) { c.NoPanic("zero estimate", func() { gpumodel.Estimate{Seconds: nan}.Shares() }) }
	entries["gpumodel.Estimate.ImagesPerSecond"] = func(c *C) {
		c.NoPanic("zero estimate, batch -1", func() { gpumodel.Estimate{}.ImagesPerSecond(-1) })
	}
	entries["gpumodel.PlanPrograms"] = func(c *C) {
		body, s := tinySNN(c)
		step, upd, _ := lower.StepPrograms(body, s, lower.SNNOptions{Options: lower.Options{Capacity: 2}, Steps: 15})
		c.Err(`"" GPU`, func() error { _, err := gpumodel.PlanPrograms("", cuda.Options{}, 1, step); return err })
		c.Err("batch 0", func() error { _, err := gpumodel.PlanPrograms("h200", cuda.Options{}, 0, step); return err })
		c.Err("a nil program", func() error { _, err := gpumodel.PlanPrograms("h200", cuda.Options{}, 1, nil); return err })
		c.Err("a zero lowered program", func() error { _, err := gpumodel.PlanPrograms("h200", cuda.Options{}, 1, &lower.Lowered{}); return err })
		c.Err("a batch of 2^62", func() error { _, err := gpumodel.PlanPrograms("h200", cuda.Options{}, huge, step, upd); return err })
		c.Ok("the tiny network's step", func() error { _, err := gpumodel.PlanPrograms("h200", cuda.Options{}, 2, step, upd); return err })
	}
	entries["gpumodel.WritePlan"] = func(c *C) {
		c.Err("nil writer", func() error { return gpumodel.WritePlan(nil, gpumodel.Plan{}, 0) })
		c.Ok("zero plan, top -1", func() error { return gpumodel.WritePlan(&out, gpumodel.Plan{}, -1) })
	}
	entries["gpumodel.WriteShares"] = func(c *C) {
		c.Err("nil writer", func() error { return gpumodel.WriteShares(nil, gpumodel.Estimate{}, 0) })
		c.Ok("zero estimate", func() error { return gpumodel.WriteShares(&out, gpumodel.Estimate{}, huge) })
	}
	entries["gpumodel.WritePrediction"] = func(c *C) {
		c.Err("nil writer", func() error { return gpumodel.WritePrediction(nil, gpumodel.Program{}) })
		c.Ok("zero program", func() error { return gpumodel.WritePrediction(&out, gpumodel.Program{TrainBatch: -1}) })
	}
	entries["gpumodel.WriteCalibration"] = func(c *C) {
		c.Err("nil writer", func() error { return gpumodel.WriteCalibration(nil, nil) })
		c.Err("a workload the calibration has not", func() error {
			return gpumodel.WriteCalibration(&out, map[gpumodel.Workload][]compute.Launch{{Batch: -1}: nil})
		})
		c.Ok("nil", func() error { return gpumodel.WriteCalibration(&out, nil) })
	}
}
