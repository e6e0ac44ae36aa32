#!/usr/bin/env python3
"""The perf lab harness: the same offered load through (a) the Linux kernel alone (forwarding,
conntrack, nftables masquerade), (b) tetherpath and (c) an I/O ceiling (DPDK testpmd in io mode),
on the same namespaces, veths and cores, in one run, side by side.

    python3 perf/harness.py [--smoke] [--out DIR] [--cases 1k/64/4,64k/imix/6,...]
                            [--systems kernel,tetherpath,ceiling] [--duration S] [--trials K]

Topology: namespace tpp-gen holds the generator (perf/tpgen, DPDK on AF_PACKET, lcore 0); its
veth gen-down is the tethered clients' side, gen-up the internet's. Namespace tpp-box is the
box: box-down and box-up are its ports. The forwarder under test gets core 1: the kernel through
RPS on the box's veths, tetherpath and testpmd through their worker lcore.

Method (RFC 2544 / CSIT): per case, NDR (no loss) and PDR (<= 0.5 % loss) by binary search over
the trial rate, median of --trials searches; latency p50/p99/p99.9 at 50 % and 90 % of the PDR;
cycles per forwarded packet at 90 % of the PDR (kernel: system+irq+softirq time of core 1;
tetherpath: its worker's busy cycles); for tetherpath the offload setup rate (flows per second
from the packet that makes conntrack assure them to the flow in the fast path).

Writes results.json, results.md and PNG plots (gnuplot) to --out (default perf/results), and
prints the Markdown. --smoke runs one short case through all three and checks the figures are
sane; it ends with "perf_harness: N passed, M failed".
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("TP_BUILD", os.path.join(ROOT, "build"))
TPGEN = os.path.join(BUILD, "perf", "tpgen")
TETHERPATH = os.path.join(BUILD, "controlplane", "tetherpath")
TETHERCTL = os.path.join(BUILD, "controlplane", "tetherctl")
TESTPMD = shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd"
GEN, BOX = "tpp-gen", "tpp-box"
MAC = {"gen-down": "02:00:00:aa:00:02", "box-down": "02:00:00:aa:00:01",
       "box-up": "02:00:00:bb:00:02", "gen-up": "02:00:00:bb:00:01"}
STATE = "/run/tetherpath-perf"
SOCK = STATE + "/api.sock"
ADDR = {4: {"client": "10.10.0.2", "server": "198.18.0.1", "down": "10.10.0.1/24",
            "up": "100.65.0.2/24", "gw": "100.65.0.1", "dst_net": "198.18.0.0/15"},
        6: {"client": "2001:db8:a::2", "server": "2001:db8:ffff::1", "down": "2001:db8:a::1/64",
            "up": "2001:db8:b::2/64", "gw": "2001:db8:b::1", "dst_net": "2001:db8:ffff::/48"}}
FLOWS = {"1": 1, "1k": 1000, "64k": 64000}
SYSTEMS = ["kernel", "tetherpath", "ceiling"]
BACKEND = "af_packet"  # --backend: how DPDK processes (tpgen, tetherpath, testpmd) reach the veths


def vdev(index, iface):
    if BACKEND == "af_xdp":
        return f"net_af_xdp{index},iface={iface},start_queue=0,queue_count=1"
    return f"net_af_packet{index},iface={iface},framecnt=4096"


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=True, check=check, text=True, capture_output=True, **kw)


def nsx(ns, cmd, **kw):
    return sh(f"ip netns exec {ns} {cmd}", **kw)


class Topology:
    def down(self):
        for ns in (GEN, BOX):
            if sh(f"ip netns list | grep -qw {ns}", check=False).returncode == 0:
                for pid in sh(f"ip netns pids {ns}", check=False).stdout.split():
                    sh(f"kill -9 {pid}", check=False)
                sh(f"ip netns del {ns}", check=False)

    def up(self):
        self.down()
        for ns in (GEN, BOX):
            sh(f"ip netns add {ns}")
            nsx(ns, "ip link set lo up")
        sh(f"ip link add gen-down netns {GEN} type veth peer name box-down netns {BOX}")
        sh(f"ip link add box-up netns {BOX} type veth peer name gen-up netns {GEN}")
        for ns, dev in ((GEN, "gen-down"), (GEN, "gen-up"), (BOX, "box-down"), (BOX, "box-up")):
            nsx(ns, f"ip link set {dev} address {MAC[dev]}")
            nsx(ns, f"sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1")
            nsx(ns, f"ethtool -K {dev} tx off rx off tso off gso off gro off", check=False)
            nsx(ns, f"ip link set {dev} up")
        # The kernel forwarder's work on core 1 (the generator has core 0).
        for dev in ("box-down", "box-up"):
            nsx(BOX, f"sh -c 'echo 2 > /sys/class/net/{dev}/queues/rx-0/rps_cpus'")

    # The box's kernel side on the given interfaces: addresses, static neighbours for the
    # generator's MACs, routes to the servers, masquerade, a stateful inet filter (IPv6 tracked).
    def kernel_side(self, down, up):
        nsx(BOX, "sysctl -qw net.ipv4.ip_forward=1")
        nsx(BOX, "sysctl -qw net.ipv6.conf.all.forwarding=1")
        nsx(BOX, f"sysctl -qw net.ipv6.conf.{down}.disable_ipv6=0", check=False)
        nsx(BOX, f"sysctl -qw net.ipv6.conf.{up}.disable_ipv6=0", check=False)
        for fam in (4, 6):
            a = ADDR[fam]
            nodad = " nodad" if fam == 6 else ""
            nsx(BOX, f"ip addr replace {a['down']} dev {down}{nodad}")
            nsx(BOX, f"ip addr replace {a['up']} dev {up}{nodad}")
            nsx(BOX, f"ip neigh replace {a['client']} lladdr {MAC['gen-down']} dev {down} nud permanent")
            nsx(BOX, f"ip neigh replace {a['gw']} lladdr {MAC['gen-up']} dev {up} nud permanent")
            nsx(BOX, f"ip -{fam} route replace {a['dst_net']} via {a['gw']} dev {up}")
        nsx(BOX, f"ip link set {down} up")
        nsx(BOX, f"ip link set {up} up")
        rules = f"""
