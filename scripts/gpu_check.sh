#!/usr/bin/env bash
# proxykit's checks on a machine with an NVIDIA GPU, in one run of under
# 7 minutes (a device session has 15, machine start included: one rerun
# fits). That machine needs the NVIDIA driver, cuBLAS (and, for the
# fast convolutions, cuDNN 9), PyTorch for the side-by-side timings, and
# compute-sanitizer; it needs no Go: first run scripts/gpu_build.sh on a
# machine with Go, then bring the repository with .gpu/bundle.tar.xz over.
#
# Steps, most important first, each with its own time limit; each writes
# its log to $OUT/logs (default ./gpu-out/logs) and a line to summary.txt
# there; at the end the logs are packed into $OUT/gpu-logs.tgz:
#   plan         the time model's predictions for the same runs
#                (proxykit plan --gpu h200), to set beside the measured
#   conformance  the conformance suite on the GPU (TF32, FP32, im2col),
#                counts against PyTorch and against the CPU backend
#                (TestGPUFullWidthCountsMatchCPU), training parity with the
#                CPU, out-of-memory, determinism, CUDA graphs' replay
#   bench        proxykit bench --device cuda: the paper's network, batch
#                100 (and 1000), T = 15; TF32 with cuDNN, channels-last
#                programs (--channels-last), those with 16-bit spikes
#                (--precision fp16, beside PyTorch's bf16 autocast), 16-bit
#                spikes in NCHW, FP32, and TF32 with CUDA graphs
#   torch        the same step in PyTorch: torch.compile in TF32 and under
#                bf16 autocast (scripts/bench_torch_gpu.py)
#   memcheck     compute-sanitizer's memcheck on the kernels
#   ncu          Nsight Compute over ~4 training steps in the middle of a
#                bench run: every kernel's time, for a step's shares
#   ncu-nhwc     the same of a channels-last step (no cuDNN layout
#                conversions expected)
# and, asked for by name (not in the default run):
#   surrogate    proxykit bench --device cuda --method surrogate: the
#                surrogate-gradient step (BPTT) beside the proxy step, full
#                width, batch 100, T = 15, with its predicted time
#
# Usage: scripts/gpu_check.sh [STEP...]   (default: all steps but surrogate)
set -u
cd "$(dirname "$0")/.."
repo=$PWD
OUT=${OUT:-$repo/gpu-out}
LOG=$OUT/logs
mkdir -p "$LOG"
summary=$LOG/summary.txt
: >"$summary"
steps=${*:-"info plan conformance bench torch memcheck ncu ncu-nhwc"}
# no step starts after DEADLINE seconds, and none runs past it by more
# than 80 s: the whole run must end within 7 minutes
DEADLINE=${DEADLINE:-330}

B=$(mktemp -d)
tar -C "$B" -xJf .gpu/bundle.tar.xz || { echo "no .gpu/bundle.tar.xz: run scripts/gpu_build.sh first" >&2; exit 1; }

# cuBLAS and cuDNN: wherever the CUDA toolkit or PyTorch's wheels put them.
libdirs=""
sitedirs=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
for f in $(find /usr/local /usr/lib /opt $sitedirs \( -name 'libcublas.so.1[123]' -o -name 'libcudnn.so.9' \) 2>/dev/null); do
  d=$(dirname "$f")
  case ":$libdirs:" in *":$d:"*) ;; *) libdirs="$libdirs:$d" ;; esac
done
export LD_LIBRARY_PATH="${libdirs#:}:${LD_LIBRARY_PATH:-}"

# pk runs the command line with the shared libraries it was built against.
pk=$B/pk
printf '#!/bin/sh\nLD_LIBRARY_PATH="%s/lib:$LD_LIBRARY_PATH" exec "%s/proxykit" "$@"\n' "$B" "$B" >"$pk"
chmod +x "$pk"

