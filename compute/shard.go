package compute

import (
	"fmt"
	"math"
	"time"
	"unsafe"
)

// Data-parallel training (package dist, docs/design.md §8) runs each
// global batch as shares, one per process. Most kernels need nothing new:
// a share's gradients are partial sums the processes add. The kernels
// whose results depend on the whole batch — the proxy loss's mean and
// BatchNorm's batch statistics and their backward pass — come in two
// parts: sums over the share, which the processes combine, and what is
// computed from the combined sums.

// Sharded is implemented by backends that can run a share of a batch whose
// other shares run elsewhere. Float64 values (BatchNorm's sums) occupy two
// float32 places of a Buffer each: allocate 2·n values for n of them.
type Sharded interface {
	Backend
	// ProxyLossGradOf is ProxyLossGrad for the n rows of one share of a
	// batch of total rows: dy = 2(counts − onehot)/(total·k).
	ProxyLossGradOf(n, total, k int, counts, labels, dy Buffer)
	// BatchNormSums writes, for each of groups groups of n samples (x is
	// [groups·n, c, hw]) and each channel, the sum over the group's samples
	// and pixels of x, or with mean (float64 values, [groups, c]) of
	// (x − mean)², into sums (float64 values, [groups, c]). The sum over a
	// batch is the processes' sums added in the batch reduction order
	// (docs/design.md §4); BatchNormStats is these sums divided by the
	// count (BatchNormDivide).
	BatchNormSums(groups, n, c, hw int, x, mean, sums Buffer)
	// BatchNormDivide writes out32[i] = float32(sums[i]/count) and, if out64
	// is not nil, out64[i] = sums[i]/count (float64), for n values.
	BatchNormDivide(n, count int, sums, out64, out32 Buffer)
	// BatchNormBackwardSums writes Σdy and Σdy·x̂ of each channel over n
	// samples into sums ([2, c], float32: Σdy first) and adds them into
	// dgamma and dbeta: BatchNormBackward's sums, for the statistics
	// (mean, variance) the forward pass normalised with.
	BatchNormBackwardSums(n, c, hw int, eps float32, mean, variance, x, dy, sums, dgamma, dbeta Buffer)
	// BatchNormBackwardData writes dx for n samples with batch statistics,
	// from sums over the whole batch of count values per channel:
	// dx = γ·invstd·(dy − Σdy/count − x̂·Σdy·x̂/count).
	BatchNormBackwardData(n, c, hw, count int, eps float32, gamma, mean, variance, x, dy, sums, dx Buffer)
}

// HostComm is a communicator between the processes of a data-parallel run
// over host memory (package dist implements it over MPI, and between
// ranks of one process for tests). A backend's collectives use it to
// share their bootstrap token or, on the emulated CUDA device, to move
// the data.
type HostComm interface {
	// Rank is this process's index, from 0; Size the number of processes.
	Rank() int
	Size() int
	// AllReduceF32 and AllReduceF64 replace x by its sum over the
	// processes, every process getting the same bits.
	AllReduceF32(x []float32) error
	AllReduceF64(x []float64) error
	// Broadcast copies root's b into every process's b (of equal length).
	Broadcast(root int, b []byte) error
}

// Collectives sum and broadcast one backend's buffers across the processes
// of a data-parallel run: NCCL on the CUDA backend, package dist's host
// collectives on the CPU.
type Collectives interface {
	// AllReduce replaces each buffer by its sum over the processes, in
	// place: float32 values, or with f64 float64 values (two places each).
	AllReduce(bufs []Buffer, f64 bool) error
	// Start begins the sum of bufs (float32) in the order of the calls;
	// where Async, it runs beside kernels queued later (NCCL on a stream
	// of its own). Wait ends every started sum: kernels queued after it
	// see the sums.
	Start(bufs []Buffer) error
	Wait() error
	// Async says whether Start overlaps with later kernels.
	Async() bool
	// Broadcast copies root's buffers into every process's.
	Broadcast(root int, bufs []Buffer) error
	// Describe names the library and transport, for logs.
	Describe() string
	Close() error
}

// CollectiveBackend is implemented by backends with collectives of their
// own (the CUDA backend: NCCL, or its emulation on the emulated device).
type CollectiveBackend interface {
	// CollectiveID makes, on rank 0, the token every rank joins with
	// (ncclGetUniqueId).
	CollectiveID() ([]byte, error)
	// JoinCollectives joins rank of size processes with rank 0's token.
	// host, if not nil, is the processes' host communicator; a
	// collective that has not completed within timeout fails, saying so.
	JoinCollectives(rank, size int, id []byte, host HostComm, timeout time.Duration) (Collectives, error)
}

// HostData is the host memory behind a CPU buffer, or false for another
// backend's buffer.
func HostData(b Buffer) ([]float32, bool) {
	hb, ok := b.(*hostBuffer)
	if !ok {
		return nil, false
	}
	return hb.data, true
}

// Float64s views float32 places as the float64 values they hold (two
// places each; len(f) must be even).
func Float64s(f []float32) []float64 {
	if len(f) == 0 {
		return nil
	}
	if len(f)%2 != 0 {
		panic(fmt.Sprintf("compute: %d float32 places hold no whole number of float64 values", len(f)))
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(&f[0])), len(f)/2)
}

