//go:build !cuda

package cuda

import (
	"errors"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/setting"
)

// openGPU answers the device cuda in a build without -tags cuda.
func openGPU(Options) (device, error) {
	return nil, setting.Errorf("%s cuda: this proxykit was built without GPU support; "+
		"build it with -tags cuda (go build -tags cuda ./cmd/proxykit) on a machine with an NVIDIA driver, "+
		"or use %[1]s cuda-emu to run the CUDA code path on the CPU", setting.Device)
}

// visibleGPUs answers in a build without -tags cuda.
func visibleGPUs() (int, error) {
	_, err := openGPU(Options{})
	return 0, err
}

// cudnn is cuDNN's convolutions, present only in builds with -tags cuda.
type cudnn struct{}

func (*cudnn) supports(compute.ConvGeom) bool { return false }
func (*cudnn) forward(*Backend, compute.ConvGeom, int, devptr, devptr, devptr) error {
	return errors.New("cuDNN needs -tags cuda")
}
func (*cudnn) backwardData(*Backend, compute.ConvGeom, int, devptr, devptr, devptr) error {
	return errors.New("cuDNN needs -tags cuda")
}
func (*cudnn) backwardFilter(*Backend, compute.ConvGeom, int, devptr, devptr, devptr, bool) error {
	return errors.New("cuDNN needs -tags cuda")
}
func (*cudnn) close() {}
