#!/usr/bin/env bash
# proxykit end to end on real data: write a fresh tiny network, proxy-train
# it on 10,000 Fashion-MNIST images (the paper's data set, Debian's
# dataset-fashion-mnist) for two epochs, evaluate its ANN and SNN per
# class and against the simulation length (with a figure), export it, and
# run the SNN on a batch. About a minute and a half
# on 2 cores. Usage: scripts/demo.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
bash scripts/setup.sh build
out=${1:-$(mktemp -d)}
mkdir -p "$out"
go build -buildvcs=true -o "$out/proxykit" ./cmd/proxykit
pk="$out/proxykit"

echo "== proxykit init --arch tiny"
"$pk" init --arch tiny -o "$out/tiny.onnx"
"$pk" import "$out/tiny.onnx"
echo
echo "== proxykit train (proxy learning: SNN forward, ANN backward), 2 epochs on 10,000 Fashion-MNIST images"
"$pk" train "$out/tiny.onnx" --dataset fashion-mnist -o "$out/tiny.ckpt" \
  --epochs 2 --lr 2e-3 --max-train 10000 --max-test 1000
echo
echo "== proxykit eval: per class, with the confusion matrices"
"$pk" eval "$out/tiny.ckpt" --max-test 2000
echo
echo "== proxykit eval against the simulation length, from one simulation, with a figure"
"$pk" eval "$out/tiny.ckpt" --max-test 1000 --timesteps 1,2,4,8,15,32 --plot "$out/accuracy-vs-T.png"
echo
echo "== proxykit export: the ANN and the SNN as ONNX, the SNN as NIR"
"$pk" export "$out/tiny.ckpt" --ann "$out/ann.onnx" --snn "$out/snn.onnx" --nir "$out/snn.nir"
echo
echo "== proxykit infer on a bundled batch (the reduced reference network, exported by PyTorch)"
"$pk" infer testdata/fmnist_w8_bn.onnx --input testdata/fmnist_w8_bn.x.npy --output "$out/counts.npy" --network snn
echo
echo "outputs in $out: tiny.onnx, tiny.ckpt (checkpoint), ann.onnx, snn.onnx, snn.nir, counts.npy (SNN spike counts)"
