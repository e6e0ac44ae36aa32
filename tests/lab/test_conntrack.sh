#!/usr/bin/env bash
# The conntrack mirror against the kernel's NAT and timeouts: ICMP identifiers the NAT remapped,
# keepalives that beat each protocol's timeout whatever the configured interval, no NAT mapping
# that outlives its conntrack entry in the fast path, and our own updates kept off the event
# socket.
source "$(dirname "$0")/lib.sh"
TOOLS=$LAB_ROOT/tests/lab/tools
lab_begin
start_daemon  # conf/lab.yaml: the shipped keepalive interval (60 s)

echo "two clients ping one server with the same ICMP identifier"
nsx tp-wifi python3 "$TOOLS/icmp_same_id.py" 203.0.113.10 1 wifi 150 0.04 >"$TP_LAB_DIR/icmp-wifi.txt" 2>&1 &
p1=$!
nsx tp-usb python3 "$TOOLS/icmp_same_id.py" 203.0.113.10 1 usb 150 0.04 >"$TP_LAB_DIR/icmp-usb.txt" 2>&1 &
p2=$!
sleep 3
report=$(daemon_report)
wait "$p1" "$p2"
cat "$TP_LAB_DIR"/icmp-*.txt >>"$TP_LAB_DIR/checks.log"
measure "wifi client" "$(cat "$TP_LAB_DIR/icmp-wifi.txt")"
measure "usb client" "$(cat "$TP_LAB_DIR/icmp-usb.txt")"
both_offloaded() {
  echo "$report" | grep -q '^flow proto 1 192.168.50.10:1 ' &&
    echo "$report" | grep -q '^flow proto 1 192.168.60.10:1 '
}
check "both echo flows are offloaded" both_offloaded
# The reply tuples' identifiers (the second id= of each entry): two clients, two identifiers.
reply_ids() {
  nsx tp-box conntrack -L -p icmp 2>/dev/null | grep 'dst=203.0.113.10 type=8' |
    awk '{n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^id=/ && ++n == 2) print $i}' | sort -u | wc -l
}
check "the NAT remapped one identifier" test "$(reply_ids)" -eq 2
own_only() { read -r _ own _ foreign _ sent <"$1"; [ "$foreign" -eq 0 ] && [ "$own" -ge $((sent * 95 / 100)) ]; }
check "the wifi client gets its own replies, and only those" own_only "$TP_LAB_DIR/icmp-wifi.txt"
check "the usb client gets its own replies, and only those" own_only "$TP_LAB_DIR/icmp-usb.txt"

echo "keepalives beat every protocol's timeout (shipped interval 60 s, UDP stream timeout 40 s)"
nsx tp-box sysctl -qw net.netfilter.nf_conntrack_udp_timeout_stream=40
nsx tp-net python3 "$TOOLS/udp_reflector.py" 203.0.113.10 7100 &
nsx tp-box conntrack -E -e DESTROY -o timestamp >"$TP_LAB_DIR/destroys.txt" 2>&1 &
ev_pid=$!
secs=${TP_KEEPALIVE_SECONDS:-100}
nsx tp-wifi ping -i 0.5 -w "$secs" -q 203.0.113.11 >"$TP_LAB_DIR/ping.txt" 2>&1 &
ping_pid=$!
nsx tp-usb python3 "$TOOLS/udp_flows.py" 203.0.113.10 7100 1 "$secs" >"$TP_LAB_DIR/udp.txt" 2>&1 &
udp_pid=$!
sleep 10
ids_before=$(nsx tp-box conntrack -L -o id 2>/dev/null | grep -E 'dst=203.0.113.11 .*type=8|dport=7100' | grep -o 'id=[0-9]*' | sort | tr '\n' ' ')
offloaded_before=$(daemon_report | grep -cE '^flow proto (1 192.168.50.10:[0-9]+ -> 203.0.113.11:8 |17 192.168.60.10:[0-9]+ -> 203.0.113.10:7100 )')
wait "$ping_pid" "$udp_pid"
ids_after=$(nsx tp-box conntrack -L -o id 2>/dev/null | grep -E 'dst=203.0.113.11 .*type=8|dport=7100' | grep -o 'id=[0-9]*' | sort | tr '\n' ' ')
kill "$ev_pid" 2>/dev/null
measure "conntrack ids before / after $secs s" "$ids_before / $ids_after"
grep keepalive <(daemon_report) | sed 's/^/  /'
check "the ping and the UDP stream were offloaded" test "$offloaded_before" -eq 2
check "no conntrack entry of theirs expired" sh -c "! grep -E 'dst=203.0.113.11 .*type=8|dport=7100' '$TP_LAB_DIR/destroys.txt'"
check "the same entries all along (ids unchanged)" test "$ids_before" = "$ids_after" -a -n "$ids_before"
check "the ping lost nothing" grep -q ' 0% packet loss' "$TP_LAB_DIR/ping.txt"
check "the UDP stream still answers" grep -q '^answered 1$' "$TP_LAB_DIR/udp.txt"
own=$(tetherctl --json counters | python3 -c 'import json,sys; c=json.load(sys.stdin)["conntrack"]; print(c["own_events_filtered"], c["overruns"])')
measure "own events filtered, overruns" "$own"
check "our keepalive updates never reached the event socket" test "${own#* }" -eq 0 -a "${own% *}" -gt 0

echo "an idle mapping dies with its conntrack entry (UDP timeouts 6 s)"
nsx tp-box sysctl -qw net.netfilter.nf_conntrack_udp_timeout=6 net.netfilter.nf_conntrack_udp_timeout_stream=6
nsx tp-net python3 "$TOOLS/late_reply.py" server 203.0.113.11 7200 12 &
sleep 0.3
nsx tp-wifi python3 "$TOOLS/late_reply.py" client 203.0.113.11 7200 5 16 >"$TP_LAB_DIR/late.txt" 2>&1 &
late_pid=$!
sleep 4.5
late_flow=$(daemon_report | grep -c '^flow proto 17 192.168.50.10:[0-9]* -> 203.0.113.11:7200 ')
wait "$late_pid"
late=$(cat "$TP_LAB_DIR/late.txt")
measure "a datagram 12 s after the last one, to the old mapping" "$late"
check "the flow was offloaded" test "$late_flow" -eq 1
check "the fast path did not deliver to a mapping the kernel had forgotten" test "$late" = "late silent"

lab_end
