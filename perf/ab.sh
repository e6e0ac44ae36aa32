#!/usr/bin/env bash
# Per-packet cost before and after a change, side by side in one run: builds REV's benchmarks from
# its own tree (git archive, not a checkout: the working tree is left alone), then runs the two
# builds' benchmarks alternately (before, after, before, after) on one core, so that a load on
# the machine shows as a disagreement between the two pairs rather than as a difference.
#
#   perf/ab.sh REV BENCH [benchmark options...]
#
# BENCH is a benchmark's name under build/perf (bench_engine, bench_bpf); "after" is the current
# build (build/, which must be up to date). Prints each run's table; compare the pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: perf/ab.sh REV BENCH [benchmark options...]" >&2; exit 2; }
rev=$(git rev-parse --short "$1")
bench=$2
shift 2
after=build/perf/$bench
[ -x "$after" ] || { echo "ab: $after missing: build first (ninja -C build)" >&2; exit 1; }

tree=/tmp/tp-ab-$rev
if [ ! -x "$tree/build/perf/$bench" ]; then
  rm -rf "$tree"
  mkdir -p "$tree"
  git archive "$rev" | tar -x -C "$tree"
  (cd "$tree" && meson setup build >/dev/null && ninja -C build "perf/$bench" >/dev/null)
fi
before=$tree/build/perf/$bench

cpu=$(($(nproc) - 1))
for round in 1 2; do
  for side in before after; do
    bin=$before
    [ "$side" = after ] && bin=$after
    echo "== round $round: $side ($([ "$side" = before ] && echo "$rev" || git rev-parse --short HEAD))"
    taskset -c "$cpu" "$bin" "$@"
  done
done
