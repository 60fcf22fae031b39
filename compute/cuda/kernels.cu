// proxykit's CUDA kernels. nvcc compiles this file to PTX (kernels.ptx,
// see gen.go); the emulated device compiles the same file for the host
// (emu.h defines what CUDA would). Each kernel is the GPU form of a CPU
// kernel in package compute and is held to it by package conformance.
//
// Conventions: sizes and indices are 64-bit; elementwise kernels walk
// their range with a grid-stride loop, so any grid covers any size; a
// kernel that calls __syncthreads() says so in its comment (the emulator
// runs those with one fiber per CUDA thread). Products and sums that
// the CPU backend computes in float32 without fused multiply-adds use
// __fmul_rn and __fadd_rn here too, so that both give the same bits.

#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)blockDim.x * gridDim.x)

// REDUCE_THREADS is the block size of the reduction kernels.
#define REDUCE_THREADS 256

// block_sum returns the sum of every thread's v to all threads of the
// block (blockDim.x == REDUCE_THREADS). Calls __syncthreads().
__device__ double block_sum(double v, double* shared) {
    int t = threadIdx.x;
    shared[t] = v;
    __syncthreads();
    for (int s = REDUCE_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) shared[t] += shared[t + s];
        __syncthreads();
    }
    double r = shared[0];
    __syncthreads();
    return r;
}

// ld is value i of p, which holds float32 values or, with half, IEEE
// binary16 ones (compute.F16).
__device__ float ld(const void* p, long long i, int half) {
    return half ? __half2float(((const __half*)p)[i]) : ((const float*)p)[i];
}

// st stores v as value i of p: float32, or with half binary16 rounded to
// nearest, ties to even.
__device__ void st(void* p, long long i, float v, int half) {
    if (half)
        ((__half*)p)[i] = __float2half_rn(v);
    else
        ((float*)p)[i] = v;
}

