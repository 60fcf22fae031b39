// Package importer reads ANNs — architecture and weights — into nn
// networks: ONNX files through github.com/owulveryck/onnx-go.
package importer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/proxykit/proxykit/nn"
)

// Model is an imported network and where it came from.
type Model struct {
	Net *nn.Network
	// Format is "onnx".
	Format string
	// ONNX describes the source file when Format is "onnx".
	ONNX *ONNXInfo
}

// Load reads a model file, choosing the reader by its contents.
func Load(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Decode(path, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Decode reads a model from its bytes; name labels it in messages.
func Decode(name string, data []byte) (*Model, error) {
	switch {
	case len(data) == 0:
		return nil, errors.New("the file is empty")
	case bytes.HasPrefix(data, []byte("PK\x03\x04")) || (len(data) > 1 && data[0] == 0x80 && data[1] <= 5):
		return nil, errors.New("this looks like a PyTorch checkpoint; proxykit does not read .pt files yet: export the model to ONNX with torch.onnx.export")
	}
	ext := strings.ToLower(filepath.Ext(name))
	if ext != ".onnx" && ext != "" && !looksLikeONNX(data) {
		return nil, fmt.Errorf("unknown model format %q (proxykit reads ONNX files)", ext)
	}
	net, info, err := LoadONNX(name, data)
	if err != nil {
		return nil, err
	}
	return &Model{Net: net, Format: "onnx", ONNX: info}, nil
}

// looksLikeONNX checks for a protobuf message whose first field is an ONNX
// ModelProto field (ir_version, a varint in field 1).
func looksLikeONNX(data []byte) bool {
	return len(data) > 2 && data[0] == 0x08
}
