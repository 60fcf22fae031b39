#!/usr/bin/env bash
# The paper's Fashion-MNIST run: the reference network at full width (128),
# initialised from PyTorch's default distributions (weights U(−1/√fan_in,
# 1/√fan_in), BatchNorm γ = 1, β = 0) drawn by Go's generator with seed 2020
# (the same distributions as the reference's PyTorch initialisation, not
# PyTorch's random stream), 100 epochs of proxy learning with the
# reference's recipe (batch 100, Adam lr 1e-4, betas 0.8/0.99, weight decay
# 1e-6, T = 15, v_th = 2, BatchNorm in training mode in epoch 0, the 26×26
# crop augmentation), evaluated on the official test set after every epoch.
#
# The paper reports 94.56 % for the SNN, and the authors' released
# pretrained model scores 93.37 %, both under the reference notebook's final
# rule: a sample counts as correct when the label's spike count equals the
# maximum (ties count). The notebook's per-epoch figure is stricter (the
# first maximum). This script prints the last epoch under both rules, and
# with ties broken by the output layer's membrane potential, next to those
# two figures.
#
# Measured 2026-11-30 on an NVIDIA H200 (TF32, seed 2020): 6 min 13 s of
# training for the 100 epochs; last epoch SNN strict 91.84 %, notebook rule
# 94.57 %, ANN 85.96 %. Precision: proxykit on a GPU uses TF32 tensor cores
# for its matrix products and convolutions by default; FP32=1 gives strict
# FP32. PyTorch since 1.12 (and the PyTorch 2.11 of docs/gpu-notes.md)
# multiplies matrices in FP32 and lets cuDNN convolutions use TF32 by
# default; PyTorch 1.7 to 1.11 (the 2021 reference used 1.10) allowed TF32
# for both on Ampere and newer GPUs, while older GPUs have no TF32. Which
# GPU the reference ran on is not recorded, so neither is its precision.
#
# It writes into OUT (default ./fmnist-run): net.onnx (the start), run.ckpt
# (the checkpoint after every epoch: the run resumes where it stopped when
# started again), curve.jsonl (train --json's lines, each session's
# settings before them), curve.csv (per epoch: train loss, test accuracy of
# the SNN strict, under the notebook's final rule (ties) and with the
# membrane tie-break, of the ANN, the tie share, seconds, and the device,
# precision, proxykit commit and seed of the session that trained it),
# curve.png (with matplotlib, where installed) and the final lines beside
# the paper's.
#
# Usage: [DEVICE=cuda] [FP32=1] [EPOCHS=100] [SEED=2020] [OUT=dir] [PROXYKIT=path] scripts/reproduce_fmnist.sh
#   DEVICE    cuda (default; a -tags cuda build and an NVIDIA GPU), cpu, cuda-emu
#   FP32      1: strict FP32 matrix products and convolutions on cuda (default TF32)
#   SEED      the weights' and the data stream's seed (default 2020)
#   PROXYKIT  the proxykit binary (default: built here with -tags cuda when Go
#             is present, else `proxykit` on the PATH)
#   MAX_TRAIN, MAX_TEST  use only the first images (a quick check of the script)
# A full run is 6 M training images (6 min 13 s of training on an H200).
set -euo pipefail
cd "$(dirname "$0")/.."
device=${DEVICE:-cuda}
epochs=${EPOCHS:-100}
seed=${SEED:-2020}
precision=fp32
fp32=()
if [ "$device" = cuda ]; then
  precision=tf32
  if [ "${FP32:-}" = 1 ]; then
    precision=fp32
    fp32=(--fp32)
  fi
fi
[ "$device" = cuda-emu ] && precision="fp32 (emulated device)"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then
  commit="$commit+modified"
