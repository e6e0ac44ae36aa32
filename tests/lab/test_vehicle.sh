#!/usr/bin/env bash
# The vehicle's power states (#17): shutdown_prepare under traffic answers within its deadline,
# with the accounting saved and the flows handed to the kernel, which carries the connections on;
# shutdown_cancel offloads them again; and after the power is cut (kill -9) the next ignition
# restores the usage and offloads again.
source "$(dirname "$0")/lib.sh"
lab_begin
CONFIG=$(lab_config)
start_daemon "$CONFIG"
check "a data limit to account against" tetherctl set-limit modem0 10G 20G
transfer() {  # transfer SECONDS OUT: a TCP upload from the wifi client, 40 Mbit/s
  nsx tp-wifi iperf3 -c 203.0.113.10 -b 40M -t "$1" --json >"$2" 2>&1
}
transfer 8 "$TP_LAB_DIR/prepare.json" &
iperf_pid=$!
check "the transfer is offloaded" eventually 5 flow_carries "203.0.113.10:5201 " orig 500

echo "shutdown_prepare under traffic"
tetherctl --json shutdown-prepare 2000 >"$TP_LAB_DIR/prepare-reply.json" 2>&1
reply() { python3 -c "import json; d = json.load(open('$TP_LAB_DIR/prepare-reply.json')); print($1)"; }
measure "shutdown_prepare reply" "$(cat "$TP_LAB_DIR/prepare-reply.json")"
check "it answers ready, within its deadline" test "$(reply "d['ready'] and d['took_ms'] < 2000")" = True
check "with the accounting saved" test "$(reply "d['usage_saved']")" = True
used=$(python3 -c "import json; print(json.load(open('$TP_STATE_DIR/usage.json'))['modem0']['used'])")
measure "usage saved (bytes)" "$used"
check "  and it counts the transfer so far" test "$used" -gt 1000000
check "every flow handed to the kernel" test "$(reply "d['flows_handed_back'] >= 1")" = True
check "  none offloaded now" test "$(json "d['total']" flows)" = 0
check "status says so" test "$(json "d['shutdown_prepared']" status)" = True
check "a second shutdown_prepare is illegal_state" expect_error illegal_state shutdown-prepare 1000
k0=$(kernel_packets -p tcp --dport 5201)
sleep 1
k1=$(kernel_packets -p tcp --dport 5201)
measure "packets of the transfer the kernel carried in 1 s after the prepare" "$((k1 - k0))"
check "the kernel carries the transfer on" test $((k1 - k0)) -gt 100

echo "shutdown_cancel: the vehicle is in use again"
check "shutdown_cancel is accepted" tetherctl shutdown-cancel
check "the running transfer is offloaded again" eventually 5 flow_carries "203.0.113.10:5201 " orig 100
wait "$iperf_pid"
check "the transfer finished without an error" python3 -c "import json,sys; d = json.load(open('$TP_LAB_DIR/prepare.json')); sys.exit('error' in d)"
check "a shutdown_cancel with nothing prepared is illegal_state" expect_error illegal_state shutdown-cancel

echo "the power is cut after the prepare; the next ignition"
transfer 3 /dev/null
check "prepared again" tetherctl shutdown-prepare 2000
saved=$(python3 -c "import json; print(json.load(open('$TP_STATE_DIR/usage.json'))['modem0']['used'])")
kill -KILL "$TP_PID"; wait "$TP_PID" 2>/dev/null; TP_PID=
start_daemon "$CONFIG"
after=$(json "d['limits'][0]['used']" status)
measure "usage saved at the prepare / after the next start" "$saved / $after"
check "the next start keeps the usage" test "$after" -ge "$saved"
check "and is not prepared" test "$(json "d['shutdown_prepared']" status)" = False
transfer 4 /dev/null &
iperf_pid=$!
check "and offloads again" eventually 4 flow_carries "203.0.113.10:5201 " orig 300
wait "$iperf_pid"

lab_end
