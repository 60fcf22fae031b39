#!/usr/bin/env bash
# Installs what proxykit's tests and examples need, only where it is missing:
# Go modules, and Debian's python3-torch and python3-onnx (the PyTorch oracle
# that generates the full-width network). Safe to run again.
set -euo pipefail

need_apt=()
if ! /usr/bin/python3 -c 'import torch, onnx' >/dev/null 2>&1; then
  need_apt+=(python3-torch python3-onnx python3-numpy)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (Debian packages)" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
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
