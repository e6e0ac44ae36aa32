#!/usr/bin/env bash
# The management API against the real daemon: the HAL's state and argument rules through
# tetherctl, misbehaving clients, caller credentials, metrics, link events, data limits with real
# iperf3 traffic (warning, limit, the overshoot bound, accounting across a restart and a crash),
# and configuration reload under traffic.
source "$(dirname "$0")/lib.sh"
lab_begin
TOOLS=$LAB_ROOT/tests/lab/tools
# Usage is saved every second (the crash check loses at most that); the socket is open to
# everyone on the filesystem so that the daemon's own credential check is what refuses strangers.
CONFIG=$(lab_config -e 's/persist_interval_s: 10/persist_interval_s: 1/' -e 's/^  mode: 0660/  mode: 0666/')
start_daemon "$CONFIG"

fast_bytes() { json "d['ports'][0]['fast_rx_bytes'] + d['ports'][0]['fast_tx_bytes']" ports; }

echo "state and arguments (the offload HAL's rules)"
check "status answers, offload started from the configuration" sh -c "$TETHERCTL status | grep -q 'offload     started'"
check "a second init is illegal_state" expect_error illegal_state init
check "set-upstream to a downstream port is illegal_argument" expect_error illegal_argument set-upstream wifi0 --ipv4-addr 192.168.50.1
check "set-upstream with an unknown interface is illegal_argument" expect_error illegal_argument set-upstream ppp0 --ipv4-addr 100.64.0.2
check "set-upstream with no address at all is illegal_argument" expect_error illegal_argument set-upstream modem0
check "addresses parse strictly: 192.0.2 is illegal_argument" expect_error illegal_argument set-upstream modem0 --ipv4-addr 192.0.2
check "IPv6-only upstream parameters are valid" tetherctl set-upstream modem0 --ipv6-gateway 2001:db8:100::1
check "IPv4-only upstream parameters are valid" tetherctl set-upstream modem0 --ipv4-addr 100.64.0.2 --ipv4-gateway 100.64.0.1
# The HAL's OFFLOAD_STOPPED_UNSUPPORTED: an upstream the fast path has no port for.
nsx tp-box ip link add tp-wan2 type veth peer name tp-wan2-peer  # no dummy driver here
tetherctl events --count 2 >"$TP_LAB_DIR/unsupported-events.txt" 2>&1 &
ev_pid=$!
sleep 0.3
ping_offloaded() { ip netns exec tp-wifi ping -c 6 -i 0.2 -q 203.0.113.10 >/dev/null && "$TETHERCTL" --json flows | grep '"dst": "203.0.113.10"' >/dev/null; }
check "before: a ping is offloaded through modem0" ping_offloaded
check "set-upstream to a kernel interface without a fast-path port is accepted" tetherctl set-upstream tp-wan2 --ipv4-addr 10.99.0.2
check "status: tp-wan2 is the upstream, not offloaded" sh -c "$TETHERCTL status | grep -q '^upstream    tp-wan2 10.99.0.2 (no fast-path port: not offloaded)'"
check "no flow stays offloaded toward modem0" eventually 3 test "$(json "d['total']" flows)" = 0
check "set-upstream modem0 again" tetherctl set-upstream modem0 --ipv4-addr 100.64.0.2 --ipv4-gateway 100.64.0.1
check "events: offload_stopped_unsupported tp-wan2, then support_available modem0" eventually 3 sh -c \
  "head -1 '$TP_LAB_DIR/unsupported-events.txt' | grep -q '^offload_stopped_unsupported tp-wan2' && sed -n 2p '$TP_LAB_DIR/unsupported-events.txt' | grep -q '^support_available modem0'"
kill "$ev_pid" 2>/dev/null; wait "$ev_pid" 2>/dev/null
nsx tp-box ip link del tp-wan2
check "a ping is offloaded through modem0 again" ping_offloaded
check "a malformed prefix (192.0.2/24) is illegal_argument" expect_error illegal_argument add-downstream wifi0 192.0.2/24
check "a malformed prefix (2001:db8/64) is illegal_argument" expect_error illegal_argument add-downstream wifi0 2001:db8/64
check "an empty local prefix list is illegal_argument" expect_error illegal_argument set-local-prefixes
check "a negative limit is illegal_argument" expect_error illegal_argument set-limit modem0 -1 100
check "stop" tetherctl stop
check "after stop, calls are illegal_state before their arguments are looked at" expect_error illegal_state set-upstream nonsense
check "after stop, statistics still answer (0/0)" test "$(json "d['rx_bytes'] + d['tx_bytes']" stats modem0)" = 0
check "init again" tetherctl init
# stop cleared everything, as the HAL's does: the client programs the box again after init.
check "after init nothing is left from before stop" test "$(json "d['upstream'] is None and not d['downstreams']" status)" = True
tetherctl set-upstream modem0 --ipv4-addr 100.64.0.2 --ipv4-gateway 100.64.0.1 --ipv6-gateway 2001:db8:100::1 >/dev/null
for d in "wifi0 192.168.50.0/24" "wifi0 2001:db8:50::/64" "usb0 192.168.60.0/24" "usb0 2001:db8:60::/64"; do
  tetherctl add-downstream $d >/dev/null
