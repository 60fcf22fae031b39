package cuda

import (
	"regexp"

	"github.com/proxykit/proxykit/compute"
)

// KernelsInSource lists the __global__ functions of kernels.cu.
func KernelsInSource() []string {
	var out []string
	for _, m := range regexp.MustCompile(`__global__ void (\w+)\(`).FindAllStringSubmatch(kernelSource, -1) {
		out = append(out, m[1])
	}
	return out
}

// KernelNames lists the kernels the backend launches.
func KernelNames() []string { return kernelNames }

// AddConvBias is the bias step of the cuDNN convolution path, which the
// emulated device (having no cuDNN) reaches only through this hook.
func AddConvBias(be *Backend, g compute.ConvGeom, n int, y, bias compute.Buffer) {
	be.addConvBias(g, n, y, bias)
}

// RefuseDNN makes be's cuDNN a stand-in that refuses every configuration,
// as cuDNN refuses one at run time (the emulated device has no cuDNN):
// the test hook of the backend's answer to a refusal.
func RefuseDNN(be *Backend) { be.dnn = refusingDNN{} }
