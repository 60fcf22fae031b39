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

using std::exp;
using std::log;
using std::sqrt;
