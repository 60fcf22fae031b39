#!/usr/bin/env bash
# The whole proxy-learning recipe, proxykit beside PyTorch, on real
# Fashion-MNIST: the same network (PyTorch's initialisation, exported as
# ONNX for proxykit), the same epochs, seed and data stream (order and crops
# drawn by proxykit, replayed by scripts/recipe_torch.py), the reference's
# hyper-parameters. Prints SNN strict / SNN ties / ANN test accuracy after
# each epoch for both.
#
# Usage: [LR=1e-4] [SEED=2020] scripts/compare_recipe.sh [WIDTH [EPOCHS [TRAIN [TEST]]]]
#        (defaults 16, 3, 10000, 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
width=${1:-16} epochs=${2:-3} ntrain=${3:-10000} ntest=${4:-2000} lr=${LR:-1e-4} seed=${SEED:-2020}
data=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
[ -d "$data" ] || bash scripts/setup.sh
tmp=$(mktemp -d)
go build -o "$tmp/proxykit" ./cmd/proxykit
go run ./scripts/schedule -n "$ntrain" -epochs "$epochs" -seed "$seed" >"$tmp/schedule.json"
echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), the reference recipe (width $width, $ntrain training and $ntest test images, $epochs epochs)"
/usr/bin/python3 scripts/recipe_torch.py --data "$data" --onnx "$tmp/net.onnx" --schedule "$tmp/schedule.json" \
  --width "$width" --epochs "$epochs" --max-train "$ntrain" --max-test "$ntest" --lr "$lr" --seed "$seed" 2> >(grep -v -i warning >&2) | tee "$tmp/torch.jsonl"
echo "== proxykit, from the same ONNX file"
"$tmp/proxykit" train "$tmp/net.onnx" --data "$data" --dataset fashion-mnist --epochs "$epochs" \
  --max-train "$ntrain" --max-test "$ntest" --lr "$lr" --seed "$seed" --json -o "$tmp/run.ckpt" | tee "$tmp/proxykit.jsonl"
/usr/bin/python3 - "$tmp/torch.jsonl" "$tmp/proxykit.jsonl" <<'PY'
import json, sys
t = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
p = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
print("\n| epoch | PyTorch SNN strict / ties / ANN | proxykit SNN strict / ties / ANN |")
print("| --- | --- | --- |")
for a, b in zip(t, p):
    f = lambda r: f"{100*r['snn_strict']:.1f} / {100*r['snn_ties']:.1f} / {100*r['ann']:.1f} %"
    print(f"| {a['epoch']} | {f(a['test'])} | {f(b['test'])} |")
d = 100 * (p[-1]["test"]["snn_strict"] - t[-1]["test"]["snn_strict"])
print(f"\nfinal SNN strict: proxykit − PyTorch = {d:+.2f} points")
PY
