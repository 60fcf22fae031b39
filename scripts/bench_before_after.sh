#!/usr/bin/env bash
# proxykit bench of two builds side by side (issue 32's before/after check):
# the paper's network at full width and ResNet-8, random images, each
# measured by both binaries alternately RUNS times (--seconds 5), then the
# medians of the training step's and SNN inference's images/s. Run on a
# quiet machine; the load average is printed beside every run.
#
# Usage: scripts/bench_before_after.sh OLD_PROXYKIT NEW_PROXYKIT [RUNS]
#   e.g. git worktree add /tmp/before 8d3f05f && (cd /tmp/before && go build -o /tmp/pk-old ./cmd/proxykit)
#        go build -o /tmp/pk-new ./cmd/proxykit && bash scripts/bench_before_after.sh /tmp/pk-old /tmp/pk-new
set -euo pipefail
old=$1 new=$2 runs=${3:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rates() { /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print("%.2f %.2f" % (r["train_images_per_sec"], r["infer_images_per_sec"]))'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for net in "fmnist --width 128" "resnet"; do
  : >"$work/old"
  : >"$work/new"
  for i in $(seq 1 "$runs"); do
    for v in old new; do
      bin=$old
      [ "$v" = new ] && bin=$new
      l=$(cut -d' ' -f1 /proc/loadavg)
      # shellcheck disable=SC2086 # $net is the architecture's flags
      r=$("$bin" bench --arch $net --seconds 5 --json 2>/dev/null | rates)
      echo "$net, run $i, $v: training, inference images/s $r (load $l)"
      echo "$r" >>"$work/$v"
    done
  done
  for v in old new; do
    echo "$net, $v: median training $(cut -d' ' -f1 "$work/$v" | median), inference $(cut -d' ' -f2 "$work/$v" | median) images/s"
  done
done
