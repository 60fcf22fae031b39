#!/usr/bin/env bash
# One proxy-learning step on CPU, proxykit beside PyTorch, in one run on the
# same machine: the reference network (default: full width 128), batch 100,
# T=15, BN in training mode. Usage: scripts/bench_cpu.sh [WIDTH [BATCH]]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
bash scripts/setup.sh
width=${1:-128}
batch=${2:-100}
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== PyTorch"
/usr/bin/python3 scripts/bench_cpu.py --width "$width" --batch "$batch" 2>&1 | grep -v -i warning
echo "== proxykit"
PROXYKIT_BENCH_WIDTH=$width PROXYKIT_BENCH_BATCH=$batch go test -run '^$' -bench BenchmarkProxyStep -benchtime 1x ./train | grep -E 'Benchmark|ok'
