package cuda

import "github.com/proxykit/proxykit/compute"

// dnnDevice is a device that offers cuDNN's convolutions (a GPU where
// libcudnn.so.9 loads).
type dnnDevice interface {
	cudnn() *cudnn
}

// convolutions is what the backend asks of cuDNN; *cudnn implements it in
// builds with -tags cuda.
type convolutions interface {
	supports(g compute.ConvGeom) bool
	forward(be *Backend, g compute.ConvGeom, n int, x, w, y devptr) error
	backwardData(be *Backend, g compute.ConvGeom, n int, w, dy, dx devptr) error
	backwardFilter(be *Backend, g compute.ConvGeom, n int, x, dy, dw devptr) error
	close()
}

var _ convolutions = (*cudnn)(nil)

// planError says that cuDNN could not plan a convolution (no algorithm, an
// unsupported shape): nothing ran, and the backend falls back to im2col.
type planError struct{ msg string }

func (e *planError) Error() string { return e.msg }
