#!/usr/bin/env bash
# Uplinks tetherpath manages: it programs the kernel's policy routing and masquerade for them and
# tracks their health with pings over each uplink. The modem's network stops answering (100 %
# loss: the network drops everything toward the box; this kernel has no netem, an nftables drop
# is the same loss; the link stays up): tracking takes it down within its bound, new connections
# are routed to the phone, the modem's offloaded flows go back to the kernel and their conntrack
# entries go, nothing more leaves by the modem's fast path, the phone's transfer loses nothing.
# The modem's network back: it is up again after its run of good rounds, and takes new
# connections after the failback hold. IPv6: each uplink routes the prefix its network delegated,
# whichever takes new connections. Then the phone is tracked by ARP: its gateway stops answering
# ARP, and the phone goes down, then up again.
export TP_LAB_PHONE=1
source "$(dirname "$0")/lib.sh"
lab_begin
# No set_upstream: two uplinks, the modem preferred; both tracked by pinging the lab's server.
CONFIG=$(phone_config managed)
cat >>"$CONFIG" <<'YAML'
uplinks:
  - name: modem
    iface: modem0
    kind: cellular
    metered: true
    metric: 10
    ipv4_addr: 100.64.0.2
    ipv4_gateway: 100.64.0.1
    track: {targets: [203.0.113.10], interval_ms: 200, timeout_ms: 150, down: 3, up: 3}
  - name: phone
    iface: phone0
    kind: wifi
    metric: 20
    ipv4_addr: 100.65.0.2
    ipv4_gateway: 100.65.0.1
    track: {targets: [203.0.113.10], interval_ms: 200, timeout_ms: 150, down: 3, up: 3}
routing:
  manage: true
  table: 1000
  priority: 1000
  failback_s: 3
YAML
start_daemon "$CONFIG"
# The lab's own masquerade goes: tetherpath's must do.
nsx tp-box nft delete table ip tp_nat
nsx tp-net nft -f - <<'NFT'
table inet tp_lab_seen {
  counter modem_wifi {}
  counter phone_wifi {}
  counter phone_usb {}
  counter new_by_phone {}
  counter new_by_modem {}
  counter unnatted {}
  chain pre {
    type filter hook prerouting priority -300;
    udp dport 5201 iifname "tp-net-modem" ip saddr 100.64.0.2 counter name modem_wifi
    udp dport 5201 iifname "tp-net-phone" ip saddr 100.65.0.2 ip daddr 203.0.113.10 counter name phone_wifi
    udp dport 5201 iifname "tp-net-phone" ip saddr 100.65.0.2 ip daddr 203.0.113.11 counter name phone_usb
    udp dport 5301 iifname "tp-net-phone" ip saddr 100.65.0.2 counter name new_by_phone
    udp dport 5301 iifname "tp-net-modem" ip saddr 100.64.0.2 counter name new_by_modem
    ip saddr 192.168.0.0/16 counter name unnatted
  }
}
NFT
status_json() {  # status_json PYTHON-EXPRESSION on tetherctl --json status (d)
  tetherctl --json status | python3 -c "import json, sys; d = json.load(sys.stdin); u = {x['name']: x for x in d['uplinks']}; print($1)"
}
shared_default() { nsx tp-box ip route show table 1000 | head -1; }
fast_tx() {  # fast-path packets sent out of a port
  tetherctl --json ports | python3 -c "import json, sys; print([p['fast_tx_packets'] for p in json.load(sys.stdin)['ports'] if p['name'] == '$1'][0])"
}

echo "tetherpath's routing and masquerade"
check "rules: main's specific routes, then the uplinks' shared table" \
  sh -c "ip -n tp-box rule | grep -q '^1002:.*lookup main suppress_prefixlength 0' && ip -n tp-box rule | grep -q '^1005:.*lookup 1000'"
check "a table per uplink, and their addresses' rules" \
  sh -c "ip -n tp-box route show table 1002 | grep -q 'default via 100.65.0.1 dev phone0' && ip -n tp-box rule | grep -q '^1000:.*from 100.64.0.2 lookup 1001'"
