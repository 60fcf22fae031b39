#!/usr/bin/env bash
# The paper's comparison in one tool: proxy learning, surrogate gradients
# through time (BPTT) and ANN-to-SNN conversion on the same network, the
# same data and the same IF semantics (docs/design.md §1), on real
# Fashion-MNIST. Run by hand, outside CI; docs/results.md shows its output.
#
# For each seed: the paper's network at WIDTH with PyTorch's default
# initialisation (scripts/surrogate_ann.py writes it as ONNX) is
#   proxy      trained by `proxykit train --method proxy`,
#   surrogate  trained by `proxykit train --method surrogate` (sigmoid
#              surrogate, α = 4, reset not detached),
# each at every T of TS, for EPOCHS epochs on the first TRAIN training
# images (proxykit's order and crops, drawn from the seed) with Adam at LR
# and BatchNorm in training mode in the first epoch, v_th = 2; and
#   conversion the same network trained as an ANN in PyTorch on the very
#              same data stream (cross-entropy, Adam at LR), converted by
#              `proxykit convert-snn` (robust normalisation, v_th = 2).
# Every SNN is evaluated on the first TEST test images at T = 1…32 from one
# simulation (eval --timesteps 1-32): strict, membrane and the notebook's
# rule (ties count). Per training: the wall time per step (the epochs'
# training seconds over their batches, evaluation left out) and the
# process's peak memory (/usr/bin/time's maximum resident set); per method
# and T, the activations its step plans (bench --method surrogate).
#
# Writes to OUT (docs): surrogate-comparison.png (accuracy against T of
# seed 1's networks), .csv (its numbers), surrogate-comparison.md (the
# table, means over the seeds) and surrogate-comparison.json (every
# number). About 2 hours on 2 cores with the defaults.
#
# Usage: [SEEDS="1 2"] [TS="4 8 15"] [LR=1e-3] [DEVICE=cpu] [OUT=docs]
#        scripts/compare_surrogate.sh [WIDTH [EPOCHS [TRAIN [TEST]]]]
#        (defaults 32, 3, 20000, 10000)
# A check of the script on a tiny subset, a few minutes:
#        SEEDS=1 TS="4 8" OUT=/tmp/cmp scripts/compare_surrogate.sh 8 1 300 200
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
width=${1:-32} epochs=${2:-3} ntrain=${3:-20000} ntest=${4:-10000}
seeds=${SEEDS:-1 2} ts=${TS:-4 8 15} lr=${LR:-1e-3} dev=${DEVICE:-cpu} out=${OUT:-docs}
data=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
[ -d "$data" ] || bash scripts/setup.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/proxykit" ./cmd/proxykit
pk="$tmp/proxykit"
common=(--data "$data" --dataset fashion-mnist --device "$dev")
runs="$tmp/runs.jsonl" # one line per trained network
: >"$runs"
for seed in $seeds; do
  echo "== seed $seed: the network (width $width, PyTorch's initialisation) and its ANN for conversion"
  go run ./scripts/schedule -n "$ntrain" -epochs "$epochs" -seed "$seed" >"$tmp/schedule-$seed.json"
  /usr/bin/python3 scripts/surrogate_ann.py --data "$data" --schedule "$tmp/schedule-$seed.json" --init "$tmp/init-$seed.onnx" \
    --ann "$tmp/ann-$seed.onnx" --width "$width" --epochs "$epochs" --max-train "$ntrain" --lr "$lr" --seed "$seed" \
    2> >(grep -v -i warning >&2) | tee "$tmp/ann-$seed.jsonl"
  "$pk" convert-snn "$tmp/ann-$seed.onnx" "${common[@]}" --threshold 2 -o "$tmp/conversion-$seed.ckpt" >/dev/null
  "$pk" eval "$tmp/conversion-$seed.ckpt" "${common[@]}" --max-test "$ntest" --timesteps 1-32 --json >"$tmp/conversion-$seed.eval.json"
  echo "{\"method\":\"conversion\",\"seed\":$seed,\"T\":0,\"train\":\"$tmp/ann-$seed.jsonl\",\"eval\":\"$tmp/conversion-$seed.eval.json\"}" >>"$runs"
  for T in $ts; do
    for method in proxy surrogate; do
      name="$method-T$T-$seed"
      echo "== seed $seed: $method, T=$T"
      /usr/bin/time -f %M -o "$tmp/$name.rss" "$pk" train "$tmp/init-$seed.onnx" "${common[@]}" --method "$method" --timesteps "$T" \
        --epochs "$epochs" --max-train "$ntrain" --max-test "$ntest" --lr "$lr" --seed "$seed" --json -o "$tmp/$name.ckpt" \
        | tee "$tmp/$name.jsonl"
      "$pk" eval "$tmp/$name.ckpt" "${common[@]}" --max-test "$ntest" --timesteps 1-32 --json >"$tmp/$name.eval.json"
      echo "{\"method\":\"$method\",\"seed\":$seed,\"T\":$T,\"train\":\"$tmp/$name.jsonl\",\"eval\":\"$tmp/$name.eval.json\",\"rss_kb\":$(cat "$tmp/$name.rss")}" >>"$runs"
    done
  done
