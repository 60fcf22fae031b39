#!/usr/bin/env bash
# CPU speed on trained networks (docs/cpu.md): the event-driven kernels
# skip work where no spike arrives, so their speed depends on firing rates
# that random weights do not show. This script trains the paper's network
# at full width and ResNet-8 (width 16, 1×28×28 inputs) for --epochs of
# proxy learning on Fashion-MNIST from PyTorch's default initialisation
# (proxykit init, seed 2020), then times each with scripts/bench_cpu.sh
# --model beside PyTorch, on Fashion-MNIST's first test images.
#
# Usage: scripts/bench_trained.sh [--dir DIR] [--epochs N] [--runs N] [--seconds S] [--train-only]
# Defaults: DIR /tmp/proxykit-trained (the checkpoints are not committed:
# 79 MB for the paper's network), 3 epochs, 3 runs of at least 10 s.
# A checkpoint already in DIR is continued to N epochs, not retrained
# (train --resume), so an interrupted run picks up where it stopped.
# Training takes about an hour for the paper's network and half an hour
# for ResNet-8 on 2 idle cores; time only on an idle machine. With
# --train-only it trains and stops (training may share the machine, at
# nice 19 say; the timing run after it must not).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
dir=/tmp/proxykit-trained epochs=3 runs=3 seconds=10 trainonly=no
while [ $# -gt 0 ]; do
  case "$1" in
  --dir) dir=$2; shift 2 ;;
  --epochs) epochs=$2; shift 2 ;;
  --runs) runs=$2; shift 2 ;;
  --seconds) seconds=$2; shift 2 ;;
  --train-only) trainonly=yes; shift ;;
  *) echo "bench_trained.sh: unknown argument $1 (see the usage at the top of the script)" >&2; exit 2 ;;
  esac
done
bash scripts/setup.sh >&2
mkdir -p "$dir"
go build -o "$dir/proxykit" ./cmd/proxykit
pk="$dir/proxykit"

# trained NAME ARCH [INIT FLAGS...]: DIR/NAME.ckpt after --epochs epochs
trained() {
  local name=$1 arch=$2
  shift 2
  local ckpt="$dir/$name.ckpt"
  if [ ! -f "$dir/$name.onnx" ]; then
    "$pk" init --arch "$arch" "$@" -o "$dir/$name.onnx"
  fi
  if [ -f "$ckpt.$epochs-epochs" ]; then
    return
  elif [ -f "$ckpt" ]; then
    "$pk" train --resume "$ckpt" --epochs "$epochs" --dataset fashion-mnist
  else
    "$pk" train "$dir/$name.onnx" -o "$ckpt" --epochs "$epochs" --dataset fashion-mnist
  fi
  touch "$ckpt.$epochs-epochs" # trained: the next run only times it
}

trained fmnist128 fmnist
trained resnet8 resnet --input 1x28x28
[ "$trainonly" = yes ] && exit 0
for n in fmnist128:fmnist resnet8:resnet; do
  echo "=== ${n%%:*}: trained $epochs epochs on Fashion-MNIST"
  "$pk" eval "$dir/${n%%:*}.ckpt" --dataset fashion-mnist
  bash scripts/bench_cpu.sh --model "$dir/${n%%:*}.ckpt" --arch "${n##*:}" --dataset fashion-mnist \
    --runs "$runs" --seconds "$seconds"
done