table ip tpp_nat
delete table ip tpp_nat
table ip tpp_nat {{
  chain post {{ type nat hook postrouting priority srcnat; oifname "{up}" masquerade; }}
}}
table inet tpp_filter
delete table inet tpp_filter
table inet tpp_filter {{
  chain forward {{
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    ct state new accept
  }}
}}
"""
        nsx(BOX, "nft -f -", input=rules)

    def raw_ports(self):
        """box-down/box-up belong to a DPDK process: no address, drop in the kernel."""
        nsx(BOX, "nft -f -", input="""
table netdev tpp_raw
delete table netdev tpp_raw
table netdev tpp_raw {
  chain d { type filter hook ingress device "box-down" priority -500; policy drop; }
  chain u { type filter hook ingress device "box-up" priority -500; policy drop; }
}
""")

    def clear_box(self):
        """Back to bare veths: what one system configured must not steer the next (an IPv6
        route left on box-up would take the kernel's IPv6 past tetherpath's TAPs)."""
        nsx(BOX, "nft flush ruleset", check=False)
        nsx(BOX, "conntrack -F", check=False)
        for dev in ("box-down", "box-up"):
            nsx(BOX, f"ip addr flush dev {dev}", check=False)
            nsx(BOX, f"ip neigh flush dev {dev}", check=False)
            for fam in (4, 6):
                nsx(BOX, f"ip -{fam} route flush dev {dev}", check=False)
            nsx(BOX, f"sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1", check=False)


class Forwarder:
    """One of the three systems, brought up on the box."""

    def __init__(self, name, topo, log_dir):
        self.name, self.topo, self.log_dir = name, topo, log_dir
        self.proc = None

    def start(self):
        self.topo.clear_box()
        if self.name == "kernel":
            self.topo.kernel_side("box-down", "box-up")
        elif self.name == "tetherpath":
            self.topo.raw_ports()
            cfg = os.path.join(self.log_dir, "tetherpath.yaml")
            with open(cfg, "w") as f:
                f.write(f"""ports:
  - {{name: up0, role: upstream, device: "{vdev(0, 'box-up')}"}}
  - {{name: down0, role: downstream, device: "{vdev(1, 'box-down')}"}}
dataplane: {{main_lcore: 0, worker_lcores: [1], burst: 32, memory_mb: 1024, hugepages: off,
            flow_capacity: 131072, idle_sleep_max_us: 0}}
offload: {{enabled: true, protocols: [udp, tcp, icmp], keepalive_interval_s: 30}}
upstream: {{iface: up0, ipv4_addr: 100.65.0.2, ipv4_gateway: 100.65.0.1}}
downstreams:
  - {{iface: down0, prefix: 10.10.0.0/24}}
  - {{iface: down0, prefix: "2001:db8:a::/64"}}
