// The emulated device's C interface, called from emu.go.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// emu_kernel_index is a kernel's index for emu_launch, or -1.
int emu_kernel_index(const char* name);
// emu_launch runs kernel k over a grid; args point to the arguments'
// values, as for cuLaunchKernel. It returns 0, or 1 for an unknown kernel.
int emu_launch(int k, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void** args);
// emu_alloc returns zeroed memory of bytes bytes as a device address (0 when out of memory).
uint64_t emu_alloc(uint64_t bytes);
void emu_free(uint64_t p);
// emu_ptr turns a device address into a host pointer.
float* emu_ptr(uint64_t p);
void emu_copy(uint64_t dst, uint64_t src, uint64_t bytes);

#ifdef __cplusplus
}
#endif
