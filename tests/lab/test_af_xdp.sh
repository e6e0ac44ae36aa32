#!/usr/bin/env bash
# The same box on AF_XDP ports (hw/boards/lab-xdp.yaml: DPDK's net_af_xdp over libxdp, copy mode
# on veth): traffic through the exception path and the fast path, IPv4 and IPv6.
source "$(dirname "$0")/lib.sh"
only_engine dpdk  # DPDK ports over AF_XDP; the kernel engine is XDP itself
lab_begin
start_daemon "$(lab_config -e "s|^board: .*|board: $LAB_ROOT/hw/boards/lab-xdp.yaml|")"
# The daemon reads each port's XDP program through libxdp; the kernel's own view must agree.
xdp_matches_kernel() {
  local port=$1 raw=$2 json kernel_id
  json=$(tetherctl ports --json) || return 1
  kernel_id=$(nsx tp-box ip -d link show "$raw" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -1)
  [ -n "$kernel_id" ] || { echo "    no XDP program on $raw"; return 1; }
  python3 - "$port" "$kernel_id" "$json" <<'PY'
import json, sys
port, kernel_id, doc = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
x = next(p for p in doc["ports"] if p["name"] == port)["xdp"]
print(f"    {port}: {x}; kernel: prog id {kernel_id}")
sys.exit(0 if x and x["mode"] == "native" and x["program_id"] == kernel_id and x["program"] else 1)
PY
}
for p in modem0:tp-modem-raw wifi0:tp-wifi-raw usb0:tp-usb-raw; do
  check "${p%%:*} reports its XDP program in native mode, as the kernel shows it" \
    xdp_matches_kernel "${p%%:*}" "${p##*:}"
done
check "the start log names each port's XDP program and mode" \
  sh -c "[ \$(grep -c 'XDP program .* in native mode' '$TP_LOG') -eq 3 ]"
check "ping IPv4 through AF_XDP ports" nsx tp-wifi ping -c 3 -i 0.2 -W 2 203.0.113.10
check "ping IPv6 through AF_XDP ports" nsx tp-usb ping -6 -c 3 -i 0.2 -W 2 2001:db8:ffff::10
# Every ping to the box is punted to the kernel and its reply injected back: the packet pool
# recycles through all of its buffers. With a pool laid out for IOVA contiguity, part of it lay
# outside the AF_XDP UMEM, the kernel dropped those buffers from the fill ring, and the port went
# deaf after a few thousand frames (hw/packet_pool.hpp).
port_rx_missed() { tetherctl ports --json | python3 -c 'import json,sys; print(next(p for p in json.load(sys.stdin)["ports"] if p["name"] == sys.argv[1])["rx_missed"])' "$1"; }
pings_all_answered() {
  local out
  out=$(nsx tp-wifi ping -f -c "$1" -W 1 192.168.50.1 2>&1) || { echo "$out" | tail -3; return 1; }
  echo "$out" | grep ' 0% packet loss' >/dev/null || { echo "$out" | tail -3; return 1; }
}
check "30,000 pings to the box through the exception path, none lost" pings_all_answered 30000
check "wifi0 missed no frame (its fill ring never ran dry)" [ "$(port_rx_missed wifi0)" = 0 ]
check "and still receives: ping after the flood" nsx tp-wifi ping -c 2 -i 0.2 -W 2 192.168.50.1
make_file 50M.bin 50
check "HTTP download over IPv4, sha256 matches" download_ok tp-wifi http://203.0.113.10/50M.bin 50M.bin
check "HTTP download over IPv6, sha256 matches" download_ok tp-usb "http://[2001:db8:ffff::10]/50M.bin" 50M.bin
nsx tp-wifi iperf3 -c 203.0.113.10 -t 4 --json >"$TP_LAB_DIR/xdp-iperf.json" 2>&1 &
pid=$!
check "an iperf3 TCP stream is offloaded" eventually 4 flow_carries "203.0.113.10:5201 " orig 1000
wait "$pid"
measure "iperf3 TCP over AF_XDP ports, offloaded (Mbit/s)" \
  "$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6))' "$TP_LAB_DIR/xdp-iperf.json" 2>/dev/null || echo '?')"
check "idle workers sleep on the XSK sockets (no port lacks a descriptor)" \
  sh -c "! grep -a 'offers no descriptor to sleep on' '$TP_LOG'"
sleep 2
measure "idle CPU with AF_XDP ports, workers asleep on the XSK sockets (% of one core over 5 s)" "$(daemon_cpu_percent 5)"
check "a worker asleep on its sockets wakes for the first packet (ping after 7 s idle)" \
  nsx tp-wifi ping -c 1 -W 1 203.0.113.10
lab_end