fi
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
[ -f "$out/net.onnx" ] || "$PROXYKIT" init --arch fmnist --width 128 --seed "$seed" -o "$out/net.onnx"
resume=()
[ -f "$out/run.ckpt" ] && resume=(--resume "$out/run.ckpt")
subset=()
[ -n "${MAX_TRAIN:-}" ] && subset+=(--max-train "$MAX_TRAIN")
[ -n "${MAX_TEST:-}" ] && subset+=(--max-test "$MAX_TEST")
printf '{"session": {"device": "%s", "precision": "%s", "commit": "%s", "seed": %s}}\n' \
  "$device" "$precision" "$commit" "$seed" >> "$out/curve.jsonl"
"$PROXYKIT" train "$out/net.onnx" --device "$device" "${fp32[@]}" --seed "$seed" --data "$data" --dataset fashion-mnist \
  --epochs "$epochs" "${resume[@]}" "${subset[@]}" -o "$out/run.ckpt" --json | tee -a "$out/curve.jsonl"
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
PAPER, RELEASED = 94.56, 93.37  # both under the notebook's final rule (ties count)
rows, session = {}, {}
for line in open(os.path.join(out, "curve.jsonl")):
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if "session" in r:
        session = r["session"]
    elif "epoch" in r:
        r["session"] = session
        rows[r["epoch"]] = r
rows = [rows[e] for e in sorted(rows)]
with open(os.path.join(out, "curve.csv"), "w") as f:
    f.write("epoch,train_loss,snn_strict,snn_notebook_final_rule,snn_membrane,ann,tie_share,seconds,device,precision,commit,seed\n")
    for r in rows:
        t, s = r["test"], r["session"]
        f.write(f"{r['epoch']},{r['train_loss']:.6f},{t['snn_strict']:.4f},{t['snn_ties']:.4f},{t.get('snn_membrane', float('nan')):.4f},"
                f"{t['ann']:.4f},{t['tie_share']:.4f},{r['seconds']:.1f},{s.get('device', '?')},{s.get('precision', '?')},"
                f"{s.get('commit', '?')},{s.get('seed', '?')}\n")
last, s = rows[-1]["test"], rows[-1]["session"]
print(f"last epoch ({len(rows) - 1}, {last['n']} test images; {s.get('device')}, {s.get('precision')}, commit {s.get('commit')}, seed {s.get('seed')}):")
print(f"  SNN under the notebook's final rule (label's count = the maximum, ties count): {100 * last['snn_ties']:.2f} %"
      f"   the paper: {PAPER:.2f} %   the released model: {RELEASED:.2f} %   (same rule)")
print(f"  SNN strict (first maximum, the notebook's per-epoch rule): {100 * last['snn_strict']:.2f} %")
if "snn_membrane" in last:
    print(f"  SNN, ties broken by the output layer's membrane potential (no tie credit): {100 * last['snn_membrane']:.2f} %")
print(f"  tied predictions: {100 * last['tie_share']:.2f} %   ANN: {100 * last['ann']:.2f} %")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: no curve.png (curve.csv has the numbers)")
    sys.exit(0)
e = [r["epoch"] for r in rows]
fig, ax = plt.subplots(figsize=(7, 4.5))
for key, label in (("snn_strict", "SNN, strict"), ("snn_ties", "SNN, notebook's final rule (ties count)"),
                   ("snn_membrane", "SNN, membrane tie-break"), ("ann", "ANN")):
    if all(key in r["test"] for r in rows):
        ax.plot(e, [100 * r["test"][key] for r in rows], label=label)
ax.axhline(PAPER, color="gray", linestyle="--", label=f"paper: SNN {PAPER} % (ties count)")
ax.axhline(RELEASED, color="gray", linestyle=":", label=f"released model: {RELEASED} % (ties count)")
ax.set_xlabel("epoch")
ax.set_ylabel("test accuracy (%)")
ax.set_title("proxy learning on Fashion-MNIST (T = 15, full width)")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(os.path.join(out, "curve.png"), dpi=120)
print("wrote", os.path.join(out, "curve.png"))
PY
