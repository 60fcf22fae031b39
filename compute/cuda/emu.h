// emu.h makes CUDA C kernels compile and run as host C++ (C++20): the
// emulated device. A launch runs the grid's blocks one after another; a
// block's threads run one after another too, unless the kernel calls
// __syncthreads(), in which case each CUDA thread of the block is a host
// thread and __syncthreads() is a barrier across them. __shared__
// variables are function statics: one copy, shared by the block's threads
// (blocks never overlap). Device memory is host memory.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The launch's geometry. threadIdx and blockIdx belong to each host thread
// that plays a CUDA thread; gridDim and blockDim are the same for all.
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 gridDim, blockDim;
// The barrier of the block being run, when the kernel synchronises.
extern thread_local std::barrier<>* emu_block_barrier;

#define __global__
#define __device__ static inline
#define __shared__ static
#define __restrict__

inline void __syncthreads() {
    if (emu_block_barrier == nullptr) {
        std::fprintf(stderr, "emulated CUDA: __syncthreads() in a kernel registered as not synchronising\n");
        std::abort();
    }
    emu_block_barrier->arrive_and_wait();
}

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
