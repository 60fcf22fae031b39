package cuda

// kernels.ptx is kernels.cu compiled to PTX for compute capability 8.0
// (Ampere; newer GPUs such as the H100 JIT-compile it when the backend
// loads). It is committed, so that building proxykit needs no CUDA
// toolkit; scripts/test.sh checks that it matches kernels.cu. Regenerate it
// with Debian's nvcc 11.8 (package nvidia-cuda-toolkit):
//
//go:generate nvcc --ptx -arch=compute_80 -o kernels.ptx kernels.cu
