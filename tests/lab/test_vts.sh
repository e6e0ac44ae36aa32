#!/usr/bin/env bash
# The API acceptance cases of Android's tethering-offload VTS (IOffloadControl 1.0/1.1, AIDL
# IOffload) against the real daemon over its socket, one check per VTS case, labelled with the
# case's name (docs/api.md, "VTS acceptance"). The daemon starts as a HAL does: offload stopped,
# no upstream, downstreams or local prefixes; the cases (as the HAL client) drive it from there.
source "$(dirname "$0")/lib.sh"
lab_begin
TOOLS=$LAB_ROOT/tests/lab/tools
CONFIG=$(lab_config -e 's/^  enabled: true/  enabled: false/' -e '/^upstream:/,/^limits:/{/^limits:/!d}')
start_daemon "$CONFIG"
json() { tetherctl --json status | python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
check "the daemon starts stopped, with no upstream, downstreams or local prefixes" test \
  "$(json "(d['offload'], d['upstream'], d['downstreams'], d['local_prefixes'])")" = "('stopped', None, [], [])"

OUT=$TP_LAB_DIR/vts.txt
nsx tp-box python3 "$TOOLS/vts_cases.py" "$TETHERPATH_SOCKET" >"$OUT" 2>&1
rc=$?
cat "$OUT" >>"$TP_LAB_DIR/checks.log"
check "vts_cases.py ran every case and none failed (exit 0)" test "$rc" -eq 0
while read -r verdict label rest; do
  case $verdict in
    PASS | FAIL) check "VTS ${label%:}" grep -qx "PASS ${label%:}" "$OUT" ;;
    SKIP) echo "  skip  VTS ${label%:}: $rest" ;;
    *) check "vts_cases.py output line: $verdict $label $rest" false ;;
  esac
done <"$OUT"
check "the daemon is still serving" tetherctl status

lab_end
