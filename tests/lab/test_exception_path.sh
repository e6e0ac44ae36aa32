#!/usr/bin/env bash
# The daemon's runtime with no flow offloaded: everything crosses the exception path (DPDK: port ->
# worker -> TAP -> kernel -> TAP -> worker -> port; kernel engine: the programs pass every packet
# to the kernel's own stack). Real clients: ping, curl, iperf3; IPv4 and IPv6; DHCP, router
# advertisements, ARP and ND; link state both ways; idle cost; lifecycle.
source "$(dirname "$0")/lib.sh"
lab_begin
# Offload off: this test is about the path every packet takes before (and without) offload.
start_daemon "$(lab_config -e 's/^  enabled: true/  enabled: false/')"

echo "clients configured by the box, through the exception path"
check "DHCP: the wifi client leased its reserved address from the box" sh -c "grep -q '^192.168.50.10/24 router 192.168.50.1 dns 203.0.113.10' '$TP_LAB_DIR/lease-tp-wifi-c' && grep -q '02:00:00:50:00:10 192.168.50.10' '$TP_LAB_DIR/box-dhcp.leases'"
check "DHCP: the usb client too" grep -q '^192.168.60.10/24 router 192.168.60.1' "$TP_LAB_DIR/lease-tp-usb-c"
check "SLAAC: the wifi client formed its address from the box's router advertisement" sh -c "ip -n tp-wifi -6 addr show dev tp-wifi-c | grep -A1 '2001:db8:50::ff:fe50:10/64' | grep -q dynamic"
check "SLAAC: its IPv6 default route is the box (proto ra)" sh -c "ip -n tp-usb -6 route show default | grep -q 'proto ra'"

echo "traffic through the exception path"
check "ping IPv4 wifi -> server" nsx tp-wifi ping -c 3 -i 0.2 -W 2 203.0.113.10
check "ping IPv4 usb -> second server" nsx tp-usb ping -c 3 -i 0.2 -W 2 203.0.113.11
check "ping IPv6 wifi -> server" nsx tp-wifi ping -6 -c 3 -i 0.2 -W 2 2001:db8:ffff::10
check "DNS through the box (dig)" sh -c "ip netns exec tp-wifi dig +short +time=2 @203.0.113.10 example.lab | grep -q 203.0.113.11"
check "DNS over IPv6 through the box (dig)" sh -c "ip netns exec tp-usb dig +short +time=2 AAAA @2001:db8:ffff::10 example.lab | grep -q 2001:db8:ffff::10"
check "ARP: the box resolved the wifi client" sh -c "ip -n tp-box neigh show 192.168.50.10 dev wifi0 | grep -Eq 'REACHABLE|STALE|DELAY'"
check "ND: the box resolved the wifi client" sh -c "ip -n tp-box -6 neigh show 2001:db8:50::ff:fe50:10 dev wifi0 | grep -Eq 'REACHABLE|STALE|DELAY'"
check "ARP: the client resolved the box" sh -c "ip -n tp-wifi neigh show 192.168.50.1 | grep -Eq 'REACHABLE|STALE|DELAY'"
make_file 20M.bin 20
check "HTTP download over IPv4, sha256 matches" download_ok tp-wifi http://203.0.113.10/20M.bin 20M.bin
check "HTTP download over IPv6, sha256 matches" download_ok tp-usb "http://[2001:db8:ffff::10]/20M.bin" 20M.bin
for c in "tp-wifi 203.0.113.10 TCP" "tp-usb 2001:db8:ffff::10 TCP" "tp-wifi 203.0.113.10 UDP" "tp-usb 2001:db8:ffff::10 UDP"; do
  set -- $c
  udp=()
  [ "$3" = UDP ] && udp=(-u -b 100M)
  out=$(nsx "$1" iperf3 -c "$2" -t 2 "${udp[@]}" --json 2>&1)
  check "iperf3 $3 $1 -> $2" sh -c "echo '$out' | grep -q '\"sum_received\"'"
  bps=$(echo "$out" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))' 2>/dev/null || echo "?")
  measure "iperf3 $3 $2 through the exception path (Mbit/s)" "$bps"
done
report=$(daemon_report)
echo "$report" | sed 's/^/    /'
# Functions, not `sh -c "echo '$report'"`: a quote in the report would end the string early.
punted_only() { echo "$report" | awk '/^wifi0/ {exit !($2 > 1000 && $3 == 0 && $5 > 1000)}'; }
check "everything was punted, nothing offloaded" punted_only