// host64 is the float64 values a CPU buffer holds (nil for nil).
func host64(b Buffer) []float64 {
	if b == nil {
		return nil
	}
	return Float64s(host(b))
}

// ProxyLossGradOf implements Sharded.
func (c *CPU) ProxyLossGradOf(n, total, k int, counts, labels, dy Buffer) {
	ProxyLossGradOf(n, total, k, host(counts), host(labels), host(dy))
}

// ProxyLossGradOf writes the proxy loss gradient of n rows of a batch of
// total rows: dy = 2(counts − onehot)/(total·k), rounded as ProxyLossGrad.
func ProxyLossGradOf(n, total, k int, counts, labels, dy []float32) {
	scale := float32(2) / float32(total*k)
	for i := 0; i < n; i++ {
		label := int(labels[i])
		for j := 0; j < k; j++ {
			d := counts[i*k+j]
			if j == label {
				d--
			}
			dy[i*k+j] = scale * d
		}
	}
}

// BatchNormSums implements Sharded: BatchNormStats's sums, in its order.
func (c *CPU) BatchNormSums(groups, n, cc, hw int, x, mean, sums Buffer) {
	BatchNormSums(groups, n, cc, hw, host(x), host64(mean), host64(sums))
}

// BatchNormSums writes each group's and channel's sum of x (mean nil) or
// of (x − mean)² over n samples, in float64, in BatchNormStats's order.
func BatchNormSums(groups, n, c, hw int, x []float32, mean, sums []float64) {
	for g := 0; g < groups; g++ {
		xg := x[g*n*c*hw : (g+1)*n*c*hw]
		for ch := 0; ch < c; ch++ {
			var s float64
			for smp := 0; smp < n; smp++ {
				for _, v := range xg[(smp*c+ch)*hw : (smp*c+ch+1)*hw] {
					if mean == nil {
						s += float64(v)
					} else {
						d := float64(v) - mean[g*c+ch]
						s += d * d
					}
				}
			}
			sums[g*c+ch] = s
		}
	}
}

// BatchNormDivide implements Sharded.
func (c *CPU) BatchNormDivide(n, count int, sums, out64, out32 Buffer) {
	s, o64, o32 := host64(sums), host64(out64), host(out32)
	m := float64(count)
	for i := 0; i < n; i++ {
		q := s[i] / m
		if o64 != nil {
			o64[i] = q
		}
		o32[i] = float32(q)
	}
}

// BatchNormBackwardSums implements Sharded.
func (c *CPU) BatchNormBackwardSums(n, cc, hw int, eps float32, mean, variance, x, dy, sums, dgamma, dbeta Buffer) {
	BatchNormBackwardSums(n, cc, hw, eps, host(mean), host(variance), host(x), host(dy), host(sums))
	s, dg, db := host(sums), host(dgamma), host(dbeta)
	for ch := 0; ch < cc; ch++ {
		dg[ch] += s[cc+ch]
		db[ch] += s[ch]
	}
}

// BatchNormBackwardSums writes BatchNormBackward's channel sums Σdy
// (sums[ch]) and Σdy·x̂ (sums[c+ch]) over n samples, as BatchNormBackward
// forms them.
func BatchNormBackwardSums(n, c, hw int, eps float32, mean, variance, x, dy, sums []float32) {
	for ch := 0; ch < c; ch++ {
		mu := float64(mean[ch])
		is := 1 / math.Sqrt(float64(variance[ch]+eps))
		var sdy, sdyx float64
		for s := 0; s < n; s++ {
			off := (s*c + ch) * hw
			for i, g := range dy[off : off+hw] {
				sdy += float64(g)
				sdyx += float64(g) * (float64(x[off+i]) - mu) * is
			}
		}
		sums[ch], sums[c+ch] = float32(sdy), float32(sdyx)
	}
}

// BatchNormBackwardData implements Sharded.
func (c *CPU) BatchNormBackwardData(n, cc, hw, count int, eps float32, gamma, mean, variance, x, dy, sums, dx Buffer) {
	BatchNormBackwardData(n, cc, hw, count, eps, host(gamma), host(mean), host(variance), host(x), host(dy), host(sums), host(dx))
}

// BatchNormBackwardData writes BatchNormBackward's dx with batch
// statistics for n samples, from channel sums over count values.
func BatchNormBackwardData(n, c, hw, count int, eps float32, gamma, mean, variance, x, dy, sums, dx []float32) {
	m := float64(count)
	for ch := 0; ch < c; ch++ {
		mu := float64(mean[ch])
		is := 1 / math.Sqrt(float64(variance[ch]+eps))
		sdy, sdyx := float64(sums[ch]), float64(sums[c+ch])
		k := float64(gamma[ch]) * is
		for s := 0; s < n; s++ {
			off := (s*c + ch) * hw
			for i, g := range dy[off : off+hw] {
				xh := (float64(x[off+i]) - mu) * is
				dx[off+i] = float32(k * (float64(g) - sdy/m - xh*sdyx/m))
			}
		}
	}
}

var _ Sharded = (*CPU)(nil)
