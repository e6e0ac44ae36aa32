#!/usr/bin/env bash
# Signed remote configuration (#17): a bundle signed by a key the local file trusts applies like
# a reload; a truncated bundle, an unknown key, a bad signature, a valid signature over an invalid
# configuration (or over one that changes the trust anchors) and an old serial are each refused
# with their reason, an event and a log line, and status and flows stay as they were. The applied
# configuration runs again after a restart (and not when the local file no longer trusts its
# key); restore_config goes back to the local file, and the old bundle stays refused.
source "$(dirname "$0")/lib.sh"
lab_begin
SIGN="python3 $LAB_ROOT/tests/lab/tools/sign_config.py"
pub=$($SIGN keygen "$TP_LAB_DIR/oem.pem")
$SIGN keygen "$TP_LAB_DIR/other.pem" >/dev/null
UNTRUSTING=$(lab_config)
CONFIG=$(lab_config)
printf 'signed_config:\n  trusted_keys:\n    - {name: oem, public_key: "%s"}\n' "$pub" >>"$CONFIG"

# bundle NAME SERIAL [KEY_FILE [KEY_NAME]] [SED...]: $CONFIG edited by the sed expressions, signed.
bundle() {
  local name=$1 serial=$2 key=${3:-oem} keyname=${4:-oem} yaml=$TP_LAB_DIR/$1.yaml
  shift 4 2>/dev/null || shift $#
  sed "$@" "$CONFIG" >"$yaml"
  $SIGN sign "$TP_LAB_DIR/$key.pem" "$keyname" "$serial" "$yaml" >"$TP_LAB_DIR/$name.json"
  echo "$TP_LAB_DIR/$name.json"
}
# The signed configuration sets a data limit on the modem, which status shows.
LIMIT='s/^  persist_interval_s: 10$/  persist_interval_s: 10\n  upstreams:\n    - {iface: modem0, warning_bytes: 4000000000, limit_bytes: 5000000000}/'
good5=$(bundle good5 5 oem oem -e "$LIMIT")
good4=$(bundle good4 4 oem oem -e "$LIMIT")
head -c 300 "$good5" >"$TP_LAB_DIR/truncated.json"
unknown=$(bundle unknown 6 oem rental -e "$LIMIT")
forged=$(bundle forged 6 other oem -e "$LIMIT")
invalid=$(bundle invalid 6 oem oem -e 's/keepalive_interval_s: 60/keepalive_interval_s: banana/')
other_pub=$($SIGN pubkey "$TP_LAB_DIR/other.pem")
anchors=$(bundle anchors 6 oem oem -e "s|$pub|$other_pub|")

# Status and flows as JSON, less what moves by itself (counters, bytes, the refusals' count).
snapshot() {
  local v
  for v in status flows; do
    tetherctl --json "$v" | python3 -c '
import json, sys
def clean(x):
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items() if k not in ("used", "refused", "traffic")
                and not k.endswith(("_bytes", "_packets"))}
    if isinstance(x, list):
        return sorted((clean(v) for v in x), key=json.dumps)
    return x
print(json.dumps(clean(json.load(sys.stdin)), sort_keys=True))'
  done
}
# Both read (an offloaded flow among them) and equal.
same() { [[ $1 == *'"flows": [{'* ]] && [ "$1" = "$2" ]; }
logged() { grep -c "signed configuration: apply refused, nothing changed: $1" "$TP_LOG"; }
# refused CODE BUNDLE WHAT: refused with its reason, an event and a log line; nothing changed.
refused() {
  local code=$1 bundle=$2 before after logs
  before=$(snapshot)
  logs=$(logged "$code")
  check "$3: refused, $code" expect_error "$code" apply-signed-config "$bundle"
  after=$(snapshot)
  echo "before: $before" >>"$TP_LAB_DIR/checks.log"
  echo "after:  $after" >>"$TP_LAB_DIR/checks.log"
  check "  status and flows unchanged" same "$before" "$after"
  check "  an event says why" eventually 3 grep -q "\"error\":\"$code\".*\"event\":\"signed_config\"" "$TP_LAB_DIR/events.log"
  check "  and the log" test "$(logged "$code")" -gt "$logs"
}
running() { json "d['config']" status; }

start_daemon "$CONFIG"
ip netns exec tp-box "$TETHERCTL" --json events >"$TP_LAB_DIR/events.log" 2>&1 &
events_pid=$!
check "the local file runs" test "$(running)" = "$CONFIG"
check "no limit yet" test "$(json "len(d['limits'])" status)" = 0
nsx tp-wifi ping -q -i 0.2 -w 120 203.0.113.10 >/dev/null 2>&1 &
ping_pid=$!
check "a flow is offloaded" eventually 10 sh -c "[ \"\$(ip netns exec tp-box $TETHERCTL --json flows | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"total\"])')\" -ge 1 ]"

echo "bad bundles change nothing"
refused malformed_bundle "$TP_LAB_DIR/truncated.json" "a truncated bundle"
refused unknown_key "$unknown" "a key the box does not trust"
refused bad_signature "$forged" "a signature by another key"
refused invalid_config "$invalid" "a valid signature over an invalid configuration"
refused forbidden_change "$anchors" "a bundle that changes the trust anchors"

echo "a good bundle applies"
check "serial 5 is applied" tetherctl apply-signed-config "$good5"
check "  it runs" test "$(running)" = "signed serial 5 (key oem)"
check "  its data limit is in force" test "$(json "[l['limit'] for l in d['limits'] if l['iface'] == 'modem0']" status)" = "[5000000000]"
check "  an event says so" eventually 3 grep -q '"applied":true,"event":"signed_config","key":"oem","serial":5' "$TP_LAB_DIR/events.log"
check "  the flow stays offloaded" test "$(json "d['total']" flows)" -ge 1
refused replayed_serial "$good4" "an older serial"
refused replayed_serial "$good5" "the same bundle again"
check "reload keeps the signed configuration" tetherctl reload
check "  it runs" test "$(running)" = "signed serial 5 (key oem)"

echo "restarts"
stop_daemon
start_daemon "$UNTRUSTING"
check "a local file that trusts no key: the stored bundle is ignored" test "$(running)" = "$UNTRUSTING"
check "  with a warning" grep -q "signed configuration: signed serial 5 (key oem) no longer applies" "$TP_LOG"
check "  and bundles are refused" expect_error not_configured apply-signed-config "$good5"
stop_daemon
start_daemon "$CONFIG"
check "trusted again: the signed configuration runs after a restart" test "$(running)" = "signed serial 5 (key oem)"
check "  the log says which" grep -q "configuration: signed serial 5 (key oem)" "$TP_LOG"
check "  its data limit is in force" test "$(json "[l['limit'] for l in d['limits'] if l['iface'] == 'modem0']" status)" = "[5000000000]"

echo "restore_config"
check "restore_config is accepted" tetherctl restore-config
check "  the local file runs" test "$(running)" = "$CONFIG"
check "  without the bundle's limit" test "$(json "len(d['limits'])" status)" = 0
check "  the last serial stays" test "$(json "d['signed_config']['last_serial']" status)" = 5
check "  logged" grep -q "configuration restored: $CONFIG runs" "$TP_LOG"
check "the old bundle is refused after the restore" expect_error replayed_serial apply-signed-config "$good5"
check "nothing more to restore" expect_error nothing_to_restore restore-config
kill "$ping_pid" "$events_pid" 2>/dev/null
wait "$ping_pid" "$events_pid" 2>/dev/null

lab_end