extern "C" {

// pk_fill sets p[0:n] to v.
__global__ void pk_fill(float* p, long long n, float v) {
    GRID_STRIDE(i, n) p[i] = v;
}

// pk_add_to adds src[0:n] into dst.
__global__ void pk_add_to(float* dst, const float* src, long long n) {
    GRID_STRIDE(i, n) dst[i] += src[i];
}

// pk_convert writes x[0:n] into y, each value rounded to y's type: x and
// y hold float32 values, or binary16 ones with x16 and y16
// (compute.HalfStore.Convert).
__global__ void pk_convert(const void* x, int x16, void* y, int y16, long long n) {
    GRID_STRIDE(i, n) st(y, i, ld(x, i, x16), y16);
}

// pk_copy_channels copies, for each of n samples, channels [src_off,
// src_off + c) of src (src_c channels of hw values) to channels [dst_off,
// dst_off + c) of dst (dst_c channels).
__global__ void pk_copy_channels(const float* src, float* dst, long long n, int c, long long hw, int src_c, int src_off,
                                 int dst_c, int dst_off) {
    GRID_STRIDE(i, n * c * hw) {
        long long s = i / (c * hw), r = i % (c * hw);
        dst[(s * dst_c + dst_off) * hw + r] = src[(s * src_c + src_off) * hw + r];
    }
}

// pk_sum writes the sum of x[0:n] into out[0] + out[1] (a float32 pair
// holding a double: hi and the remainder). One block. Calls __syncthreads().
__global__ void pk_sum(const float* x, long long n, float* out) {
    __shared__ double shared[REDUCE_THREADS];
    double s = 0;
    for (long long i = threadIdx.x; i < n; i += REDUCE_THREADS) s += x[i];
    s = block_sum(s, shared);
    if (threadIdx.x == 0) {
        float hi = (float)s;
        out[0] = hi;
        out[1] = (float)(s - (double)hi);
    }
}

// pixel is the index of channel c of pixel (ih, iw) of sample s in a
// tensor of C channels of H×W: NCHW, or channels-last (NHWC) with last.
__device__ long long pixel(long long s, int c, int ih, int iw, int C, int H, int W, int last) {
    return last ? ((s * H + ih) * W + iw) * C + c : ((s * C + c) * H + ih) * W + iw;
}

// pk_im2col writes the patches of ns samples as columns:
// col[k, s·P + p] = x[s, c, y·SH − PT + kh·DH, x·SW − PL + kw·DW] for
// k = (c, kh, kw) and output position p = (y, x), zero in the padding; x
// is NCHW, or NHWC with last (the columns are the same), of binary16
// values with x16 (the columns are float32).
__global__ void pk_im2col(const void* x, int x16, float* col, int C, int H, int W, int KH, int KW, int SH, int SW, int PT,
                          int PL, int DH, int DW, int OH, int OW, long long ns, int last) {
    long long P = (long long)OH * OW, cols = ns * P, K = (long long)C * KH * KW;
    GRID_STRIDE(i, K * cols) {
        long long k = i / cols, j = i % cols;
        long long s = j / P, p = j % P;
        int kw = k % KW, kh = (k / KW) % KH, c = k / (KW * KH);
        int oy = p / OW, ox = p % OW;
        int ih = oy * SH - PT + kh * DH, iw = ox * SW - PL + kw * DW;
        float v = 0;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = ld(x, pixel(s, c, ih, iw, C, H, W, last), x16);
        col[i] = v;
    }
}

// pk_col2im writes dx[s, c, ih, iw] = Σ over the taps (kh, kw) and output
// positions p that read that pixel of dcol[(c, kh, kw), s·P + p]: the
// adjoint of pk_im2col, gathered per input pixel (no atomics); dx is NCHW,
// or NHWC with last (the sums are the same).
__global__ void pk_col2im(const float* dcol, float* dx, int C, int H, int W, int KH, int KW, int SH, int SW, int PT,
                          int PL, int DH, int DW, int OH, int OW, long long ns, int last) {
    long long P = (long long)OH * OW, cols = ns * P;
    GRID_STRIDE(i, ns * C * H * W) {
        int iw, ih, c;
        long long s;
        if (last) {
            c = i % C, iw = (i / C) % W, ih = (i / ((long long)C * W)) % H;
        } else {
            iw = i % W, ih = (i / W) % H, c = (i / ((long long)W * H)) % C;
        }
        s = i / ((long long)W * H * C);
        float acc = 0;
        for (int kh = 0; kh < KH; kh++) {
            int ny = ih + PT - kh * DH;
            if (ny < 0 || ny % SH != 0) continue;
            int oy = ny / SH;
            if (oy >= OH) continue;
            for (int kw = 0; kw < KW; kw++) {
                int nx = iw + PL - kw * DW;
                if (nx < 0 || nx % SW != 0) continue;
                int ox = nx / SW;
                if (ox >= OW) continue;
                long long k = ((long long)c * KH + kh) * KW + kw;
                acc += dcol[k * cols + s * P + (long long)oy * OW + ox];
            }
        }
        dx[i] = acc;
    }
}

// pk_ocp_to_nchw turns a GEMM result [O, ns·P] into NCHW [ns, O, P], or
// with last NHWC [ns, P, O], adding bias[o] when bias is not null; dst
// receives binary16 values with dst16.
__global__ void pk_ocp_to_nchw(const float* src, void* dst, int dst16, const float* bias, int O, long long ns,
                               long long P, int last) {
    GRID_STRIDE(i, (long long)O * ns * P) {
        long long p, o, s = i / (P * O);
        if (last) {
            o = i % O, p = (i / O) % P;
        } else {
            p = i % P, o = (i / P) % O;
        }
        float v = src[o * ns * P + s * P + p];
        if (bias) v = __fadd_rn(v, bias[o]);
        st(dst, i, v, dst16);
    }
}

// pk_nchw_to_ocp is the inverse layout change: [ns, O, P] (or with last
// [ns, P, O]) to [O, ns·P].
__global__ void pk_nchw_to_ocp(const float* src, float* dst, int O, long long ns, long long P, int last) {
    GRID_STRIDE(i, (long long)O * ns * P) {
        long long p = i % P, s = (i / P) % ns, o = i / (P * ns);
        dst[i] = src[last ? (s * P + p) * O + o : (s * O + o) * P + p];
    }
}

// pk_conv_bias_grad adds Σ_{s,p} dy[s, o, p] into db[o] (with add; else
// writes it); block o. Calls __syncthreads().
__global__ void pk_conv_bias_grad(const float* dy, float* db, long long n, int O, long long P, int add) {
    __shared__ double shared[REDUCE_THREADS];
    int o = blockIdx.x;
    double s = 0;
    unsigned m = (unsigned)(n * P), p = (unsigned)P;
    for (unsigned e = threadIdx.x; e < m; e += REDUCE_THREADS) s += dy[((long long)(e / p) * O + o) * P + e % p];
    s = block_sum(s, shared);
    if (threadIdx.x == 0) db[o] = __fadd_rn(add ? db[o] : 0.0f, (float)s);
}

// pk_add_bias adds bias[o] to y [n, out, inner] (inner = 1 for a linear
// layer's rows, the output positions for a convolution's planes).
__global__ void pk_add_bias(float* y, const float* bias, long long n, int out, long long inner) {
    GRID_STRIDE(i, n * out * inner) y[i] = __fadd_rn(y[i], bias[(i / inner) % out]);
}

// pk_col_sum adds Σ_b dy[b, o] into db[o] (with add; else writes it), one
// thread per column, the rows summed in order.
__global__ void pk_col_sum(const float* dy, float* db, long long n, int out, int add) {
    GRID_STRIDE(o, (long long)out) {
        float s = 0;
        for (long long b = 0; b < n; b++) s = __fadd_rn(s, dy[b * out + o]);
        db[o] = __fadd_rn(add ? db[o] : 0.0f, s);
    }
}

// pk_relu writes y = max(x, 0).
__global__ void pk_relu(const float* x, float* y, long long n) {
    GRID_STRIDE(i, n) y[i] = x[i] > 0 ? x[i] : 0.0f;
}

// pk_relu_backward writes dx = dy where y > 0, else 0.
__global__ void pk_relu_backward(const float* y, const float* dy, float* dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

// pk_clip writes y = min(max(x, 0), ceiling); a NaN gives 0, as in pk_relu.
__global__ void pk_clip(const float* x, float* y, long long n, float ceiling) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        y[i] = v > 0 ? (v < ceiling ? v : ceiling) : 0.0f;
    }
}

