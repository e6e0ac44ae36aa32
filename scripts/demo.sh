#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, brings the lab topology up
# (a modem network with servers, the connection box, two tethered clients), starts tetherpath,
# runs a short real workload from both clients and shows, while it runs, what the fast path
# carries; then a summary and a report file. Ctrl-C or the end tears it down.
#
#   bash scripts/demo.sh [--engine kernel|dpdk]
#
# The kernel engine (conf/lab-kernel.yaml: XDP/tc programs on the box's own veths) is the default:
# on this lab's kernel netdevs it is the faster one (docs/performance.md); --engine dpdk runs the
# DPDK engine (conf/lab.yaml: AF_PACKET ports, TAPs, a worker lcore) on the same lab.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ENGINE=kernel
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) ENGINE=${2:-}; shift 2 ;;
    *) echo "usage: $0 [--engine kernel|dpdk]" >&2; exit 2 ;;
  esac
done
case "$ENGINE" in
  kernel | dpdk) ;;
  *) echo "demo: --engine takes kernel or dpdk, not '$ENGINE'" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root: it creates network namespaces, veths, TAPs and nftables rules" >&2
  exit 1
fi
for need in /proc/sys/net/netfilter /dev/net/tun; do
  if [ ! -e "$need" ]; then
    modprobe nf_conntrack 2>/dev/null; modprobe tun 2>/dev/null
    [ -e "$need" ] || { echo "demo: this kernel lacks $need (conntrack or TUN/TAP support)" >&2; exit 1; }
  fi
done

bash scripts/install-deps.sh || exit 1
[ -f build/build.ninja ] || meson setup build >/dev/null || exit 1
ninja -C build >/dev/null || { echo "demo: build failed; run 'ninja -C build' to see why" >&2; exit 1; }

export TP_LAB_DIR=/tmp/tp-lab
export TP_ENGINE=$ENGINE
source tests/lab/lib.sh
REPORT=$ROOT/tetherpath-demo-report.txt
lab_begin
echo "lab up: tp-net (modem network, servers), tp-box (tetherpath), tp-wifi and tp-usb (clients)"
start_daemon
if [ "$ENGINE" = kernel ]; then
  echo "tetherpath running (pid $TP_PID) on the kernel engine, the faster one on this lab's veths" \
    "(--engine dpdk for the other); log $TP_LOG"
else
  echo "tetherpath running (pid $TP_PID) on the DPDK engine (the kernel engine is the default and" \
    "faster here); log $TP_LOG"
fi
tetherctl ports | grep engine | sed 's/^/  /' 
for c in wifi usb; do
  echo "  tp-$c: DHCP $(cut -d' ' -f1 "$TP_LAB_DIR/lease-tp-$c-c"), SLAAC $(ip -n "tp-$c" -6 addr show dev "tp-$c-c" scope global | awk '/inet6/ {print $2}')"
done
echo "in another shell: ip netns exec tp-box $ROOT/build/controlplane/tetherctl -s $TETHERPATH_SOCKET status"
make_file 100M.bin 100
# A data warning on the modem the workload will cross, and a limit it will not: the events and
# the usage show in the live view and the report, as the connection manager would see them.
tetherctl set-limit modem0 200M 10G >/dev/null
tetherctl events >"$TP_LAB_DIR/demo-events.txt" 2>&1 &

# The workload: both clients at once, IPv4 and IPv6, several kinds of traffic.
work() {
  nsx tp-wifi ping -c 20 -i 0.5 -q 203.0.113.10 >/dev/null 2>&1 &
  nsx tp-usb ping -6 -c 20 -i 0.5 -q 2001:db8:ffff::10 >/dev/null 2>&1 &
  nsx tp-wifi dig +short +time=2 +tries=2 @203.0.113.10 example.lab >"$TP_LAB_DIR/demo-dns.txt" 2>&1 &
  nsx tp-wifi curl -s -o "$TP_LAB_DIR/demo-dl4.bin" http://203.0.113.10/100M.bin &
  nsx tp-usb curl -s -o "$TP_LAB_DIR/demo-dl6.bin" "http://[2001:db8:ffff::10]/100M.bin" &
  nsx tp-wifi iperf3 -c 203.0.113.11 -t 8 -b 300M >/dev/null 2>&1 &
  nsx tp-usb iperf3 -6 -c 2001:db8:ffff::10 -u -b 50M -t 8 >/dev/null 2>&1 &
  wait
}
work &
work_pid=$!

prev_fast=0 prev_slow=0
echo
printf '%5s %8s %12s %12s %12s %8s %14s\n' "time" "offloaded" "fast-path pkt" "kernel pkt" "fast Mbit/s" "fast %" "modem0 used MB"
for t in $(seq 1 12); do
  sleep 1
  flows=$(tetherctl --json status | python3 -c "import json, sys; print(json.load(sys.stdin)['flows'])")
  # Summed over the ports: what the fast path took in, and what went to the kernel (either engine).
  read -r fast slow < <(tetherctl --json ports | python3 -c "import json, sys; p = json.load(sys.stdin)['ports']; print(sum(x['fast_rx_packets'] for x in p), sum(x['punted'] for x in p))")
  df=$((fast - prev_fast)) ds=$((slow - prev_slow))
  pct=$(awk -v f=$df -v s=$ds 'BEGIN {printf "%.1f", (f + s) ? 100 * f / (f + s) : 0}')
  mbps=$(awk -v p=$df 'BEGIN {printf "%.0f", p * 1400 * 8 / 1e6}')
  used=$(tetherctl --json status | python3 -c "import json, sys; l = json.load(sys.stdin)['limits']; print(l[0]['used'] // 1000000 if l else '-')")
  printf '%4ss %8s %12s %12s %12s %7s%% %14s\n' "$t" "${flows:-0}" "$df" "$ds" "~$mbps" "$pct" "$used"
  prev_fast=$fast prev_slow=$slow
  kill -0 "$work_pid" 2>/dev/null || break
done
wait "$work_pid"

final=$(daemon_report)
{
  echo "tetherpath demo report, $(date -u +%FT%TZ)"
  echo
  tetherctl status
  echo
  tetherctl ports
  echo
  echo "events:"
  cat "$TP_LAB_DIR/demo-events.txt"
  echo
  echo "$final"
} >"$REPORT"
echo
echo "summary"
ok4=$(cmp -s "$TP_LAB_DIR/demo-dl4.bin" "$TP_LAB_DIR/www/100M.bin" && echo "intact" || echo "CORRUPT")
ok6=$(cmp -s "$TP_LAB_DIR/demo-dl6.bin" "$TP_LAB_DIR/www/100M.bin" && echo "intact" || echo "CORRUPT")
echo "  100 MB download over IPv4 (wifi client): $ok4"
echo "  100 MB download over IPv6 (usb client):  $ok6"
echo "  DNS example.lab from the wifi client:      $(tr '\n' ' ' <"$TP_LAB_DIR/demo-dns.txt")"
echo "$final" | grep -E '^(port|modem0|wifi0|usb0|offload|conntrack|not offloaded|exceptions)' | sed 's/^/  /'
echo "  events from the API: $(tr '\n' ';' <"$TP_LAB_DIR/demo-events.txt")"
tetherctl status | grep -E '^limit' | sed 's/^/  /'
echo "  full report: $REPORT"
lab_cleanup
trap - EXIT