done
check "a ping is offloaded again after init" sh -c "ip netns exec tp-wifi ping -c 6 -i 0.2 -q 203.0.113.10 >/dev/null && $TETHERCTL --json flows | grep -q '\"dst\": \"203.0.113.10\"'"

echo "downstreams and local prefixes steer what is offloaded"
tetherctl remove-downstream usb0 192.168.60.0/24 >/dev/null
nsx tp-usb iperf3 -c 203.0.113.10 -b 20M -t 8 >"$TP_LAB_DIR/iperf-usb.log" 2>&1 &
iperf_pid=$!
sleep 3
check "a client outside every downstream prefix is not offloaded" sh -c "! $TETHERCTL --json flows | grep -q '\"src\": \"192.168.60' && $TETHERCTL --json counters | grep -q not_downstream_prefix"
tetherctl add-downstream usb0 192.168.60.0/24 >/dev/null
check "adding its downstream offloads its running transfer" eventually 3 flow_carries "192.168.60.10" orig 300
wait "$iperf_pid"
tetherctl set-local-prefixes 203.0.113.11/32 >/dev/null
nsx tp-wifi ping -c 4 -i 0.2 -q 203.0.113.11 >/dev/null
check "traffic to a local prefix is never offloaded" test "$(json "d['flow_manager']['not_offloaded'].get('local_prefix', 0) > 0" counters)" = True

echo "misbehaving clients, credentials, metrics"
check "malformed JSON, oversized and abandoned requests get errors and hurt nobody else" \
  nsx tp-box python3 "$TOOLS/api_abuse.py" "$TETHERPATH_SOCKET"
check "the daemon keeps serving" tetherctl status
# Ten tries: the daemon writes its refusal and closes at once, which races the caller's request;
# the caller must show the refusal whichever comes first.
as_nobody() {
  local i out
  for i in $(seq 10); do
    out=$(ip netns exec tp-box setpriv --reuid=65534 --regid=65534 --clear-groups "$TETHERCTL" status 2>&1)
    echo "as nobody: $out"
    echo "$out" | grep -q permission_denied || return 1
  done
}
check "a caller that is neither root nor in the API group is refused (SO_PEERCRED)" as_nobody
check "Prometheus metrics on the box's loopback" sh -c "ip netns exec tp-box curl -sf http://127.0.0.1:9464/metrics | grep -q '^tetherpath_port_fast_tx_bytes_total{port=\"modem0\"}'"

echo "events follow the upstream's link"
# Four: each link change is also an interface_link event (docs/api.md).
tetherctl events --count 4 >"$TP_LAB_DIR/link-events.txt" 2>&1 &
ev_pid=$!
sleep 0.3
nsx tp-net ip link set tp-net-modem down
sleep 0.5
nsx tp-net ip link set tp-net-modem up
check "link loss: offload_stopped_error, then support_available, naming modem0" eventually 5 sh -c \
  "grep -q '^offload_stopped_error modem0' '$TP_LAB_DIR/link-events.txt' && grep -q '^support_available modem0' '$TP_LAB_DIR/link-events.txt'"
check "and interface_link events for the carrier, lost and back" eventually 3 sh -c \
  "grep -q '^interface_link modem0 admin up, carrier off' '$TP_LAB_DIR/link-events.txt' && grep -q '^interface_link modem0 admin up, carrier on' '$TP_LAB_DIR/link-events.txt'"
kill "$ev_pid" 2>/dev/null; wait "$ev_pid" 2>/dev/null
bash "$TOPOLOGY" box >/dev/null  # the default route went with the link

echo "data limits with real traffic"
WARN=10000000 LIMIT=30000000
BOUND=$((32 * 1514))  # one burst per worker (one worker here)
tetherctl --json events --count 2 >"$TP_LAB_DIR/limit-events.txt" 2>&1 &
ev_pid=$!
sleep 0.3
fast0=$(fast_bytes)
check "set-limit" tetherctl set-limit modem0 $WARN $LIMIT
nsx tp-wifi iperf3 -c 203.0.113.10 -b 300M -t 4 --json >"$TP_LAB_DIR/iperf-limit.json" 2>&1
check "the warning event comes, then the limit event, naming modem0" eventually 3 sh -c \
  "head -1 '$TP_LAB_DIR/limit-events.txt' | grep -q '\"event\":\"warning_reached\",\"upstream\":\"modem0\"' && sed -n 2p '$TP_LAB_DIR/limit-events.txt' | grep -q '\"event\":\"limit_reached\",\"upstream\":\"modem0\"'"
