#!/usr/bin/env bash
# Installs what proxykit's tests and examples need, only where it is missing:
# Go modules; Debian's python3-torch, python3-onnx, python3-h5py,
# python3-numpy and python3-torchvision (the PyTorch oracle, ONNX's
# checker, an HDF5 reader), libhdf5-103-1 (the HDF5 C library the NIR
# reader and writer open at run time); onnxruntime-node from npm (an
# independent ONNX runtime); Debian's nvidia-cuda-toolkit (nvcc, from the
# non-free component) to check that the committed PTX of the CUDA kernels
# matches their source; Debian's dataset-fashion-mnist (the paper's data
# set, for the demo and the tests); Debian's libopenblas0-pthread, an
# optimized BLAS for PyTorch's matrix products (without one, Debian's
# PyTorch runs them on the reference BLAS, about 40 times slower, and the
# CPU benchmarks compare with a crippled anchor); Open MPI (openmpi-bin,
# libopenmpi-dev) for the data-parallel tests.
#
# A package is installed only when both say it is missing: the capability
# check (the module imports, the command runs, the library is known to the
# loader, any optimized BLAS, mpirun or mpiexec, ...) and the package
# database (dpkg: none of the packages that provide it is installed). A
# machine that has everything calls no package manager and no sudo. Where
# the capability is missing but a package that provides it is installed,
# setup says so and installs nothing. Safe to run again.
#
# Usage: scripts/setup.sh          everything the tests need
#        scripts/setup.sh build    only what building and the demo need
#        scripts/setup.sh check    list what is missing, install nothing
#                                  (exit status 1 when something is)
set -euo pipefail
mode=${1:-test}
case "$mode" in
test | build | check) ;;
*)
  echo "setup: unknown mode $mode (test, build or check)" >&2
  exit 2
  ;;
esac
cd "$(dirname "$0")/.."
python=/usr/bin/python3
fashion=/usr/share/datasets/fashion-mnist

# The loader's cache, read once into a variable and matched in bash: a
# `ldconfig -p | grep -q` under pipefail fails at random (grep exits at the
# first match and ldconfig dies of SIGPIPE).
loader=$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true)
knows() { [[ $loader =~ $1 ]]; }

# installed PATTERN...: whether dpkg lists any package matching one of the
# patterns as installed. Without dpkg (not Debian) nothing is "installed".
installed() {
  command -v dpkg-query >/dev/null 2>&1 || return 1
  local status
  status=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "$@" 2>/dev/null || true)
  [[ $'\n'$status == *$'\n'ii* ]]
}

need_apt=()
missing=()
# want PACKAGE WHAT CHECK [PROVIDER...]: PACKAGE is installed when CHECK (a
# bash command) fails and no PROVIDER pattern (default: PACKAGE) is
# installed; WHAT says what CHECK looks for.
want() {
  local pkg=$1 what=$2 check=$3
  shift 3
  local providers=("$@")
  [ ${#providers[@]} -gt 0 ] || providers=("$pkg")
  if eval "$check" >/dev/null 2>&1; then
    return 0
  fi
  if installed "${providers[@]}"; then
    echo "setup: $what is missing, but the package database has ${providers[*]} installed: not installing $pkg again (repair it by hand)" >&2
    return 0
  fi
  missing+=("$what ($pkg)")
  need_apt+=("$pkg")
}

# the HDF5 C library, opened at run time to read and write NIR (no headers)
want libhdf5-103-1 "the HDF5 C library" 'knows "libhdf5(_serial)?\.so"' 'libhdf5-[0-9]*' 'libhdf5-serial*'
want dataset-fashion-mnist "Fashion-MNIST in $fashion" '[ -d "$fashion" ]'
if [ "$mode" != build ]; then
  for m in torch onnx h5py numpy torchvision; do
    want "python3-$m" "Python's $m for $python" "$python -c 'import $m'"
  done
  want nodejs "node" 'command -v node'
  want npm "npm" 'command -v npm'
  # an optimized BLAS for PyTorch: OpenBLAS (any flavour), BLIS or MKL,
  # each of which puts its library in the loader's cache
  want libopenblas0-pthread "an optimized BLAS (OpenBLAS, BLIS or MKL)" 'knows "lib(openblas|blis|mkl_rt)[^ ]*\.so"' \
    'libopenblas0*' 'libopenblas-*' 'libblis*' 'libmkl-rt'
  want openmpi-bin "mpirun or mpiexec" 'command -v mpirun || command -v mpiexec' openmpi-bin mpich
  want libopenmpi-dev "mpicc" 'command -v mpicc' libopenmpi-dev libmpich-dev
  want nvidia-cuda-toolkit "nvcc" 'command -v nvcc' nvidia-cuda-toolkit
fi

if [ "$mode" = check ]; then
  if [ ${#missing[@]} -gt 0 ]; then
    printf 'setup: missing %s\n' "${missing[@]}"
    exit 1
  fi
  echo "setup: nothing is missing"
  exit 0
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (Debian packages; missing: ${missing[*]})" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  case " ${need_apt[*]} " in
  *" nvidia-cuda-toolkit "*)
    # nvcc lives in Debian's non-free component: add it from the mirrors
    # this machine's apt configuration already names
    if ! grep -rqs 'non-free' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      entries=$(bash scripts/nonfree-sources.sh)
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
