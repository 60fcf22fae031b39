#!/usr/bin/env bash
# proxykit's checks on a machine with an NVIDIA GPU, in one run of under
# 8 minutes. That machine needs the NVIDIA driver, cuBLAS (and, for the
# fast convolutions, cuDNN 9), PyTorch for the side-by-side timings, and
# compute-sanitizer; it needs no Go: first run scripts/gpu_build.sh on a
# machine with Go, then bring the repository with .gpu/bundle.tar.xz over.
#
# Steps, most important first, each with its own time limit; each writes
# its log to $OUT/logs (default ./gpu-out/logs) and a line to summary.txt
# there; at the end the logs are packed into $OUT/gpu-logs.tgz:
#   conformance  the conformance suite on the GPU (TF32, FP32, im2col),
#                counts against PyTorch and against the CPU backend,
#                training parity with the CPU, out-of-memory, determinism
#   bench        proxykit bench --device cuda: the paper's network, batch
#                100 (and 1000), T = 15; TF32 with cuDNN, FP32, im2col, and
#                TF32 with cuDNN on channels-last programs (--channels-last)
#   torch        the same step in PyTorch: eager (notebook order),
#                multi-step, torch.compile (scripts/bench_torch_gpu.py)
#   train-mnist  2 epochs of the paper's network on MNIST at --device cuda
#   memcheck, racecheck  compute-sanitizer on the kernels
#   ncu          Nsight Compute's speed-of-light summary of a step's kernels
#   ncu-nhwc     the same of a channels-last step (no cuDNN layout
#                conversions expected)
#
# Usage: scripts/gpu_check.sh [STEP...]   (default: all steps)
set -u
cd "$(dirname "$0")/.."
repo=$PWD
OUT=${OUT:-$repo/gpu-out}
LOG=$OUT/logs
mkdir -p "$LOG"
summary=$LOG/summary.txt
: >"$summary"
steps=${*:-"info conformance bench torch train-mnist memcheck racecheck ncu ncu-nhwc"}
# no step starts after DEADLINE seconds, and none runs past it by more
# than 80 s: the whole run must end within 8 minutes
DEADLINE=${DEADLINE:-400}

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
  conformance)
    (cd compute/cuda && TAIL=5 step conformance 200 "$B/cuda.test" -test.v -test.run 'TestGPU' -test.timeout 190s)
    grep -E -- '--- (FAIL|PASS): TestGPU[^/]*|counts|lands|device:|error|differ' "$LOG/conformance.log" | sort | uniq -c | head -60
    ;;
  bench)
    for v in "tf32:" "fp32:--fp32" "im2col:--no-cudnn" "tf32-nhwc:--channels-last"; do
      name=${v%%:*} flag=${v#*:}
      TAIL=3 step "bench-$name" 60 "$pk" bench --device cuda $flag --arch fmnist --width 128 --batch-size 100 \
        --infer-batch-size 1000 --timesteps 15 --seconds 3 --json
    done
    TAIL=3 step bench-batch1000 90 "$pk" bench --device cuda --arch fmnist --width 128 --batch-size 1000 \
      --infer-batch-size 1000 --timesteps 15 --seconds 2 --json
    ;;
  torch)
    PYTHONUNBUFFERED=1 TAIL=8 step torch 200 python3 scripts/bench_torch_gpu.py --seconds 2 --variants eager,multistep,compiled
    ;;
  train-mnist)
    "$pk" init --arch fmnist --width 128 -o /tmp/fmnist.onnx >/dev/null
    flag=""
    grep -q '"train_images_per_sec"' "$LOG/bench-tf32.log" 2>/dev/null || flag="--no-cudnn"
    TAIL=6 step train-mnist 170 "$pk" train /tmp/fmnist.onnx --device cuda $flag --data "$B/mnist" --dataset mnist \
      --epochs 2 -o /tmp/mnist.ckpt --json
    ;;
  memcheck)
    (cd compute/cuda && TAIL=12 step memcheck 150 compute-sanitizer --tool memcheck --error-exitcode 3 \
      "$B/cuda.test" -test.v -test.run 'TestGPUConformance/(tf32|im2col-tf32)' -test.timeout 140s)
    ;;
  racecheck)
    (cd compute/cuda && TAIL=12 step racecheck 100 compute-sanitizer --tool racecheck --error-exitcode 3 \
      "$B/cuda.test" -test.v -test.run 'TestGPUConformance/im2col-fp32-chunked/(Memory|BatchNorm|Conv2d)' -test.timeout 90s)
    ;;
  ncu)
    # one whole training step (about 130 launches) after three warm ones
    TAIL=3 step ncu 100 ncu --launch-skip 400 --launch-count 130 --section SpeedOfLight --csv --page details \
      "$pk" bench --device cuda --seconds 0.2 --infer-batch-size 100
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
