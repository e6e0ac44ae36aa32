#!/usr/bin/env bash
# Sessions: per-client policy over the two uplinks tetherpath manages. The shared table prefers
# the modem; the wifi client's session (by its MAC) may use only the phone, the usb client's (by
# its address) only the modem. Each client's transfer leaves by its session's uplink (seen from
# tp-net), both offloaded. A reload makes the usb client's session `local`: policy_applied with
# the next generation, the internet refused to it, the wifi client still reached. Bad policies
# (an unknown uplink, two sessions with one selector and one priority) are refused and change
# nothing.
export TP_LAB_PHONE=1
source "$(dirname "$0")/lib.sh"
lab_begin
CONFIG=$(phone_config managed)
cat >>"$CONFIG" <<'YAML'
uplinks:
  - {name: modem, iface: modem0, kind: cellular, metric: 10, ipv4_addr: 100.64.0.2, ipv4_gateway: 100.64.0.1}
  - {name: phone, iface: phone0, kind: wifi, metric: 20, ipv4_addr: 100.65.0.2, ipv4_gateway: 100.65.0.1}
routing:
  manage: true
  session_mark_mask: 0xf0000
sessions:
  - name: passenger
    match: {macs: ['02:00:00:50:00:10']}
    uplinks: [phone]
  - name: head_unit
    match: {addresses: [192.168.60.10/32]}
    uplinks: [cellular]
YAML
start_daemon "$CONFIG"
nsx tp-box nft delete table ip tp_nat  # tetherpath's masquerade must do
nsx tp-net nft -f - <<'NFT'
table inet tp_lab_seen {
  counter phone_wifi {}
  counter modem_usb {}
  counter wrong {}
  counter usb_out {}
  chain pre {
    type filter hook prerouting priority -300;
    udp dport 5201 iifname "tp-net-phone" ip saddr 100.65.0.2 ip daddr 203.0.113.10 counter name phone_wifi
    udp dport 5201 iifname "tp-net-modem" ip saddr 100.64.0.2 ip daddr 203.0.113.11 counter name modem_usb
    udp dport 5201 iifname "tp-net-modem" ip daddr 203.0.113.10 counter name wrong
    udp dport 5201 iifname "tp-net-phone" ip daddr 203.0.113.11 counter name wrong
    tcp dport 80 ip daddr 203.0.113.10 counter name usb_out
  }
}
NFT
status_json() {  # status_json PYTHON-EXPRESSION on tetherctl --json status (d; s: sessions by name)
  tetherctl --json status | python3 -c "import json, sys; d = json.load(sys.stdin); s = {x['name']: x for x in d['sessions']}; print($1)"
}
tetherctl --json events >"$TP_LAB_DIR/events.txt" 2>&1 &
events_pid=$!
sleep 0.3

echo "each client by its session's uplink"
check "the shared table prefers the modem" \
  eventually 5 sh -c "ip -n tp-box route show table 1000 | grep -q 'default via 100.64.0.1 dev modem0'"
check "a table and a mark rule per session" \
  sh -c "ip -n tp-box rule | grep -q '^1003:.*fwmark 0x10000/0xf0000 lookup 1128' && ip -n tp-box route show table 1128 | grep -q 'default via 100.65.0.1 dev phone0'"
check "status says where each session goes" \
  test "$(status_json "s['passenger']['routed_by'] + s['head_unit']['routed_by']")" = "['phone', 'modem']"
two_transfers
check "both transfers are offloaded" eventually 8 both_offloaded
check "the wifi client's leaves by the phone, its session's" grows phone_wifi
check "the usb client's leaves by the modem, its session's" test "$(seen modem_usb)" -gt 0
check "none leaves by the other uplink" test "$(seen wrong)" -eq 0
check "conntrack carries each connection's session" \
  sh -c "ip netns exec tp-box conntrack -L -p udp --orig-src 192.168.50.10 --dport 5201 2>/dev/null | grep -q 'mark=65536'"
wait "$pid_wifi" "$pid_usb" 2>/dev/null
check "the usb client's transfer lost nothing" test "$(usb_lost)" = 0

echo "a policy update: the usb client's session becomes local"
gen=$(status_json "d['policy_generation']")
cp "$CONFIG" "$CONFIG.good"
sed -i 's/^    uplinks: \[cellular\]/    uplinks: [cellular]\n    connection: local/' "$CONFIG"
check "the reload is accepted" tetherctl reload
check "policy_applied with the next generation" \
  eventually 3 grep -q "\"event\":\"policy_applied\",\"generation\":$((gen + 1))" "$TP_LAB_DIR/events.txt"
check "its table prohibits" sh -c "ip -n tp-box route show table 1129 | grep -q '^prohibit default'"
check "the internet is refused to it" sh -c "! ip netns exec tp-usb curl -sf --max-time 3 -o /dev/null http://203.0.113.10/"
check "nothing of it left by an uplink" test "$(seen usb_out)" -eq 0
check "the other downstream is still reached" nsx tp-usb ping -c 2 -W 2 -q 192.168.50.10
make_file sessions.bin 2
check "the wifi client still reaches the internet" download_ok tp-wifi http://203.0.113.10/sessions.bin sessions.bin

echo "bad policies"
cp "$CONFIG" "$CONFIG.local"
sed -i 's/^    uplinks: \[phone\]/    uplinks: [satphone]/' "$CONFIG"
check "an unknown uplink is refused, naming file, line and key" \
  sh -c "ip netns exec tp-box $TETHERCTL reload 2>&1 | grep -q \"sessions\\[0\\].uplinks\\[0\\]: expected an uplink's name (modem, phone)\""
cp "$CONFIG.local" "$CONFIG"
cat >>"$CONFIG" <<'YAML'
  - name: twin
    match: {macs: ['02:00:00:50:00:10']}
YAML
check "two sessions with one selector and one priority are refused" \
  sh -c "ip netns exec tp-box $TETHERCTL reload 2>&1 | grep -q \"MAC 02:00:00:50:00:10 is also session 'passenger''s\""
cp "$CONFIG.local" "$CONFIG"
check "and nothing changed" test "$(status_json "[d['policy_generation'], len(d['sessions'])]")" = "[$((gen + 1)), 2]"
check "the classifier is as it was" \
  sh -c "ip netns exec tp-box nft list table inet tetherpath_sessions | grep -q 'ether saddr 02:00:00:50:00:10'"

echo "sessions handed back"
sed -i '/^sessions:/,$d' "$CONFIG"
check "a configuration without sessions is applied by a reload" tetherctl reload
check "their rules, tables and classifier are gone" \
  sh -c "! ip -n tp-box rule | grep -q '^1003:' && [ -z \"\$(ip -n tp-box route show table 1128)\" ] && ! ip netns exec tp-box nft list table inet tetherpath_sessions >/dev/null 2>&1"
kill "$events_pid" 2>/dev/null
lab_end