check "new connections go to the modem (metric 10)" eventually 5 sh -c "ip -n tp-box route show table 1000 | grep -q 'default via 100.64.0.1 dev modem0'"
check "masquerade out of both uplinks" sh -c "ip netns exec tp-box nft list table ip tetherpath_nat | grep -qE 'oifname \\{ (\"modem0\", \"phone0\"|\"phone0\", \"modem0\") \\} masquerade'"
check "both uplinks are healthy, the modem takes new connections" \
  eventually 5 sh -c "ip netns exec tp-box $TETHERCTL --json status | python3 -c \"import json, sys; u = {x['name']: x for x in json.load(sys.stdin)['uplinks']}; sys.exit(not (u['modem']['health'] == u['phone']['health'] == 'up' and u['modem']['takes_new_connections'] and not u['phone']['takes_new_connections'] and u['modem']['probes_answered'] > 0))\""
tetherctl uplinks >>"$TP_LAB_DIR/checks.log"
# The events, each stamped with its arrival (ms): tracking's times are taken from them, not from
# polls, whose own cost would be in the figure.
tetherctl --json events 2>&1 | while IFS= read -r line; do
  echo "$((${EPOCHREALTIME/./} / 1000)) $line"
done >"$TP_LAB_DIR/events.txt" &
events_pid=$!
# event_after T PATTERN: the time since T (ms) of the first event from T on matching PATTERN, or
# "none".
event_after() {
  awk -v t="$1" -v re="$2" '$1 >= t && $0 ~ re { print $1 - t; found = 1; exit } END { if (!found) print "none" }' \
    "$TP_LAB_DIR/events.txt"
}
sleep 0.3

echo "one client by the modem, the other pinned to the phone's table"
nsx tp-box ip rule add from 192.168.60.10 lookup 1002 pref 900
two_transfers
check "both transfers are offloaded" eventually 8 both_offloaded
check "the wifi client's leaves by the modem, masqueraded by tetherpath's rule" grows modem_wifi
check "the usb client's leaves by the phone" test "$(seen phone_usb)" -gt 0
check "nothing leaves unmasqueraded" test "$(seen unnatted)" -eq 0

echo "the modem's network stops answering (100 % loss, link up)"
# The old transfer's server socket is connected to the modem's address: a new connection (to a
# server of its own) shows where new flows go.
nsx tp-net iperf3 -s -D -B 203.0.113.10 -p 5301 --logfile "$TP_LAB_DIR/iperf3-5301.log"
sleep 0.3
modem_loss() {  # modem_loss on|off
  if [ "$1" = on ]; then
    nsx tp-net nft 'add table inet tp_lab_loss; add chain inet tp_lab_loss out { type filter hook postrouting priority 300; }; add rule inet tp_lab_loss out oifname "tp-net-modem" drop'
  else
    nsx tp-net nft delete table inet tp_lab_loss
  fi
}
modem_loss on
t0=$(now_ms)
modem_down() { [ "$(status_json "u['modem']['health']")" = down ]; }
check "tracking takes the modem down" eventually 5 modem_down
detect=$(event_after "$t0" '"event":"uplink_health".*"state":"down".*"uplink":"modem"')
measure "loss to uplink down (ms; 3 rounds of 200 ms; the event's arrival)" "$detect"
check "within the bound (3 rounds + a round's timeout + 0.5 s)" test "$detect" -le 1250
tx_at_down=$(fast_tx modem0)
check "new connections go to the phone now" sh -c "ip -n tp-box route show table 1000 | grep -q 'default via 100.65.0.1 dev phone0'"
check "the modem's flow left the fast path" eventually 2 flow_gone "203.0.113.10:5201 "
check "its conntrack entry is gone" \
  eventually 2 sh -c "! ip netns exec tp-box conntrack -L -p udp --orig-src 192.168.50.10 --orig-dst 203.0.113.10 --dport 5201 2>/dev/null | grep -q 'dport=.* 100.64.0.2'"
