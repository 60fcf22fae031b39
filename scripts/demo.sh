#!/usr/bin/env bash
# proxykit end to end on a bundled example: import the reduced-width
# reference network (testdata/fmnist_w8_bn.onnx, exported by PyTorch), run its
# ANN and its SNN twin on a batch, and compare their predictions.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "demo: Go 1.26 or newer is required" >&2; exit 1; }
out=${1:-$(mktemp -d)}
mkdir -p "$out"
go build -o "$out/proxykit" ./cmd/proxykit
pk="$out/proxykit"
model=testdata/fmnist_w8_bn.onnx
x=testdata/fmnist_w8_bn.x.npy

echo "== proxykit import $model"
"$pk" import "$model"
echo
echo "== proxykit infer (ANN and SNN, T=15, v_th=2)"
"$pk" infer "$model" --input "$x" --output "$out/ann.npy" --network ann
"$pk" infer "$model" --input "$x" --output "$out/counts.npy" --network snn --timesteps 15 --threshold 2.0
echo
echo "outputs in $out: ann.npy (ANN outputs), counts.npy (SNN spike counts)"