done
echo "== the activations each step plans (bench, batch 100)"
for T in $ts; do
  "$pk" bench --arch fmnist --width "$width" --timesteps "$T" --device "$dev" --method surrogate --seconds 0 \
    --infer-batch-size 100 --json >"$tmp/bench-T$T.json"
done
mkdir -p "$out"
first=${seeds%% *}
files=() labels=()
for T in $ts; do
  for method in proxy surrogate; do
    files+=("$tmp/$method-T$T-$first.eval.json") labels+=("$method (trained at T=$T)")
  done
done
files+=("$tmp/conversion-$first.eval.json") labels+=("conversion (v_th=2)")
"$pk" plot "${files[@]}" --label "$(IFS=,; echo "${labels[*]}")" -o "$out/surrogate-comparison.png"
/usr/bin/python3 - "$runs" "$tmp" "$out" "$width" "$epochs" "$ntrain" "$ntest" "$lr" "$dev" "$ts" <<'PY'
import json, os, platform, statistics, subprocess, sys
runs_path, tmp, out, width, epochs, ntrain, ntest, lr, dev, ts = sys.argv[1:]
ts = [int(t) for t in ts.split()]
runs = [json.loads(l) for l in open(runs_path)]
for r in runs:
    r["points"] = {p["t"]: p for p in json.load(open(r["eval"]))["points"]}
    lines = [json.loads(l) for l in open(r["train"]) if l.startswith("{")]
    if r["method"] == "conversion":
        r["step_seconds"] = statistics.mean(l["step_seconds"] for l in lines)
    else:
        batches = -(-int(ntrain) // 100)
        r["step_seconds"] = sum(l["seconds"] for l in lines) / (batches * len(lines))
        r["history"] = lines
bench = {t: json.load(open(os.path.join(tmp, "bench-T%d.json" % t)))["result"] for t in ts}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
machine = "%s, %d cores (%s)" % (cpu, os.cpu_count(), dev)
rows = []
for method in ("proxy", "surrogate", "conversion"):
    for t in ts:
        rs = [r for r in runs if r["method"] == method and (method == "conversion" or r["T"] == t)]
        if not rs:
            continue
        acc = {k: [100 * r["points"][t][k] for r in rs] for k in ("snn_strict", "snn_membrane", "snn_ties")}
        row = {"method": method, "T": t, "seeds": [r["seed"] for r in rs],
               **{k: statistics.mean(v) for k, v in acc.items()},
               **{k + "_spread": (max(v) - min(v)) / 2 for k, v in acc.items()}}
        if method != "conversion":
            row["step_seconds"] = statistics.mean(r["step_seconds"] for r in rs)
            row["peak_mb"] = statistics.mean(r["rss_kb"] for r in rs) / 1024
            b = bench[t]
            row["activation_mb"] = b["surrogate"]["activation_mb"] if method == "surrogate" else b["train_activation_mb"]
        rows.append(row)
conv = [r for r in runs if r["method"] == "conversion"]
ann_step = statistics.mean(r["step_seconds"] for r in conv) if conv else 0
with open(os.path.join(out, "surrogate-comparison.json"), "w") as f:
    json.dump({"machine": machine, "width": int(width), "epochs": int(epochs), "train": int(ntrain), "test": int(ntest),
               "lr": float(lr), "rows": rows, "runs": runs}, f, indent=1, default=str)
md = ["Machine: %s. The paper's network at width %s, %s epochs on %s training images, %s test images, Adam at lr %s; "
      "means over seeds %s (± half the spread)." % (machine, width, epochs, ntrain, ntest, lr, " and ".join(str(s) for s in sorted({r["seed"] for r in runs}))),
      "",
      "| method | T | SNN strict (%) | membrane (%) | notebook's rule (%) | s per step | peak memory (MB) | activations (MB) |",
      "|---|---|---|---|---|---|---|---|"]
for r in rows:
    f = lambda k: "%.2f ± %.2f" % (r[k], r[k + "_spread"])
    if r["method"] == "conversion":
        cost = "(ANN %.4f)" % ann_step, "—", "—"
    else:
        cost = "%.4f" % r["step_seconds"], "%.0f" % r["peak_mb"], "%.0f" % r["activation_mb"]
    name = {"proxy": "proxy learning", "surrogate": "surrogate gradients (BPTT)", "conversion": "conversion (evaluated at T)"}[r["method"]]
    md.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % ((name, r["T"], f("snn_strict"), f("snn_membrane"), f("snn_ties")) + cost))
open(os.path.join(out, "surrogate-comparison.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
echo "wrote $out/surrogate-comparison.png, .csv, .md and .json"
