#!/usr/bin/env python3
"""The API acceptance cases of Android's tethering-offload VTS (IOffloadControl 1.0/1.1 and the
AIDL IOffload; list and expectations in docs/api.md, "VTS acceptance") against a running
tetherpath, over its API socket (argv[1]). The daemon must start with offload stopped and no
upstream, downstreams or local prefixes, as a HAL does before its client calls initOffload.

Fixtures as in VTS: a "started" case runs after an init that must succeed; every case ends with a
stop whose result is ignored. The HAL's names map to the lab's ports: TEST_IFACE ("rmnet_data0",
the upstream that exists and is up) is modem0, the accepted downstream "dummy0" is wifi0, and
"invalid" (no such interface) stays "invalid". HIDL's "false" is expected as the error code
tetherpath documents for it (illegal_state before init, illegal_argument for a bad argument),
the same codes the AIDL cases name.

Prints "PASS Suite.Case", "FAIL Suite.Case: what differed" or "SKIP Suite.Case: why" per case;
exits 1 if any case failed."""
import json
import socket
import sys

TEST_IFACE = "modem0"
DOWNSTREAM = "wifi0"
INVALID = "invalid"
INT64_MAX = 2**63 - 1
OK = None  # expected reply: {"ok": true}
STATE, ARG = "illegal_state", "illegal_argument"


class Api:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.buf = b""

    def call(self, op, **args):
        self.sock.sendall((json.dumps(dict(op=op, **args)) + "\n").encode())
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


class Case:
    """One case's calls; each call compares its reply and records what differed."""

    def __init__(self, api):
        self.api = api
        self.diffs = []

    def expect(self, expected, op, **args):
        r = self.api.call(op, **args)
        got = OK if r.get("ok") is True else r.get("error", "?")
        if got != expected:
            self.diffs.append(f"{op} {json.dumps(args)}: expected {expected or 'ok'}, got "
                              f"{got or 'ok'} {r.get('message', '')}".rstrip())
        return r

    def zero_stats(self, iface):
        r = self.expect(OK, "get_forwarded_stats", iface=iface)
        if r.get("ok") and (r.get("rx_bytes"), r.get("tx_bytes")) != (0, 0):
            self.diffs.append(f"get_forwarded_stats {iface}: expected 0/0, got "
                              f"{r.get('rx_bytes')}/{r.get('tx_bytes')}")

    # The HAL's calls, with their arguments in the HAL's order.
    def init(self, e):
        self.expect(e, "init")

    def stop(self, e):
        self.expect(e, "stop")

    def prefixes(self, e, prefixes):
        self.expect(e, "set_local_prefixes", prefixes=prefixes)

    def upstream(self, e, iface, v4=None, gw=None, v6=()):
        args = {"iface": iface, "ipv6_gateways": list(v6)}
        if v4 is not None:  # None: the field is left out (the HAL's default empty string)
            args["ipv4_addr"] = v4
        if gw is not None:
            args["ipv4_gateway"] = gw
        self.expect(e, "set_upstream", **args)

    def add(self, e, iface, prefix):
        self.expect(e, "add_downstream", iface=iface, prefix=prefix)

    def remove(self, e, iface, prefix):
        self.expect(e, "remove_downstream", iface=iface, prefix=prefix)

    def limit(self, e, iface, warning, limit):
        self.expect(e, "set_data_warning_and_limit", iface=iface, warning=warning, limit=limit)

    def data_limit(self, e, iface, limit):
        # HIDL 1.0's setDataLimit, as Android's AIDL shim sends it: no warning.
        self.limit(e, iface, INT64_MAX, limit)


V6GWS = ["fe80::db8:1", "fe80::db8:2"]

# --- Cases shared by HIDL and AIDL (the same calls; `started` cases run after init). ---


def additional_inits(c, err):
    c.init(OK)
    for _ in range(3):
        c.init(err)


def multiple_stops(c, err):
    for _ in range(3):
        c.stop(err)


