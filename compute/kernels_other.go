//go:build !amd64

package compute

// availableKernels is the pure-Go reference alone: the assembly kernels
// are amd64's.
func availableKernels() []*kernelSet { return []*kernelSet{genericKernels} }