removed=$(status_json "d['failover_conntrack_removed']")
measure "conntrack entries tetherpath removed for the failed uplink" "$removed"
check "tetherpath removed them (masquerade forgets only when the device goes)" test "$removed" -ge 1
nsx tp-wifi timeout 45 iperf3 -c 203.0.113.10 -p 5301 -u -b 5M -t 5 >/dev/null 2>&1 &
pid_new=$!
first_new() { [ "$(seen new_by_phone)" -gt 0 ]; }
check "a new connection leaves by the phone" eventually 5 first_new
measure "loss to the first new connection leaving by the phone (ms, polled every ~0.1 s)" "$(($(now_ms) - t0))"
check "and is offloaded there" eventually 6 flow_carries "203.0.113.10:5301 " orig 100
tx_later=$(fast_tx modem0)
measure "fast-path packets out of the modem after tracking took it down" "$((tx_later - tx_at_down))"
check "none (goal: 0)" test "$tx_later" -eq "$tx_at_down"
check "the phone's transfer is still offloaded" flow_carries "203.0.113.11:5201 " reply 100
check "the health change is an event" grep -q '"event":"uplink_health".*"state":"down".*"uplink":"modem"' "$TP_LAB_DIR/events.txt"
check "the change of who takes new connections is an event" grep -q '"uplinks":\["phone"\]' "$TP_LAB_DIR/events.txt"
wait "$pid_new" "$pid_wifi" "$pid_usb"
lost=$(usb_lost)
measure "packets the phone's transfer lost across the modem's failure" "${lost:-unknown}"
check "the phone's transfer lost nothing" test "${lost:-1}" -eq 0

echo "the modem's network answers again"
modem_loss off
t1=$(now_ms)
modem_up() { [ "$(status_json "u['modem']['health']")" = up ]; }
check "tracking brings the modem up" eventually 5 modem_up
measure "recovery to uplink up (ms; 3 good rounds; the event's arrival)" \
  "$(event_after "$t1" '"event":"uplink_health".*"state":"up".*"uplink":"modem"')"
check "new connections still go to the phone during the failback hold" \
  sh -c "ip -n tp-box route show table 1000 | grep -q 'dev phone0'"
check "after the hold (3 s) they go to the modem again" \
  eventually 5 sh -c "ip -n tp-box route show table 1000 | grep -q 'default via 100.64.0.1 dev modem0'"
measure "recovery to new connections by the modem (ms)" "$(($(now_ms) - t1))"
nsx tp-wifi timeout 45 iperf3 -c 203.0.113.10 -p 5301 -u -b 5M -t 4 >/dev/null 2>&1 &
pid_wifi=$!
modem_again() { [ "$(seen new_by_modem)" -gt 0 ]; }
check "a new connection leaves by the modem" eventually 5 modem_again
check "and is offloaded" eventually 6 flow_carries "203.0.113.10:5301 " orig 100
wait "$pid_wifi"
kill "$events_pid" 2>/dev/null

echo "IPv6: each uplink's network routes the prefix it delegated"
# The phone's network gets IPv6 and routes the usb clients' prefix back through the phone.
nsx tp-net ip addr add 2001:db8:101::1/64 dev tp-net-phone nodad
nsx tp-box ip addr add 2001:db8:101::2/64 dev phone0 nodad
nsx tp-net ip -6 route replace 2001:db8:60::/64 via 2001:db8:101::2
nsx tp-net nft -f - <<'NFT'
add counter inet tp_lab_seen v6_usb_by_phone
add counter inet tp_lab_seen v6_usb_by_modem
add rule inet tp_lab_seen pre iifname "tp-net-phone" ip6 saddr 2001:db8:60::/64 counter name v6_usb_by_phone
add rule inet tp_lab_seen pre iifname "tp-net-modem" ip6 saddr 2001:db8:60::/64 counter name v6_usb_by_modem
NFT
check "the modem routes the wifi clients' prefix" \
  tetherctl update-uplink modem --ipv6-gateway 2001:db8:100::1 --ipv6-prefix 2001:db8:50::/64
check "the phone routes the usb clients'" \
  tetherctl update-uplink phone --ipv6-gateway 2001:db8:101::1 --ipv6-prefix 2001:db8:60::/64