def additional_stops(c, first_stop):
    c.init(OK)
    c.upstream(OK, TEST_IFACE, "192.0.0.2", "192.0.0.1", V6GWS)  # modem0 is up in the lab
    c.stop(first_stop)
    c.stop(STATE)
    c.stop(STATE)


PRE_INIT = [
    ("SetLocalPrefixesWithoutInit", lambda c: c.prefixes(STATE, ["2001:db8::/64"])),
    ("GetForwardedStatsWithoutInitReturnsZeroValues", lambda c: c.zero_stats(TEST_IFACE)),
    # ipv4_addr is malformed: the state check must come first.
    ("SetUpstreamParametersWithoutInit",
     lambda c: c.upstream(STATE, TEST_IFACE, "192.0.2.0/24", "192.0.2.1", ["fe80::db8:1"])),
    ("AddIPv4DownstreamWithoutInit", lambda c: c.add(STATE, TEST_IFACE, "192.0.2.0/24")),
    ("AddIPv6DownstreamWithoutInit", lambda c: c.add(STATE, TEST_IFACE, "2001:db8::/64")),
    ("RemoveIPv4DownstreamWithoutInit", lambda c: c.remove(STATE, TEST_IFACE, "192.0.2.0/24")),
    ("RemoveIPv6DownstreamWithoutInit", lambda c: c.remove(STATE, TEST_IFACE, "2001:db8::/64")),
]


def started_upstream_and_downstream_cases():
    def bogus_iface(c):
        for iface in ["", INVALID]:
            c.upstream(ARG, iface, "192.0.2.2", "192.0.2.1", ["fe80::db8:1"])

    def bad_v4(c):
        for v4 in ["invalid", "192.0.2"]:
            c.upstream(ARG, TEST_IFACE, v4, "192.0.2.1", ["fe80::db8:1"])

    def bad_gw(c):
        for gw in ["invalid", "192.0.2"]:
            c.upstream(ARG, TEST_IFACE, "192.0.2.2", gw, ["fe80::db8:1"])

    def bad_v6(c):
        for bogus in ["", "invalid", "fe80::bogus", "192.0.2.66"]:
            c.upstream(ARG, TEST_IFACE, "192.0.2.2", "192.0.2.1", ["fe80::1", bogus])

    def bad_iface(op):
        return lambda c: [op(c, ARG, iface, "192.0.2.0/24") for iface in ["", INVALID]]

    def bad_prefix(op):
        return lambda c: [op(c, ARG, DOWNSTREAM, p) for p in ["", "192.0.2/24", "2001:db8/64"]]

    def add_remove(prefix):
        return lambda c: (c.add(OK, DOWNSTREAM, prefix), c.remove(OK, DOWNSTREAM, prefix))

    up = [
        ("SetUpstreamParametersIPv6OnlyOk", lambda c: c.upstream(OK, TEST_IFACE, "", "", V6GWS)),
        ("SetUpstreamParametersAlternateIPv6OnlyOk",
         lambda c: c.upstream(OK, TEST_IFACE, None, None, ["fe80::db8:1", "fe80::db8:3"])),
        ("SetUpstreamParametersIPv4OnlyOk",
         lambda c: c.upstream(OK, TEST_IFACE, "192.0.2.2", "192.0.2.1", [])),
        ("SetUpstreamParametersIPv4v6Ok",
         lambda c: c.upstream(OK, TEST_IFACE, "192.0.2.2", "192.0.2.1", V6GWS)),
        # An empty iface clears an upstream set since init; none was, so it is refused.
        ("SetUpstreamParametersEmptyFails", lambda c: c.upstream(ARG, "", "", "", [])),
        ("SetUpstreamParametersBogusIfaceFails", bogus_iface),
        ("SetUpstreamParametersInvalidIPv4AddrFails", bad_v4),
        ("SetUpstreamParametersInvalidIPv4GatewayFails", bad_gw),
        ("SetUpstreamParametersBadIPv6GatewaysFail", bad_v6),
    ]
    down = [
        ("AddDownstreamIPv4", lambda c: c.add(OK, DOWNSTREAM, "192.0.2.0/24")),
        ("AddDownstreamIPv6", lambda c: c.add(OK, DOWNSTREAM, "2001:db8::/64")),
        ("AddDownstreamEmptyFails", lambda c: c.add(ARG, "", "")),
        ("AddDownstreamInvalidIfaceFails", bad_iface(Case.add)),
        ("AddDownstreamBogusPrefixFails", bad_prefix(Case.add)),
        ("RemoveDownstreamIPv4", add_remove("192.0.2.0/24")),
        ("RemoveDownstreamIPv6", add_remove("2001:db8::/64")),
        ("RemoveDownstreamEmptyFails", lambda c: c.remove(ARG, "", "")),
        ("RemoveDownstreamBogusIfaceFails", bad_iface(Case.remove)),
        ("RemoveDownstreamBogusPrefixFails", bad_prefix(Case.remove)),
    ]
    return up, down


