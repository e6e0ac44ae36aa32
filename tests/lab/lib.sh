# Shared helpers for the namespace lab tests. Source it, call lab_begin, then checks, then
# lab_end. Everything the test starts is torn down on exit, even on failure or Ctrl-C.
# shellcheck shell=bash
set -uo pipefail

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# python3 is Debian's (tests/lab/bin/python3 says why), in the suites and all they start.
export PATH=$LAB_ROOT/tests/lab/bin:$PATH
TETHERPATH=${TETHERPATH:-$LAB_ROOT/build/controlplane/tetherpath}
TETHERCTL=${TETHERCTL:-$LAB_ROOT/build/controlplane/tetherctl}
export TETHERPATH_SOCKET=/run/tetherpath-lab/api.sock  # conf/lab.yaml's run_dir
TP_STATE_DIR=/var/lib/tetherpath-lab                   # conf/lab.yaml's state_dir
TOPOLOGY=$LAB_ROOT/tests/lab/topology.sh
export TP_LAB_DIR=${TP_LAB_DIR:-/tmp/tp-lab}
# The engine the suite runs on: dpdk (conf/lab.yaml) or kernel (conf/lab-kernel.yaml). Every
# suite runs on both (scripts/test.sh); one that is about one engine says so with only_engine.
export TP_ENGINE=${TP_ENGINE:-dpdk}
LAB_CONFIG=$LAB_ROOT/conf/lab.yaml
[ "$TP_ENGINE" = kernel ] && LAB_CONFIG=$LAB_ROOT/conf/lab-kernel.yaml
TP_BPFFS=/run/tp-lab-bpffs  # conf/lab-kernel.yaml's kernel_engine.bpffs
TP_LOG=$TP_LAB_DIR/tetherpath.log
TP_PID=
checks_passed=0
checks_failed=0

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# The CLI, run where an operator would: inside the box.
tetherctl() { ip netns exec tp-box "$TETHERCTL" "$@"; }

lab_cleanup() {
  stop_daemon >/dev/null 2>&1
  disown -a 2>/dev/null  # the topology's teardown kills the rest; no "Killed" job reports
  bash "$TOPOLOGY" down >/dev/null 2>&1
  rm -rf "$TP_STATE_DIR"
  lab_cgroup_remove
  if mountpoint -q "$TP_BPFFS" 2>/dev/null; then
    umount "$TP_BPFFS" 2>/dev/null  # every pin in it goes with it
    rmdir "$TP_BPFFS" 2>/dev/null
  fi
}

# A cgroup of the lab's own (cgroup2, wherever the host mounts it) for sessions that select
# the box's applications by cgroup: its directory in TP_LAB_CGROUP; fails when the host has no
# cgroup2. Removed, with every process still in it, when the suite ends.
TP_LAB_CGROUP=
lab_cgroup() {
  local root
  root=$(findmnt -n -t cgroup2 -o TARGET 2>/dev/null | head -1)
  [ -n "$root" ] || return 1
  TP_LAB_CGROUP="$root/tetherpath-lab"
  lab_cgroup_remove  # a previous run's, if it could not be removed then
  mkdir -p "$TP_LAB_CGROUP"
}
lab_cgroup_remove() {
  [ -n "$TP_LAB_CGROUP" ] && [ -d "$TP_LAB_CGROUP" ] || return 0
  local d p
  for d in $(find "$TP_LAB_CGROUP" -depth -type d); do
    if [ -e "$d/cgroup.kill" ]; then
      echo 1 >"$d/cgroup.kill" 2>/dev/null
    else
      for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    fi
    # The killed leave the cgroup when they have exited: until then it cannot be removed.
    for _ in $(seq 50); do
      rmdir "$d" 2>/dev/null && break
      sleep 0.1
    done
  done
}

# only_engine ENGINE: the suite is about one engine; on the other it says so and passes.
only_engine() {
  if [ "$TP_ENGINE" != "$1" ]; then
    echo "SKIP $(basename "$0") on the $TP_ENGINE engine: it tests the $1 engine only"
    exit 0
  fi
}

lab_begin() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP $(basename "$0"): needs root for network namespaces"
    exit 0
  fi
  if [ ! -x "$TETHERPATH" ]; then
    echo "FAIL: $TETHERPATH is not built"
    exit 1
  fi
  trap lab_cleanup EXIT
  trap 'exit 130' INT TERM
  echo "$(basename "$0" .sh): engine $TP_ENGINE"
  rm -rf "$TP_STATE_DIR"  # each test starts without a previous run's accounting
  if [ "$TP_ENGINE" = kernel ] && ! mountpoint -q "$TP_BPFFS"; then
    mkdir -p "$TP_BPFFS" && mount -t bpf bpf "$TP_BPFFS" || { echo "FAIL: cannot mount a bpffs"; exit 1; }
  fi
  bash "$TOPOLOGY" up || { echo "FAIL: lab topology"; exit 1; }
}

lab_end() {
  echo "$(basename "$0" .sh): $checks_passed passed, $checks_failed failed"
  [ "$checks_failed" -eq 0 ]
}