metrics: {{enabled: false}}
state_dir: {STATE}
run_dir: {STATE}
""")
            log = open(os.path.join(self.log_dir, "tetherpath.log"), "a")
            self.proc = subprocess.Popen(["ip", "netns", "exec", BOX, TETHERPATH, "--config", cfg],
                                         stdout=log, stderr=log)
            wait_for(lambda: os.path.exists(SOCK) and ctl("status") is not None, 30,
                     "tetherpath did not come up (see tetherpath.log)")
            wait_for(lambda: nsx(BOX, "ip link show down0", check=False).returncode == 0, 10, "TAPs")
            self.topo.kernel_side("down0", "up0")
        else:
            self.topo.raw_ports()
            log = open(os.path.join(self.log_dir, "testpmd.log"), "a")
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", BOX, "stdbuf", "-oL", TESTPMD, "-l", "0,1", "--no-huge", "-m", "512",
                 "--no-pci", "--file-prefix", "tpp-testpmd",
                 "--vdev", vdev(0, "box-down"), "--vdev", vdev(1, "box-up"), "--",
                 "--forward-mode=io", "--auto-start", "--nb-cores=1", "--total-num-mbufs=32768"],
                stdin=subprocess.PIPE, stdout=log, stderr=log)
            wait_for(lambda: "Press enter to exit" in open(log.name).read(), 30,
                     "testpmd did not start (see testpmd.log)")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM if self.name == "tetherpath" else signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    # Busy cycles of the forwarding core so far (cycles per packet = delta / packets).
    def cycles(self, tsc_hz):
        if self.name == "kernel":
            with open("/proc/stat") as f:
                for line in f:
                    if line.startswith("cpu1 "):
                        v = [int(x) for x in line.split()[1:]]
                        return (v[2] + v[5] + v[6]) * tsc_hz / os.sysconf("SC_CLK_TCK")
        if self.name == "tetherpath":
            c = ctl("counters")
            return sum(w["busy_cycles"] for w in c["workers"]) if c else None
        return None


def ctl(verb):
    r = sh(f"{TETHERCTL} -s {SOCK} --json {verb}", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def wait_for(pred, seconds, what, step=0.2):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if pred():
                return
        except (OSError, ValueError, TypeError):
            pass
        time.sleep(step)
    raise RuntimeError(f"timed out waiting for {what}")


def tpgen(mode, fam, flows, size, args, log_dir):
    a = ADDR[fam]
    cmd = (f"ip netns exec {GEN} {TPGEN} -l 0 --no-huge -m 512 --no-pci --file-prefix tpp-gen "
           f"--log-level=*:warning "
           f"--vdev {vdev(0, 'gen-down')} --vdev {vdev(1, 'gen-up')} -- "
           f"--mode {mode} --family {fam} --flows {flows} --size {size} "
           f"--client-mac {MAC['gen-down']} --box-mac {MAC['box-down']} "
           f"--client-ip {a['client']} --server-ip {a['server']} {args}")
    r = sh(cmd, check=False)
    with open(os.path.join(log_dir, "tpgen.log"), "a") as f:
        f.write(cmd + "\n" + r.stderr + r.stdout + "\n")
    if r.returncode != 0:
        raise RuntimeError(f"tpgen failed: {r.stderr.strip()[-300:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_case(fw, case, opts, log_dir):
    flows_name, size, fam = case
    flows = FLOWS[flows_name]
    out = {"system": fw.name, "flows": flows_name, "size": size, "family": fam}
    # Every case starts from an empty conntrack table (and so an empty fast path).
    nsx(BOX, "conntrack -F", check=False)
    if fw.name == "tetherpath":
        wait_for(lambda: ctl("status")["flows"] == 0, 20, "the fast path to empty")
    # For tetherpath, watch the fast path fill while the warm-up runs: the offload setup rate is
    # flows over the time from the assuring sweep to the last flow installed.
    filled = {}
    watching = fw.name == "tetherpath"

    def watch():
        while watching and "at" not in filled:
            st = ctl("status")
            if st and st["flows"] >= flows:
                filled["at"] = time.time()
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    if watching:
        watcher.start()
    warm = {"assure_sweep_unix": time.time()}
    try:
        warm = tpgen("warmup", fam, flows, size, "--rate 25000", log_dir)
        if watching:
            wait_for(lambda: "at" in filled, 30, "offload of every flow")
    except RuntimeError:
        pass
    finally:
        watching = False
        if watcher.is_alive():
            watcher.join()
    if fw.name == "tetherpath":
        out["offloaded_flows"] = ctl("status")["flows"]
        out["offload_setup_flows_per_s"] = (
            round(flows / max(filled["at"] - warm["assure_sweep_unix"], 1e-3)) if "at" in filled else None)
    res = tpgen("search", fam, flows, size,
                f"--duration {opts.duration} --trials {opts.trials}", log_dir)
    out.update({k: res[k] for k in ("offered_max", "ndr", "pdr", "search_trials")})
    out["latency_at50"] = {k: res["at50"][k] for k in ("lat_p50_us", "lat_p99_us", "lat_p999_us")}
    out["latency_at90"] = {k: res["at90"][k] for k in ("lat_p50_us", "lat_p99_us", "lat_p999_us")}
    rate = max(res["pdr"] * 0.9, 1000)
    c0 = fw.cycles(res["tsc_hz"])
    fixed = tpgen("fixed", fam, flows, size, f"--rate {rate:.0f} --duration {opts.duration * 2}",
                  log_dir)
    c1 = fw.cycles(res["tsc_hz"])
    rx = fixed["trial"]["rx"]
    out["cycles_per_packet"] = round((c1 - c0) / rx) if c0 is not None and rx else None
    return out


def parse_cases(spec):
    cases = []
    for c in spec.split(","):
        flows, size, fam = c.split("/")
        if flows not in FLOWS or size not in ("64", "imix", "1500") or fam not in ("4", "6"):
            raise SystemExit(f"harness: bad case '{c}' (flows 1|1k|64k / size 64|imix|1500 / family 4|6)")
        cases.append((flows, size, int(fam)))
    return cases


def markdown(results, opts):
    lines = [f"Ports: DPDK {BACKEND} on veths. Offered load per case: UDP, one client address, flows by source port. "
             f"Trials {opts.duration} s, {opts.trials} search(es) per figure (median). "
             f"Mpps = million packets/s received; offered max = what the generator could send "
             f"(a figure equal to it is a lower bound).", "",
             "| case | system | flows offloaded | offered max | NDR Mpps | PDR Mpps | vs kernel (NDR) | of ceiling (NDR) | "
             "p50/p99/p99.9 µs @90% PDR | cycles/pkt @90% PDR |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    by_case = {}
    for r in results:
        by_case.setdefault((r["flows"], r["size"], r["family"]), {})[r["system"]] = r
    for case, systems in by_case.items():
        k = systems.get("kernel", {}).get("ndr") or 0
        c = systems.get("ceiling", {}).get("ndr") or 0
        for name in SYSTEMS:
            r = systems.get(name)
            if not r:
                continue
            lat = r["latency_at90"]
            vs = f"{r['ndr'] / k:.2f}×" if k and name != "kernel" else "—"
            of = f"{100 * r['ndr'] / c:.0f} %" if c and name != "ceiling" else "—"
            cyc = r["cycles_per_packet"] if r["cycles_per_packet"] is not None else "—"
            off = r.get("offloaded_flows", "—")
            lines.append(f"| {case[0]} flows, {case[1]} B, IPv{case[2]} | {name} | {off} | "
                         f"{r['offered_max'] / 1e6:.3f} | {r['ndr'] / 1e6:.3f} | {r['pdr'] / 1e6:.3f} | {vs} | {of} | "
                         f"{lat['lat_p50_us']:.0f} / {lat['lat_p99_us']:.0f} / {lat['lat_p999_us']:.0f} | {cyc} |")
    setup = [r for r in results if r.get("offload_setup_flows_per_s")]
    if setup:
        lines += ["", "Offload setup (tetherpath): flows per second from the assuring packet to "
                  "the fast path: " + ", ".join(
                      f"{r['flows']} flows: {r['offload_setup_flows_per_s']}/s" for r in setup)]
    return "\n".join(lines) + "\n"


def plots(results, out_dir):
    if not shutil.which("gnuplot"):
        return []
    cases = []
    for r in results:
        c = f"{r['flows']}/{r['size']}/v{r['family']}"
        if c not in cases:
            cases.append(c)
    def table(metric):
        rows = []
        for c in cases:
            vals = []
            for s in SYSTEMS:
                m = [r for r in results if f"{r['flows']}/{r['size']}/v{r['family']}" == c and r["system"] == s]
                v = metric(m[0]) if m else None
                vals.append("0" if v is None else f"{v}")
            rows.append(f"\"{c}\" " + " ".join(vals))
        return "\n".join(rows) + "\n"
    made = []
    specs = [("throughput.png", "NDR (Mpps)", lambda r: r["ndr"] / 1e6),
             ("latency_p99.png", "p99 latency at 90% of PDR (µs)", lambda r: r["latency_at90"]["lat_p99_us"]),
             ("cycles.png", "cycles per packet at 90% of PDR", lambda r: r["cycles_per_packet"])]
    for name, title, metric in specs:
        data = os.path.join(out_dir, name + ".dat")
        with open(data, "w") as f:
            f.write(table(metric))
        script = f"""set terminal png size 1000,500
