#!/usr/bin/env bash
# The control plane against the real kernel: conntrack-driven offload of TCP and UDP, NAT
# keepalives, removal on conntrack -D, recovery from lost conntrack events, and flows that
# survive a daemon restart.
source "$(dirname "$0")/lib.sh"
lab_begin
# Keepalive rounds every 2 s; a small conntrack socket buffer so that a burst of events overflows
# it (the buffer may grow to 64 KiB, still far too small for thousands of events).
CONFIG=$(lab_config -e 's/keepalive_interval_s: 60/keepalive_interval_s: 2\n  conntrack_rcvbuf_kb: 8\n  conntrack_rcvbuf_max_kb: 64/')
start_daemon "$CONFIG"
make_file 40M.bin 40

echo "a TCP download is offloaded"
# iperf3 paces its sender (-R: the server sends), so the flow is busy while it is sampled.
nsx tp-wifi iperf3 -c 203.0.113.10 -R -b 40M -t 7 >/dev/null 2>&1 &
iperf_pid=$!
sleep 3
k1=$(kernel_packets -p tcp --dport 5201); read -r o1 r1 < <(flow_packets ":5201 ")
sleep 2
k2=$(kernel_packets -p tcp --dport 5201); read -r o2 r2 < <(flow_packets ":5201 ")
measure "kernel packets of the flow over 2 s" "$((k2 - k1))"
measure "fast-path packets of the flow over 2 s" "$((o2 - o1 + r2 - r1))"
check "the fast path carries the download" test $((r2 - r1)) -gt 1000
check "the kernel no longer sees its packets" test $((k2 - k1)) -le $(((r2 - r1 + o2 - o1) / 100))
wait "$iperf_pid"
check "the flows leave the fast path after FIN" eventually 3 flow_gone ":5201 "
nsx tp-wifi curl -s -o "$TP_LAB_DIR/dl.bin" http://203.0.113.10/40M.bin
check "an offloaded HTTP download is complete and intact" cmp -s "$TP_LAB_DIR/dl.bin" "$TP_LAB_DIR/www/40M.bin"
o=$(daemon_report | awk '/^offload:/ {gsub(",", "", $11); print $11}')
check "it was offloaded (flows installed so far: $o)" test "${o:-0}" -ge 3

echo "a long UDP flow is offloaded"
nsx tp-usb iperf3 -c 203.0.113.11 -u -b 20M -t 8 >/dev/null 2>&1 &
iperf_pid=$!
sleep 4  # the kernel marks UDP assured after 2 s of two-way traffic
k1=$(kernel_packets -p udp --dport 5201); read -r o1 r1 < <(flow_packets ":5201 ")
sleep 2
k2=$(kernel_packets -p udp --dport 5201); read -r o2 r2 < <(flow_packets ":5201 ")
measure "kernel / fast-path packets of the UDP flow over 2 s" "$((k2 - k1)) / $((o2 - o1))"
check "the fast path carries the UDP flow" test $((o2 - o1)) -gt 1000
check "the kernel no longer sees its packets" test $((k2 - k1)) -le $(((o2 - o1) / 100))
wait "$iperf_pid"

echo "keepalive: a UDP flow only the fast path sees outlives the kernel's UDP timeout"
nsx tp-box sysctl -qw net.netfilter.nf_conntrack_udp_timeout=3 net.netfilter.nf_conntrack_udp_timeout_stream=5
nsx tp-wifi iperf3 -c 203.0.113.10 -u -b 1M -t 14 >/dev/null 2>&1 &
iperf_pid=$!
sleep 13
left=$(nsx tp-box conntrack -L -p udp --dport 5201 2>/dev/null | awk '{print $3}' | sort -n | tail -1)
measure "conntrack timeout left after 13 s of a 5 s stream timeout" "${left:-none}"
check "the conntrack entry is still there after 13 s" test -n "$left"
check "its timeout was refreshed (<= 5 s left, > 0)" test "${left:-0}" -gt 0
read -r o r < <(flow_packets ":5201 ")
check "the fast path carried it" test "$o" -gt 500
wait "$iperf_pid"
check "after the traffic stops the entry expires" eventually 15 sh -c "! ip netns exec tp-box conntrack -L -p udp --dport 5201 2>/dev/null | grep -q 5201"
check "and the fast-path entry goes with it" eventually 3 flow_gone ":5201 "
nsx tp-box sysctl -qw net.netfilter.nf_conntrack_udp_timeout=30 net.netfilter.nf_conntrack_udp_timeout_stream=120