// pk_clip_backward writes dx = dy where 0 < y < ceiling, else 0.
__global__ void pk_clip_backward(const float* y, const float* dy, float* dx, long long n, float ceiling) {
    GRID_STRIDE(i, n) dx[i] = y[i] > 0 && y[i] < ceiling ? dy[i] : 0.0f;
}

// pk_channel_shuffle writes, for each of n samples of c channels of hw
// values, output channel j = input channel (j mod groups)·(c/groups) +
// j/groups: ShuffleNet's channel shuffle.
__global__ void pk_channel_shuffle(const float* x, float* y, long long n, int groups, int c, long long hw) {
    GRID_STRIDE(i, n * c * hw) {
        long long s = i / (c * hw), r = i % (c * hw);
        long long j = r / hw, p = r % hw;
        long long src = (j % groups) * (c / groups) + j / groups;
        y[i] = x[(s * c + src) * hw + p];
    }
}

// first_max is the index within plane of the first maximum of output
// (oy, ox)'s window (a NaN wins, as in PyTorch), or -1 for an empty window;
// the plane's pixel ih·W + iw is at plane[(ih·W + iw)·stride] (stride C:
// one channel of an NHWC sample).
__device__ int first_max(const float* plane, int H, int W, int KH, int KW, int SH, int SW, int PT, int PL, int oy,
                         int ox, float* best, int stride) {
    int h0 = oy * SH - PT, w0 = ox * SW - PL;
    int h1 = h0 + KH < H ? h0 + KH : H, w1 = w0 + KW < W ? w0 + KW : W;
    if (h0 < 0) h0 = 0;
    if (w0 < 0) w0 = 0;
    int bi = -1;
    float b = 0;
    for (int ih = h0; ih < h1; ih++)
        for (int iw = w0; iw < w1; iw++) {
            float v = plane[(long long)(ih * W + iw) * stride];
            if (bi < 0 || v > b || v != v) {
                b = v;
                bi = ih * W + iw;
            }
        }
    *best = b;
    return bi;
}

// window_range sets [*lo, *hi] to the outputs along one axis whose window
// (starting at o·S − P, K wide) covers input position i.
__device__ void window_range(int i, int K, int S, int P, int O, int* lo, int* hi) {
    int a = i + P - K + 1;  // o·S ≥ a
    int l = a <= 0 ? 0 : (a + S - 1) / S;
    int h = (i + P) / S;  // o·S ≤ i + P
    *lo = l;
    *hi = h < O - 1 ? h : O - 1;
}

// plane_at splits output index i of n·C planes of OH×OW (NCHW, or NHWC
// with last) into its position (oy, ox) and returns the offset of its
// input plane of H×W in x and the stride of its pixels there (1, or C).
__device__ long long plane_at(long long i, int C, int H, int W, int OH, int OW, int last, int* oy, int* ox,
                              int* stride) {
    if (last) {
        int c = i % C;
        *ox = (i / C) % OW, *oy = (i / ((long long)C * OW)) % OH;
        *stride = C;
        return i / ((long long)C * OW * OH) * H * W * C + c;
    }
    *ox = i % OW, *oy = (i / OW) % OH;
    *stride = 1;
    return i / ((long long)OW * OH) * H * W;
}

// pk_maxpool writes each window's maximum; planes = n·C, NCHW or with last
// NHWC.
__global__ void pk_maxpool(const float* x, float* y, long long planes, int H, int W, int KH, int KW, int SH, int SW,
                           int PT, int PL, int OH, int OW, int C, int last) {
    GRID_STRIDE(i, planes * OH * OW) {
        int ox, oy, stride;
        long long base = plane_at(i, C, H, W, OH, OW, last, &oy, &ox, &stride);
        float best = -INFINITY;
        first_max(x + base, H, W, KH, KW, SH, SW, PT, PL, oy, ox, &best, stride);
        y[i] = best;
    }
}

// pk_maxpool_backward writes dx for each input pixel: the sum of the
// gradients of the windows whose first maximum it is (gathered, no
// atomics); NCHW, or NHWC with last. With relu, x is a ReLU's output and
// the sum goes through that ReLU (pk_relu_backward's rule: 0 unless x > 0).
__global__ void pk_maxpool_backward(const float* x, const float* dy, float* dx, long long planes, int H, int W, int KH,
                                    int KW, int SH, int SW, int PT, int PL, int OH, int OW, int C, int last, int relu) {
    GRID_STRIDE(i, planes * H * W) {
        int iw, ih, stride;
        long long base = plane_at(i, C, H, W, H, W, last, &ih, &iw, &stride);
        // dy's plane: its offset and stride in dy as base's in x
        long long dbase = last ? base / ((long long)H * W * C) * OH * OW * C + base % C : base / ((long long)H * W) * OH * OW;
        const float* plane = x + base;
        float acc = 0;
        // only the windows that cover (ih, iw), in output order
        int oy0, oy1, ox0, ox1;
        window_range(ih, KH, SH, PT, OH, &oy0, &oy1);
        window_range(iw, KW, SW, PL, OW, &ox0, &ox1);
        for (int oy = oy0; oy <= oy1; oy++) {
            for (int ox = ox0; ox <= ox1; ox++) {
                float b;
                if (first_max(plane, H, W, KH, KW, SH, SW, PT, PL, oy, ox, &b, stride) == ih * W + iw)
                    acc = __fadd_rn(acc, dy[dbase + (long long)(oy * OW + ox) * stride]);
            }
        }
        if (relu && !(x[i] > 0)) acc = 0;
        dx[i] = acc;
    }
}

