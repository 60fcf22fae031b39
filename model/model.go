// Package model reads a network from any file proxykit takes — ONNX, a
// PyTorch checkpoint, a proxykit checkpoint — choosing the reader by the
// file's contents, and builds its SNN with the statistics the file carries.
package model

import (
	"fmt"

	"github.com/proxykit/proxykit/checkpoint"
	"github.com/proxykit/proxykit/importer"
	"github.com/proxykit/proxykit/internal/limits"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/spiking"
)

// Model is a network loaded from any file proxykit reads, with the SNN's
// own BatchNorm statistics when the file carries them (a checkpoint).
type Model struct {
	ANN        *nn.Network
	SNNStats   map[string]checkpoint.BNStats
	Checkpoint *checkpoint.Checkpoint
	ONNX       *importer.ONNXInfo
	PT         *importer.PTInfo
}

// SNNDefaults is the SNN setting the file carries (a checkpoint's, or an
// SNN module's T, v_th and v_reset), if any.
func (m *Model) SNNDefaults() (spiking.Config, bool) {
	if m.Checkpoint != nil {
		return m.Checkpoint.Settings.Config, true
	}
	if m.PT != nil && m.PT.Kind == "snn-module" {
		cfg := spiking.DefaultConfig()
		if m.PT.Timesteps > 0 {
			cfg.Timesteps = m.PT.Timesteps
		}
		cfg.Threshold, cfg.Reset = m.PT.Threshold, m.PT.Reset
		return cfg, true
	}
	return spiking.Config{}, false
}

// Load reads an ONNX file, a PyTorch checkpoint or a proxykit checkpoint.
func Load(path string) (*Model, error) { return LoadWith(path, importer.Options{}) }

// LoadWith is Load with options for PyTorch state dicts.
func LoadWith(path string, opt importer.Options) (*Model, error) {
	data, err := limits.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if checkpoint.Is(data) {
		c, err := checkpoint.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		net, err := c.Network(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := nn.Validate(net); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for name, st := range c.SNNStats {
			for what, v := range map[string][]float32{"running_mean": st.Mean, "running_var": st.Var} {
				if err := nn.CheckFinite("SNN BatchNorm "+name+" "+what, v); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
			}
		}
		return &Model{ANN: net, SNNStats: c.SNNStats, Checkpoint: c}, nil
	}
	m, err := importer.LoadData(path, data, opt)
	if err != nil {
		return nil, err
	}
	if err := nn.Validate(m.Net); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Model{ANN: m.Net, ONNX: m.ONNX, PT: m.PT}, nil
}

// SNN builds the model's spiking twin, with the SNN's own BatchNorm
// statistics where the model has them (else copies of the ANN's).
func (m *Model) SNN(cfg spiking.Config) (*spiking.Network, error) {
	s, err := spiking.New(m.ANN, cfg)
	if err != nil {
		return nil, err
	}
	if m.SNNStats != nil {
		for _, bn := range s.BatchNorms() {
			st, ok := m.SNNStats[bn.LayerName]
			if !ok || len(st.Mean) != len(bn.RunningMean) {
				return nil, fmt.Errorf("checkpoint lacks the SNN's statistics for BatchNorm layer %q", bn.LayerName)
			}
			copy(bn.RunningMean, st.Mean)
			copy(bn.RunningVar, st.Var)
		}
	}
	return s, nil
}
