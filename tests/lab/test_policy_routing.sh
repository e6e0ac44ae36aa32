#!/usr/bin/env bash
# Policy routing the integrator sets up by hand, under running transfers: the fast path follows
# the kernel's own route lookup for each flow (ip rules by source and by mark, blackhole and
# prohibit routes, a multipath default route), and never forwards a packet the kernel would drop
# or send elsewhere. Counters in the network namespace and a capture of the modem link prove it.
source "$(dirname "$0")/lib.sh"
lab_begin
# The box restores the conntrack mark's low byte into each packet's mark before routing (as mwan3
# does); route_mark_mask tells tetherpath so.
CONFIG=$(lab_config -e 's/keepalive_interval_s: 60/keepalive_interval_s: 60\n  route_mark_mask: 255/')
start_daemon "$CONFIG"
nsx tp-box nft -f - <<'NFT'
table inet tp_lab_marks {
  chain pre { type filter hook prerouting priority mangle; meta mark set ct mark and 0xff; }
}
NFT
# What reaches the servers from the box, per destination: the network's own count.
nsx tp-net nft -f - <<'NFT'
table inet tp_lab_seen {
  counter to10 {}
  counter to11 {}
  chain pre {
    type filter hook prerouting priority -300;
    ip saddr 100.64.0.2 ip daddr 203.0.113.10 udp dport 5201 counter name to10
    ip saddr 100.64.0.2 ip daddr 203.0.113.11 udp dport 5201 counter name to11
  }
}
NFT
# refused REASON: how many times the policy refused a flow for that reason.
refused() {
  tetherctl --json counters |
    python3 -c "import json, sys; print(json.load(sys.stdin)['flow_manager']['not_offloaded'].get('$1', 0))"
}
# udp_flow NS SERVER SECONDS: a paced UDP upload, offloaded once the kernel marks it assured.
udp_flow() { nsx "$1" timeout $(($3 + 15)) iperf3 -c "$2" -u -b 10M -t "$3" >/dev/null 2>&1 & }
silent_for() {  # silent_for COUNTER SECONDS: nothing reached the server meanwhile
  local a b
  a=$(seen "$1"); sleep "$2"; b=$(seen "$1")
  echo "$1: $a -> $b"
  [ "$a" = "$b" ]
}

echo "a blackhole route added during a transfer"
# Long enough for both sections; stopped at their end.
udp_flow tp-wifi 203.0.113.10 60
pid10=$!
udp_flow tp-usb 203.0.113.11 60
pid11=$!
both_offloaded() { flow_carries "203.0.113.10:5201 " orig 500 && flow_carries "203.0.113.11:5201 " orig 500; }
check "both transfers are offloaded" eventually 6 both_offloaded
before=$(seen to10)
nsx tp-box ip route add blackhole 203.0.113.10
t0=$(now_ms)
eventually 2 flow_gone "203.0.113.10:5201 "
check "the flow leaves the fast path" test $? -eq 0
measure "route change to fast-path removal (ms, polled every ~0.4 s)" "$(($(now_ms) - t0))"
# The window between the kernel's change and the fast path's: what still reached the server
# (at ~870 packets/s, one packet ~ 1.2 ms; the first few left before the route was in).
measure "packets that reached the server after the blackhole was added" "$(($(seen to10) - before))"
check "nothing more reaches the blackholed server" silent_for to10 2
check "named: route_dropped" test "$(refused route_dropped)" -gt 0
check "the other client's transfer stays offloaded" flow_carries "203.0.113.11:5201 " orig 100
nsx tp-box ip route del blackhole 203.0.113.10
check "when the route goes, the flow is offloaded again (no conntrack event needed)" \
  eventually 3 flow_carries "203.0.113.10:5201 " orig 100
check "and reaches its server again" grows to10

