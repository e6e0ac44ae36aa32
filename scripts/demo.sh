#!/usr/bin/env bash
# The README's first command. Until the daemon and the lab topology exist, the main job builds
# tetherpath and runs the packet-engine benchmark: real rte_hash flow tables, real NAT44 rewrites.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build
ninja -C build
echo
echo "tetherpath packet engine: IPv4 NAPT upstream, bursts of 32 x 64-byte frames, one core"
build/perf/bench_engine --benchmark_filter='BM_EngineNat44' 2>&1 | grep -v '^EAL\|^TELEMETRY'
