package cuda

import "regexp"

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
