package model_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/proxykit/proxykit/exporter"
	"github.com/proxykit/proxykit/model"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// Read a model file of any format proxykit takes — ONNX here, written
// from a freshly initialised network — and build the SNN that shares its
// weights.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	net, err := nn.Tiny(1) // or nn.Architectures(), or your own layers
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "tiny.onnx")
	if err := exporter.WriteANN(path, net, exporter.Options{}); err != nil {
		log.Fatal(err)
	}

	m, err := model.Load(path) // ONNX, a PyTorch .pt or a proxykit checkpoint
	if err != nil {
		log.Fatal(err)
	}
	snn, err := m.SNN(spiking.DefaultConfig()) // T = 15, v_th = 2, v_reset = 0
	if err != nil {
		log.Fatal(err)
	}
	out, _ := m.ANN.OutputShape()
	fmt.Println(m.Format, len(m.ANN.Layers), "layers,", m.ANN.ParamCount(), "parameters, output", out)
	fmt.Println("SNN:", len(snn.Nodes), "nodes,", snn.Static, "of them the static input layer")
	// Output:
	// onnx 12 layers, 52088 parameters, output [10]
	// SNN: 13 nodes, 2 of them the static input layer
}
