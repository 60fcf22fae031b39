package cuda

import "github.com/proxykit/proxykit/compute"

// The kernels of compute.Sharded: a share of a batch whose sums other
// processes add (data-parallel training, package distributed).

// ProxyLossGradOf implements compute.Sharded.
func (be *Backend) ProxyLossGradOf(n, total, k int, counts, labels, dy compute.Buffer) {
	be.launch1d("pk_proxy_loss_grad", int64(n*k), rw(int64(n*k+n), int64(n*k)), ptr(counts), ptr(labels), ptr(dy), int64(n), int32(k), int64(total))
}

// BatchNormSums implements compute.Sharded: a block per (group, channel),
// pk_bn_stats's passes apart (channels-last: lastRows).
func (be *Backend) BatchNormSums(groups, n, c, hw int, layout compute.Layout, x, mean, sums compute.Buffer) {
	e := compute.ElemOf(x) // F32, or F16 (HalfStore)
	t := traffic{read: int64(groups*n*c*hw) * e.Bytes(), written: 4 * 2 * int64(groups*c)}
	if mean != nil {
		t.read += 4 * 2 * int64(groups*c)
	}
	rows, p := lastRows(layout, n, hw)
	be.launchBlocks("pk_bn_sums", groups*c, t, anyPtr(x), half(e), ptr(mean), ptr(sums), int64(rows), int32(c), p)
}

// BatchNormDivide implements compute.Sharded.
func (be *Backend) BatchNormDivide(n, count int, sums, out64, out32 compute.Buffer) {
	w := int64(n)
	if out64 != nil {
		w += 2 * int64(n)
	}
	be.launch1d("pk_bn_divide", int64(n), rw(2*int64(n), w), ptr(sums), ptr(out64), ptr(out32), int64(n), int64(count))
}

// BatchNormBackwardSums implements compute.Sharded: BatchNormBackward's
// reduction kernel, which adds the sums into dγ and dβ and keeps them.
func (be *Backend) BatchNormBackwardSums(n, c, hw int, layout compute.Layout, eps float32, mean, variance, x, dy, sums, dgamma, dbeta compute.Buffer) {
	be.bnBackwardReduce(n, c, hw, layout, eps, mean, variance, x, dy, sums, dgamma, dbeta, true)
}

// BatchNormBackwardData implements compute.Sharded.
func (be *Backend) BatchNormBackwardData(n, c, hw, count int, layout compute.Layout, eps float32, gamma, mean, variance, x, dy, sums, dx compute.Buffer) {
	be.bnBackwardDX(n, c, hw, count, layout, true, eps, gamma, mean, variance, x, dy, sums, dx)
}

var _ compute.Sharded = (*Backend)(nil)