UP, DOWN = started_upstream_and_downstream_cases()

# Deliberate difference: tetherpath takes only address/length in set_local_prefixes (Prefix::parse,
# as AIDL's VTS wants). HIDL's VTS wants a bare address accepted; tetherpath refuses it.
BARE_ADDRESS_REFUSED = ARG

STATS_STARTED = [
    ("GetForwardedStatsInvalidUpstreamIface", lambda c: c.zero_stats(INVALID)),
    ("GetForwardedStatsDummyIface", lambda c: c.zero_stats(TEST_IFACE)),
]


def local_prefix_cases(v4_name, v6_name):
    return [
        (v4_name, lambda c: c.prefixes(BARE_ADDRESS_REFUSED, ["192.0.2.1"])),
        (v6_name, lambda c: c.prefixes(BARE_ADDRESS_REFUSED, ["fe80::1"])),
        ("SetLocalPrefixesIPv4v6PrefixesOk",
         lambda c: c.prefixes(OK, ["192.0.2.0/24", "fe80::/64"])),
        ("SetLocalPrefixesEmptyFails", lambda c: c.prefixes(ARG, [])),
        ("SetLocalPrefixesInvalidFails", lambda c: c.prefixes(ARG, ["192.0.2.0/24", "invalid"])),
    ]


def hidl(name):
    return name + "ReturnsFalse" if name.endswith("WithoutInit") else name


def aidl(name):
    return name + "ReturnsError" if name.endswith("WithoutInit") else name


