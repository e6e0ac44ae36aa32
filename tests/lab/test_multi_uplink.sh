#!/usr/bin/env bash
# Two uplinks at once: the modem (set_upstream's, from the configuration) and a phone tethered to
# the box (add_uplink). One client's flow leaves by the modem, the other's by the phone, both
# offloaded, each with its uplink's source address (counted where tp-net receives them). The
# modem's link goes down during both transfers: its flows go back to the kernel and their
# conntrack entries go, the phone's transfer stays offloaded without loss, new connections
# leave by the phone; the modem back, new connections leave by it again.
#
# The kernel's policy routing is set up here by hand (a rule for the usb client, a backup default
# route via the phone): tetherpath follows whatever the kernel decides.
export TP_LAB_PHONE=1
source "$(dirname "$0")/lib.sh"
lab_begin
CONFIG=$(phone_config)
start_daemon "$CONFIG"

# The modem's flows are SNATed, not masqueraded: the kernel's masquerade forgets its own entries
# when the device goes down, SNAT leaves that to tetherpath's failover.
nsx tp-box nft -f - <<'NFT'
flush table ip tp_nat
table ip tp_nat {
  chain post {
    type nat hook postrouting priority srcnat;
    oifname "modem0" snat to 100.64.0.2
    oifname "phone0" masquerade
  }
}
NFT
nsx tp-net nft -f - <<'NFT'
table inet tp_lab_seen {
  counter modem_wifi {}
  counter phone_usb {}
  counter phone_wifi {}
  counter new_by_phone {}
  counter new_by_modem {}
  counter wrong {}
  chain pre {
    type filter hook prerouting priority -300;
    udp dport { 5201, 5301 } iifname "tp-net-modem" ip saddr 100.64.0.2 ip daddr 203.0.113.10 counter name modem_wifi
    udp dport 5201 iifname "tp-net-phone" ip saddr 100.65.0.2 ip daddr 203.0.113.11 counter name phone_usb
    udp dport { 5201, 5301 } iifname "tp-net-phone" ip saddr 100.65.0.2 ip daddr 203.0.113.10 counter name phone_wifi
    udp dport 5301 iifname "tp-net-phone" ip saddr 100.65.0.2 counter name new_by_phone
    udp dport 5301 iifname "tp-net-modem" ip saddr 100.64.0.2 counter name new_by_modem
    udp dport { 5201, 5301 } iifname "tp-net-modem" ip saddr != 100.64.0.2 counter name wrong
    udp dport { 5201, 5301 } iifname "tp-net-phone" ip saddr != 100.65.0.2 counter name wrong
  }
}
NFT
status_json() {  # status_json PYTHON-EXPRESSION on tetherctl --json status (d)
  tetherctl --json status | python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

echo "uplinks through the API"
check "a second uplink is added" tetherctl add-uplink phone phone0 --kind wifi --metric 200 \
  --ipv4-addr 100.65.0.2 --ipv4-gateway 100.65.0.1
check "a duplicate name is refused" sh -c "! ip netns exec tp-box $TETHERCTL add-uplink phone phone0 2>&1 | grep -q '^ok'"
check "an unknown interface is refused, naming it" \
  sh -c "ip netns exec tp-box $TETHERCTL add-uplink other nope0 2>&1 | grep -q \"no interface 'nope0'\""
check "status lists it" test "$(status_json "[u['name'] + ':' + u['kind'] + ':' + u['link'] for u in d['uplinks']]")" = "['phone:wifi:up']"
tetherctl uplinks >>"$TP_LAB_DIR/checks.log"
check "the metrics have it" sh -c "ip netns exec tp-box curl -sf http://127.0.0.1:9464/metrics | grep -q '^tetherpath_uplink_up{uplink=\"phone\"} 1'"
tetherctl events --count 3 >"$TP_LAB_DIR/events.txt" 2>&1 &
events_pid=$!
sleep 0.3

echo "one client by the modem, the other by the phone"
nsx tp-box ip route add default via 100.65.0.1 dev phone0 table 200
nsx tp-box ip rule add from 192.168.60.10 lookup 200 pref 200
# A backup default route: when the modem goes, new connections take the phone.
nsx tp-box ip route add default via 100.65.0.1 dev phone0 metric 500
two_transfers
check "both transfers are offloaded" eventually 8 both_offloaded
check "the wifi client's leaves by the modem, as 100.64.0.2" grows modem_wifi
check "the usb client's leaves by the phone, as 100.65.0.2" test "$(seen phone_usb)" -gt 0
check "nothing leaves by an uplink with another uplink's address" test "$(seen wrong)" -eq 0
# Per uplink, both paths: the first packets of the usb client's transfer went by the kernel, the
# rest by the fast path; every packet the phone's network saw from the box is counted.
far=$(seen phone_usb)
phone_traffic() {  # phone_traffic PYTHON-EXPRESSION on the phone's status traffic (t)
  status_json "[(lambda t: $1)(u['traffic']) for u in d['uplinks'] if u['name'] == 'phone'][0]"
}
measure "phone uplink traffic (fast path / kernel path, rx and tx bytes)" \
  "$(phone_traffic "'%d/%d rx, %d/%d tx' % (t['fast_path']['rx_bytes'], t['kernel_path']['rx_bytes'], t['fast_path']['tx_bytes'], t['kernel_path']['tx_bytes'])")"
check "the phone's statistics: the download by the fast path" \
  test "$(phone_traffic "t['fast_path']['rx_bytes'] > 1000000")" = True
check "the phone's statistics: the kernel's path both ways" \
  test "$(phone_traffic "t['kernel_path']['rx_packets'] > 0 and t['kernel_path']['tx_packets'] > 0")" = True
check "the phone's statistics count every packet its network saw from the box ($far)" \
  test "$(phone_traffic "t['tx_packets'] >= $far")" = True
check "the metrics have both paths per uplink" sh -c "ip netns exec tp-box curl -sf http://127.0.0.1:9464/metrics | grep -q '^tetherpath_uplink_bytes_total{uplink=\"phone\",direction=\"tx\",path=\"kernel\"} [1-9]'"

echo "the modem's link goes down"
modem_before=$(nsx tp-box conntrack -L -p udp --orig-src 192.168.50.10 --dport 5201 2>/dev/null | grep -c 5201)
nsx tp-box ip link set modem0 down
t0=$(now_ms)
check "the modem's flow leaves the fast path" eventually 2 flow_gone "203.0.113.10:5201 "
measure "link down to hand-back (ms, polled every ~0.4 s)" "$(($(now_ms) - t0))"
check "its conntrack entry is gone (it was there: $modem_before)" \
  eventually 2 sh -c "! ip netns exec tp-box conntrack -L -p udp --orig-src 192.168.50.10 --orig-dst 203.0.113.10 --dport 5201 2>/dev/null | grep -q 'sport=.*100.64.0.2'"
removed=$(status_json "d['failover_conntrack_removed']")
measure "conntrack entries tetherpath removed for the failed uplink" "$removed"
check "tetherpath removed it (SNAT: the kernel would not have)" test "$removed" -ge 1
check "the modem's link loss is an event" eventually 3 grep -q '^offload_stopped_error modem0' "$TP_LAB_DIR/events.txt"
check "the phone's transfer is still offloaded" eventually 2 flow_carries "203.0.113.11:5201 " reply 100
check "ports shows the modem's link down" sh -c "ip netns exec tp-box $TETHERCTL ports | grep -E '^modem0 .* down'"
# The old transfer's server socket is connected to the modem's address: a new connection (to a
# server of its own) shows where new flows go.
nsx tp-net iperf3 -s -D -B 203.0.113.10 -p 5301 --logfile "$TP_LAB_DIR/iperf3-5301.log"
sleep 0.5
nsx tp-wifi timeout 45 iperf3 -c 203.0.113.10 -p 5301 -u -b 5M -t 6 >/dev/null 2>&1 &
pid_new=$!
check "the wifi client's packets now leave by the phone, as 100.65.0.2" eventually 5 grows phone_wifi
check "a new connection of the wifi client leaves by the phone too" eventually 5 grows new_by_phone
check "and is offloaded there" eventually 6 flow_carries "203.0.113.10:5301 " orig 100
wait "$pid_new" "$pid_wifi" "$pid_usb"
lost=$(usb_lost)
measure "packets the phone's transfer lost across the modem's failure" "${lost:-unknown}"
check "the phone's transfer lost nothing" test "${lost:-1}" -eq 0

echo "the modem comes back"
nsx tp-box ip link set modem0 up
nsx tp-box ip route replace default via 100.64.0.1 dev modem0  # as the connection manager would
before=$(seen new_by_modem)
nsx tp-wifi timeout 45 iperf3 -c 203.0.113.10 -p 5301 -u -b 5M -t 6 >/dev/null 2>&1 &
pid_wifi=$!
modem_again() { [ "$(seen new_by_modem)" -gt "$before" ]; }
check "a new connection leaves by the modem again" eventually 5 modem_again
check "and is offloaded" eventually 6 flow_carries "203.0.113.10:5301 " orig 100
wait "$pid_wifi"
kill "$events_pid" 2>/dev/null
check "removing the phone uplink is accepted" tetherctl remove-uplink phone
check "status: no uplinks left" test "$(status_json "len(d['uplinks'])")" = 0

lab_end
