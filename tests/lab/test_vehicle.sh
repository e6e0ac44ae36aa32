#!/usr/bin/env bash
# The vehicle's power states (#17): shutdown_prepare under traffic answers within its deadline,
# with the accounting saved and the flows handed to the kernel, which carries the connections on;
# shutdown_cancel offloads them again; and after the power is cut (kill -9) the next ignition
# restores the usage and offloads again. Then suspend and resume under an idle connection: the
# daemon hands the flows back and sleeps (its context switches are counted while suspended), and
# on resume it reads the kernel afresh and offloads again; the connection survives and the time
# to its first packet after resume is measured.
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

echo "suspend and resume under an idle connection"
check "the echo server listens" idle_server
coproc IDLE { nsx tp-wifi python3 "$LAB_ROOT/tests/lab/tools/idle_echo.py" 203.0.113.10 9000; }
read -r -t 10 line <&"${IDLE[0]}"
check "an idle connection is open" test "$line" = open
idle_offloaded() { test "$(json "any(f['dport'] == 9000 for f in d['flows'])" flows)" = True; }
check "and offloaded" eventually 5 idle_offloaded
switches() {  # context switches of every thread of the daemon so far
  cat /proc/"$TP_PID"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'
}
s0=$(switches); sleep 3; s1=$(switches)
measure "the daemon's context switches in 3 s running idle" "$((s1 - s0))"
tetherctl --json suspend >"$TP_LAB_DIR/suspend.json" 2>&1
reply() { python3 -c "import json; d = json.load(open('$TP_LAB_DIR/$1')); print($2)"; }
measure "suspend reply" "$(tr -d '\n ' <"$TP_LAB_DIR/suspend.json")"
check "suspend answers, the flows handed back" test "$(reply suspend.json "d['flows_handed_back'] >= 1")" = True
check "  with the accounting saved" test "$(reply suspend.json "d['usage_saved']")" = True
check "  none offloaded now" test "$(json "d['total']" flows)" = 0
check "  status says suspended" test "$(json "d['vehicle']['suspended']" status)" = True
check "  status answers" test "$(json "d['vehicle']['suspended']" status)" = True
check "  a reload waits for resume (illegal_state)" expect_error illegal_state reload
kill -HUP "$TP_PID"
check "  and so does SIGHUP's" eventually 2 grep -q "reload refused while suspended" "$TP_LOG"
s0=$(switches); sleep 3; s1=$(switches)
measure "the daemon's context switches in 3 s suspended (wake-ups)" "$((s1 - s0))"
check "no wake-ups while suspended" test "$((s1 - s0))" -eq 0
check "a second suspend is illegal_state" expect_error illegal_state suspend
check "the vehicle's states wait for resume (illegal_state)" expect_error illegal_state vehicle-in-use true
t0=$(now_ms)
tetherctl --json resume >"$TP_LAB_DIR/resume.json" 2>&1
rtt=$(idle_exchange)
t1=$(now_ms)
measure "resume reply" "$(tr -d '\n ' <"$TP_LAB_DIR/resume.json")"
check "resume answers, the flows offloaded again" test "$(reply resume.json "d['flows_offloaded'] >= 1")" = True
check "the idle connection survived" test "${rtt%% *}" = rtt
measure "resume's own time (ms)" "$(reply resume.json "d['took_ms']")"
measure "resume asked to the first reply over the idle connection (ms)" "$((t1 - t0))"
measure "that first exchange's round trip (ms)" "${rtt#rtt }"
check "its packets took the fast path" flow_carries "203.0.113.10:9000 " orig 1
check "a resume when awake is illegal_state" expect_error illegal_state resume
exec {IDLE[1]}>&-
wait "$IDLE_PID" 2>/dev/null

lab_end
