#!/usr/bin/env bash
# Sessions: per-client policy over the two uplinks tetherpath manages. The shared table prefers the
# modem; the wifi client's session (by its MAC) may use only the phone, the usb client's (by its
# address) only the modem. Each client's upload leaves by its session's uplink (seen from tp-net),
# both offloaded. Policy updates during transfers: the usb client's session moves to the phone with
# `existing_flows: reset` (nothing with the modem's address leaves after policy_applied, nor any of
# its IPv6 upload by the modem; the wifi client's transfer, captured where it leaves the box, loses
# nothing and its delay through the box is measured); the wifi client's moves to the modem with
# `keep` (its running transfer stays on the phone, offloaded; its new connections take the modem). A
# reload makes the usb client's session `local`: the internet refused to it, the wifi client still
# reached. Bad policies (an unknown uplink, two sessions with one selector and one priority) are
# refused and change nothing. Then: sessions through the API, emergency, statistics against a
# capture, a session's data limit (and its usage across a restart), a session for the box's own
# application by its socket's owner, and `reset` without routing.mark_mask (IPv4 and IPv6).
export TP_LAB_PHONE=1
source "$(dirname "$0")/lib.sh"
lab_begin
CONFIG=$(phone_config managed)
cat >>"$CONFIG" <<'YAML'
uplinks:
  - {name: modem, iface: modem0, kind: cellular, metric: 10, ipv4_addr: 100.64.0.2, ipv4_gateway: 100.64.0.1,
     ipv6_gateways: ['2001:db8:100::1'], ipv6_prefixes: ['2001:db8:50::/64', '2001:db8:60::/64']}
  - {name: phone, iface: phone0, kind: wifi, metric: 20, ipv4_addr: 100.65.0.2, ipv4_gateway: 100.65.0.1}
routing:
  manage: true
  mark_mask: 0xf000
  session_mark_mask: 0xf0000
sessions:
  - name: passenger
    match: {macs: ['02:00:00:50:00:10']}
    uplinks: [phone]
    existing_flows: keep
  - name: head_unit
    match: {addresses: [192.168.60.10/32, '2001:db8:60::ff:fe60:10/128']}
    uplinks: [cellular]
