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

var (
	_ convolutions = (*cudnn)(nil)
	_ convolutions = dryDNN{}
)

// dnnSupports reports whether the backend hands g to cuDNN: symmetric
// padding, no groups (grouped convolutions take the im2col path, one GEMM
// per group, until a GPU session verifies cuDNN's group count).
func dnnSupports(g compute.ConvGeom) bool {
	return g.PT == g.PB && g.PL == g.PR && g.Groups() == 1
}

// dryDNN stands in for cuDNN in a dry run (Options.DryRunCuDNN): it plans
// every geometry cuDNN is handed and runs nothing, so that the backend
// counts the calls a GPU with cuDNN makes.
type dryDNN struct{}

func (dryDNN) supports(g compute.ConvGeom) bool { return dnnSupports(g) }
func (dryDNN) forward(*Backend, compute.ConvGeom, int, devptr, devptr, devptr) error {
	return nil
}
func (dryDNN) backwardData(*Backend, compute.ConvGeom, int, devptr, devptr, devptr) error {
	return nil
}
func (dryDNN) backwardFilter(*Backend, compute.ConvGeom, int, devptr, devptr, devptr) error {
	return nil
}
func (dryDNN) close() {}

// planError says that cuDNN could not plan a convolution (no algorithm, an
// unsupported shape): nothing ran, and the backend falls back to im2col.
type planError struct{ msg string }

func (e *planError) Error() string { return e.msg }
