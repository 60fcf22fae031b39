#!/usr/bin/env bash
# Writes testdata/fmnist_recipe_tiny.onnx — proxykit's tiny network with
# PyTorch's initialisation (seed 2020), BatchNorm kept — and trains it in
# PyTorch with the recipe train/fashion_test.go runs in proxykit: 10,000
# Fashion-MNIST training images, 2 epochs, Adam at lr 2e-3 (the reference's
# 1e-4 would need far more steps), the rest the reference's, on proxykit's
# data stream, scored on 1,000 test images. Its accuracies are what that
# test's floor is set from.
# Usage: scripts/make_recipe_fixture.sh [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
seed=${1:-2020}
out=testdata/fmnist_recipe_tiny.onnx
[ "$seed" = 2020 ] || out=$(mktemp -d)/net.onnx
tmp=$(mktemp)
go run ./scripts/schedule -n 10000 -epochs 2 -seed "$seed" >"$tmp"
/usr/bin/python3 scripts/recipe_torch.py --data /usr/share/datasets/fashion-mnist --onnx "$out" --schedule "$tmp" \
  --arch tiny --epochs 2 --max-train 10000 --max-test 1000 --lr 2e-3 --seed "$seed" 2> >(grep -v -i warning >&2)
rm -f "$tmp"
