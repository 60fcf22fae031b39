// Package model reads a network from any file proxykit takes — ONNX, a
// PyTorch checkpoint, a proxykit checkpoint, a NIR graph — choosing the
// reader by the file's contents (the one place that does), and builds its
// SNN with the statistics and setting the file carries.
package model

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/importer"
	"github.com/proxykit/proxykit/internal/limits"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/setting"
	"github.com/proxykit/proxykit/spiking"
)

// Formats of model files.
const (
	ONNX       = "onnx"
	PyTorch    = "pt"
	Checkpoint = "checkpoint"
	// NIR is a NIR graph (HDF5) of an IF network: its ANN is rebuilt
	// (importer.LoadNIR).
	NIR = "nir"
)

// Model is a network loaded from any file proxykit reads, with the SNN's
// own BatchNorm statistics when the file carries them (a checkpoint).
type Model struct {
	ANN *nn.Network
	// Format is ONNX, PyTorch, Checkpoint or NIR.
	Format     string
	SNNState   map[string]checkpoint.LayerState
	Checkpoint *checkpoint.Checkpoint
	ONNX       *importer.ONNXInfo
	PT         *importer.PTInfo
	NIR        *importer.NIRInfo
}

// Options guide the reading of files that hold weights without their
// structure (PyTorch state dicts).
type Options struct {
	// Arch names an architecture of nn's registry (nn.Architectures),
	// sized after the state dict.
	Arch string
	// Like is a model file of any format Load reads whose network has
	// the state dict's parameter names.
	Like string
}

// SNNDefaults is the SNN setting the file carries (a checkpoint's, an
// SNN module's T, v_th and v_reset, or a NIR graph's neurons), if any.
func (m *Model) SNNDefaults() (spiking.Config, bool) {
	if m.Checkpoint != nil {
		return m.Checkpoint.Settings.Config, true
	}
	if m.NIR != nil {
		cfg := m.NIR.SNN
		if cfg.Timesteps == 0 { // NIR has no time steps; proxykit's files record T
			cfg.Timesteps = spiking.DefaultConfig().Timesteps
		}
		return cfg, true
	}
	if m.PT != nil && m.PT.Kind == "snn-module" {
		cfg := m.PT.SNN
		if cfg.Timesteps == 0 {
			cfg.Timesteps = spiking.DefaultConfig().Timesteps
		}
		return cfg, true
	}
	return spiking.Config{}, false
}

// Load reads an ONNX file, a PyTorch checkpoint, a proxykit checkpoint or
// a NIR file.
func Load(path string) (*Model, error) { return LoadWith(path, Options{}) }

// LoadWith is Load with options for PyTorch state dicts.
func LoadWith(path string, opt Options) (*Model, error) {
	format, err := Sniff(path)
	if err != nil {
		return nil, err
	}
	m := &Model{Format: format}
	switch format {
	case PyTorch:
		// gopickle reads the file itself
		net, info, err := importer.LoadPT(path, opt.structure)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		net.Name = path
		m.ANN, m.PT = net, info
	case NIR:
		if m.ANN, m.NIR, err = importer.LoadNIR(path); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case Checkpoint:
		data, err := limits.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if m.Checkpoint, err = checkpoint.Decode(data); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if m.ANN, err = m.Checkpoint.Network(path); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m.SNNState = m.Checkpoint.SNNState // checked by checkpoint.Decode
	default:
		data, err := limits.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if m.ANN, m.ONNX, err = importer.LoadONNX(path, data); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := nn.Validate(m.ANN); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Sniff names a model file's format from its first bytes: a torch.save
// file (a zip archive, PyTorch 1.6 and newer, or a legacy pickle stream),
// a proxykit checkpoint (safetensors), a NIR file (HDF5's signature) or
// ONNX (a protobuf message whose first field is ir_version). It refuses a
// file that is none of them.
func Sniff(path string) (string, error) {
	f, err := limits.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 16)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	head = head[:n]
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	switch {
	case n == 0:
		return "", fmt.Errorf("%s: the file is empty", path)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || (n > 1 && head[0] == 0x80 && head[1] <= 5):
		return PyTorch, nil
	case checkpoint.IsHead(head, st.Size()):
		return Checkpoint, nil
	case bytes.HasPrefix(head, []byte("\x89HDF\r\n\x1a\n")):
		return NIR, nil
	case head[0] == 0x08:
		return ONNX, nil
	}
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".onnx" && ext != "" {
		return "", fmt.Errorf("%s: unknown model format %q (proxykit reads ONNX files, PyTorch .pt files, NIR files and its own checkpoints)", path, ext)
	}
	return ONNX, nil // let the ONNX reader say what is wrong
}

// structure gives a state dict its network: Like's, or Arch's sized after
// the state dict; nil when neither is set.
func (o Options) structure(shapes map[string][]int) (*nn.Network, error) {
	switch {
	case o.Like != "":
		like, err := Load(o.Like)
		if err != nil {
			return nil, setting.Errorf("%s: %w", setting.Like, err)
		}
		return like.ANN, nil
	case o.Arch != "":
		a, err := nn.ArchitectureNamed(o.Arch)
		if err != nil {
			return nil, setting.Errorf("%s: %w", setting.Arch, err)
		}
		ao, err := a.Sized(shapes)
		if err != nil {
			return nil, setting.Errorf("%s %s: %w", setting.Arch, o.Arch, err)
		}
		return a.Build(ao)
	}
	return nil, nil
}

// SNN builds the model's spiking twin, with the SNN's own BatchNorm
// statistics where the model has them (else copies of the ANN's).
func (m *Model) SNN(cfg spiking.Config) (*spiking.Network, error) {
	s, err := spiking.New(m.ANN, cfg)
	if err != nil {
		return nil, err
	}
	if m.SNNState != nil {
		if err := checkpoint.RestoreState("SNN", m.SNNState, s.Stateful()); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
	}
	return s, nil
}
