#!/usr/bin/env bash
# The whole test suite (the README's second command; .ci/run calls it). Installs what it needs,
# then: format check, -Werror build, unit tests, unit tests under ASan+UBSan, a short libFuzzer
# run, a benchmark smoke run, and the namespace lab tests (root only; skipped with a message
# otherwise). Ends with one line "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
logs=$root/build-logs
mkdir -p "$logs"

bash scripts/install-deps.sh || { echo "test: dependency install failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
failures=()

# step NAME COMMAND...: runs a step, logs its output, counts it. gtest steps add their test count.
step() {
  local name=$1; shift
  local log="$logs/${name// /_}.log"
  local t0=$SECONDS
  printf '== %-40s ' "$name"
  if "$@" >"$log" 2>&1; then
    local n
    # gtest's "[  PASSED  ] N tests" or a lab script's "name: N passed, M failed".
    n=$(awk '/^\[  PASSED  \] [0-9]+ test/ {s += $4} /^[a-z0-9_]+: [0-9]+ passed, [0-9]+ failed$/ {s += $2} END {print s + 0}' "$log")
    [ "$n" -gt 0 ] || n=1
    passed=$((passed + n))
    printf 'ok (%ds%s)\n' $((SECONDS - t0)) "$([ "$n" -gt 1 ] && echo ", $n tests")"
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf 'FAILED (%ds), last lines of %s:\n' $((SECONDS - t0)) "$log"
    tail -n 25 "$log" | sed 's/^/    /'
  fi
  grep -E '^(stress|fuzz|bench):|measured:' "$log" | sed 's/^ */    /' || true
}

configure() {  # configure DIR [meson options...]
  local dir=$1; shift
  [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
}

format_check() {
  clang-format --dry-run --Werror $(git ls-files '*.cpp' '*.hpp' 2>/dev/null || find . -name '*.[ch]pp' -not -path './build*')
}

build_release() { configure build && ninja -C build; }
# Portable (-Dnative=false): the sanitizer build runs the code paths that have no AVX2, the
# release build the native ones.
build_asan() {
  configure build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -Dnative=false &&
    ninja -C build-asan
}
build_fuzz() {
  CXX=clang++ configure build-fuzz -Dfuzz=enabled -Db_sanitize=address,undefined -Db_lundef=false && ninja -C build-fuzz
}

# fuzz TARGET SECONDS [SEED_DIR]: a short libFuzzer run on a scratch corpus (seeds copied in, so
# the fuzzer's additions never land in the tree).
fuzz() {
  local target=$1 secs=$2 seeds=${3:-} corpus out rc
  corpus=$(mktemp -d)
  out=$(mktemp)
  [ -n "$seeds" ] && cp "$seeds"/* "$corpus"/
  build-fuzz/tests/fuzz/"$target" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
    "$corpus" >"$out" 2>&1
  rc=$?
  cat "$out"
  awk -v t="$target" '/stat::number_of_executed_units/ {print "fuzz: " t " " $2 " inputs executed"}' "$out"
  rm -rf "$corpus" "$out"
  return "$rc"
}

run_fuzz() {
  local corpus rc
  corpus=$(mktemp -d)
  build-fuzz/tests/fuzz/fuzz_seeds "$corpus" && fuzz fuzz_engine "${TP_FUZZ_SECONDS:-30}" "$corpus"
  rc=$?
  rm -rf "$corpus"
  return "$rc"
}

# The kernel engine's programs (root: BPF and a network namespace of their own).
run_fuzz_bpf() {
  local corpus rc
  corpus=$(mktemp -d)
  build-fuzz/tests/fuzz/fuzz_seeds --bpf "$corpus" && fuzz fuzz_bpf "${TP_FUZZ_SECONDS:-30}" "$corpus"
  rc=$?
  rm -rf "$corpus"
  return "$rc"
}

bench_smoke() {
  local out rc=0
  out=$(mktemp)
  build/perf/bench_engine --benchmark_filter='BM_EngineNat44/1000$' --benchmark_min_time=0.05 >"$out" 2>&1 || rc=1
  build/perf/bench_flow_table --benchmark_filter='/1000$' --benchmark_min_time=0.05 >>"$out" 2>&1 || rc=1
  # Every golden case once per engine (each benchmark checks its path); without root DPDK only.
  build/perf/bench_bpf --benchmark_min_time=0.01 >>"$out" 2>&1 || rc=1
  cat "$out"
  grep ERROR "$out" >/dev/null && rc=1
  awk '/^BM_/ && !/^BM_(tc|xdp|dpdk)\// {print "bench: " $0}' "$out"
  awk '/^BM_(tc|xdp|dpdk)\// {n++} /^bench_bpf:/ {print "bench: " $0}
       END {print "bench: bench_bpf " n + 0 " benchmarks (table in the log)"}' "$out"
  rm -f "$out"
  return "$rc"
}

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
step "format check" format_check
step "build (gcc, -Werror)" build_release
step "unit tests" build/tests/unit_tests
step "unit tests (TSan)" build/tests/tsan_tests
step "build (ASan+UBSan)" build_asan
step "unit tests (ASan+UBSan)" build-asan/tests/unit_tests
step "build fuzzer (clang)" build_fuzz
step "fuzz engine ${TP_FUZZ_SECONDS:-30}s" run_fuzz
step "fuzz API ${TP_FUZZ_SECONDS:-30}s" fuzz fuzz_api "${TP_FUZZ_SECONDS:-30}" tests/fuzz/seeds/api
step "fuzz config ${TP_FUZZ_SECONDS:-30}s" fuzz fuzz_config "${TP_FUZZ_SECONDS:-30}" tests/fuzz/seeds/config
if [ "$(id -u)" -eq 0 ]; then
  step "fuzz BPF programs ${TP_FUZZ_SECONDS:-30}s" run_fuzz_bpf
else
  echo "== fuzz BPF programs: skipped, needs root (BPF programs, a network namespace)"
fi
step "engine benchmark smoke" bench_smoke

# Every lab suite on both engines: the DPDK engine (TAPs, workers) and the kernel engine (tc/XDP
# programs on the box's own interfaces).
if [ -d tests/lab ]; then
  for engine in dpdk kernel; do
    for t in tests/lab/test_*.sh; do
      [ -e "$t" ] || continue
      if [ "$(id -u)" -ne 0 ]; then
        echo "== $(basename "$t"): skipped, needs root for network namespaces"
        continue
      fi
      step "lab $(basename "$t" .sh) ($engine engine)" env TP_ENGINE=$engine bash "$t"
    done
  done
fi

# The perf lab harness in smoke mode (seconds): it works and its figures are sane. The full run
# (python3 perf/harness.py) stays out of the test command.
if [ "$(id -u)" -eq 0 ]; then
  step "perf harness smoke" python3 perf/harness.py --smoke --out build-logs/perf-smoke
  step "perf harness one-CPU smoke" python3 perf/harness.py --smoke --one-cpu --out build-logs/perf-smoke
  step "perf harness XDP-sender smoke" python3 perf/harness.py --smoke --sender xdpgen --out build-logs/perf-smoke
else
  echo "== perf harness smoke: skipped, needs root for network namespaces"
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
