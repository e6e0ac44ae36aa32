#!/usr/bin/env bash
# IPv6 offload where the kernel does not track IPv6 (offload.ipv6: neighbours): the box's
# firewall is IPv4-only, so conntrack never sees IPv6, and tetherpath offloads it the way
# Android's tethering offload does, from the neighbours on the downstream ports: one rule per
# client address, one per downstream /64. IPv4 is still offloaded from conntrack alongside.
export TP_LAB_IPV6_UNTRACKED=1
source "$(dirname "$0")/lib.sh"
lab_begin
CLIENT6=2001:db8:50::ff:fe50:10
USB6=2001:db8:60::ff:fe60:10
start_daemon "$(lab_config -e 's/^  enabled: true/  enabled: true\n  ipv6: neighbours/')"

# Fast-path bytes of the IPv6 rule matching a pattern ("client ADDR" or "prefix ADDR/64").
rule_bytes() { daemon_report | awk -v pat="rule $1 " 'index($0, pat) == 1 {print $(NF-1); f = 1} END {if (!f) print 0}'; }
rule_carries() { [ "$(rule_bytes "$1")" -ge "$2" ]; }
rule_gone() { ! daemon_report | grep "^rule $1 " >/dev/null; }

echo "IPv6 with the kernel not tracking it"
check "ping IPv6 wifi -> server" nsx tp-wifi ping -6 -c 5 -i 0.2 -W 2 2001:db8:ffff::10
check "the kernel tracked no IPv6 (conntrack -L -f ipv6 is empty)" test "$(nsx tp-box conntrack -L -f ipv6 2>/dev/null | wc -l)" -eq 0
# A ping per try: a rule installed after the first pings ended carries nothing until the next.
pinged_rule_carries() { nsx tp-wifi ping -6 -c 1 -W 1 2001:db8:ffff::10 >/dev/null; rule_carries "client $CLIENT6" 1; }
check "the client got its rule (from the neighbour table)" eventually 3 pinged_rule_carries
check "its /64 got the rule toward the router" rule_carries "prefix 2001:db8:50::/64" 1
make_file 30M.bin 30
check "HTTP download over IPv6, sha256 matches" download_ok tp-wifi "http://[2001:db8:ffff::10]/30M.bin" 30M.bin
down=$(rule_bytes "client $CLIENT6")
measure "bytes the client rule carried for the 30 MB download" "$down"
check "the fast path carried at least 99% of it" test "$down" -ge 29700000
nsx tp-usb iperf3 -6 -c 2001:db8:ffff::10 -u -b 50M -t 3 --json >"$TP_LAB_DIR/iperf6u.json" 2>&1
check "iperf3 UDP over IPv6 from the usb client" grep -q '"sum"' "$TP_LAB_DIR/iperf6u.json"
check "carried by the usb prefix rule" rule_carries "prefix 2001:db8:60::/64" 15000000
up0=$(rule_bytes "prefix 2001:db8:50::/64")
check "between two downstreams the kernel forwards (wifi -> usb ping)" nsx tp-wifi ping -6 -c 3 -i 0.2 -W 2 "$USB6"
check "and the wifi prefix rule did not send it to the upstream" test "$(rule_bytes "prefix 2001:db8:50::/64")" = "$up0"
check "IPv4 is still offloaded from conntrack alongside" sh -c "ip netns exec tp-wifi curl -sf -o /dev/null http://203.0.113.10/30M.bin && $TETHERCTL --json counters | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)[\"flow_manager\"][\"installed\"] < 1)'"

echo "rules follow the neighbour table"
nsx tp-box ip -6 neigh del "$CLIENT6" dev wifi0
check "a neighbour that goes away loses its rule" eventually 2 rule_gone "client $CLIENT6"
check "its traffic still flows (the kernel resolves it again)" nsx tp-wifi ping -6 -c 3 -i 0.2 -W 2 2001:db8:ffff::10
check "and the rule comes back with the neighbour" eventually 3 rule_carries "client $CLIENT6" 1
check "tetherctl lists the rules" sh -c "$TETHERCTL --json flows | grep -q '\"kind\": \"client\"'"
lab_end
