#!/usr/bin/env bash
# Installs what proxykit's tests and examples need, only where it is missing:
# Go modules; Debian's python3-torch, python3-onnx and python3-h5py (the
# PyTorch oracle, ONNX's checker, an HDF5 reader), libhdf5-103-1 (the HDF5
# C library the NIR writer opens at run time); onnxruntime-node
# from npm (an independent ONNX runtime); Debian's nvidia-cuda-toolkit
# (nvcc, from the non-free component) to check that the committed PTX of
# the CUDA kernels matches their source; Debian's dataset-fashion-mnist
# (the paper's data set, for the demo and the tests); Debian's
# libopenblas0-pthread, an optimized BLAS for PyTorch's matrix products
# (without one, Debian's PyTorch runs them on the reference BLAS, about
# 40 times slower, and the CPU benchmarks compare with a crippled anchor).
# Safe to run again.
#
# Usage: scripts/setup.sh          everything the tests need
#        scripts/setup.sh build    only what building proxykit needs
set -euo pipefail
mode=${1:-test}

need_apt=()
if [ "$mode" = test ] && ! /usr/bin/python3 -c 'import torch, onnx, h5py' >/dev/null 2>&1; then
  need_apt+=(python3-torch python3-onnx python3-h5py python3-numpy)
fi
if [ "$mode" = test ] && ! /usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1; then
  need_apt+=(python3-torchvision)
fi
# the HDF5 C library, opened at run time to write NIR (no headers needed)
if ! ldconfig -p 2>/dev/null | grep -q 'libhdf5\(_serial\)\?\.so'; then
  need_apt+=(libhdf5-103-1)
fi
if [ "$mode" = test ] && { ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; }; then
  need_apt+=(nodejs npm)
fi
# an optimized libblas.so.3 for PyTorch: OpenBLAS (any flavour), BLIS or MKL
if [ "$mode" = test ] && ! ls /usr/lib/*/openblas*/libblas.so.3 /usr/lib/*/blis*/libblas.so.3 /usr/lib/*/libmkl_rt.so* \
  >/dev/null 2>&1; then
  need_apt+=(libopenblas0-pthread)
fi
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  need_apt+=(dataset-fashion-mnist)
fi
if [ "$mode" = test ] && ! command -v mpirun >/dev/null 2>&1; then
  need_apt+=(openmpi-bin)
fi
if [ "$mode" = test ] && ! command -v mpicc >/dev/null 2>&1; then
  need_apt+=(libopenmpi-dev)
fi
if [ "$mode" = test ] && ! command -v nvcc >/dev/null 2>&1; then
  need_apt+=(nvidia-cuda-toolkit)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (Debian packages)" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  case " ${need_apt[*]} " in
  *" nvidia-cuda-toolkit "*)
    # nvcc lives in Debian's non-free component: add it from the mirrors
    # this machine's apt configuration already names
    if ! grep -rqs 'non-free' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      entries=$(bash "$(dirname "$0")/nonfree-sources.sh")
      if [ -z "$entries" ]; then
        echo "setup: no Debian entry in /etc/apt to add the non-free component to (nvcc); add one by hand" >&2
        exit 1
      fi
      printf '%s\n' "$entries" | $SUDO tee /etc/apt/sources.list.d/proxykit-non-free.sources >/dev/null
    fi
    ;;
  esac
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "setup: Go 1.26 or newer is required (https://go.dev/dl/); /usr/local/go/bin/go not found" >&2
    exit 1
  fi
fi
go mod download
if [ "$mode" = test ] && [ ! -d scripts/ort/node_modules/onnxruntime-node ]; then
  echo "setup: installing onnxruntime-node (npm)" >&2
  # --ignore-scripts: the CPU binaries ship in the package; its install
  # script would try to download GPU parts.
  (cd scripts/ort && npm install --ignore-scripts --no-audit --no-fund >/dev/null)
fi
