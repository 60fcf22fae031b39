package exporter_test

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

// Export a network's ANN as ONNX and its SNN as unrolled ONNX and as NIR,
// each written atomically; the ONNX ANN reads back into the same network.
func Example() {
	dir, _ := os.MkdirTemp("", "export")
	defer os.RemoveAll(dir)
	ann, err := nn.Tiny(1)
	if err != nil {
		log.Fatal(err)
	}
	snn, err := spiking.New(ann, spiking.Config{Timesteps: 4, Threshold: 1})
	if err != nil {
		log.Fatal(err)
	}
	opt := exporter.Options{Metadata: map[string]string{"purpose": "example"}}
	if err := exporter.WriteANN(filepath.Join(dir, "ann.onnx"), ann, opt); err != nil {
		log.Fatal(err)
	}
	if err := exporter.WriteSNN(filepath.Join(dir, "snn.onnx"), snn, opt); err != nil {
		log.Fatal(err)
	}
	if err := exporter.WriteNIR(filepath.Join(dir, "snn.nir"), snn, exporter.NIROptions{}); err != nil {
		log.Fatal(err)
	}
	back, err := model.Load(filepath.Join(dir, "ann.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("read back:", len(back.ANN.Layers), "layers,", back.ANN.ParamCount(), "parameters")
	// Output:
	// read back: 12 layers, 52088 parameters
}