# step NAME LIMIT COMMAND...: run, log, summarise.
step() {
  local name=$1 limit=$2
  shift 2
  if [ "$SECONDS" -ge "$DEADLINE" ]; then
    printf '%-22s skipped: past the %ss deadline\n' "$name" "$DEADLINE" | tee -a "$summary"
    return 1
  fi
  local left=$((DEADLINE + 80 - SECONDS))
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$LOG/$name.log" 2>&1
  local rc=$?
  printf '%-22s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$summary"
  tail -n "${TAIL:-25}" "$LOG/$name.log"
  return $rc
}

for s in $steps; do
  case $s in
  info)
    step info 30 bash -c "nvidia-smi; echo LD_LIBRARY_PATH=\$LD_LIBRARY_PATH; python3 -c 'import torch; print(torch.__version__)'"
    ;;
  plan)
    "$pk" init --arch fmnist --width 128 -o /tmp/fmnist.onnx >/dev/null
    TAIL=6 step plan 40 bash -c "for f in '' --fp32 '--channels-last --precision fp16'; do \"$pk\" plan /tmp/fmnist.onnx --gpu h200 --batch-size 100 \$f | tail -20; \"$pk\" plan /tmp/fmnist.onnx --gpu h200 --infer --batch-size 1000 \$f | tail -20; done"
    ;;
  conformance)
    (cd compute/cuda && TAIL=5 step conformance 130 "$B/cuda.test" -test.v -test.run 'TestGPU' -test.timeout 125s)
    grep -E -- '--- (FAIL|PASS): TestGPU[^/]*|counts|lands|device:|error|differ' "$LOG/conformance.log" | sort | uniq -c | head -60
    ;;
  bench)
    for v in "tf32:" "tf32-nhwc:--channels-last" "fp16-nhwc:--channels-last --precision fp16" "fp16:--precision fp16" "fp32:--fp32" \
      "tf32-graphs:--cuda-graphs"; do
      name=${v%%:*} flag=${v#*:}
      TAIL=3 step "bench-$name" 40 "$pk" bench --device cuda $flag --arch fmnist --width 128 --batch-size 100 \
        --infer-batch-size 1000 --timesteps 15 --seconds 2 --json
    done
    ;;
  surrogate)
    "$pk" init --arch fmnist --width 128 -o /tmp/fmnist.onnx >/dev/null
    TAIL=20 step plan-surrogate 40 bash -c "\"$pk\" plan /tmp/fmnist.onnx --method surrogate --gpu h200 --batch-size 100 | tail -20"
    TAIL=6 step bench-surrogate 60 "$pk" bench --device cuda --method surrogate --arch fmnist --width 128 --batch-size 100 \
      --infer-batch-size 1000 --timesteps 15 --seconds 2 --json
    ;;
  torch)
    PYTHONUNBUFFERED=1 TAIL=8 step torch 150 python3 scripts/bench_torch_gpu.py --seconds 2 --variants compiled,compiled-bf16
    ;;
  memcheck)
    (cd compute/cuda && TAIL=12 step memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 3 \
      "$B/cuda.test" -test.v -test.run 'TestGPUConformance/(tf32|im2col-tf32)' -test.timeout 85s)
    ;;
  ncu)
    # ~4 training steps (about 130 GPU kernels each) well inside bench's
    # training phase: the kernels' times summed per step (pk_adam runs 13
    # times a step) give one step's shares
    TAIL=3 step ncu 60 ncu --launch-skip 2000 --launch-count 520 --section SpeedOfLight --csv --page details \
      "$pk" bench --device cuda --seconds 1 --infer-batch-size 100
    ;;
  ncu-nhwc)
    # a channels-last step (about 110 launches) after three warm ones
    TAIL=3 step ncu-nhwc 100 ncu --launch-skip 340 --launch-count 115 --section SpeedOfLight --csv --page details \
      "$pk" bench --device cuda --channels-last --seconds 0.2 --infer-batch-size 100
    ;;
  *)
    echo "unknown step $s" >&2
    ;;
  esac
done
echo "== summary"
cat "$summary"
# one file back: the logs, packed (a device run returns few files)
tar -C "$OUT" -czf "$OUT/gpu-logs.tgz" logs && rm -rf "$LOG"