// avg_window clips output (oy, ox)'s window to the input and returns its
// divisor: with count_pad the window's area up to the padded border.
__device__ int avg_window(int H, int W, int KH, int KW, int SH, int SW, int PT, int PL, int PB, int PR, int count_pad,
                          int oy, int ox, int* h0, int* h1, int* w0, int* w1) {
    int a0 = oy * SH - PT, b0 = ox * SW - PL;
    int a1 = a0 + KH < H + PB ? a0 + KH : H + PB, b1 = b0 + KW < W + PR ? b0 + KW : W + PR;
    int pad_area = (a1 - a0) * (b1 - b0);
    *h0 = a0 > 0 ? a0 : 0;
    *w0 = b0 > 0 ? b0 : 0;
    *h1 = a1 < H ? a1 : H;
    *w1 = b1 < W ? b1 : W;
    return count_pad ? pad_area : (*h1 - *h0) * (*w1 - *w0);
}

// pk_avgpool writes each window's mean; NCHW, or NHWC with last.
__global__ void pk_avgpool(const float* x, float* y, long long planes, int H, int W, int KH, int KW, int SH, int SW,
                           int PT, int PL, int PB, int PR, int OH, int OW, int count_pad, int C, int last) {
    GRID_STRIDE(i, planes * OH * OW) {
        int ox, oy, stride;
        long long base = plane_at(i, C, H, W, OH, OW, last, &oy, &ox, &stride);
        int h0, h1, w0, w1;
        int div = avg_window(H, W, KH, KW, SH, SW, PT, PL, PB, PR, count_pad, oy, ox, &h0, &h1, &w0, &w1);
        float s = 0;
        for (int ih = h0; ih < h1; ih++)
            for (int iw = w0; iw < w1; iw++) s = __fadd_rn(s, x[base + (long long)(ih * W + iw) * stride]);
        y[i] = div > 0 ? s / (float)div : 0.0f;
    }
}

// pk_avgpool_backward writes dx, gathering for each input pixel the
// gradient shares of the windows that cover it; NCHW, or NHWC with last.
__global__ void pk_avgpool_backward(const float* dy, float* dx, long long planes, int H, int W, int KH, int KW, int SH,
                                    int SW, int PT, int PL, int PB, int PR, int OH, int OW, int count_pad, int C,
                                    int last) {
    GRID_STRIDE(i, planes * H * W) {
        int iw, ih, stride;
        long long base = plane_at(i, C, H, W, H, W, last, &ih, &iw, &stride);
        long long dbase = last ? base / ((long long)H * W * C) * OH * OW * C + base % C : base / ((long long)H * W) * OH * OW;
        float acc = 0;
        int oy0, oy1, ox0, ox1;
        window_range(ih, KH, SH, PT, OH, &oy0, &oy1);
        window_range(iw, KW, SW, PL, OW, &ox0, &ox1);
        for (int oy = oy0; oy <= oy1; oy++) {
            for (int ox = ox0; ox <= ox1; ox++) {
                int h0, h1, w0, w1;
                int div = avg_window(H, W, KH, KW, SH, SW, PT, PL, PB, PR, count_pad, oy, ox, &h0, &h1, &w0, &w1);
                if (div == 0 || ih < h0 || ih >= h1 || iw < w0 || iw >= w1) continue;
                acc = __fadd_rn(acc, dy[dbase + (long long)(oy * OW + ox) * stride] / (float)div);
            }
        }
        dx[i] = acc;
    }
}

// pk_gap averages each of nc planes of hw values.
__global__ void pk_gap(const float* x, float* y, long long nc, long long hw) {
    GRID_STRIDE(i, nc) {
        float s = 0;
        for (long long j = 0; j < hw; j++) s = __fadd_rn(s, x[i * hw + j]);
        y[i] = s / (float)hw;
    }
}

// pk_gap_backward writes dx[i, :] = dy[i] / hw.
__global__ void pk_gap_backward(const float* dy, float* dx, long long nc, long long hw) {
    GRID_STRIDE(i, nc * hw) dx[i] = dy[i / hw] / (float)hw;
}

// pk_pad copies planes into padded planes filled with value.
__global__ void pk_pad(const float* x, float* y, long long nc, int H, int W, int PT, int PL, int OH, int OW,
                       float value) {
    GRID_STRIDE(i, nc * OH * OW) {
        int ox = i % OW, oy = (i / OW) % OH;
        long long p = i / ((long long)OW * OH);
        int ih = oy - PT, iw = ox - PL;
        y[i] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[(p * H + ih) * W + iw] : value;
    }
}

