package train

import (
	"context"

	"github.com/proxykit/proxykit/compute"
	"github.com/proxykit/proxykit/data"
	"github.com/proxykit/proxykit/nn"
	"github.com/proxykit/proxykit/results"
	"github.com/proxykit/proxykit/spiking"
)

// Evaluate runs both networks, BatchNorm in eval mode, over a data set on
// be, batch images at a time, stopping with ErrInterrupted once ctx is
// cancelled.
func Evaluate(ctx context.Context, be compute.Backend, ann *nn.Network, snn *spiking.Network, d *data.Dataset, batch int) (results.Report, error) {
	if err := d.Check(); err != nil {
		return results.Report{}, err
	}
	e, err := NewEngine(be, ann, snn, min(batch, max(d.N, 1)))
	if err != nil {
		return results.Report{}, err
	}
	defer e.Free()
	return e.Report(ctx, d)
}