check "a rule per prefix to its uplink's table" \
  sh -c "ip -n tp-box -6 rule | grep -q 'from 2001:db8:60::/64 lookup 1002' && ip -n tp-box -6 rule | grep -q 'from 2001:db8:50::/64 lookup 1001'"
check "the phone's table has its IPv6 default route" \
  eventually 5 sh -c "ip -n tp-box -6 route show table 1002 | grep -q 'default via 2001:db8:101::1 dev phone0'"
check "new connections still go to the modem" \
  sh -c "ip -n tp-box -6 route show table 1000 | grep -q 'default via 2001:db8:100::1 dev modem0'"
nsx tp-usb timeout 30 iperf3 -6 -c 2001:db8:ffff::10 -p 5201 -u -b 5M -t 4 >/dev/null 2>&1 &
pid_v6=$!
check "the usb client's IPv6 transfer leaves by the phone, whose prefix it is" \
  eventually 5 grows v6_usb_by_phone
check "and is offloaded" eventually 6 flow_carries "2001:db8:ffff::10:5201 " orig 100
check "none of it leaves by the modem" test "$(seen v6_usb_by_modem)" -eq 0
wait "$pid_v6"

echo "tracking by ARP: the phone's gateway asked who has its address"
check "the phone's tracking switches to ARP" \
  tetherctl update-uplink phone --track 100.65.0.1 --track-method arp --track-interval-ms 200
arp_answered() { [ "$(status_json "u['phone'].get('probes_answered', 0)")" -gt 3 ]; }
check "the gateway answers the ARP probes" eventually 5 arp_answered
check "the phone is up by them" test "$(status_json "u['phone']['health']")" = up
nsx tp-net ip link set tp-net-phone arp off  # the gateway stops answering ARP, the link stays up
phone_down() { [ "$(status_json "u['phone']['health']")" = down ]; }
check "an unanswered gateway takes the phone down" eventually 5 phone_down
check "new connections leave the phone" \
  eventually 3 sh -c "! ip -n tp-box route show table 1000 | grep -q 'dev phone0'"
nsx tp-net ip link set tp-net-phone arp on
phone_up() { [ "$(status_json "u['phone']['health']")" = up ]; }
check "the gateway answering again brings it up" eventually 5 phone_up

echo "bad input"
check "a tracking target that is no address is refused, naming it" \
  sh -c "ip netns exec tp-box $TETHERCTL update-uplink phone --track 203.0.113.300 2>&1 | grep -q 'track.targets'"
bad=$TP_LAB_DIR/bad-routing.yaml
sed -e 's/^  failback_s: 3/  failback_s: 3\n  mark_mask: 0xf000/' -e 's/^  keepalive_interval_s: 60/  keepalive_interval_s: 60\n  no_offload_mask: 0x1000\n  no_offload_mark: 0x1000/' "$CONFIG" >"$bad"
cp "$CONFIG" "$CONFIG.good" && cp "$bad" "$CONFIG"
check "a mark mask overlapping the integrator's is refused, naming file, line and key" \
  sh -c "ip netns exec tp-box $TETHERCTL reload 2>&1 | grep -q 'mark_mask: overlaps offload.no_offload_mask'"
cp "$CONFIG.good" "$CONFIG"
check "and nothing changed" sh -c "ip -n tp-box route show table 1000 | grep -q 'dev modem0'"
check "removing the modem uplink is accepted" tetherctl remove-uplink modem
check "its table and rule went, the phone's stand" \
  sh -c "! ip -n tp-box rule | grep -q 'from 100.64.0.2' && ip -n tp-box route show table 1000 | grep -q 'dev phone0'"

echo "routing handed back"
sed -i 's/^  manage: true/  manage: false/' "$CONFIG"
check "manage: false is applied by a reload" tetherctl reload
check "tetherpath's rules, tables and masquerade are gone" \
  sh -c "! ip -n tp-box rule | grep -q '^100[0-5]:' && [ -z \"\$(ip -n tp-box route show table 1000)\" ] && ! ip netns exec tp-box nft list table ip tetherpath_nat >/dev/null 2>&1"

lab_end