set output '{os.path.join(out_dir, name)}'
set title '{title}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30
set key top left
set yrange [0:*]
plot '{data}' using 2:xtic(1) title 'kernel', '' using 3 title 'tetherpath', '' using 4 title 'io ceiling (testpmd)'
"""
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if r.returncode == 0:
            made.append(name)
        os.remove(data)
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "perf", "results"))
    ap.add_argument("--cases", default=",".join(f"{f}/{s}/{v}" for v in (4, 6) for f in ("1", "1k", "64k")
                                                 for s in ("64", "imix", "1500")))
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--backend", choices=["af_packet", "af_xdp"], default="af_packet")
    opts = ap.parse_args()
    global BACKEND
    BACKEND = opts.backend
    if os.geteuid() != 0:
        print("SKIP perf harness: needs root (network namespaces)")
        return 0
    for b in (TPGEN, TETHERPATH, TETHERCTL, TESTPMD):
        if not os.path.exists(b):
            print(f"perf harness: {b} is missing (build first; dpdk-testpmd comes with dpdk-dev)")
            return 1
    if opts.smoke:
        opts.cases, opts.duration, opts.trials = "1k/64/4", 0.3, 1
    cases = parse_cases(opts.cases)
    systems = opts.systems.split(",")
    os.makedirs(opts.out, exist_ok=True)
    log_dir = tempfile.mkdtemp(prefix="tpp-")
    topo = Topology()
    results, failures = [], []
    try:
        topo.up()
        for name in systems:
            fw = Forwarder(name, topo, log_dir)
            fw.start()
            try:
                for case in cases:
                    try:
                        r = run_case(fw, case, opts, log_dir)
                    except RuntimeError as e:  # one case failing does not lose the others
                        failures.append(f"{name} {case}: {e} (logs in {log_dir})")
                        print(f"  {name:10s} {case}: FAILED: {e}", flush=True)
                        continue
                    print(f"  {name:10s} {case[0]:>3s} flows {case[1]:>4s} B IPv{case[2]}: "
                          f"NDR {r['ndr'] / 1e6:.3f} PDR {r['pdr'] / 1e6:.3f} Mpps, "
                          f"p99 {r['latency_at90']['lat_p99_us']:.0f} µs, "
                          f"cycles/pkt {r['cycles_per_packet']}", flush=True)
                    results.append(r)
            finally:
                fw.stop()
    except Exception as e:  # the run is reported as failed, the topology still goes away
        failures.append(f"harness error: {e} (logs in {log_dir})")
    finally:
        topo.down()
    doc = {"command": " ".join(["python3", "perf/harness.py"] + sys.argv[1:]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": sh("nproc", check=False).stdout.strip() + " cores, " +
                      sh("uname -r", check=False).stdout.strip(),
           "results": results}
    with open(os.path.join(opts.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    md = markdown(results, opts)
    with open(os.path.join(opts.out, "results.md"), "w") as f:
        f.write(f"Command: `{doc['command']}` ({doc['date']}, {doc['machine']})\n\n" + md)
    made = plots(results, opts.out)
    print(md)
    print(f"results: {opts.out}/results.json, results.md" + (", " + ", ".join(made) if made else ""))
    if opts.smoke:
        checks = []
        by = {r["system"]: r for r in results}
        for s in systems:
            checks.append((f"{s}: a PDR above zero", s in by and by[s]["pdr"] > 0))
            checks.append((f"{s}: latency measured", s in by and by[s]["latency_at90"]["lat_p50_us"] > 0))
        if "tetherpath" in by:
            checks.append(("tetherpath: every flow offloaded", by["tetherpath"].get("offloaded_flows", 0) >= 1000))
            checks.append(("tetherpath: cycles per packet measured", (by["tetherpath"]["cycles_per_packet"] or 0) > 0))
        if "kernel" in by:
            checks.append(("kernel: cycles per packet measured", (by["kernel"]["cycles_per_packet"] or 0) > 0))
        if "ceiling" in by and "tetherpath" in by:
            checks.append(("the I/O ceiling is not below tetherpath (sanity)",
                           by["ceiling"]["pdr"] >= 0.6 * by["tetherpath"]["pdr"]))
        for f in failures:
            checks.append((f, False))
        for name, ok in checks:
            print(f"  {'ok   ' if ok else 'FAIL '} {name}")
        failed = sum(1 for _, ok in checks if not ok)
        print(f"perf_harness: {len(checks) - failed} passed, {failed} failed")
        return 1 if failed else 0
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
