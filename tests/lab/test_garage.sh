#!/usr/bin/env bash
# The vehicle's states (#17) that decide who is forwarded: garage mode (a remote task) forwards
# only the head unit's session: the head unit's download goes on offloaded, the phone's upload is
# held (its packets dropped, its connection kept) and its new connections are refused; leaving
# garage mode the phone's upload resumes without reconnecting, offloaded again. A vehicle in use
# refuses garage mode and shutdown_prepare, and a driver getting in ends garage mode. Silent mode,
# read from its file as the power manager writes it, is garage mode here and switches the Wi-Fi
# port off.
source "$(dirname "$0")/lib.sh"
lab_begin
SILENT_DIR=$TP_LAB_DIR/silent_boot
mkdir -p "$SILENT_DIR"
echo 0 >"$SILENT_DIR/pm_silentmode_kernel_state"
CONFIG=$(lab_config -e '/^upstream:/,/^  ipv6_gateways:/d')
cat >>"$CONFIG" <<YAML
uplinks:
  - {name: modem, iface: modem0, kind: cellular, metric: 10, ipv4_addr: 100.64.0.2, ipv4_gateway: 100.64.0.1}
routing:
  manage: true
  mark_mask: 0xf000
  session_mark_mask: 0xf0000
sessions:
  - name: head_unit
    match: {addresses: [192.168.60.10/32]}
    uplinks: [cellular]
  - name: phones
    match: {downstreams: [wifi0]}
    uplinks: [cellular]
    emergency: true
vehicle:
  garage:
    sessions: [head_unit]
  silent_mode:
    file: $SILENT_DIR/pm_silentmode_kernel_state
    garage: true
    ports_off: [wifi0]
YAML
start_daemon "$CONFIG"
nsx tp-box nft delete table ip tp_nat  # tetherpath's masquerade must do
nsx tp-net nft -f - <<'NFT'
table inet tp_lab_seen {
  counter phone_up {}
  chain pre {
    type filter hook prerouting priority -300;
    udp dport 5201 ip daddr 203.0.113.10 counter name phone_up
  }
}
NFT
tetherctl --json events >"$TP_LAB_DIR/events.txt" 2>&1 &
events_pid=$!
sleep 0.3
vehicle() { json "d$1" vehicle; }
event_seen() { grep -q "\"event\":\"vehicle_state\"" "$TP_LAB_DIR/events.txt" && grep "\"event\":\"vehicle_state\"" "$TP_LAB_DIR/events.txt" | tail -1 | grep -q "$1"; }
curl_refused() {  # refused at once (ICMP administratively prohibited), not timed out
  local t0 rc
  t0=$(now_ms)
  nsx "$1" curl -s -o /dev/null --max-time 5 "http://$2/" && return 1
  [ $(($(now_ms) - t0)) -lt 3000 ]
}

echo "garage mode: the head unit's download goes on, the phone's upload is held"
check "the echo server listens" idle_server
coproc IDLE { nsx tp-wifi python3 "$LAB_ROOT/tests/lab/tools/idle_echo.py" 203.0.113.10 9000; }
read -r -t 10 line <&"${IDLE[0]}"
check "the phone holds a TCP connection too" test "$line" = open
two_transfers  # the phone (wifi) uploads to .10, the head unit (usb) downloads from .11
check "both transfers are offloaded" eventually 8 both_offloaded
check "garage on" tetherctl garage on
check "a vehicle_state event says so" eventually 2 event_seen '"garage":true'
check "vehicle shows it" test "$(vehicle "['garage']")" = True
sleep 1
held_at=$(seen phone_up)
sleep 1
check "the phone's upload no longer leaves the box" test "$(seen phone_up)" -eq "$held_at"
check "its flow left the fast path" flow_gone "203.0.113.10:5201 "
check "its connection is held, not torn down" \
  sh -c "ip netns exec tp-box conntrack -L -p udp --orig-src 192.168.50.10 --dport 5201 2>/dev/null | grep -q 203.0.113.10"