NO_FDS = "tetherpath's init takes no conntrack fds: the daemon opens its own"
SUITES = [
    # (suite, started, cases); a case is (name, function) or (name, "SKIP", reason).
    ("OffloadConfigHidlTest", False, [
        (n, "SKIP", "IOffloadConfig.setHandles has no counterpart: " + NO_FDS)
        for n in ["TestSetHandles", "TestSetHandleNone", "TestSetHandle1Only",
                  "TestSetHandle2OnlyNotOk"]]),
    ("OffloadControlTestV1_0_HalNotStarted", False, [
        ("AdditionalInitsWithoutStopReturnFalse", lambda c: additional_inits(c, STATE)),
        ("MultipleStopsWithoutInitReturnFalse", lambda c: multiple_stops(c, STATE)),
        # HIDL lets the first stop fail; tetherpath's always succeeds (AIDL's rule).
        ("AdditionalStopsWithInitReturnFalse", lambda c: additional_stops(c, OK)),
        (hidl(PRE_INIT[0][0]), PRE_INIT[0][1]),
        (PRE_INIT[1][0], PRE_INIT[1][1]),
        ("SetDataLimitWithoutInitReturnsFalse", lambda c: c.data_limit(STATE, TEST_IFACE, 5000)),
    ] + [(hidl(n), f) for n, f in PRE_INIT[2:]]),
    ("OffloadControlTestV1_0_HalStarted", True,
     local_prefix_cases("SetLocalPrefixesIPv4AddressOk", "SetLocalPrefixesIPv6AddressOk")
     + STATS_STARTED + [
         ("SetDataLimitEmptyUpstreamIfaceFails", lambda c: c.data_limit(ARG, "", 5000)),
         ("SetDataLimitNonZeroOk", lambda c: c.data_limit(OK, TEST_IFACE, 5000)),
         ("SetDataLimitZeroOk", lambda c: c.data_limit(OK, TEST_IFACE, 0)),
     ] + UP + DOWN),
    ("OffloadControlTestV1_1_HalNotStarted", False, [
        ("SetDataWarningAndLimitWithoutInitReturnsFalse",
         lambda c: c.limit(STATE, TEST_IFACE, 5000, 5000)),
    ]),
    ("OffloadControlTestV1_1_HalStarted", True, [
        ("SetDataWarningAndLimitEmptyUpstreamIfaceFails", lambda c: c.limit(ARG, "", 12345, 67890)),
        ("SetDataWarningAndLimitNonZeroOk", lambda c: c.limit(OK, TEST_IFACE, 4000, 5000)),
        ("SetDataWarningAndLimitZeroOk", lambda c: c.limit(OK, TEST_IFACE, 0, 0)),
    ]),
    ("TetheroffloadAidlPreInitTest", False, [
        (n, "SKIP", "initOffload's fds have no counterpart: " + NO_FDS)
        for n in ["TestInitOffloadInvalidFdsReturnsError", "TestInitOffloadInvalidFd1ReturnsError",
                  "TestInitOffloadInvalidFd2ReturnsError"]
    ] + [
        ("AdditionalInitsWithoutStopReturnError", lambda c: additional_inits(c, STATE)),
        ("MultipleStopsWithoutInitReturnError", lambda c: multiple_stops(c, STATE)),
        ("AdditionalStopsWithInitReturnError", lambda c: additional_stops(c, OK)),
        (aidl(PRE_INIT[0][0]), PRE_INIT[0][1]),
        (PRE_INIT[1][0], PRE_INIT[1][1]),
        ("SetDataWarningAndLimitWithoutInitReturnsError",
         lambda c: c.limit(STATE, TEST_IFACE, 5000, 5000)),
    ] + [(aidl(n), f) for n, f in PRE_INIT[2:]]),
    ("TetheroffloadAidlGeneralTest", True,
     local_prefix_cases("SetLocalPrefixesIPv4AddressFails", "SetLocalPrefixesIPv6AddressFails")
     + STATS_STARTED + [
         ("SetDataWarningAndLimitEmptyUpstreamIfaceFails",
          lambda c: c.limit(ARG, "", 12345, 67890)),
         ("SetDataWarningAndLimitNonZeroOk", lambda c: c.limit(OK, TEST_IFACE, 4000, 5000)),
         ("SetDataWarningAndLimitZeroOk", lambda c: c.limit(OK, TEST_IFACE, 0, 0)),
         ("SetDataWarningAndLimitUnlimitedWarningOk",
          lambda c: c.limit(OK, TEST_IFACE, INT64_MAX, 5000)),
         ("SetDataWarningAndLimitNegativeFails", lambda c: c.limit(ARG, TEST_IFACE, -1, -1)),
     ] + UP + DOWN),
]


def main():
    api = Api(sys.argv[1])
    failed = 0
    for suite, started, cases in SUITES:
        for name, run, *reason in cases:
            label = f"{suite}.{name}"
            if run == "SKIP":
                print(f"SKIP {label}: {reason[0]}")
                continue
            c = Case(api)
            if started:
                c.init(OK)
            if not c.diffs:  # VTS's SetUp asserts: a failed init fails the case
                run(c)
            api.call("stop")  # TearDown: the result is ignored
            if c.diffs:
                failed += 1
                print(f"FAIL {label}: " + "; ".join(c.diffs))
            else:
                print(f"PASS {label}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
