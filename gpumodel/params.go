package gpumodel

import (
	"fmt"
	"strings"

	"github.com/proxykit/proxykit/compute"
)

// H200 is an NVIDIA H200 SXM: 4.8 TB/s of HBM3e, and the H100's
// arithmetic (dense TF32 495 TFLOP/s, FP16/BF16 990, FP32 67), by the
// vendor's datasheet.
func H200() GPU {
	return GPU{Name: "h200", Bandwidth: 4.8e12, Peak: hopperPeaks()}
}

// H100 is an NVIDIA H100 SXM: 3.35 TB/s of HBM3 and the same arithmetic
// as the H200.
func H100() GPU {
	return GPU{Name: "h100", Bandwidth: 3.35e12, Peak: hopperPeaks()}
}

func hopperPeaks() map[compute.Math]float64 {
	return map[compute.Math]float64{compute.MathFP32: 67e12, compute.MathTF32: 495e12, compute.MathFP16: 990e12,
		compute.MathBF16: 990e12}
}

// GPUs lists the GPUs the model knows, by name.
func GPUs() []GPU { return []GPU{H200(), H100()} }

// ForGPU is the model of a GPU by name ("h200", "h100"): calibrated on
// the H200; on other GPUs the H200's parameters applied to their peaks,
// uncalibrated.
func ForGPU(name string) (Model, error) {
	var names []string
	for _, g := range GPUs() {
		if g.Name == strings.ToLower(name) {
			c, err := H200Calibration()
			if err != nil {
				return Model{}, err
			}
			p, _, err := Fit(c)
			if err != nil {
				return Model{}, err
			}
			m := Model{GPU: g, Params: p}
			if g.Name == "h200" {
				m.Calibrated = "H200, 2026-11-30"
			}
			return m, nil
		}
		names = append(names, g.Name)
	}
	return Model{}, fmt.Errorf("no time model for GPU %q (known: %s)", name, strings.Join(names, ", "))
}
