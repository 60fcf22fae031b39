#!/usr/bin/env bash
# The paper's Fashion-MNIST run: the reference network at full width (128),
# PyTorch's default initialisation (seed 2020), 100 epochs of proxy
# learning with the reference's recipe (batch 100, Adam lr 1e-4, betas
# 0.8/0.99, weight decay 1e-6, T = 15, v_th = 2, BatchNorm in training mode
# in epoch 0, the 26×26 crop augmentation), evaluated on the official test
# set after every epoch. The paper reports 94.56 % for the SNN.
#
# It writes into OUT (default ./fmnist-run): net.onnx (the start), run.ckpt
# (the checkpoint after every epoch: the run resumes where it stopped when
# started again), curve.jsonl and curve.csv (per epoch: train loss, test
# accuracy of the SNN strict and ties, of the ANN, the tie share, seconds),
# curve.png (with matplotlib, where installed) and the final line beside the
# paper's.
#
# Usage: [DEVICE=cuda] [EPOCHS=100] [OUT=dir] [PROXYKIT=path] scripts/reproduce_fmnist.sh
#   DEVICE    cuda (default; a -tags cuda build and an NVIDIA GPU), cpu, cuda-emu
#   PROXYKIT  the proxykit binary (default: built here with -tags cuda when Go
#             is present, else `proxykit` on the PATH)
#   MAX_TRAIN, MAX_TEST  use only the first images (a quick check of the script)
# A full run is 6 M training images: about 20 minutes at 5,000 images/s.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${DEVICE:-cuda}
epochs=${EPOCHS:-100}
out=${OUT:-$PWD/fmnist-run}
data=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
mkdir -p "$out"
if [ -z "${PROXYKIT:-}" ]; then
  if command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
    go build -tags cuda -o "$out/proxykit" ./cmd/proxykit
    PROXYKIT=$out/proxykit
  else
    PROXYKIT=proxykit
  fi
fi
if [ ! -d "$data" ]; then
  echo "reproduce_fmnist: $data is missing: apt-get install dataset-fashion-mnist, or set FASHION_MNIST to the folder" >&2
  exit 1
fi
[ -f "$out/net.onnx" ] || "$PROXYKIT" init --arch fmnist --width 128 --seed 2020 -o "$out/net.onnx"
resume=()
[ -f "$out/run.ckpt" ] && resume=(--resume "$out/run.ckpt")
subset=()
[ -n "${MAX_TRAIN:-}" ] && subset+=(--max-train "$MAX_TRAIN")
[ -n "${MAX_TEST:-}" ] && subset+=(--max-test "$MAX_TEST")
"$PROXYKIT" train "$out/net.onnx" --device "$device" --data "$data" --dataset fashion-mnist --epochs "$epochs" \
  "${resume[@]}" "${subset[@]}" -o "$out/run.ckpt" --json | tee -a "$out/curve.jsonl"
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = {}
for line in open(os.path.join(out, "curve.jsonl")):
    if line.startswith("{"):
        r = json.loads(line)
        rows[r["epoch"]] = r
rows = [rows[e] for e in sorted(rows)]
with open(os.path.join(out, "curve.csv"), "w") as f:
    f.write("epoch,train_loss,snn_strict,snn_ties,ann,tie_share,seconds\n")
    for r in rows:
        t = r["test"]
        f.write(f"{r['epoch']},{r['train_loss']:.6f},{t['snn_strict']:.4f},{t['snn_ties']:.4f},{t['ann']:.4f},{t['tie_share']:.4f},{r['seconds']:.1f}\n")
last = rows[-1]["test"]
print(f"after {len(rows)} epochs: SNN strict {100*last['snn_strict']:.2f} %, ties {100*last['snn_ties']:.2f} %, "
      f"ANN {100*last['ann']:.2f} %  (the paper: SNN 94.56 %)")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: no curve.png (curve.csv has the numbers)")
    sys.exit(0)
e = [r["epoch"] for r in rows]
fig, ax = plt.subplots(figsize=(7, 4.5))
for key, label in (("snn_strict", "SNN, strict"), ("snn_ties", "SNN, ties"), ("ann", "ANN")):
    ax.plot(e, [100 * r["test"][key] for r in rows], label=label)
ax.axhline(94.56, color="gray", linestyle="--", label="paper: SNN 94.56 %")
ax.set_xlabel("epoch")
ax.set_ylabel("test accuracy (%)")
ax.set_title("proxy learning on Fashion-MNIST (T = 15, full width)")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(os.path.join(out, "curve.png"), dpi=120)
print("wrote", os.path.join(out, "curve.png"))
PY
