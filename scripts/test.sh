#!/usr/bin/env bash
# Runs every proxykit check: formatting, go vet (also of the -tags cuda
# build), the committed PTX against the CUDA kernels' source, all tests (the
# full-width reference network and torchvision's ResNet-18 included,
# generated here with PyTorch; the
# CUDA backend on its emulated device), and fuzzing of the readers. Installs what it needs first (scripts/setup.sh).
# Ends with a summary line: the packages of `go test ./...` that passed and
# failed ("N passed, N failed") and the wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

started=$(date +%s)
gotest_log=$(mktemp)
summary() {
  local rc=$? passed failed took
  # grep -c prints 0 and exits 1 when nothing matches
  passed=$(grep -c '^ok[[:space:]]' "$gotest_log" || true)
  failed=$(grep -c '^FAIL[[:space:]][[:space:]]*[^[:space:]]' "$gotest_log" || true)
  took=$(($(date +%s) - started))
  rm -f "$gotest_log"
  local verdict="every check passed"
  [ "$rc" -eq 0 ] || verdict="a check failed (exit status $rc): see above"
  printf '== summary: %s passed, %s failed (packages of go test ./...); wall time %dm%02ds; %s\n' \
    "$passed" "$failed" $((took / 60)) $((took % 60)) "$verdict"
}
trap summary EXIT
bash scripts/setup.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
echo "== go vet"
go vet ./...
echo "== the CUDA backend's GPU build: go vet, the test binary and the command line with -tags cuda"
go vet -tags cuda ./...
go test -c -tags cuda -o /dev/null ./compute/cuda
go build -tags cuda -o /dev/null ./cmd/proxykit
echo "== kernels.ptx matches kernels.cu (nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
# gen.go's own go:generate line (nvcc --ptx -arch=compute_80, then Go's
# generated-file line) run on a copy, so that the check is the generator
ptx=$(mktemp -d)
cp compute/cuda/gen.go compute/cuda/kernels.cu "$ptx"
(cd "$ptx" && go generate gen.go)
if ! cmp -s "$ptx/kernels.ptx" compute/cuda/kernels.ptx; then
  echo "compute/cuda/kernels.ptx is not kernels.cu's: run go generate ./compute/cuda" >&2
  exit 1
fi
rm -rf "$ptx"
echo "== the CPU kernels' assembly matches its generator (compute/asmgen)"
asm=$(mktemp -d)
go run ./compute/asmgen "$asm"
for f in "$asm"/*.s; do
  if ! cmp -s "$f" "compute/$(basename "$f")"; then
    echo "compute/$(basename "$f") is not compute/asmgen's: run go generate ./compute" >&2
    exit 1
  fi
done
rm -rf "$asm"

# The 78 MB full-width network is generated, not committed; it is cached
# under .cache/ (ignored by git) and reused while the generator is unchanged.
full=.cache/full-width
stamp=$(cat scripts/make_fixtures.py scripts/make_pt_fixtures.py scripts/refnet.py | sha256sum | cut -c1-16)
if [ ! -f "$full/$stamp" ]; then
  echo "== generating the full-width reference network with PyTorch, as ONNX and as .pt files (about 4 minutes)"
  rm -rf "$full"
  /usr/bin/python3 scripts/make_fixtures.py --full "$full" 2>&1 | grep -v -i warning || true
  /usr/bin/python3 scripts/make_pt_fixtures.py --full "$full/pt" 2>&1 | grep -v -i warning || true
  test -f "$full/fmnist_w128.onnx" && test -f "$full/pt/SNN_Params.pt"
  touch "$full/$stamp"
fi
export PROXYKIT_FULL_DIR="$PWD/$full"

# torchvision's ResNet-18, SqueezeNet 1.1, MobileNetV2, MNASNet and
# ShuffleNetV2 (45, 5, 14, 17 and 9 MB; the last three twice, as built and
# with their IF layers' inputs scaled), generated likewise
tv=.cache/torchvision
stamp=$(cat scripts/make_torchvision.py scripts/make_graph_fixtures.py scripts/refnet.py | sha256sum | cut -c1-16)
if [ ! -f "$tv/$stamp" ]; then
  echo "== generating torchvision's ResNet-18, SqueezeNet 1.1, MobileNetV2, MNASNet and ShuffleNetV2 with PyTorch (about 15 minutes)"
  rm -rf "$tv" .cache/resnet18
  /usr/bin/python3 scripts/make_torchvision.py "$tv" 2>&1 | grep -v -i warning || true
  test -f "$tv/resnet18.onnx" && test -f "$tv/squeezenet1_1.onnx" && test -f "$tv/shufflenet_v2_x1_0.snn.onnx"
  touch "$tv/$stamp"
fi
export PROXYKIT_TORCHVISION="$PWD/$tv"

# Every test runs here: one that lacks what it needs fails instead of
# skipping (internal/testutil.Env).
export CI=${CI:-true}
echo "== go test"
go test -count=1 -timeout 30m ./... 2>&1 | tee "$gotest_log"

echo "== a program of its own module uses proxykit as a library (examples/embed)"
(cd examples/embed && go vet . && go run .)

echo "== ONNX's own operator conformance cases through proxykit infer (0 wrong, 0 crashes)"
go build -buildvcs=true -o .cache/proxykit ./cmd/proxykit
/usr/bin/python3 scripts/onnx_conformance.py .cache/proxykit .cache/onnx-cases 2>&1 | grep -v -i warning | grep -v '^passed:'

# Each fuzzer runs for a count of inputs, not a time: Go 1.26's coordinator
# can fail a timed run (-fuzztime 10s) with a bare "context deadline
# exceeded" and no failing input when its deadline lands while a worker is
# mid-input (go.dev/issue/75804, fixed in Go 1.27; it failed this CI once on
# FuzzRendezvousMessage). A count has no deadline to race. The counts are
# what each fuzzer ran in the time it used to have here (2 cores, 2026-12-07).
# -fuzzminimizetime 0: minimising each new interesting input (a model of
# tens of kilobytes) would otherwise take most of the budget.
fuzz() { # fuzz TARGET PACKAGE INPUTS
	go test -run '^$' -fuzz "^$1\$" -fuzztime "$3x" -fuzzminimizetime 0 "$2"
}
echo "== fuzz the ONNX import (about 30 s)"
fuzz FuzzDecode ./importer 120000
echo "== fuzz the PyTorch checkpoint reader (about 20 s)"
fuzz FuzzLoadPT ./importer 50000
echo "== fuzz the checkpoint reader: its bytes (about 20 s), its metadata (about 10 s)"
fuzz FuzzDecodeCheckpoint ./train 40000
fuzz FuzzCheckpointMetadata ./train 6000
echo "== fuzz plot's readers of eval and train JSON (about 10 s)"
fuzz FuzzRead ./plots 20000
echo "== fuzz the rendezvous's messages, both ends (about 10 s)"
fuzz FuzzRendezvousMessage ./distributed 300000
echo "== fuzz the lowering on random graphs of every layer kind (about 15 s; a 10-minute run: docs/testing.md)"
fuzz FuzzLowering ./lower 4000
echo "== fuzz the IDX (and gzip), CIFAR-10 and .npy readers (about 10 s each)"
fuzz FuzzIDX ./data 300000
fuzz FuzzCIFAR ./data 300000
fuzz FuzzRead ./npy 500000