kill "$ev_pid" 2>/dev/null; wait "$ev_pid" 2>/dev/null
fast=$(($(fast_bytes) - fast0))
sent=$(python3 -c "import json; print(json.load(open('$TP_LAB_DIR/iperf-limit.json'))['end']['sum_received']['bytes'])" 2>/dev/null || echo 0)
measure "bytes the fast path carried through modem0 after set-limit (limit $LIMIT)" "$fast"
measure "bytes iperf3 delivered in all" "$sent"
check "offloaded bytes stopped within limit + one burst per worker ($BOUND B)" test "$fast" -le $((LIMIT + BOUND))
check "and did reach the limit (the fast path carried it until then)" test "$fast" -ge $((LIMIT * 9 / 10))
check "past the limit the kernel carries the traffic (punted, not dropped)" test "$sent" -ge $((LIMIT * 2))
check "punts past the limit are counted as data_limit" test "$(json "d['exceptions']['data_limit'] > 0" counters)" = True
check "no flow through modem0 stays offloaded" test "$(json "d['total']" flows)" = 0
used=$(json "d['limits'][0]['used']" status)
measure "bytes counted against the limit (both directions, fast path and kernel)" "$used"

echo "accounting survives a restart and a crash"
stop_daemon
check "usage is saved at shutdown" grep -q '"limit_reached": true' "$TP_STATE_DIR/usage.json"
start_daemon "$CONFIG"
check "after a restart the limit is still reached, its usage kept" test \
  "$(json "d['limits'][0]['limit_reached'] and d['limits'][0]['used'] >= $used" status)" = True
nsx tp-wifi ping -c 4 -i 0.2 -q 203.0.113.10 >/dev/null
check "and nothing is offloaded through modem0" test "$(json "d['total']" flows)" = 0
check "a new limit counts from zero and offloads again" tetherctl set-limit modem0 1G 2G
nsx tp-wifi iperf3 -c 203.0.113.10 -b 100M -t 2 >/dev/null 2>&1
sleep 2.5  # two persist periods with no traffic
before=$(json "d['limits'][0]['used']" status)
check "the new limit counted the traffic" test "$before" -gt 10000000
kill -KILL "$TP_PID"; wait "$TP_PID" 2>/dev/null; TP_PID=
start_daemon "$CONFIG"
after=$(json "d['limits'][0]['used']" status)
measure "usage before kill -9 / after restart" "$before / $after"
check "a crash loses no accounting older than one persist period" test "$after" -ge "$before"

echo "reload"
nsx tp-wifi iperf3 -c 203.0.113.10 -b 40M -t 10 >"$TP_LAB_DIR/iperf-reload.log" 2>&1 &
iperf_pid=$!
check "a long transfer is offloaded" eventually 5 flow_carries ":5201 " orig 500
cp "$CONFIG" "$CONFIG.good"
echo "dataplane: [this is not a mapping" >>"$CONFIG"
check "a malformed file is refused with file and line" expect_error reload_failed reload
if [ "$TP_ENGINE" = kernel ]; then
  sed -e 's/    hook: auto/    hook: tc/' "$CONFIG.good" >"$CONFIG"
else
  sed -e 's/device: board:usb/device: board:usb\n    mtu: 1400/' "$CONFIG.good" >"$CONFIG"
fi
check "a change of ports is refused with the reason" sh -c "$TETHERCTL reload 2>&1 | grep -q 'ports cannot change'"
check "nothing changed: still offloaded" flow_carries ":5201 " orig 500
sed -e 's/keepalive_interval_s: 60/keepalive_interval_s: 30/' "$CONFIG.good" >"$CONFIG"
echo "local_prefixes: [198.51.100.0/24]" >>"$CONFIG"
p0=$(flow_packets ":5201 " | cut -d' ' -f1)
kill -HUP "$TP_PID"
check "SIGHUP applies a good file" eventually 3 sh -c "grep -q 'reloaded $CONFIG' '$TP_LOG'"
check "the API shows the new local prefix" test "$(json "d['local_prefixes']" status)" = "['198.51.100.0/24']"
sleep 1
p1=$(flow_packets ":5201 " | cut -d' ' -f1)
measure "fast-path packets of the transfer across the reload" "$p0 -> $p1"
check "the transfer stayed in the fast path through the reload" test "$p1" -gt "$p0"
wait "$iperf_pid"; rc=$?
check "and completed without an error" test "$rc" -eq 0
cp "$CONFIG.good" "$CONFIG"

lab_end
