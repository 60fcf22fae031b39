// Package importer reads ANNs — architecture and weights — into nn
// networks: ONNX files through github.com/owulveryck/onnx-go, PyTorch
// checkpoints (torch.save files) through github.com/nlpodyssey/gopickle.
package importer

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/proxykit/proxykit/internal/limits"
	"github.com/proxykit/proxykit/nn"
)

// Model is an imported network and where it came from.
type Model struct {
	Net *nn.Network
	// Format is "onnx" or "pt".
	Format string
	// ONNX describes the source file when Format is "onnx".
	ONNX *ONNXInfo
	// PT describes the source file when Format is "pt".
	PT *PTInfo
}

// Options guide the import of files that lack their structure.
type Options struct {
	// Arch names the architecture of a state dict ("fmnist").
	Arch string
	// Like is a model file whose structure a state dict fills.
	Like string
}

// Load reads a model file, choosing the reader by its contents.
func Load(path string) (*Model, error) { return LoadWith(path, Options{}) }

// LoadWith is Load with options for state dicts.
func LoadWith(path string, opt Options) (*Model, error) {
	data, err := limits.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return LoadData(path, data, opt)
}

// LoadData is LoadWith for a file whose bytes the caller already read
// (PyTorch files are read again from path, as zip archives).
func LoadData(path string, data []byte, opt Options) (*Model, error) {
	if isPyTorch(data) {
		var like *nn.Network
		if opt.Like != "" {
			lm, err := Load(opt.Like)
			if err != nil {
				return nil, fmt.Errorf("--like: %w", err)
			}
			like = lm.Net
		}
		net, info, err := LoadPT(path, opt.Arch, like)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		net.Name = path
		return &Model{Net: net, Format: "pt", PT: info}, nil
	}
	m, err := Decode(path, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// isPyTorch recognises torch.save files: a zip archive (PyTorch 1.6 and
// newer) or a legacy pickle stream.
func isPyTorch(data []byte) bool {
	return bytes.HasPrefix(data, []byte("PK\x03\x04")) || (len(data) > 1 && data[0] == 0x80 && data[1] <= 5)
}

// Decode reads an ONNX model from its bytes; name labels it in messages.
// (PyTorch files are read from disk by Load.)
func Decode(name string, data []byte) (*Model, error) {
	switch {
	case len(data) == 0:
		return nil, errors.New("the file is empty")
	case isPyTorch(data):
		return nil, errors.New("this is a PyTorch checkpoint; read it with Load, from a file")
	}
	ext := strings.ToLower(filepath.Ext(name))
	if ext != ".onnx" && ext != "" && !looksLikeONNX(data) {
		return nil, fmt.Errorf("unknown model format %q (proxykit reads ONNX files, PyTorch .pt files and its own checkpoints)", ext)
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