# check DESCRIPTION COMMAND...: the command's success is the check.
check() {
  local desc=$1; shift
  if "$@" >>"$TP_LAB_DIR/checks.log" 2>&1; then
    echo "  ok    $desc"
    checks_passed=$((checks_passed + 1))
  else
    echo "  FAIL  $desc"
    checks_failed=$((checks_failed + 1))
    if [ -n "${TP_LAB_PAUSE_ON_FAIL:-}" ]; then
      echo "  (TP_LAB_PAUSE_ON_FAIL: the lab stays up for ${TP_LAB_PAUSE_ON_FAIL} s to be looked at)"
      sleep "$TP_LAB_PAUSE_ON_FAIL"
    fi
  fi
}

# measure NAME VALUE: a figure the test measured, printed for the record.
measure() { echo "  measured: $1 = $2"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# eventually SECONDS COMMAND...: retries until the command (or shell function) succeeds or the
# time is up.
eventually() {
  local deadline=$(($(now_ms) + ${1%.*} * 1000)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -ge $deadline ] && return 1
    sleep 0.1
  done
}

start_daemon() {
  local config=${1:-$LAB_CONFIG}
  # Not through nsx (a function would run in a subshell): $! must be the daemon itself.
  local lines
  lines=$(cat "$TP_LOG" 2>/dev/null | wc -l)
  # `ip netns exec` gives the daemon a /sys of its own, without the cgroup2 hierarchy a box has
  # at /sys/fs/cgroup (where nftables looks for cgroups): mounted there, as on the box. The
  # shell execs the daemon (through TP_DAEMON_WRAP's command, if set: setpriv in
  # test_service.sh): $! stays its pid.
  ip netns exec tp-box env TP_WRAP="${TP_DAEMON_WRAP:-}" \
    sh -c 'mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; exec $TP_WRAP "$@"' \
    tetherpath "$TETHERPATH" --config "$config" >>"$TP_LOG" 2>&1 &
  TP_PID=$!
  # Ready when it says so (TAPs left by a killed instance exist before the new one is up).
  if ! eventually 20 sh -c "tail -n +$((lines + 1)) '$TP_LOG' | grep -q 'tetherpath: running'"; then
    echo "FAIL: tetherpath did not come up; log:"
    tail -20 "$TP_LOG"
    exit 1
  fi
  # The DPDK engine's TAPs are new with each daemon: the box's addresses, routes and the clients'
  # leases are set up again. The kernel engine's ports are the box's own interfaces, configured
  # once: a restart must not touch them (a client's DHCP renewal would cut its connections).
  if [ "$TP_ENGINE" = kernel ] && [ -e "$TP_LAB_DIR/box-configured" ]; then return 0; fi
  bash "$TOPOLOGY" box || { echo "FAIL: the box's kernel side could not be configured"; exit 1; }
  touch "$TP_LAB_DIR/box-configured"
}

stop_daemon() {
  [ -n "$TP_PID" ] || return 0
  kill -TERM "$TP_PID" 2>/dev/null
  for _ in $(seq 50); do
    kill -0 "$TP_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$TP_PID" 2>/dev/null
  wait "$TP_PID" 2>/dev/null
  TP_RC=$?  # the daemon's exit status (137: it had to be killed)
  TP_PID=
}

# expect_error CODE ARGS...: tetherctl fails (exit 1) and names the error code.
expect_error() {
  local code=$1 out rc; shift
  out=$(tetherctl "$@" 2>&1); rc=$?
  echo "tetherctl $*: rc=$rc $out"
  [ "$rc" -eq 1 ] && echo "$out" | grep -q "error: $code:"
}
# json PYTHON-EXPRESSION VERB [ARGS]: the expression evaluated on tetherctl --json's reply (d).
json() {
  local expr=$1; shift
  tetherctl --json "$@" | python3 -c "import json, sys; d = json.load(sys.stdin); print($expr)"
}

# The daemon's counter report (SIGUSR1 prints it to the log).
daemon_report() {
  local before
  before=$(wc -l <"$TP_LOG")
  kill -USR1 "$TP_PID"
  sleep 0.3
  tail -n +$((before + 1)) "$TP_LOG"
}

# The daemon's CPU time so far, in ticks of 10 ms (user + system).
daemon_ticks() { awk '{print $14 + $15}' "/proc/$TP_PID/stat"; }
# The percentage of one core the daemon used over SECONDS.
daemon_cpu_percent() {
  local secs=$1 a b
  a=$(daemon_ticks)
  sleep "$secs"
  b=$(daemon_ticks)
  awk -v t=$((b - a)) -v s="$secs" 'BEGIN {printf "%.2f", t / s}'
}

make_file() {  # make_file NAME MEGABYTES: random content served by the lab's HTTP server
  head -c $(($2 * 1000 * 1000)) /dev/urandom >"$TP_LAB_DIR/www/$1"
}

# download NS URL NAME: fetches and compares the sha256 with the served file.
download_ok() {
  local ns=$1 url=$2 name=$3 out
  out=$(mktemp -p "$TP_LAB_DIR")
  nsx "$ns" curl -sf --max-time 60 -o "$out" "$url" || return 1
  [ "$(sha256sum <"$out" | cut -d' ' -f1)" = "$(sha256sum <"$TP_LAB_DIR/www/$name" | cut -d' ' -f1)" ]
  local rc=$?
  rm -f "$out"
  return $rc
}

# Fast-path counters of the flows matching a pattern, from the daemon's report:
# prints "ORIG_PACKETS REPLY_PACKETS" summed over matching flows.
flow_packets() {
  daemon_report | awk -v pat="$1" '$1 == "flow" && index($0, pat) {o += $(NF-8); r += $(NF-3)} END {print o + 0, r + 0}'
}

# Predicates for eventually/check: no fast-path packets for the pattern (the flow is gone), or
# some in the given direction.
flow_gone() { [ "$(flow_packets "$1")" = "0 0" ]; }
flow_carries() {  # flow_carries PATTERN orig|reply MIN
  local o r
  read -r o r < <(flow_packets "$1")
  [ "$([ "$2" = orig ] && echo "$o" || echo "$r")" -ge "$3" ]
}
offloaded_at_least() { [ "$(offloaded_flows)" -ge "$1" ]; }

# Offloaded flow count from the daemon's report.
offloaded_flows() {
  daemon_report | awk '/^offload:/ {gsub(",", "", $3); print $3}'
}

# The kernel's packet counters (both directions) of conntrack entries matching the filter args.
kernel_packets() {
  nsx tp-box conntrack -L "$@" 2>/dev/null | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^packets=/) {split($i, a, "="); s += a[2]}} END {print s + 0}'
}