YAML
# API roles: users may connect and read, staff may control, dialout may also call emergencies.
sed -i 's/^  mode: 0660$/  mode: 0660\n  group: users\n  control_group: staff\n  emergency_group: dialout/' "$CONFIG"
start_daemon "$CONFIG"
nsx tp-box nft delete table ip tp_nat  # tetherpath's masquerade must do
nsx tp-net nft -f - <<'NFT'
table inet tp_lab_seen {
  counter phone_wifi {}
  counter modem_usb {}
  counter phone_usb {}
  counter wrong {}
  counter usb_out {}
  counter usb_new_by_phone {}
  counter wifi_new_by_modem {}
  counter modem_wifi {}
  counter box_by_phone {}
  counter box_by_modem {}
  counter modem_usb6 {}
  counter nomark_v4 {}
  counter nomark_v6 {}
  chain pre {
    type filter hook prerouting priority -300;
    udp dport 5201 iifname "tp-net-phone" ip saddr 100.65.0.2 ip daddr 203.0.113.10 counter name phone_wifi
    udp dport { 5201, 5302, 5303 } iifname "tp-net-modem" ip saddr 100.64.0.2 ip daddr 203.0.113.11 counter name modem_usb
    udp dport 5305 iifname "tp-net-modem" ip saddr 100.64.0.2 ip daddr 203.0.113.11 counter name nomark_v4
    udp dport 5201 iifname "tp-net-phone" ip saddr 100.65.0.2 ip daddr 203.0.113.11 counter name phone_usb
    udp dport 5201 iifname "tp-net-modem" ip daddr 203.0.113.10 counter name wrong
    udp dport 5302 iifname "tp-net-modem" ip saddr 100.64.0.2 ip daddr 203.0.113.10 counter name modem_wifi
    tcp dport 80 ip daddr 203.0.113.11 iifname "tp-net-phone" ip saddr 100.65.0.2 counter name usb_new_by_phone
    tcp dport 80 ip daddr 203.0.113.11 counter name usb_out
    tcp dport 80 ip daddr 203.0.113.10 iifname "tp-net-modem" ip saddr 100.64.0.2 counter name wifi_new_by_modem
    tcp dport 80 ip daddr 203.0.113.10 iifname "tp-net-phone" ip saddr 100.65.0.2 counter name box_by_phone
    tcp dport 80 ip daddr 203.0.113.10 iifname "tp-net-modem" ip saddr 100.64.0.2 counter name box_by_modem
    udp dport 5304 iifname "tp-net-modem" ip6 saddr 2001:db8:60::ff:fe60:10 counter name modem_usb6
    udp dport 5306 iifname "tp-net-modem" ip6 saddr 2001:db8:60::ff:fe60:10 counter name nomark_v6
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
# Uploads, so that every second carries packets with the uplink's address out of it.
uploads() {  # uploads SECONDS [PORT]: wifi to .10 (wifi-iperf-PORT.json), usb to .11
  nsx tp-wifi timeout 45 iperf3 -c 203.0.113.10 -p "${2:-5201}" -u -b 10M -t "$1" --json >"$TP_LAB_DIR/wifi-iperf-${2:-5201}.json" 2>&1 &
  pid_wifi=$!
  nsx tp-usb timeout 45 iperf3 -c 203.0.113.11 -p "${2:-5201}" -u -b 10M -t "$1" >/dev/null 2>&1 &
  pid_usb=$!
}
servers() {  # servers PORT: iperf3 servers on .10 and .11 besides the lab's own on 5201
  for server in 203.0.113.10 203.0.113.11; do
    nsx tp-net iperf3 -s -D -B $server -p "$1" --logfile "$TP_LAB_DIR/iperf3-$server-$1.log"
  done
  sleep 0.3
}
wifi_lost() {  # wifi_lost [PORT]: what the wifi client's upload lost, by iperf3's server
  python3 -c "import json; print(json.load(open('$TP_LAB_DIR/wifi-iperf-${1:-5201}.json'))['end']['sum']['lost_packets'])" 2>/dev/null
}
applied() {  # applied GENERATION: policy_applied was sent for it
  grep -q "\"event\":\"policy_applied\",\"generation\":$1" "$TP_LAB_DIR/events.txt"
}
edit_config() {  # edit_config OLD NEW: the configuration's text OLD becomes NEW
  python3 - "$CONFIG" "$1" "$2" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
assert old in text, old
open(path, "w").write(text.replace(old, new))
PY
}
# update_policy OLD NEW: edit_config, and a reload applies it with the next generation.
update_policy() {
  local gen
  gen=$(status_json "d['policy_generation']")
  edit_config "$1" "$2"
  check "the reload is accepted" tetherctl reload
  check "policy_applied with the next generation" eventually 3 applied $((gen + 1))
}
uploads_offloaded() { flow_carries "203.0.113.10:${1:-5201} " orig 300 && flow_carries "203.0.113.11:${1:-5201} " orig 300; }
uploads 20
check "both uploads are offloaded" eventually 8 uploads_offloaded
check "the wifi client's leaves by the phone, its session's" grows phone_wifi
check "the usb client's leaves by the modem, its session's" grows modem_usb
check "none leaves by the other uplink" test "$(seen wrong)" -eq 0
check "conntrack carries each connection's session and uplink" \
  sh -c "ip netns exec tp-box conntrack -L -p udp --orig-src 192.168.50.10 --dport 5201 2>/dev/null | grep -q 'mark=73728'"

echo "a policy update during the transfers: the usb client's session moves to the phone (reset)"
# 10,000 more connections of that session, offloaded: the update resets them all.
nsx tp-net python3 "$LAB_ROOT/tests/lab/tools/udp_reflector.py" 203.0.113.11 7000 &
nsx tp-usb bash -c "ulimit -Sn \$(ulimit -Hn) && exec python3 '$LAB_ROOT/tests/lab/tools/udp_flows.py' 203.0.113.11 7000 10000 15" >"$TP_LAB_DIR/udp_flows.txt" 2>&1 &
pid_flows=$!
check "10,000 more connections of the usb client's session are offloaded" eventually 18 offloaded_at_least 10002
# Fresh uploads for the update to run through, once the 10,000 connections are quiet (offloaded,
# idle): their rounds, 10,000 packets at once and at first through the kernel, are a burst of
# their own (on two cores its softirq work can drop a packet of anything), not the update's.
wait "$pid_flows" "$pid_wifi" "$pid_usb" 2>/dev/null
servers 5303
uploads 12 5303
check "both uploads are offloaded again" eventually 8 uploads_offloaded 5303
# And an IPv6 upload of the usb client by the modem (routed, not translated: the uplink's mark,
# not a NAT address, says where it runs); the phone has no IPv6, so the session's new IPv6
# connections have no way out after the update.
nsx tp-net iperf3 -s -D -B 2001:db8:ffff::10 -p 5304 --logfile "$TP_LAB_DIR/iperf3-v6-5304.log"
sleep 0.3
nsx tp-usb timeout 45 iperf3 -c 2001:db8:ffff::10 -p 5304 -u -b 2M -t 12 >/dev/null 2>&1 &
check "the usb client's IPv6 upload is offloaded" eventually 8 flow_carries "2001:db8:ffff::10:5304" orig 100
check "and leaves by the modem" grows modem_usb6
# The other session's upload, as it arrives by the phone, in the second of the update against
# the second before: how long its packets took through the box (a forwarding stall), and its
# longest silence (that also counts its sender starved of CPU on a two-core machine).
ip netns exec tp-net tcpdump -i tp-net-phone -s 96 --immediate-mode -U -w "$TP_LAB_DIR/other.pcap" \
  'udp and src host 100.65.0.2 and dst host 203.0.113.10 and dst port 5303' 2>"$TP_LAB_DIR/tcpdump-other.log" &
tcpdump_other=$!
check "the capture of the other session's upload runs" eventually 5 grep -q "listening on" "$TP_LAB_DIR/tcpdump-other.log"
sleep 1.2
cp "$CONFIG" "$CONFIG.first"
update_t0=$(date +%s.%N)
update_policy '    uplinks: [cellular]' '    uplinks: [phone]'
at_applied=$(seen modem_usb)
at_applied6=$(seen modem_usb6)
check "its connections were reset" test "$(status_json "d['session_connections_reset']")" -ge 10002
measure "policy update resetting 10,002 offloaded connections (one IPv6), applied in (ms), by step" \
  "$(grep '"policy_applied"' "$TP_LAB_DIR/events.txt" | tail -1 | python3 -c 'import json, sys; e = json.load(sys.stdin); print(e["applied_ms"], json.dumps(e["steps_ms"]))')"
sleep 1
kill -INT "$tcpdump_other"
wait "$tcpdump_other" 2>/dev/null
stall=$(python3 "$LAB_ROOT/tests/lab/tools/stream_stall.py" "$TP_LAB_DIR/other.pcap" "$update_t0" 1)
stall_rc=$?
echo "$stall" >>"$TP_LAB_DIR/checks.log"
check "the other session's upload flowed before and during the update" test "$stall_rc" -eq 0
stall_field() { echo "$stall" | awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'; }
measure "the other session's upload, longest delay through the box beyond its least, the second before / of the update (ms)" \
  "$(stall_field before_delay_ms) / $(stall_field during_delay_ms)"
measure "the other session's upload, longest silence, the second before / of the update (ms)" \
  "$(stall_field before_gap_ms) / $(stall_field during_gap_ms)"
check "nothing with the modem's address left after policy_applied" test "$(seen modem_usb)" -eq "$at_applied"
check "its IPv6 upload left the fast path" flow_gone "2001:db8:ffff::10:5304"
check "and nothing of it left by the modem after policy_applied" test "$(seen modem_usb6)" -eq "$at_applied6"
no_v6_upload_entry() {  # no_v6_upload_entry [PORT]: conntrack must answer (its failure is not an absence)
  local out port=${1:-5304}
  out=$(ip netns exec tp-box conntrack -L -f ipv6 -p udp --dport "$port" 2>/dev/null) || return 1
  ! echo "$out" | grep -q "dport=$port"
}
check "its conntrack entry is gone, no new one (no IPv6 way out by the phone)" no_v6_upload_entry
check "a new connection of the session leaves by the phone" nsx tp-usb curl -sf --max-time 5 -o /dev/null http://203.0.113.11/
check "seen there with the phone's address" test "$(seen usb_new_by_phone)" -gt 0
wait "$pid_wifi" 2>/dev/null
check "the wifi client's transfer lost nothing" test "$(wifi_lost 5303)" = 0
wait "$pid_usb" 2>/dev/null

echo "a policy update during a transfer: the wifi client's session moves to the modem (keep)"
uploads 12
check "the wifi client's upload is offloaded" eventually 8 flow_carries "203.0.113.10:5201 " orig 300
update_policy $'    uplinks: [phone]\n    existing_flows: keep' $'    uplinks: [modem]\n    existing_flows: keep'
check "the running transfer stays on the phone" grows phone_wifi
fast_grows() {  # fast_grows PATTERN: the fast path carries more of the flow a second later
  local a b
  read -r a _ < <(flow_packets "$1")
  sleep 1
  read -r b _ < <(flow_packets "$1")
  [ "$b" -gt "$a" ]
}
check "and in the fast path" fast_grows "203.0.113.10:5201 "
make_file sessions.bin 2
check "a new connection of the session leaves by the modem" download_ok tp-wifi http://203.0.113.10/sessions.bin sessions.bin
check "seen there with the modem's address" test "$(seen wifi_new_by_modem)" -gt 0
wait "$pid_wifi" "$pid_usb" 2>/dev/null
check "the kept transfer lost nothing" test "$(wifi_lost)" = 0
cp "$CONFIG.first" "$CONFIG"
check "the first policy again" tetherctl reload

echo "a policy update: the usb client's session becomes local"
update_policy '    uplinks: [cellular]' $'    uplinks: [cellular]\n    connection: local'
gen=$(status_json "d['policy_generation']")
check "its table prohibits" sh -c "ip -n tp-box route show table 1129 | grep -q '^prohibit default'"
usb_out_before=$(seen usb_out)
check "the internet is refused to it" sh -c "! ip netns exec tp-usb curl -sf --max-time 3 -o /dev/null http://203.0.113.11/"
check "nothing of it left by an uplink" test "$(seen usb_out)" -eq "$usb_out_before"
check "the other downstream is still reached" nsx tp-usb ping -c 2 -W 2 -q 192.168.50.10
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
check "and nothing changed" test "$(status_json "[d['policy_generation'], len(d['sessions'])]")" = "[$gen, 2]"
check "the classifier is as it was" \
  sh -c "ip netns exec tp-box nft list table inet tetherpath_sessions | grep -q 'ether saddr 02:00:00:50:00:10'"

echo "sessions through the API"
gen=$(status_json "d['policy_generation']")
check "set-session adds one" tetherctl set-session rear --downstream usb0 --connection local --priority -5
check "policy_applied with the next generation" eventually 3 applied $((gen + 1))
check "the session_update event" eventually 2 grep -q '"action":"added","event":"session_update","session":"rear"' "$TP_LAB_DIR/events.txt"
check "its selector is in the classifier" \
  sh -c "ip netns exec tp-box nft list table inet tetherpath_sessions | grep -q 'iifname \"usb0\"'"
check "a bad one is refused with the reason, nothing changed" \
  sh -c "ip netns exec tp-box $TETHERCTL set-session rear2 --downstream modem0 2>&1 | grep -q \"'modem0' is not a downstream port\" && [ \"\$(ip netns exec tp-box $TETHERCTL --json status | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"policy_generation\"])')\" = $((gen + 1)) ]"
check "remove-session removes it" tetherctl remove-session rear
check "and its selector" \
  sh -c "! ip netns exec tp-box nft list table inet tetherpath_sessions | grep -q 'iifname \"usb0\"'"

echo "emergency: both clients on the modem, the head unit's session is the emergency call"
cp "$CONFIG.first" "$CONFIG"
update_policy $'    uplinks: [cellular]\n' $'    uplinks: [cellular]\n    emergency: true\n'
update_policy $'    uplinks: [phone]\n    existing_flows: keep' $'    uplinks: [cellular]\n    existing_flows: keep'
# Servers of their own: the reset transfer's server may still wait for its lost client.
servers 5302
uploads 25 5302
check "both uploads are offloaded" eventually 8 uploads_offloaded 5302
check "both leave by the modem" eval "grows modem_wifi && grows modem_usb"
as_user() {  # as_user GROUPS VERB...: tetherctl run by uid 4242 with these groups
  local groups=$1; shift
  ip netns exec tp-box setpriv --reuid=4242 --regid=100 --groups="$groups" "$TETHERCTL" "$@"
}
refused_as() {  # refused_as GROUPS TEXT VERB...: refused, with TEXT in the error
  local groups=$1 text=$2; shift 2
  ! as_user "$groups" "$@" 2>"$TP_LAB_DIR/refused.txt" && grep -qF "$text" "$TP_LAB_DIR/refused.txt"
}
check "a caller in the API group only may read" as_user 100 sessions
check "but not change a session (permission_denied)" \
  refused_as 100 "permission_denied: set_session: uid 4242 may only read" set-session passenger --priority 7
check "a control caller may not start an emergency" \
  refused_as 100,50 "permission_denied: set_emergency: only root (the integrator) and api.emergency_group" emergency head_unit on
check "and nothing changed" test "$(status_json "[s['passenger']['priority'], d['emergency']]")" = "[0, None]"
check "the control operation is logged with the caller" \
  grep -q "tetherpath: api: uid 4242 pid [0-9]*: set_emergency: refused: permission_denied" "$TP_LOG"
check "a session the integrator did not mark cannot be the emergency" \
  sh -c "ip netns exec tp-box $TETHERCTL emergency passenger on 2>&1 | grep -q 'not_emergency.*not an emergency session'"
check "the emergency starts (a caller of the emergency group)" as_user 100,50,20 emergency head_unit on
check "the emergency event" eventually 2 grep -q '"active":true,"event":"emergency","session":"head_unit"' "$TP_LAB_DIR/events.txt"
sleep 1
held_at=$(seen modem_wifi)
sleep 1
check "within a second the other session's traffic on the modem stops" test "$(seen modem_wifi)" -eq "$held_at"
check "its flow left the fast path" flow_gone "203.0.113.10:5302 "
check "its connection is held, not torn down" \
  sh -c "ip netns exec tp-box conntrack -L -p udp --orig-src 192.168.50.10 --dport 5302 2>/dev/null | grep -q 203.0.113.10"
check "the emergency session's transfer goes on, offloaded" fast_grows "203.0.113.11:5302 "
reload_refused_busy() {
  local out
  cp "$CONFIG" "$CONFIG.em"
  edit_config $'    uplinks: [cellular]\n    existing_flows: keep' $'    uplinks: [phone]\n    existing_flows: keep'
  out=$(tetherctl reload 2>&1)
  cp "$CONFIG.em" "$CONFIG"
  echo "$out" | grep -q "error: busy: session 'head_unit' is the active emergency"
}
check "the other sessions' policy cannot change meanwhile (busy)" reload_refused_busy
check "the emergency ends" tetherctl emergency head_unit off
check "the held transfer resumes, without reconnecting" grows modem_wifi
check "and is offloaded again" eventually 5 fast_grows "203.0.113.10:5302 "
wait "$pid_wifi"
check "its iperf3 ended well (no reconnection)" test $? -eq 0
wait "$pid_usb" 2>/dev/null

echo "statistics: per client and per session, both paths, against a capture"
clients_to() { tetherctl --json clients >"$TP_LAB_DIR/$1"; }
sessions_py() {  # sessions_py EXPRESSION on session_stats (s: sessions by name)
  tetherctl --json session-stats | python3 -c "import json, sys; s = {x['session']: x for x in json.load(sys.stdin)['sessions']}; print($1)"
}
bucket_down() {  # bucket_down SESSION ROAMING: its down bytes by the modem in that state
  sessions_py "sum(t['down_bytes'] for t in s['$1']['traffic'] if t['uplink'] == 'modem' and t['roaming'] == '$2')"
}
make_file stats.bin 8
check "per-client statistics are read" clients_to clients-before.json
ip netns exec tp-wifi tcpdump -i tp-wifi-c -s 64 --immediate-mode -U -w "$TP_LAB_DIR/wifi.pcap" ip 2>"$TP_LAB_DIR/tcpdump.log" &
tcpdump_pid=$!
check "the capture runs" eventually 5 grep -q "listening on" "$TP_LAB_DIR/tcpdump.log"
# The client's veth merges what it receives (GRO) before the capture sees it, one IP header for
# many TCP segments: the downloads the capture compares are UDP, which it does not merge.
check "a TCP upload (the kernel path, then the fast path)" nsx tp-wifi iperf3 -c 203.0.113.10 -p 5302 -n 4M
check "a UDP upload" nsx tp-wifi iperf3 -c 203.0.113.10 -p 5302 -u -b 50M -l 1400 -n 4M
check "a UDP download" nsx tp-wifi iperf3 -c 203.0.113.10 -p 5302 -u -b 50M -l 1400 -n 8M -R
sleep 0.5
check "per-client statistics are read again" clients_to clients-after.json
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null
check "the wifi client's bytes, up and down, agree with the capture within 1 %" \
  python3 "$LAB_ROOT/tests/lab/tools/client_stats_match.py" "$TP_LAB_DIR/wifi.pcap" 192.168.50.10 \
  "$TP_LAB_DIR/clients-before.json" "$TP_LAB_DIR/clients-after.json"
check "tetherctl lists the client: MAC, downstream, session, uplink" \
  sh -c "ip netns exec tp-box $TETHERCTL clients | grep -Eq '^192.168.50.10 +02:00:00:50:00:10 +wifi0 +passenger +modem +home '"
check "a TCP download" download_ok tp-wifi http://203.0.113.10/stats.bin stats.bin
home_before=$(bucket_down passenger home)
check "the session's statistics count the transfers" test "$home_before" -ge 16000000
check "the modem starts roaming" tetherctl update-uplink modem --roaming national
check "a download while roaming" download_ok tp-wifi http://203.0.113.10/stats.bin stats.bin
check "it is counted in the session's roaming bucket" test "$(bucket_down passenger national)" -ge 8000000
check "and not in its home bucket" test "$(bucket_down passenger home)" -lt $((home_before + 100000))
check "the metrics carry the session's traffic by roaming state" \
  sh -c "ip netns exec tp-box curl -sf http://127.0.0.1:9464/metrics | grep -q '^tetherpath_session_ip_bytes_total{session=\"passenger\",uplink=\"modem\",roaming=\"national\",direction=\"down\"} [1-9]'"
check "the modem is home again" tetherctl update-uplink modem --roaming home

echo "a session's own data limit"
check "set-session gives the passenger a 2 MB warning and a 3 MB limit" \
  tetherctl set-session passenger --warning 2M --limit 3M
# A paced UDP download (2 MB/s): what the session moves between two readings of the counters
# (200 ms) bounds the overshoot.
nsx tp-wifi timeout 20 iperf3 -c 203.0.113.10 -p 5302 -u -b 16M -l 1400 -t 6 -R >/dev/null 2>&1 &
pid_limit=$!
check "the warning event" eventually 5 grep -q '"event":"warning_reached","session":"passenger","used":[0-9]*,"warning":2000000' "$TP_LAB_DIR/events.txt"
check "the limit event" eventually 3 grep -q '"event":"limit_reached","limit":3000000,"session":"passenger"' "$TP_LAB_DIR/events.txt"
used() { status_json "s['passenger']['used_bytes']"; }
check "status: reached, past the limit by less than 500 ms of the transfer" \
  test "$(status_json "s['passenger']['limit_reached'] and 3000000 <= s['passenger']['used_bytes'] < 4000000")" = True
used_at=$(used)
sleep 1
check "the session's transfer stopped (nothing more forwarded)" test "$(used)" -le $((used_at + 20000))
wait "$pid_limit" 2>/dev/null
make_file limit.bin 10
check "its new connections are stopped too" \
  sh -c "! ip netns exec tp-wifi curl -sf --max-time 3 -o /dev/null http://203.0.113.10/stats.bin"
check "the other session's client is not" download_ok tp-usb http://203.0.113.11/stats.bin stats.bin
check "a higher limit resumes the session" tetherctl set-session passenger --limit 1G
check "its download goes through again" download_ok tp-wifi http://203.0.113.10/limit.bin limit.bin
check "no limit any more" tetherctl set-session passenger --warning none --limit none

echo "a session's usage survives a restart"
edit_config $'    uplinks: [cellular]\n    existing_flows: keep' $'    uplinks: [cellular]\n    existing_flows: keep\n    limit_bytes: 1000000'
check "the configuration gives the passenger a 1 MB limit" tetherctl reload
nsx tp-wifi timeout 10 iperf3 -c 203.0.113.10 -p 5302 -u -b 16M -l 1400 -t 2 -R >/dev/null 2>&1
check "it is reached" test "$(status_json "s['passenger']['limit_reached']")" = True
used_before=$(used)
stop_daemon
check "the session's usage is saved at shutdown" \
  grep -q '"limit_reached": true' "$TP_STATE_DIR/session_usage.json"
start_daemon "$CONFIG"
check "after a restart the limit is still reached, its usage kept" \
  test "$(status_json "s['passenger']['limit_reached'] and s['passenger']['used_bytes'] >= $used_before")" = True
check "and the session is still stopped" \
  sh -c "! ip netns exec tp-wifi curl -sf --max-time 3 -o /dev/null http://203.0.113.10/stats.bin"

echo "the box's own applications: a session by socket owner"
cat >>"$CONFIG" <<'YAML'
  - name: ota
    match: {uids: [4242]}
    uplinks: [phone]
YAML
check "a reload adds a session for uid 4242" tetherctl reload
check "the classifier marks its sockets' connections" \
  sh -c "ip netns exec tp-box nft list table inet tetherpath_sessions | grep -q 'meta skuid 4242'"
as_4242() { ip netns exec tp-box setpriv --reuid=4242 --regid=4242 --clear-groups "$@"; }
phone_before=$(seen box_by_phone)
check "uid 4242's download from the box itself" as_4242 curl -sf --max-time 5 -o /dev/null http://203.0.113.10/stats.bin
check "left by the phone, its session's uplink, with the phone's address" test "$(seen box_by_phone)" -gt "$phone_before"
modem_before=$(seen box_by_modem)
check "root's download from the box" nsx tp-box curl -sf --max-time 5 -o /dev/null http://203.0.113.10/stats.bin
check "left by the modem (the shared table's)" test "$(seen box_by_modem)" -gt "$modem_before"

echo "the box's own applications: a session by cgroup"
if ! lab_cgroup; then
  echo "  SKIP  the host mounts no cgroup2 hierarchy: cgroup sessions not tested"
else
  cg=$TP_LAB_CGROUP
  cat >>"$CONFIG" <<'YAML'
  - name: ota_service
    match: {cgroups: [tetherpath-lab/ota.service]}
    uplinks: [phone]
YAML
  check "a reload adds a session for a cgroup that does not exist yet" tetherctl reload
  check "it is listed as missing" \
    test "$(status_json "s['ota_service']['cgroups_missing']")" = "['tetherpath-lab/ota.service']"
  in_cgroup() {  # a process of the cgroup (as a service of it would be), in the box
    sh -c 'echo $$ >"$0/cgroup.procs" && exec ip netns exec tp-box "$@"' "$cg/ota.service" "$@"
  }
  mkdir -p "$cg/ota.service"
  cgroup_rule() { ip netns exec tp-box nft list table inet tetherpath_sessions | grep -q 'socket cgroupv2 level 2 '; }
  check "once it exists, the classifier names it (within a link poll)" eventually 5 cgroup_rule
  phone_before=$(seen box_by_phone)
  check "a download from a process in the cgroup" in_cgroup curl -sf --max-time 5 -o /dev/null http://203.0.113.10/stats.bin
  check "left by the phone, its session's uplink" test "$(seen box_by_phone)" -gt "$phone_before"
  # A service restarted gets a new cgroup (a new id): the rule must follow it.
  check "its cgroup removed and made again" sh -c "rmdir '$cg/ota.service' && mkdir '$cg/ota.service'"
  sleep 2.5  # two link polls of the kernel engine: one to see it, one to spare
  phone_before=$(seen box_by_phone)
  check "after its cgroup is made again (a restarted service: a new id), a download from it" \
    in_cgroup curl -sf --max-time 5 -o /dev/null http://203.0.113.10/stats.bin
  check "still leaves by the phone (the rule follows the new id)" test "$(seen box_by_phone)" -gt "$phone_before"
  check "and the cgroup is no longer missing" test "$(status_json "s['ota_service']['cgroups_missing']")" = "[]"
  lab_cgroup_remove
fi

echo "sessions handed back"
sed -i '/^sessions:/,$d' "$CONFIG"
check "a configuration without sessions is applied by a reload" tetherctl reload
check "their rules, tables and selectors are gone (the uplinks' marks stay)" \
  sh -c "! ip -n tp-box rule | grep -q '^1003:' && [ -z \"\$(ip -n tp-box route show table 1128)\" ] && ! ip netns exec tp-box nft list table inet tetherpath_sessions | grep -q 'saddr' && ip netns exec tp-box nft list table inet tetherpath_sessions | grep -q 'oifname \"phone0\"'"
kill "$events_pid" 2>/dev/null

echo "reset without routing.mark_mask: the uplink by the NAT address (IPv4), by the fast path (IPv6)"
# No mark names a connection's uplink: an IPv4 connection's is the one whose address it is
# translated to, an IPv6 one's (routed, not translated) the one its offloaded flow leaves by.
stop_daemon
sed -i '/^  mark_mask: 0xf000$/d' "$CONFIG"
cat >>"$CONFIG" <<'YAML'
sessions:
  - name: head_unit
    match: {addresses: [192.168.60.10/32, '2001:db8:60::ff:fe60:10/128']}
    uplinks: [cellular]
YAML
check "the configuration has no routing.mark_mask" sh -c "grep -q '^  mark_mask:' '$CONFIG'; [ \$? -eq 1 ]"
start_daemon "$CONFIG"
mv "$TP_LAB_DIR/events.txt" "$TP_LAB_DIR/events-before-restart.txt"
tetherctl --json events >"$TP_LAB_DIR/events.txt" 2>&1 &
events_pid=$!
servers 5305
nsx tp-net iperf3 -s -D -B 2001:db8:ffff::10 -p 5306 --logfile "$TP_LAB_DIR/iperf3-v6-5306.log"
sleep 0.3
# Long enough to run past every check below (killed at the end): a stream that had ended would
# leave nothing to see.
nsx tp-usb timeout 60 iperf3 -c 203.0.113.11 -p 5305 -u -b 2M -t 50 >/dev/null 2>&1 &
pid_v4=$!
nsx tp-usb timeout 60 iperf3 -c 2001:db8:ffff::10 -p 5306 -u -b 2M -t 50 >/dev/null 2>&1 &
pid_v6=$!
check "the usb client's IPv4 upload is offloaded" eventually 8 flow_carries "203.0.113.11:5305 " orig 100
check "and its IPv6 upload" eventually 8 flow_carries "2001:db8:ffff::10:5306" orig 100
both_by_modem() { grows nomark_v4 && grows nomark_v6; }
check "both leave by the modem" both_by_modem
reset_before=$(status_json "d['session_connections_reset']")
update_policy '    uplinks: [cellular]' '    uplinks: [phone]'
at_applied=$(seen nomark_v4)
at_applied6=$(seen nomark_v6)
check "both were reset (the session's count)" test "$(status_json "d['session_connections_reset']")" -ge $((reset_before + 2))
check "the IPv4 upload left the fast path" flow_gone "203.0.113.11:5305 "
check "and the IPv6 one" flow_gone "2001:db8:ffff::10:5306"
sleep 1
check "nothing with the modem's address left after policy_applied" test "$(seen nomark_v4)" -eq "$at_applied"
check "nothing of the IPv6 upload left by the modem after policy_applied" test "$(seen nomark_v6)" -eq "$at_applied6"
v6_client_sends() { pgrep -f 'iperf3 -c 2001:db8:ffff::10 -p 5306' >/dev/null; }
check "(its client still sends: the count above could have grown)" v6_client_sends
check "the IPv6 upload's conntrack entry is gone, no new one" no_v6_upload_entry 5306
new_before=$(seen usb_new_by_phone)
check "a new connection of the session leaves by the phone" nsx tp-usb curl -sf --max-time 5 -o /dev/null http://203.0.113.11/
check "seen there with the phone's address" test "$(seen usb_new_by_phone)" -gt "$new_before"
pkill -f 'iperf3 -c 203.0.113.11 -p 5305' 2>/dev/null
pkill -f 'iperf3 -c 2001:db8:ffff::10 -p 5306' 2>/dev/null
wait "$pid_v4" "$pid_v6" 2>/dev/null
kill "$events_pid" 2>/dev/null
[ -n "${TP_LAB_KEEP:-}" ] && cp -r "$TP_LAB_DIR" "$TP_LAB_KEEP"
lab_end

