// The emulated device: kernels.cu compiled for the host, and a launcher
// that runs a kernel's grid as emu.h describes.
#include "emu.h"

#include <cstddef>
#include <cstring>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

thread_local dim3 threadIdx, blockIdx;
dim3 gridDim, blockDim;

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
    KERNEL(pk_convert, false),
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
    KERNEL(pk_clip, false),
    KERNEL(pk_clip_backward, false),
    KERNEL(pk_channel_shuffle, false),
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
    KERNEL(pk_bn_sums, true),
    KERNEL(pk_bn_divide, false),
    KERNEL(pk_bn_update_running, false),
    KERNEL(pk_bn_scale_shift, false),
    KERNEL(pk_channel_affine, false),
    KERNEL(pk_bn_backward_reduce, true),
    KERNEL(pk_bn_backward_dx, false),
    KERNEL(pk_if, false),
    KERNEL(pk_if_pool, false),
    KERNEL(pk_proxy_loss_grad, false),
    KERNEL(pk_adam, false),
    KERNEL(pk_transpose, true),
    KERNEL(pk_if_record, false),
    KERNEL(pk_if_surrogate_grad, false),
};

std::mutex launch_mutex;  // one launch at a time: gridDim and blockDim are shared

void set_index(dim3& d, unsigned long long i, const dim3& extent) {
    d = dim3(i % extent.x, (i / extent.x) % extent.y, i / ((unsigned long long)extent.x * extent.y));
}

// Fibers: the CUDA threads of a synchronising kernel's block. Each has a
// stack of its own; the scheduler (run_block) switches to each fiber in
// turn, and a fiber switches back at __syncthreads() or when its thread
// ends, so every thread reaches a barrier before any passes it. The order
// is fixed, so runs repeat exactly.
struct Fiber {
    void* sp;   // its saved stack pointer while switched out
    bool done;  // its thread has returned
};

constexpr std::size_t fiber_stack = 128 << 10;
std::vector<Fiber> fibers;
std::vector<char*> fiber_stacks;
void* scheduler_sp;     // the scheduler's saved stack pointer
Fiber* current;         // the fiber running
const Kernel* fiber_kernel;
void** fiber_args;

}  // namespace

#if defined(__x86_64__)
// emu_switch saves the callee-saved registers and the floating-point
// control words on the current stack, stores the stack pointer in *save
// and resumes the context saved at next (System V AMD64; a new fiber's
// stack is laid out as if it had switched out at its entry).
extern "C" void emu_switch(void** save, void* next);
asm(R"(
    .text
    .p2align 4
    .globl emu_switch
    .hidden emu_switch
    .type emu_switch,@function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");

#endif

namespace {

// fiber_entry is where a new fiber starts: it runs its thread of the
// kernel, then switches back for good.
[[noreturn]] void fiber_entry() {
    fiber_kernel->run(fiber_args);
    current->done = true;
    emu_switch(&current->sp, scheduler_sp);
    std::abort();  // a finished fiber is never resumed
}

#if defined(__x86_64__)
// fiber_start lays out a new fiber's stack as emu_switch leaves a
// switched-out one: control words, six zero registers, and fiber_entry as
// the return address, 16-byte aligned as at a function's entry.
void* fiber_start(char* stack) {
    auto top = reinterpret_cast<std::uintptr_t>(stack + fiber_stack) & ~std::uintptr_t(15);
    auto* sp = reinterpret_cast<std::uint64_t*>(top - 72);
    std::uint32_t csr[2];
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(csr[0]), "=m"(csr[1]));
    std::memcpy(&sp[0], csr, 8);
    for (int r = 1; r <= 6; r++) sp[r] = 0;
    sp[7] = reinterpret_cast<std::uint64_t>(&fiber_entry);
    sp[8] = 0;  // fiber_entry's return address: it never returns
    return sp;
}
#else
// Elsewhere fibers are ucontexts: slower (a system call per switch), the
// same order.
ucontext_t scheduler_uc;
std::vector<ucontext_t> fiber_ucs;

void* fiber_start(char* stack) {
    auto t = (std::size_t)(current - fibers.data());
    if (fiber_ucs.size() <= t) fiber_ucs.resize(fibers.size());
    ucontext_t& uc = fiber_ucs[t];
    getcontext(&uc);
    uc.uc_stack.ss_sp = stack;
    uc.uc_stack.ss_size = fiber_stack;
    uc.uc_link = nullptr;
    makecontext(&uc, (void (*)())fiber_entry, 0);
    return &uc;
}

extern "C" void emu_switch(void** save, void* next) {
    // save is a fiber's or the scheduler's slot; the contexts live in
    // fiber_ucs and scheduler_uc
    ucontext_t* from = save == &scheduler_sp ? &scheduler_uc : &fiber_ucs[(Fiber*)((char*)save - offsetof(Fiber, sp)) - fibers.data()];
    *save = from;
    swapcontext(from, (ucontext_t*)next);
}
#endif

// run_block runs one block of a synchronising kernel with one fiber per
// thread, round after round, until every thread has returned.
void run_block(const Kernel& kern, void** args, unsigned long long threads) {
    fiber_kernel = &kern;
    fiber_args = args;
    if (fibers.size() < threads) {
        fibers.resize(threads);
        while (fiber_stacks.size() < threads) fiber_stacks.push_back(new char[fiber_stack]);
    }
    for (unsigned long long t = 0; t < threads; t++) {
        current = &fibers[t];
        fibers[t] = Fiber{fiber_start(fiber_stacks[t]), false};
    }
    for (bool running = true; running;) {
        running = false;
        for (unsigned long long t = 0; t < threads; t++) {
            if (fibers[t].done) continue;
            current = &fibers[t];
            set_index(threadIdx, t, blockDim);
            emu_switch(&scheduler_sp, fibers[t].sp);
            running = running || !fibers[t].done;
        }
    }
    current = nullptr;
}

}  // namespace

void emu_syncthreads() {
    if (current == nullptr) {
        std::fprintf(stderr, "emulated CUDA: __syncthreads() in a kernel registered as not synchronising\n");
        std::abort();
    }
    emu_switch(&current->sp, scheduler_sp);
}

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
    for (unsigned long long b = 0; b < blocks; b++) {
        set_index(blockIdx, b, gridDim);
        run_block(kern, args, threads);
    }
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