# Counters of the internet side's `table inet tp_lab_seen` (the multi-uplink suites': which uplink
# and which source address each connection came by): its packets, and whether it grows.
seen() { nsx tp-net nft list counter inet tp_lab_seen "$1" | awk '/packets/ {print $2}'; }
grows() { local a; a=$(seen "$1"); sleep 1; [ "$(seen "$1")" -gt "$a" ]; }

# An echo server on the internet side (tools/hold_server.py) for an idle TCP connection that a
# test holds as the coprocess IDLE (tools/idle_echo.py): idle_server, then idle_exchange, which
# prints "rtt MS" or "dead".
idle_server() {
  nsx tp-net python3 "$LAB_ROOT/tests/lab/tools/hold_server.py" 203.0.113.10 9000 &
  eventually 5 sh -c "ip netns exec tp-net ss -ltn | grep -q '203.0.113.10:9000'"
}
idle_exchange() {
  local reply=dead
  echo ping >&"${IDLE[1]}"
  read -r -t 10 reply <&"${IDLE[0]}"
  echo "$reply"
}

# Two 30 s UDP transfers of the multi-uplink suites: the wifi client's to 203.0.113.10 (pid_wifi),
# the usb client's from 203.0.113.11 (pid_usb; iperf3's report in usb-iperf.json); both_offloaded
# tells when the fast path carries both.
two_transfers() {
  nsx tp-wifi timeout 45 iperf3 -c 203.0.113.10 -u -b 10M -t 30 >/dev/null 2>&1 &
  pid_wifi=$!
  nsx tp-usb timeout 45 iperf3 -c 203.0.113.11 -u -b 10M -t 30 -R --json >"$TP_LAB_DIR/usb-iperf.json" 2>&1 &
  pid_usb=$!
}
both_offloaded() { flow_carries "203.0.113.10:5201 " orig 300 && flow_carries "203.0.113.11:5201 " reply 300; }
usb_lost() {  # packets the usb client's transfer lost, once it is over
  python3 -c "import json; print(json.load(open('$TP_LAB_DIR/usb-iperf.json'))['end']['sum']['lost_packets'])" 2>/dev/null
}

# A copy of the lab configuration with the lab's second uplink (TP_LAB_PHONE=1) among its ports.
# phone_config managed: also without set_upstream's single uplink, for the suites whose uplinks
# tetherpath manages.
phone_config() {
  local port="  - name: phone0\n    role: upstream\n    device: board:phone"
  [ "$TP_ENGINE" = kernel ] && port="  - name: phone0\n    role: upstream\n    hook: auto"
  if [ "${1:-}" = managed ]; then
    lab_config -e "s/^dataplane:/$port\ndataplane:/" -e '/^upstream:/,/^  ipv6_gateways:/d'
  else
    lab_config -e "s/^dataplane:/$port\ndataplane:/"
  fi
}

# A copy of the lab configuration with sed expressions applied.
lab_config() {
  local out=$TP_LAB_DIR/config-$RANDOM.yaml
  # The copy lives elsewhere: its board profile path must not be relative.
  sed -e "s|^board: .*|board: $LAB_ROOT/hw/boards/lab.yaml|" "$@" "$LAB_CONFIG" >"$out"
  echo "$out"
}