echo "conntrack -D removes an offloaded flow"
# ping: a flow with replies, so its fresh kernel entry qualifies for offload again.
nsx tp-wifi ping -i 0.02 -c 400 -q 203.0.113.11 >/dev/null 2>&1 &
ping_pid=$!
check "the ping flow is offloaded" eventually 3 flow_carries "203.0.113.11:8 " orig 1
# The ping pauses while the entry is deleted: a packet right after it would create a fresh entry
# that is offloaded again within milliseconds, and the removal could not be seen in between.
kill -STOP "$ping_pid" $(pgrep -f 'ping -i 0.02 -c 400' | tr '\n' ' ') 2>/dev/null
nsx tp-box conntrack -D -p icmp --dst 203.0.113.11 >/dev/null 2>&1
t0=$(date +%s%N)
eventually 1 flow_gone "203.0.113.11:8 "
rc=$?
measure "conntrack -D to fast-path removal (ms, polled every ~0.4 s)" "$((($(date +%s%N) - t0) / 1000000))"
check "it leaves the fast path within 1 s" test "$rc" -eq 0
kill -CONT "$ping_pid" $(pgrep -f 'ping -i 0.02 -c 400' | tr '\n' ' ') 2>/dev/null
check "the next packets create a fresh kernel entry" eventually 2 sh -c "ip netns exec tp-box conntrack -L -p icmp --dst 203.0.113.11 2>/dev/null | grep -q 203.0.113.11"
check "which is offloaded again" eventually 3 flow_carries "203.0.113.11:8 " orig 1
wait "$ping_pid"

echo "lost conntrack events: thousands of flows, then conntrack -F"
read -r overruns0 resyncs0 < <(daemon_report | awk '/^conntrack:/ {print $4, $6}')
nsx tp-net python3 "$LAB_ROOT/tests/lab/tools/hold_server.py" 203.0.113.10 9000 &
eventually 5 sh -c "ip netns exec tp-net ss -ltn 'sport = :9000' | grep -q LISTEN"
coproc HOLD { nsx tp-wifi python3 "$LAB_ROOT/tests/lab/tools/hold_client.py" 203.0.113.10 9000 2000; }
read -r opened <&"${HOLD[0]}"
measure "connections held" "$opened"
sleep 2
kernel=$(nsx tp-box conntrack -L -p tcp --dport 9000 2>/dev/null | grep -c ASSURED)
check "all 2000 connections are offloaded" eventually 10 offloaded_at_least 2000
measure "kernel entries / offloaded flows before the flush" "$kernel / $(offloaded_flows)"
nsx tp-box conntrack -F >/dev/null 2>&1
sleep 2
report=$(daemon_report)
overruns=$(echo "$report" | awk '/^conntrack:/ {print $4}')
resyncs=$(echo "$report" | awk '/^conntrack:/ {print $6}')
measure "conntrack overruns / resyncs" "$overruns / $resyncs"
check "the event socket overflowed" test "${overruns:-0}" -gt "${overruns0:-0}"
check "and the mirror resynchronised after each overrun" test $((resyncs - resyncs0)) -ge $((overruns - overruns0))
kernel_after=$(nsx tp-box conntrack -L 2>/dev/null | grep -c ASSURED)
offloaded_after=$(offloaded_flows)
measure "kernel assured entries / offloaded flows after the flush" "$kernel_after / $offloaded_after"
check "fast path and conntrack agree exactly" test "$offloaded_after" -eq "$kernel_after"
exec {HOLD[1]}>&-
read -r alive <&"${HOLD[0]}"
measure "connections alive after the flush" "$alive"
check "the held connections still work (now through the kernel)" test "$alive" = "alive 2000"

echo "restart: a connection survives SIGKILL and is offloaded by the new instance"
# iperf3 paces its sender, so the connection is busy through the whole kill and restart.
(nsx tp-wifi iperf3 -c 203.0.113.10 -b 20M -t 12; echo "iperf3 exit $?") >"$TP_LAB_DIR/iperf-restart.log" 2>&1 &
iperf_pid=$!
check "the connection is offloaded" eventually 5 flow_carries ":5201 " orig 500
kill -KILL "$TP_PID"
wait "$TP_PID" 2>/dev/null
TP_PID=
sleep 1
start_daemon "$CONFIG"
check "the new instance offloads it from the conntrack dump" eventually 5 flow_carries ":5201 " orig 500
wait "$iperf_pid"
measure "iperf3 across the restart" "$(tail -1 "$TP_LAB_DIR/iperf-restart.log")"
check "the connection survived" grep -q "iperf3 exit 0" "$TP_LAB_DIR/iperf-restart.log"
lab_end
