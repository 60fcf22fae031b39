// The emulated device: kernels.cu compiled for the host, and a launcher
// that runs a kernel's grid as emu.h describes.
#include "emu.h"

#include <cstring>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

thread_local dim3 threadIdx, blockIdx;
dim3 gridDim, blockDim;
thread_local std::barrier<>* emu_block_barrier = nullptr;

#include "kernels.cu"

#include "emu_api.h"

namespace {

// call unpacks a CUDA-style argument array (a pointer to each argument's
// value, as cuLaunchKernel takes it) into f's parameters.
template <typename... A, std::size_t... I>
void call_impl(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

template <typename... A>
void call(void (*f)(A...), void** args) {
    call_impl(f, args, std::index_sequence_for<A...>{});
}

struct Kernel {
    const char* name;
    void (*run)(void** args);
    bool syncs;  // calls __syncthreads()
};

#define KERNEL(name, syncs) {#name, [](void** a) { call(name, a); }, syncs}

const Kernel kernels[] = {
    KERNEL(pk_fill, false),
    KERNEL(pk_add_to, false),
    KERNEL(pk_copy_channels, false),
    KERNEL(pk_sum, true),
    KERNEL(pk_im2col, false),
    KERNEL(pk_col2im, false),
    KERNEL(pk_ocp_to_nchw, false),
    KERNEL(pk_nchw_to_ocp, false),
    KERNEL(pk_conv_bias_grad, true),
    KERNEL(pk_add_bias, false),
    KERNEL(pk_col_sum, false),
    KERNEL(pk_relu, false),
    KERNEL(pk_relu_backward, false),
    KERNEL(pk_maxpool, false),
    KERNEL(pk_maxpool_backward, false),
    KERNEL(pk_avgpool, false),
    KERNEL(pk_avgpool_backward, false),
    KERNEL(pk_gap, false),
    KERNEL(pk_gap_backward, false),
    KERNEL(pk_pad, false),
    KERNEL(pk_pad_backward, false),
    KERNEL(pk_softmax, false),
    KERNEL(pk_softmax_backward, false),
    KERNEL(pk_bn_stats, true),
    KERNEL(pk_bn_update_running, false),
    KERNEL(pk_bn_scale_shift, false),
    KERNEL(pk_channel_affine, false),
    KERNEL(pk_bn_backward_reduce, true),
    KERNEL(pk_bn_backward_dx, false),
    KERNEL(pk_if, false),
    KERNEL(pk_proxy_loss_grad, false),
    KERNEL(pk_adam, false),
};

std::mutex launch_mutex;  // one launch at a time: gridDim and blockDim are shared

void set_index(dim3& d, unsigned long long i, const dim3& extent) {
    d = dim3(i % extent.x, (i / extent.x) % extent.y, i / ((unsigned long long)extent.x * extent.y));
}

}  // namespace

extern "C" int emu_kernel_index(const char* name) {
    for (std::size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (std::strcmp(kernels[i].name, name) == 0) return (int)i;
    return -1;
}

extern "C" int emu_launch(int k, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                          void** args) {
    if (k < 0 || k >= (int)(sizeof kernels / sizeof kernels[0])) return 1;
    std::lock_guard<std::mutex> lock(launch_mutex);
    gridDim = dim3(gx, gy, gz);
    blockDim = dim3(bx, by, bz);
    unsigned long long blocks = (unsigned long long)gx * gy * gz, threads = (unsigned long long)bx * by * bz;
    const Kernel& kern = kernels[k];
    if (!kern.syncs) {
        for (unsigned long long b = 0; b < blocks; b++) {
            set_index(blockIdx, b, gridDim);
            for (unsigned long long t = 0; t < threads; t++) {
                set_index(threadIdx, t, blockDim);
                kern.run(args);
            }
        }
        return 0;
    }
    // One host thread per CUDA thread, all walking the blocks in order and
    // meeting at the barrier at every __syncthreads() and after each block.
    std::barrier<> bar((std::ptrdiff_t)threads);
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned long long t = 0; t < threads; t++) {
        pool.emplace_back([&, t] {
            emu_block_barrier = &bar;
            set_index(threadIdx, t, blockDim);
            for (unsigned long long b = 0; b < blocks; b++) {
                set_index(blockIdx, b, gridDim);
                kern.run(args);
                bar.arrive_and_wait();
            }
            emu_block_barrier = nullptr;
        });
    }
    for (auto& th : pool) th.join();
    return 0;
}

extern "C" uint64_t emu_alloc(uint64_t bytes) {
    void* p = std::calloc(bytes > 0 ? bytes : 1, 1);
    return (uint64_t)(uintptr_t)p;
}

extern "C" void emu_free(uint64_t p) { std::free((void*)(uintptr_t)p); }

extern "C" float* emu_ptr(uint64_t p) { return (float*)(uintptr_t)p; }

extern "C" void emu_copy(uint64_t dst, uint64_t src, uint64_t bytes) {
    std::memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, bytes);
}
