#!/usr/bin/env bash
# tetherpath as the firmware image's service: what `meson install` puts in a DESTDIR (the docs'
# list), the systemd unit as `systemd-analyze verify` sees it, and the daemon under the unit's
# conditions: exactly the unit's capabilities, systemd's notify protocol (READY=1 once it
# forwards, WATCHDOG=1 at half WATCHDOG_USEC, STOPPING=1 on SIGTERM) and the journal's priority
# prefixes. systemd is not PID 1 here: the test is the service manager's end of each protocol.
source "$(dirname "$0")/lib.sh"
lab_begin
BUILD=$(dirname "$TETHERPATH")/..
DEST=$TP_LAB_DIR/destdir
# The build's prefix and its configuration directory, as meson joins them (an absolute
# sysconfdir, /etc with --prefix=/usr, stays as it is).
read -r PREFIX ETC < <(meson introspect "$BUILD" --buildoptions | python3 -c '
import json, os, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"], os.path.join(o["prefix"], o["sysconfdir"]))')

echo "meson install into a DESTDIR"
rm -rf "$DEST"
check "meson install --destdir succeeds" meson install -C "$BUILD" --no-rebuild --destdir "$DEST"
for f in $PREFIX/bin/tetherpath $PREFIX/bin/tetherctl $ETC/tetherpath/tetherpath.yaml \
  $PREFIX/lib/systemd/system/tetherpath.service $PREFIX/share/man/man8/tetherpath.8 \
  $PREFIX/share/man/man8/tetherctl.8 $PREFIX/share/man/man5/tetherpath.yaml.5 \
  $PREFIX/share/bash-completion/completions/tetherctl; do
  check "it contains $f" test -s "$DEST$f"
done
UNIT=$DEST$PREFIX/lib/systemd/system/tetherpath.service
check "the installed configuration is valid" "$DEST$PREFIX/bin/tetherpath" --check-config "$DEST$ETC/tetherpath/tetherpath.yaml"
check "the unit runs the installed daemon with the installed configuration" \
  grep -qx "ExecStart=$PREFIX/bin/tetherpath --config $ETC/tetherpath/tetherpath.yaml" "$UNIT"
for page in man8/tetherpath.8 man8/tetherctl.8 man5/tetherpath.yaml.5; do
  check "man renders $page" sh -c "man -l '$DEST$PREFIX/share/man/$page' 2>/dev/null | grep -q '^NAME'"
done
# verify resolves the unit's dependencies (sysinit.target...) and ExecReload's /bin/kill under
# --root: the host's units and kill, next to what was installed. Man pages: checked above.
mkdir -p "$DEST/usr/lib/systemd" "$DEST/bin"
cp -a /usr/lib/systemd/system "$DEST/usr/lib/systemd/" 2>/dev/null
cp /bin/kill "$DEST/bin/"
check "systemd-analyze verify accepts the unit" systemd-analyze verify --man=no --root="$DEST" "$UNIT"
measure "systemd-analyze security (exposure)" \
  "$(systemd-analyze security --offline=yes --root="$DEST" "$UNIT" 2>/dev/null | awk '/Overall exposure/ {print $(NF-2), $(NF-1)}')"

echo "bash completion"
complete_words() {  # complete_words WORDS...: what completing the last word offers
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _tetherctl; echo "${COMPREPLY[*]}"' \
    _ "$DEST$PREFIX/share/bash-completion/completions/tetherctl" "$@"
}
verbs=$("$TETHERCTL" --help | sed -n 's/^  \([a-z][a-z-]*\( | [a-z][a-z-]*\)*\).*/\1/p' | tr -d '|')
missing=$(for v in $verbs; do complete_words tetherctl "" | tr ' ' '\n' | grep -qx -- "$v" || echo "$v"; done)
check "every verb tetherctl --help lists is completed (missing: ${missing:-none})" test -z "$missing"
completes_set() { [ "$(complete_words tetherctl set- | tr ' ' '\n' | sort | xargs)" = "set-interface-enabled set-limit set-local-prefixes set-session set-upstream" ]; }
check "'set-' completes to the five set- verbs" completes_set

# The unit's capabilities as setpriv's bounding set: the daemon runs with these and no others.
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
export TP_DAEMON_WRAP="setpriv --inh-caps=-all --bounding-set=-all,$caps --"
echo "the daemon under the unit's conditions: capabilities $caps"
NOTIFY=$TP_LAB_DIR/notify.sock
NLOG=$TP_LAB_DIR/notify.log
: >"$NLOG"
# In the box's namespace: its teardown ends the listener whatever happens.
nsx tp-box python3 "$LAB_ROOT/tests/lab/tools/notify_listener.py" "$NOTIFY" "$NLOG" \
  "$TP_LAB_DIR/at-ready.json" "$TETHERCTL" --json ports &
check "the notify listener is up" eventually 5 test -S "$NOTIFY"
: >>"$TP_LOG"
export NOTIFY_SOCKET=$NOTIFY WATCHDOG_USEC=1000000 JOURNAL_STREAM=$(stat -c '%d:%i' "$TP_LOG")
log_from=$(($(wc -l <"$TP_LOG") + 1))
CONFIG=$(lab_config -e '/^  - name: wifi0$/a\    persist_enabled: true')
start_daemon "$CONFIG"
unset NOTIFY_SOCKET WATCHDOG_USEC JOURNAL_STREAM TP_DAEMON_WRAP
check "the daemon sent READY=1" eventually 5 grep -q ' READY=1$' "$NLOG"
ready_ports() {  # the ports in the reply read at READY=1, and how many carry traffic: on the
  # kernel engine a program attached, on the DPDK engine the link up
  python3 -c '
import json, sys
ports = json.load(open(sys.argv[1]))["ports"]
attached = [p for p in ports if (p["program_id"] if sys.argv[2] == "kernel" else p["link"] == "up")]
print(len(ports), len(attached))' "$TP_LAB_DIR/at-ready.json" "$TP_ENGINE"
}
all_ready() { [ "$(ready_ports)" = "3 3" ]; }
check "at READY=1 the API answered with every port carrying traffic ($(ready_ports 2>/dev/null))" \
  eventually 3 all_ready
check "READY=1 came with a status line" grep -q ' STATUS=forwarding on 3 ports' "$NLOG"
# What the daemon may have: the unit's set, less what this machine's own bounding set lacks (a
# container may withhold some, CAP_SYS_RESOURCE here).
cap_names() { capsh --decode="$1" | cut -d= -f2 | tr ',' '\n' | grep . | sort; }
capeff=$(awk '/^CapEff/ {print $2}' "/proc/$TP_PID/status")
expected=$(comm -12 <(echo "$caps" | tr ',+' '\n\n' | grep . | sed 's/^/cap_/' | sort) \
  <(cap_names "$(awk '/^CapBnd/ {print $2}' /proc/self/status)") | xargs)
measure "the daemon's effective capabilities" "$(cap_names "$capeff" | xargs)"
check "they are the unit's (as far as this machine has them), no others" \
  test "$(cap_names "$capeff" | xargs)" = "$expected"

echo "forwarding with only those capabilities"
make_file service.bin 20
check "a 20 MB download from the wifi client is intact" download_ok tp-wifi http://203.0.113.10/service.bin service.bin
nsx tp-wifi iperf3 -c 203.0.113.10 -u -b 20M -t 4 >/dev/null 2>&1 &
iperf_pid=$!
check "a UDP transfer is offloaded" eventually 4 flow_carries "203.0.113.10:5201 " orig 300
wait "$iperf_pid"

echo "the watchdog"
pings_between() { awk -v a="$1" -v b="$2" '$2 == "WATCHDOG=1" && $1 >= a && $1 < b {n++} END {print n + 0}' "$NLOG"; }
t0=$(awk 'END {print $1}' "$NLOG")
sleep 3
n=$(pings_between "$t0" $((t0 + 3000)))
measure "WATCHDOG=1 pings in 3 s with WATCHDOG_USEC=1 s" "$n"
check "the daemon pings at half the watchdog period (5 to 7 in 3 s)" test "$n" -ge 5 -a "$n" -le 7

echo "the journal's priorities"
check "the start is a notice (<5>)" sh -c "tail -n +$log_from '$TP_LOG' | grep -q '^<5>tetherpath: running with'"
check "events are info (<6>)" sh -c "tail -n +$log_from '$TP_LOG' | grep -q '^<6>tetherpath: event'"
cp "$CONFIG" "$CONFIG.good"
echo "dataplane: [this is not a mapping" >>"$CONFIG"
tetherctl reload >/dev/null 2>&1
mv "$CONFIG.good" "$CONFIG"
check "a refused reload is an error (<3>)" sh -c "tail -n +$log_from '$TP_LOG' | grep -q '^<3>tetherpath: reload refused, nothing changed: '"
check "the control operation is a notice naming the caller" sh -c "tail -n +$log_from '$TP_LOG' | grep -q '^<5>tetherpath: api: uid 0 pid [0-9]*: reload: refused'"
check "no line lacks a priority" sh -c "! tail -n +$log_from '$TP_LOG' | grep '^tetherpath:'"

echo "interface control"
# Not through nsx (a function runs in a subshell): $! must be the stream itself.
ip netns exec tp-box "$TETHERCTL" --json events >"$TP_LAB_DIR/events.log" 2>&1 &
events_pid=$!
sleep 0.5
port_is() {  # port_is PORT KEY VALUE: a field of the port in `tetherctl ports --json`
  [ "$(tetherctl --json ports | python3 -c "import json,sys; print(json.dumps(next(p for p in json.load(sys.stdin)['ports'] if p['name'] == '$1')['$2']))")" = "$3" ]
}
link_event() {  # link_event PORT ADMIN CARRIER: an interface_link event with these (regexes)
  grep '"interface_link"' "$TP_LAB_DIR/events.log" | grep "\"iface\":\"$1\"" |
    grep -E "\"admin\":\"$2\"" | grep -Eq "\"carrier\":$3"
}
wifi_reaches() { nsx tp-wifi ping -c 1 -W 1 203.0.113.10; }
check "the wifi client reaches the internet" eventually 5 wifi_reaches
check "set-interface-enabled wifi0 false is accepted" tetherctl set-interface-enabled wifi0 false
check "  admin down" port_is wifi0 admin '"down"'
check "  what was asked" port_is wifi0 enabled_asked false
# The kernel engine's port is the interface: down, it loses its carrier too. The DPDK engine's
# carrier is its device's link (the raw veth), which the TAP's admin state does not touch.
check "an interface_link event says so" eventually 2 link_event wifi0 down '(true|false)'

check "the wifi client's traffic stops" sh -c "! ip netns exec tp-wifi ping -c 2 -W 1 203.0.113.10"
check "the usb client's does not" nsx tp-usb ping -c 1 -W 1 203.0.113.10
check "set-interface-enabled wifi0 true is accepted" tetherctl set-interface-enabled wifi0 true
check "an interface_link event says it is up again" eventually 3 link_event wifi0 up true
check "the wifi client's traffic is back" eventually 10 wifi_reaches
check "a port that is not tetherpath's is refused" expect_error illegal_argument set-interface-enabled tp-nope false
nsx tp-wifi ip link set tp-wifi-c down  # the cable: the client's end of the link
check "a cable pull raises a carrier event (admin stays up)" eventually 3 link_event wifi0 up false
check "  ports shows admin up, no carrier" port_is wifi0 carrier false
nsx tp-wifi ip link set tp-wifi-c up
# The unplugged link took the client's default route with it; its DHCP client would set it again.
nsx tp-wifi ip route replace default via 192.168.50.1
check "plugging it back raises one too" eventually 3 link_event wifi0 up true
check "and the wifi client's traffic flows again" eventually 10 wifi_reaches
kill "$events_pid" 2>/dev/null
measure "interface_link events" "$(grep -c '"interface_link"' "$TP_LAB_DIR/events.log")"

check "switched off again before the stop" tetherctl set-interface-enabled wifi0 false
check "the word is kept in the state directory" grep -q '"wifi0":false' "$TP_STATE_DIR/interfaces.json"

echo "stopping"
stop_daemon
check "SIGTERM sent STOPPING=1" grep -q ' STOPPING=1$' "$NLOG"
# By arrival order, not by timestamp: a ping sent in the same millisecond before SIGTERM is no fault.
pings_after_stop() { awk '$2 == "STOPPING=1" {s = 1} s && $2 == "WATCHDOG=1" {n++} END {print n + 0}' "$NLOG"; }
check "and no watchdog ping followed it" test "$(pings_after_stop)" = 0
check "the stop was logged as a notice" grep -q '^<5>tetherpath: signal 15, stopping' "$TP_LOG"
check "the daemon exited cleanly (status 0, not killed)" test "$TP_RC" = 0

echo "an interface switched off stays off at the next start (persist_enabled)"
# A reboot would bring it up again; the kernel engine's interface is the box's own.
nsx tp-box ip link set wifi0 up 2>/dev/null
start_daemon "$CONFIG"
check "the start sets it down as last asked" grep -q 'port wifi0 set down as last asked' "$TP_LOG"
# The DPDK engine's TAP is new at each start and the box's network configuration (here
# topology.sh box) brings it up after the daemon set it down: docs/api.md says so.
if [ "$TP_ENGINE" = kernel ]; then
  check "  and it is down" port_is wifi0 admin '"down"'
fi
check "switched on" tetherctl set-interface-enabled wifi0 true
check "the wifi client's traffic is back after the restart" eventually 10 wifi_reaches

lab_end