// pk_pad_backward keeps the gradient of the interior.
__global__ void pk_pad_backward(const float* dy, float* dx, long long nc, int H, int W, int PT, int PL, int OH,
                                int OW) {
    GRID_STRIDE(i, nc * H * W) {
        int iw = i % W, ih = (i / W) % H;
        long long p = i / ((long long)W * H);
        dx[i] = dy[(p * OH + ih + PT) * OW + iw + PL];
    }
}

// pk_softmax applies softmax (log-softmax with is_log) to each of n rows
// of k, in double as the CPU backend does.
__global__ void pk_softmax(const float* x, float* y, long long n, int k, int is_log) {
    GRID_STRIDE(b, n) {
        const float* row = x + b * k;
        float m = row[0];
        for (int j = 0; j < k; j++) m = row[j] > m ? row[j] : m;
        double s = 0;
        for (int j = 0; j < k; j++) s += exp((double)(row[j] - m));
        for (int j = 0; j < k; j++)
            y[b * k + j] = is_log ? (row[j] - m) - (float)log(s) : (float)(exp((double)(row[j] - m)) / s);
    }
}

// pk_softmax_backward writes dx from the forward output y and dy.
__global__ void pk_softmax_backward(const float* y, const float* dy, float* dx, long long n, int k, int is_log) {
    GRID_STRIDE(b, n) {
        float s = 0;
        for (int j = 0; j < k; j++) s = __fadd_rn(s, is_log ? dy[b * k + j] : __fmul_rn(dy[b * k + j], y[b * k + j]));
        for (int j = 0; j < k; j++) {
            long long i = b * k + j;
            dx[i] = is_log ? dy[i] - __fmul_rn((float)exp((double)y[i]), s) : __fmul_rn(y[i], dy[i] - s);
        }
    }
}

// pk_bn_stats writes the mean and biased variance of channel c of group g
// (x is [groups·n, C, hw]) into mean[g·C + c] and var[g·C + c]: block
// g·C + c, sums in double, two passes; x holds binary16 values with x16.
// Calls __syncthreads().
__global__ void pk_bn_stats(const void* x, int x16, float* mean, float* var, long long n, int C, long long hw) {
    __shared__ double shared[REDUCE_THREADS];
    int g = blockIdx.x / C, c = blockIdx.x % C;
    unsigned m = (unsigned)(n * hw), h = (unsigned)hw;
    long long xg = (long long)g * n * C * hw;
    double s = 0;
    for (unsigned e = threadIdx.x; e < m; e += REDUCE_THREADS) s += ld(x, xg + ((long long)(e / h) * C + c) * hw + e % h, x16);
    double mu = block_sum(s, shared) / (double)m;
    double q = 0;
    for (unsigned e = threadIdx.x; e < m; e += REDUCE_THREADS) {
        double d = ld(x, xg + ((long long)(e / h) * C + c) * hw + e % h, x16) - mu;
        q += d * d;
    }
    q = block_sum(q, shared);
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = (float)mu;
        var[blockIdx.x] = (float)(q / (double)m);
    }
}

// pk_bn_sums writes, for channel c of group g (x is [groups·n, C, hw]),
// the sum of x, or with mean (doubles, [groups, C]) of (x − mean)², into
// sums[g·C + c] (a double): pk_bn_stats's two passes apart, for a share of
// a batch whose sums other processes add (data-parallel training); x holds
// binary16 values with x16; block g·C + c. Calls __syncthreads().
__global__ void pk_bn_sums(const void* x, int x16, const double* mean, double* sums, long long n, int C, long long hw) {
    __shared__ double shared[REDUCE_THREADS];
    int g = blockIdx.x / C, c = blockIdx.x % C;
    unsigned m = (unsigned)(n * hw), h = (unsigned)hw;
    long long xg = (long long)g * n * C * hw;
    double s = 0;
    if (mean == 0) {
        for (unsigned e = threadIdx.x; e < m; e += REDUCE_THREADS) s += ld(x, xg + ((long long)(e / h) * C + c) * hw + e % h, x16);
    } else {
        double mu = mean[blockIdx.x];
        for (unsigned e = threadIdx.x; e < m; e += REDUCE_THREADS) {
            double d = ld(x, xg + ((long long)(e / h) * C + c) * hw + e % h, x16) - mu;
            s += d * d;
        }
    }
    s = block_sum(s, shared);
    if (threadIdx.x == 0) sums[blockIdx.x] = s;
}

// pk_bn_divide writes out32[i] = (float)(sums[i]/count) and, if out64 is
// not null, out64[i] = sums[i]/count, for n doubles: a mean or a variance
// from the summed sums.
__global__ void pk_bn_divide(const double* sums, double* out64, float* out32, long long n, long long count) {
    GRID_STRIDE(i, n) {
        double q = sums[i] / (double)count;
        if (out64 != 0) out64[i] = q;
        out32[i] = (float)q;
    }
}

