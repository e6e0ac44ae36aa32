#!/usr/bin/env bash
# The modem as a raw-IP device, as a modem's rmnet is (no Ethernet header, no neighbours): modem0
# is a TUN device carrying IPv4 and IPv6 (TP_LAB_MODEM=rawip, tests/lab/topology.sh). The
# kernel engine puts its raw-IP tc program there; flows through it are offloaded both ways
# (a link layer added toward the clients, none toward the modem) and downloads arrive intact.
source "$(dirname "$0")/lib.sh"
only_engine kernel
export TP_LAB_MODEM=rawip
lab_begin
start_daemon

check "modem0 is a raw-IP device (no link-layer header)" sh -c "ip -n tp-box -d link show modem0 | grep -q 'link/none'"
check "the daemon attached the raw-IP tc program to it" sh -c "'$TETHERCTL' ports | grep '^modem0:' | grep -q 'tc-rawip'"
check "and XDP (or tc) to the Ethernet ports" sh -c "'$TETHERCTL' ports | grep '^wifi0:' | grep -Eq 'engine, (xdp|tc) '"
tetherctl ports | sed 's/^/    /'

make_file 20M.bin 20
for c in "tp-wifi http://203.0.113.10/20M.bin 203.0.113.10:80 4" \
  "tp-usb http://[2001:db8:ffff::10]/20M.bin 2001:db8:ffff::10:80 6"; do
  set -- $c
  nsx "$1" curl -sS --limit-rate 5M -o "$TP_LAB_DIR/rawip-$4.bin" "$2" >"$TP_LAB_DIR/rawip-$4.log" 2>&1 &
  pid=$!
  check "IPv$4: the download is offloaded through the raw-IP modem" eventually 5 flow_carries "$3 " reply 1000
  wait "$pid"
  check "IPv$4: sha256 of the download matches" cmp -s "$TP_LAB_DIR/rawip-$4.bin" "$TP_LAB_DIR/www/20M.bin"
  rm -f "$TP_LAB_DIR/rawip-$4.bin"
done
report=$(daemon_report)
echo "$report" | grep -E '^(port|modem0|wifi0|usb0|exceptions)' | sed 's/^/    /'
modem_forwarded() { echo "$report" | awk '/^modem0/ {exit !($3 > 10000 && $4 > 100)}'; }
nothing_bad() { ! echo "$report" | grep -Eq 'malformed=|rewrite_failed='; }
check "the fast path forwarded into and out of modem0" modem_forwarded
check "no packet was dropped or malformed" nothing_bad
lab_end
