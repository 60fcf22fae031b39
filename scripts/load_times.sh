#!/usr/bin/env bash
# Times `proxykit import` — model loading, which every command does first —
# on the paper's full-width network in its three formats: a training
# checkpoint with Adam's moments (235 MB, made here with one proxy step),
# the ONNX file (78 MB) and the PyTorch module (78 MB) that scripts/test.sh
# generates in .cache/full-width. Each binary runs each file once to warm
# the page cache, then 5 times; the median of the 5 is printed. Run it on a
# quiet machine: wall-clock times under load mean nothing.
#
# Usage: scripts/load_times.sh OLD_PROXYKIT NEW_PROXYKIT [FULL_DIR]
#   e.g. (git worktree add /tmp/before main && cd /tmp/before && go build -o /tmp/pk-old ./cmd/proxykit)
#        go build -o /tmp/pk-new ./cmd/proxykit && bash scripts/load_times.sh /tmp/pk-old /tmp/pk-new
# The in-process benchmark is `go test ./model -run '^$' -bench LoadFullWidth`.
set -euo pipefail
old=$1 new=$2
full=${3:-.cache/full-width}
for f in "$full/fmnist_w128.onnx" "$full/pt/ANN_Params.pt"; do
  [ -f "$f" ] || { echo "load_times: $f is missing (scripts/test.sh generates it)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# one proxy step (100 images) at full width: a checkpoint with Adam's moments
"$new" train "$full/fmnist_w128.onnx" -o "$work/full.ckpt" --epochs 1 --max-train 100 --max-test 100 >/dev/null 2>&1
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%-24s %12s %12s\n' file old new
for f in "$work/full.ckpt" "$full/fmnist_w128.onnx" "$full/pt/ANN_Params.pt"; do
  ms=()
  for bin in "$old" "$new"; do
    "$bin" import "$f" >/dev/null # warm the page cache
    ms+=("$(for i in 1 2 3 4 5; do
      t0=$(date +%s%N)
      "$bin" import "$f" >/dev/null
      echo $((($(date +%s%N) - t0) / 1000000))
    done | median) ms")
  done
  printf '%-24s %12s %12s\n' "$(basename "$f")" "${ms[0]}" "${ms[1]}"
done
