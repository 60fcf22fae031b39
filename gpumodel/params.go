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

// H200Params is the calibration, frozen: Fit on H200Calibration, rounded
// to four digits (TestCalibration holds the two equal). It changes only
// with new calibration data, never to flatter a change of the program.
func H200Params() Params {
	return Params{
		LaunchOverhead: 4.044e-6, // s
		Bandwidth: map[Kind]float64{ // of 4.8 TB/s
			Elementwise: 0.7336, // pk_if
			Indexed:     0.2863, // pk_channel_affine
			Pooling:     0.4627, // pk_maxpool
			Reduction:   0.2082, // pk_bn_backward_reduce
			Layout:      0.8933, // cuDNN's nchwToNhwc and nhwcToNchw
		},
		TensorCores: map[string]float64{ // of the peak of the call's arithmetic (TF32: 495 TFLOP/s)
			compute.CallGEMM:               0.6281,
			compute.CallConvForward:        0.7711,
			compute.CallConvBackwardData:   0.7711, // taken at the forward rate
			compute.CallConvBackwardFilter: 0.09132,
		},
		CUDACores: map[string]float64{ // of the FP32 peak, 67 TFLOP/s
			compute.CallGEMM:               0.7701, // SGEMM measured on an H100
			compute.CallConvForward:        1.727,
			compute.CallConvBackwardData:   1.727,
			compute.CallConvBackwardFilter: 0.2046,
		},
		MinTensorK: minTensorK,
	}
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
			m := Model{GPU: g, Params: H200Params()}
			if g.Name == "h200" {
				m.Calibrated = "H200, 2026-11-30"
			}
			return m, nil
		}
		names = append(names, g.Name)
	}
	return Model{}, fmt.Errorf("no time model for GPU %q (known: %s)", name, strings.Join(names, ", "))
}