echo "an ip rule for one client, and a mark rule"
# prohibit and unreachable routes would also answer the client with ICMP errors, which end
# iperf3's transfer; the unit tests (test_route_lookup) name those refusals on the real kernel.
nsx tp-box ip route add blackhole default table 100
nsx tp-box ip rule add from 192.168.60.10 lookup 100 pref 100
check "the ruled client's flow leaves the fast path" eventually 2 flow_gone "203.0.113.11:5201 "
check "nothing of it reaches the server" silent_for to11 2
check "the other client's flow is untouched" flow_carries "203.0.113.10:5201 " orig 100
nsx tp-box ip rule del pref 100
check "the rule gone, the flow is offloaded again" eventually 3 flow_carries "203.0.113.11:5201 " orig 100
# A mark on the wifi client's entry that a rule sends to a blackhole: conntrack's update event
# carries the mark, the lookup with it says the kernel drops the packets.
nsx tp-box ip route add blackhole default table 101
nsx tp-box ip rule add fwmark 5/0xff lookup 101 pref 101
nsx tp-box conntrack -U -p udp --orig-src 192.168.50.10 --dport 5201 --mark 5 >/dev/null 2>&1
check "a mark the kernel routes to a blackhole takes the flow out" eventually 2 flow_gone "203.0.113.10:5201 "
check "and nothing of it reaches the server" silent_for to10 2
nsx tp-box conntrack -U -p udp --orig-src 192.168.50.10 --dport 5201 --mark 0 >/dev/null 2>&1
check "the mark cleared, it is offloaded again" eventually 3 flow_carries "203.0.113.10:5201 " orig 100
nsx tp-box ip rule del pref 101
kill "$pid10" "$pid11" 2>/dev/null
wait "$pid10" "$pid11" 2>/dev/null

echo "a multipath default route: each flow leaves by the next hop the kernel hashes it to"
# A second gateway on the modem link with a MAC of its own, so a capture tells them apart.
nsx tp-net sysctl -qw net.ipv4.conf.all.arp_ignore=1
nsx tp-net ip link add tp-net-gw2 link tp-net-modem type macvlan mode bridge
nsx tp-net ip link set tp-net-gw2 address 02:00:00:64:00:03 up
nsx tp-net ip addr add 100.64.0.3/24 dev tp-net-gw2
gw1_mac=$(nsx tp-net cat /sys/class/net/tp-net-modem/address)
nsx tp-box sysctl -qw net.ipv4.fib_multipath_hash_policy=1
nsx tp-box ip route replace default nexthop via 100.64.0.1 nexthop via 100.64.0.3
# A server of its own: the one on 5201 may still be finishing the transfer stopped above.
nsx tp-net iperf3 -s -D -B 203.0.113.10 -p 5301 --logfile "$TP_LAB_DIR/iperf3-5301.log"
sleep 0.5
nsx tp-wifi timeout 30 iperf3 -c 203.0.113.10 -p 5301 -u -b 2M -P 8 -t 10 >/dev/null 2>&1 &
pidmp=$!
check "the flows are offloaded" eventually 6 offloaded_at_least 8
nsx tp-net timeout 2 tcpdump -i tp-net-modem -nn -e -l 'udp and dst port 5301' 2>/dev/null >"$TP_LAB_DIR/mp.txt"
# Per flow (the client's port, after NAT the same port unless it clashed): where the kernel
# would send it, and where the capture saw it go.
mismatch=0 flows=0
while read -r cport nport; do
  want=$(nsx tp-box ip route get 203.0.113.10 from 192.168.50.10 iif wifi0 ipproto udp sport "$cport" dport 5301 |
    grep -q 'via 100.64.0.3' && echo 02:00:00:64:00:03 || echo "$gw1_mac")
  got=$(awk -v p="100.64.0.2.$nport " 'index($0, p) {print $4}' "$TP_LAB_DIR/mp.txt" | tr -d ',' | sort -u | tr '\n' ' ')
  echo "flow $cport (nat $nport): kernel $want, seen ${got:-nothing}" >>"$TP_LAB_DIR/checks.log"
  [ -n "$got" ] || continue  # nothing of it in the capture's 2 s: forwarded by no next hop
  flows=$((flows + 1))
  [ "$got" = "$want " ] || mismatch=$((mismatch + 1))
done < <(nsx tp-box conntrack -L -p udp --orig-src 192.168.50.10 --dport 5301 2>/dev/null |
  awk '{n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^sport=/) {split($i, a, "="); p[++n] = a[2]} else if ($i ~ /^dport=/) {split($i, a, "="); d[n] = a[2]}; print p[1], d[2]}')
measure "multipath flows / leaving by another next hop than the kernel's" "$flows / $mismatch"
check "every flow leaves by the kernel's next hop, and both next hops carry some" \
  sh -c "[ $flows -ge 8 ] && [ $mismatch -eq 0 ] && grep -q 02:00:00:64:00:03 '$TP_LAB_DIR/mp.txt' && grep -q '$gw1_mac' '$TP_LAB_DIR/mp.txt'"
wait "$pidmp"
nsx tp-box ip route replace default via 100.64.0.1

lab_end