// pk_bn_update_running folds groups rows of batch statistics into the
// running ones, in order; one thread per channel.
__global__ void pk_bn_update_running(const float* mean, const float* var, float* run_mean, float* run_var, int groups,
                                     int C, float momentum, float unbias) {
    GRID_STRIDE(c, (long long)C) {
        float rm = run_mean[c], rv = run_var[c], keep = 1.0f - momentum;
        for (int g = 0; g < groups; g++) {
            rm = __fadd_rn(__fmul_rn(keep, rm), __fmul_rn(momentum, mean[g * C + c]));
            rv = __fadd_rn(__fmul_rn(keep, rv), __fmul_rn(__fmul_rn(momentum, var[g * C + c]), unbias));
        }
        run_mean[c] = rm;
        run_var[c] = rv;
    }
}

// pk_bn_scale_shift writes scale = γ/√(var+eps) and shift = β − mean·scale
// for groups rows of C channels.
__global__ void pk_bn_scale_shift(const float* gamma, const float* beta, const float* mean, const float* var,
                                  float* scale, float* shift, long long rows, int C, float eps) {
    GRID_STRIDE(i, rows * C) {
        int c = i % C;
        float s = gamma[c] / sqrtf(__fadd_rn(var[i], eps));
        scale[i] = s;
        shift[i] = __fadd_rn(beta[c], -__fmul_rn(mean[i], s));
    }
}

// pk_channel_affine writes y = x·scale[g, c] + shift[g, c] (scale null: x +
// shift) for groups of n samples of C channels × hw, then with relu
// max(y, 0) as pk_relu computes it; y may be x.
__global__ void pk_channel_affine(const float* x, const float* scale, const float* shift, float* y, long long groups,
                                  long long n, int C, long long hw, int relu) {
    GRID_STRIDE(i, groups * n * C * hw) {
        int c = (i / hw) % C;
        long long g = i / (n * C * hw);
        float v = x[i];
        if (scale) v = __fmul_rn(v, scale[g * C + c]);
        v = __fadd_rn(v, shift[g * C + c]);
        y[i] = relu ? (v > 0 ? v : 0.0f) : v;
    }
}

// pk_bn_backward_reduce adds the channel sums Σdy and Σdy·x̂ into dbeta and
// dgamma (with add; else writes them) and keeps them in sums[c],
// sums[C + c] for pk_bn_backward_dx; block c. Calls __syncthreads().
__global__ void pk_bn_backward_reduce(const float* x, const float* dy, const float* mean, const float* var,
                                      float* dgamma, float* dbeta, float* sums, long long n, int C, long long hw,
                                      float eps, int add) {
    __shared__ double shared[REDUCE_THREADS];
    int c = blockIdx.x;
    double mu = mean[c], is = 1.0 / sqrt((double)__fadd_rn(var[c], eps));
    double sdy = 0, sdyx = 0;
    unsigned m = (unsigned)(n * hw), h = (unsigned)hw;
    for (unsigned e = threadIdx.x; e < m; e += REDUCE_THREADS) {
        long long j = ((long long)(e / h) * C + c) * hw + e % h;
        sdy += dy[j];
        sdyx += (double)dy[j] * ((double)x[j] - mu) * is;
    }
    sdy = block_sum(sdy, shared);
    sdyx = block_sum(sdyx, shared);
    if (threadIdx.x == 0) {
        dgamma[c] = __fadd_rn(add ? dgamma[c] : 0.0f, (float)sdyx);
        dbeta[c] = __fadd_rn(add ? dbeta[c] : 0.0f, (float)sdy);
        sums[c] = (float)sdy;
        sums[C + c] = (float)sdyx;
    }
}

// pk_bn_backward_dx writes dx = γ·invstd·(dy − Σdy/m − x̂·Σdy·x̂/m) with
// batch statistics (train), γ·invstd·dy with fixed ones; m = count, the
// values per channel the sums ran over (n·hw, or a whole batch's when n
// samples are a share of it).
__global__ void pk_bn_backward_dx(const float* x, const float* dy, float* dx, const float* gamma, const float* mean,
                                  const float* var, const float* sums, long long n, int C, long long hw, float eps,
                                  int train, long long count) {
    GRID_STRIDE(i, n * C * hw) {
        int c = (i / hw) % C;
        double is = 1.0 / sqrt((double)__fadd_rn(var[c], eps));
        double k = (double)gamma[c] * is;
        if (train) {
            double m = (double)count;
            double xh = ((double)x[i] - (double)mean[c]) * is;
            dx[i] = (float)(k * ((double)dy[i] - (double)sums[c] / m - xh * (double)sums[C + c] / m));
        } else {
            dx[i] = (float)(k * (double)dy[i]);
        }
    }
}

// if_current is an IF neuron's input current at step t: in[t, j] (in[j]
// when constant), mapped by the fused BatchNorm's scale and shift (rows
// g = t with per_step, else 0) when shift is not null (without scale: a
// bias, u + shift); in holds binary16 values with in16. pk_if, pk_if_pool
// and pk_if_record read their currents through it.
__device__ float if_current(const void* in, int in16, int constant, const float* scale, const float* shift,
                            int per_step, int C, int c, int t, long long N, long long j) {
    float u = ld(in, constant ? j : (long long)t * N + j, in16);
    if (shift) {
        int g = per_step ? t * C + c : c;
        if (scale) u = __fmul_rn(u, scale[g]);
        u = __fadd_rn(u, shift[g]);
    }
    return u;
}