fast_grows() {  # the fast path carries more of the flow's replies within a second
  local a b
  read -r _ a < <(flow_packets "$1")
  sleep 1
  read -r _ b < <(flow_packets "$1")
  [ "$b" -gt "$a" ]
}
check "the head unit's download goes on, offloaded" eventually 3 fast_grows "203.0.113.11:5201 "
check "a new connection of the phone is refused" curl_refused tp-wifi 203.0.113.10
check "the head unit's new connections are not" nsx tp-usb curl -sf -o /dev/null --max-time 5 http://203.0.113.11/
check "counted as garage_hold" test "$(json "d['flow_manager']['not_offloaded'].get('garage_hold', 0) > 0" counters)" = True
check "garage off" tetherctl garage off
check "the held upload resumes, without reconnecting" eventually 3 grows phone_up
check "and is offloaded again" eventually 5 flow_carries "203.0.113.10:5201 " orig 100
wait "$pid_wifi"
check "the phone's iperf3 ended well" test $? -eq 0
wait "$pid_usb" 2>/dev/null
rtt=$(idle_exchange)
check "its TCP connection held across garage mode answers (not reset)" test "${rtt%% *}" = rtt

echo "an emergency call goes through garage mode"
check "garage on" tetherctl garage on
check "  the phone is refused" curl_refused tp-wifi 203.0.113.10
check "the phones' session becomes the emergency" tetherctl emergency phones on
check "  the phone reaches the internet" eventually 3 nsx tp-wifi curl -sf -o /dev/null --max-time 2 http://203.0.113.10/
check "the emergency ends" tetherctl emergency phones off
check "  the phone is refused again" eventually 3 curl_refused tp-wifi 203.0.113.10
check "garage off" tetherctl garage off

echo "the vehicle in use"
check "vehicle-in-use true" tetherctl vehicle-in-use true
check "garage mode is refused while it is (busy)" expect_error busy garage on
check "shutdown_prepare too (busy)" expect_error busy shutdown-prepare 1000
check "  and nothing was prepared" test "$(json "d['shutdown_prepared']" status)" = False
check "vehicle-in-use false" tetherctl vehicle-in-use false
check "garage on" tetherctl garage on
check "a driver gets in: vehicle-in-use true" tetherctl vehicle-in-use true
check "garage mode ended" test "$(vehicle "['garage']")" = False
check "  and the phone reaches the internet again" nsx tp-wifi curl -sf -o /dev/null --max-time 5 http://203.0.113.10/
tetherctl vehicle-in-use false >/dev/null

echo "silent mode, from its file"
echo 1 >"$SILENT_DIR/pm_silentmode_kernel_state"
is_silent() { [ "$(vehicle "['silent']")" = "$1" ]; }
check "the file's 1 is silent mode" eventually 2 is_silent True
check "  an event says so" eventually 2 event_seen '"silent":true'
check "  garage mode with it (vehicle.silent_mode.garage)" test "$(vehicle "['garage']")" = True
wifi_admin() { [ "$(json "[p['admin'] for p in d['ports'] if p['name'] == 'wifi0'][0]" ports)" = "$1" ]; }
check "  the Wi-Fi port is off" wifi_admin down
check "  the head unit still reaches the internet" nsx tp-usb curl -sf -o /dev/null --max-time 5 http://203.0.113.11/
# As the power manager writes it: a new file renamed into place.
echo 0 >"$SILENT_DIR/.new" && mv "$SILENT_DIR/.new" "$SILENT_DIR/pm_silentmode_kernel_state"
check "the file's 0 ends it" eventually 2 is_silent False
check "  garage mode ended" test "$(vehicle "['garage']")" = False
check "  the Wi-Fi port is on again" eventually 3 wifi_admin up
nsx tp-wifi ip route replace default via 192.168.50.1 2>/dev/null
check "  and the phone reaches the internet" eventually 10 nsx tp-wifi curl -sf -o /dev/null --max-time 2 http://203.0.113.10/
exec {IDLE[1]}>&-
wait "$IDLE_PID" 2>/dev/null
kill "$events_pid" 2>/dev/null
measure "vehicle_state events" "$(grep -c '"vehicle_state"' "$TP_LAB_DIR/events.txt")"

lab_end