echo "idle power and first-packet latency"
sleep 2
if [ "$TP_ENGINE" = kernel ]; then
  # No polling anywhere: the daemon sleeps until an event or its timers.
  idle=$(daemon_cpu_percent 10)
  measure "idle CPU (% of one core over 10 s)" "$idle"
  check "the idle daemon uses at most 0.1 % of a core" awk -v c="$idle" 'BEGIN {exit !(c <= 0.1)}'
  check "it runs no polling thread (one thread: the control loop)" test "$(ls /proc/"$TP_PID"/task | wc -l)" -eq 1
else
  measure "idle CPU (% of one core over 5 s)" "$(daemon_cpu_percent 5)"
fi
sleep 1
rtt=$(nsx tp-wifi ping -c 1 -W 2 203.0.113.10 | grep -o 'time=[0-9.]*' | cut -d= -f2)
measure "first ping RTT after 1 s idle, 4 exception-path crossings (ms)" "${rtt:-lost}"

echo "link state"
nsx tp-net ip link set tp-net-modem down
check "pulling the modem cable shows NO-CARRIER on modem0" eventually 3 sh -c "ip -n tp-box link show modem0 | grep -q NO-CARRIER"
nsx tp-net ip link set tp-net-modem up
check "plugging it back clears NO-CARRIER" eventually 3 sh -c "ip -n tp-box link show modem0 | grep -q LOWER_UP"
nsx tp-box ip link set modem0 down
sleep 0.5
check "ip link set modem0 down stops traffic" sh -c "! ip netns exec tp-wifi ping -c 2 -i 0.3 -W 1 203.0.113.10"
nsx tp-box ip link set modem0 up
bash "$TOPOLOGY" box >/dev/null  # routes via modem0 went with it, as on a real box
check "ip link set modem0 up resumes it" eventually 5 nsx tp-wifi ping -c 1 -W 1 203.0.113.10

echo "lifecycle"
second=$(nsx tp-box "$TETHERPATH" --config "$LAB_CONFIG" 2>&1)
check "a second instance refuses to start" sh -c "echo '$second' | grep -q 'already running'"
check "the first instance still serves" nsx tp-wifi ping -c 1 -W 2 203.0.113.10
pid=$TP_PID
stop_daemon
check "SIGTERM stops the daemon" sh -c "! kill -0 $pid 2>/dev/null"
# Kernel engine: no tc filter or XDP program of tetherpath stays on the box's interfaces.
no_program_on() {
  ! tc -n tp-box filter show dev "$1" ingress | grep -q bpf && ! ip -n tp-box link show "$1" | grep -q 'prog/xdp'
}
no_program_left() { no_program_on modem0 && no_program_on wifi0 && no_program_on usb0; }
if [ "$TP_ENGINE" = kernel ]; then
  check "no program is left attached" no_program_left
  check "no pin is left" sh -c "[ -z \"\$(ls -A $TP_BPFFS)\" ] || [ -z \"\$(ls -A $TP_BPFFS/tetherpath 2>/dev/null)\" ]"
  check "the kernel forwards on its own again" nsx tp-wifi ping -c 1 -W 2 203.0.113.10
else
  check "no TAP is left" sh -c "! ip -n tp-box link show modem0 && ! ip -n tp-box link show wifi0 && ! ip -n tp-box link show usb0"
  check "no hugepage file is left" sh -c "! ls /dev/hugepages 2>/dev/null | grep -q tetherpath"
fi
check "the lock is released (the file stays)" flock -n /run/tetherpath-lab/tetherpath.lock true

if [ "$TP_ENGINE" = kernel ]; then
  # A port whose interface does not exist (the USB gadget is not there yet).
  nsx tp-box ip link set usb0 name usb0-away
  out=$(nsx tp-box "$TETHERPATH" --config "$LAB_CONFIG" 2>&1)
  rc=$?
  nsx tp-box ip link set usb0-away name usb0
else
  bad=$(lab_config -e 's|device: board:usb|device: net_af_packet2,iface=tp-no-such-if|')
  out=$(nsx tp-box "$TETHERPATH" --config "$bad" 2>&1)
  rc=$?
fi
check "a port that cannot be opened fails the start" test "$rc" -ne 0
check "the error names the port" sh -c "echo '$out' | grep -q 'port usb0'"
if [ "$TP_ENGINE" = kernel ]; then
  check "and nothing is left behind" no_program_left
else
  check "and nothing is left behind" sh -c "! ip -n tp-box link show modem0 && ! ip -n tp-box link show wifi0"
fi
lab_end