// pk_if runs integrate-and-fire neurons over steps time steps, one thread
// per neuron: u = in[t, j] (in[j] when constant), mapped by scale/shift
// (rows g = t with per_step, else 0; channel c = (j / hw) mod C) when shift
// is not null (if_current); v += u; spike when v >= vth, then v = vreset. counts[j], if
// not null, adds the neuron's spikes. With start, v starts at vreset and
// counts at 0, unread. in16 and out16 say that in and spikes hold binary16
// values (compute.F16).
__global__ void pk_if(const void* in, int in16, int constant, const float* scale, const float* shift, int per_step,
                      int C, long long hw, float* v, void* spikes, int out16, float* counts, long long N, int steps,
                      float vth, float vreset, int start) {
    GRID_STRIDE(j, N) {
        float p = start ? vreset : v[j], fired = 0;
        int c = shift ? (int)((j / hw) % C) : 0;
        for (int t = 0; t < steps; t++) {
            float u = if_current(in, in16, constant, scale, shift, per_step, C, c, t, N, j);
            p = __fadd_rn(p, u);
            float s = 0;
            if (p >= vth) {
                s = 1;
                p = vreset;
            }
            st(spikes, (long long)t * N + j, s, out16);
            fired += s;
        }
        v[j] = p;
        if (counts) counts[j] = start ? fired : __fadd_rn(counts[j], fired);
    }
}

// pk_if_pool is pk_if with the spikes max-pooled (their OR) over KH×KW
// windows that tile each H×W plane: one thread per window, holding its
// neurons' potentials over the steps; y[t, w] is window w's OR at step t
// (N/(KH·KW) windows a step). Each neuron's recurrence is pk_if's, so the
// pooled spikes are pk_maxpool's of pk_if's. KH·KW ≤ 16. The neurons are
// PC channels of H×W a sample, NCHW or with last NHWC (spikes, potentials
// and counts alike); C is the shift's channels (PC where shift is set).
// in16 and out16 as for pk_if.
__global__ void pk_if_pool(const void* in, int in16, int constant, const float* scale, const float* shift,
                           int per_step, int C, float* v, void* y, int out16, float* counts, long long N, int steps, float vth, float vreset, int H,
                           int W, int KH, int KW, int start, int PC, int last) {
    int OH = H / KH, OW = W / KW, K = KH * KW;
    long long hw = (long long)H * W, windows = N / K;
    GRID_STRIDE(w, windows) {
        long long plane, s = 0;  // NCHW: the window's plane; NHWC: its sample
        int oh, ow, c;
        if (last) {
            c = (int)(w % PC);
            ow = (int)((w / PC) % OW), oh = (int)((w / ((long long)PC * OW)) % OH);
            s = w / ((long long)PC * OW * OH);
            plane = 0;
        } else {
            plane = w / (OH * OW);
            int r = (int)(w % (OH * OW));
            oh = r / OW, ow = r % OW;
            c = (int)(plane % PC);
        }
        if (!shift) c = 0;
        float p[16], fired[16];
        long long js[16];
        for (int i = 0; i < KH; i++) {
            for (int k = 0; k < KW; k++) {
                int e = i * KW + k;
                if (last)
                    js[e] = ((s * H + oh * KH + i) * W + ow * KW + k) * PC + (w % PC);
                else
                    js[e] = plane * hw + (long long)(oh * KH + i) * W + ow * KW + k;
                p[e] = start ? vreset : v[js[e]];
                fired[e] = 0;
            }
        }
        for (int t = 0; t < steps; t++) {
            float any = 0;
            for (int e = 0; e < K; e++) {
                float u = if_current(in, in16, constant, scale, shift, per_step, C, c, t, N, js[e]);
                p[e] = __fadd_rn(p[e], u);
                if (p[e] >= vth) {
                    fired[e] += 1;
                    p[e] = vreset;
                    any = 1;
                }
            }
            st(y, (long long)t * windows + w, any, out16);
        }
        for (int e = 0; e < K; e++) {
            v[js[e]] = p[e];
            if (counts) counts[js[e]] = start ? fired[e] : __fadd_rn(counts[js[e]], fired[e]);
        }
    }
}

// TILE is the side of the square tiles pk_transpose moves through shared
// memory.
#define TILE 32

