// emu.h makes CUDA C kernels compile and run as host C++ (C++20): the
// emulated device. A launch runs the grid's blocks one after another; a
// block's threads run one after another too, unless the kernel calls
// __syncthreads(), in which case each CUDA thread of the block is a fiber
// (a stack of its own, switched to and from on one host thread) and
// __syncthreads() switches to the next fiber: every thread runs up to the
// barrier before any goes past it. __shared__ variables are function
// statics: one copy, shared by the block's threads (blocks never
// overlap). Device memory is host memory.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The launch's geometry: threadIdx is the running CUDA thread's (the
// launcher sets it before it runs each thread or fiber).
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 gridDim, blockDim;

// emu_syncthreads is __syncthreads() on the emulated device (emu.cpp).
void emu_syncthreads();

#define __global__
#define __device__ static inline
#define __shared__ static
#define __restrict__

inline void __syncthreads() { emu_syncthreads(); }

// Single-rounding float arithmetic, as on the GPU: the product goes
// through a volatile, so that no compiler fuses it into a following add
// (cgo does not pass -ffp-contract=off).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) {
    volatile float r = a * b;
    return r;
}

// __half is CUDA's IEEE binary16 (cuda_fp16.h), converted in software:
// __float2half_rn rounds to nearest, ties to even, as the GPU's cvt.rn
// does (overflow to infinity, subnormals kept, NaN kept a NaN).
struct __half {
    uint16_t x;
};

inline __half __float2half_rn(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    uint32_t a = b & 0x7fffffff;
    if (a >= 0x7f800000)  // infinity, NaN (quiet, payload's top bits)
        return __half{(uint16_t)(sign | 0x7c00 | (a > 0x7f800000 ? 0x200 | ((a >> 13) & 0x3ff) : 0))};
    if (a >= 0x477ff000)  // 65520 and above round to infinity
        return __half{(uint16_t)(sign | 0x7c00)};
    if (a < 0x38800000) {  // below 2^-14: a multiple of 2^-24, rounded
        float m;
        std::memcpy(&m, &a, 4);
        return __half{(uint16_t)(sign | (uint16_t)std::nearbyint(m * 16777216.0f))};
    }
    uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ff), rest = a & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return __half{(uint16_t)(sign | h)};
}

inline float __half2float(__half h) {
    uint32_t sign = (uint32_t)(h.x & 0x8000) << 16, e = (h.x >> 10) & 0x1f, m = h.x & 0x3ff;
    if (e == 0) {
        float f = std::ldexp((float)m, -24);
        return sign ? -f : f;
    }
    uint32_t b = sign | (e == 31 ? 0x7f800000 | m << 13 : (e + 112) << 23 | m << 13);
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

using std::exp;
using std::log;
using std::sqrt;