// pk_transpose writes each of n rows×cols matrices of x transposed into y,
// y[s, j, i] = x[s, i, j], or with add adds it: an activation's layout
// change between NCHW and NHWC, a weight's to channels-last and its
// gradient's back. A block takes a TILE×TILE tile at a time (blocks walk
// the tiles with a stride of the grid), read along x's rows and written
// along y's through shared memory, so that both sides are coalesced. x
// and y hold float32 values, or binary16 ones with x16 and y16 (16-bit
// spikes change layout as they are). Calls __syncthreads().
__global__ void pk_transpose(const void* x, int x16, void* y, int y16, long long n, int rows, int cols, int add) {
    __shared__ float tile[TILE][TILE + 1];
    long long tr = (rows + TILE - 1) / TILE, tc = (cols + TILE - 1) / TILE, m = (long long)rows * cols;
    for (long long b = blockIdx.x; b < n * tr * tc; b += gridDim.x) {
        long long s = b / (tr * tc);
        int i0 = (int)((b / tc) % tr) * TILE, j0 = (int)(b % tc) * TILE;
        for (int k = threadIdx.x; k < TILE * TILE; k += blockDim.x) {
            int i = i0 + k / TILE, j = j0 + k % TILE;
            if (i < rows && j < cols) tile[k / TILE][k % TILE] = ld(x, s * m + (long long)i * cols + j, x16);
        }
        __syncthreads();
        for (int k = threadIdx.x; k < TILE * TILE; k += blockDim.x) {
            int j = j0 + k / TILE, i = i0 + k % TILE;
            if (i < rows && j < cols) {
                long long o = s * m + (long long)j * rows + i;
                float v = tile[k % TILE][k / TILE];
                st(y, o, add ? __fadd_rn(ld(y, o, y16), v) : v, y16);
            }
        }
        __syncthreads();
    }
}

// pk_proxy_loss_grad writes dy = 2(counts − onehot(labels))/(total·k) for
// n rows (total: the batch's rows, n or more when n are a share of it).
__global__ void pk_proxy_loss_grad(const float* counts, const float* labels, float* dy, long long n, int k,
                                   long long total) {
    GRID_STRIDE(i, n * k) {
        float d = counts[i];
        if ((int)(i % k) == (int)labels[i / k]) d = d - 1.0f;
        dy[i] = __fmul_rn(2.0f / (float)(total * k), d);
    }
}

// pk_adam is one step of PyTorch's Adam with L2 weight decay.
__global__ void pk_adam(float* p, const float* grad, float* m, float* v, long long n, float b1, float b2, float wd,
                        float eps, float step_size, float sqrt_bc2) {
    GRID_STRIDE(i, n) {
        float g = __fadd_rn(grad[i], __fmul_rn(wd, p[i]));
        float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(1.0f - b1, g));
        float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(1.0f - b2, g), g));
        m[i] = mi;
        v[i] = vi;
        float denom = __fadd_rn(sqrtf(vi) / sqrt_bc2, eps);
        p[i] = __fadd_rn(p[i], -(__fmul_rn(step_size, mi) / denom));
    }
}

// --- surrogate-gradient training (backpropagation through time) ---

// sigmoid_surrogate is compute.SigmoidSurrogate: alpha·σ(alpha·x)·(1 −
// σ(alpha·x)), in double, rounded once.
__device__ float sigmoid_surrogate(float x, float alpha) {
    double s = 1.0 / (1.0 + exp(-(double)alpha * (double)x));
    return (float)((double)alpha * s * (1.0 - s));
}

// pk_if_record is pk_if (the same bits) also writing each step's
// potential before the spike and the reset into h[t, j].
__global__ void pk_if_record(const float* in, int constant, const float* scale, const float* shift, int per_step, int C,
                             long long hw, float* v, float* spikes, float* counts, float* h, long long N, int steps,
                             float vth, float vreset) {
    GRID_STRIDE(j, N) {
        float p = v[j], fired = 0;
        int c = shift ? (int)((j / hw) % C) : 0;
        for (int t = 0; t < steps; t++) {
            float u = if_current(in, 0, constant, scale, shift, per_step, C, c, t, N, j);
            p = __fadd_rn(p, u);
            h[(long long)t * N + j] = p;
            float s = 0;
            if (p >= vth) {
                s = 1;
                p = vreset;
            }
            spikes[(long long)t * N + j] = s;
            fired += s;
        }
        v[j] = p;
        if (counts) counts[j] = __fadd_rn(counts[j], fired);
    }
}

// pk_if_surrogate_grad is the IF recurrence's backward pass through time
// (compute.IFGradArgs), one thread per neuron from the last step back:
// g = ds + dv·(vreset − h) (without the reset's term when detach), dh =
// g·σ'(h − vth) + (dv where there was no spike), du = dh, dv = dh. With
// const_grad ds is [N] for every step; with const_input du is [N], summed
// over the steps.
__global__ void pk_if_surrogate_grad(const float* h, const float* ds, int const_grad, float* du, int const_input,
                                     long long N, int steps, float vth, float vreset, float alpha, int detach) {
    GRID_STRIDE(j, N) {
        float dv = 0, acc = 0;
        for (int t = steps - 1; t >= 0; t--) {
            long long i = (long long)t * N + j;
            float hv = h[i];
            float g = const_grad ? ds[j] : ds[i];
            if (!detach) g = __fadd_rn(g, __fmul_rn(dv, __fadd_rn(vreset, -hv)));
            float dh = __fmul_rn(g, sigmoid_surrogate(__fadd_rn(hv, -vth), alpha));
            if (!(hv >= vth)) dh = __fadd_rn(dh, dv);
            if (const_input) {
                acc = __fadd_rn(acc, dh);
            } else {
                du[i] = dh;
            }
            dv = dh;
        }
        if (const_input) du[j] = acc;
    }
}

}  // extern "C"
