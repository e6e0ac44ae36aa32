#!/usr/bin/env python3
"""The perf lab harness: the same offered load through the Linux kernel alone (forwarding,
conntrack, nftables masquerade), tetherpath's kernel engine (its tc and its XDP programs, on top of
that same kernel configuration), tetherpath's DPDK engine over AF_PACKET and over AF_XDP, and an I/O
ceiling (DPDK testpmd in io mode), on the same namespaces, veths and cores, in one run, side by
side.

    python3 perf/harness.py [--smoke] [--out DIR] [--cases 1k/64/4,64k/imix/6,...]
                            [--systems kernel,tc,xdp,dpdk-af_packet,dpdk-af_xdp,testpmd-af_xdp]
                            [--backend af_xdp|af_packet] [--duration S] [--trials K]
    python3 perf/harness.py --one-cpu [--cases ...] [--systems kernel,tc,xdp] [--duration S]
    python3 perf/harness.py --sender xdpgen [--cases ...] [--systems kernel,tc,xdp] [--duration S] [--trials K]

Topology: namespace tpp-gen holds the generator (perf/tpgen, DPDK on --backend, lcore 0); its
veth gen-down is the tethered clients' side, gen-up the internet's. Namespace tpp-box is the
box: box-down and box-up are its ports. The forwarder under test gets core 1: the kernel, the tc
and the XDP programs through the box veths' NAPI threads pinned there (GRO gives a veth NAPI),
the DPDK engine and testpmd through their worker lcore. The generator's veths run their NAPI in
threads pinned to core 0, so that what the generator's side receives is never charged to the
box's core.

Method (RFC 2544 / CSIT): per case, NDR (no loss) and PDR (<= 0.5 % loss) by binary search over
the trial rate, median of --trials searches; a figure the generator's own maximum bounds is
marked generator-limited. Latency p50/p99/p99.9 at 50 % and 90 % of the PDR. Cycles per forwarded
packet at 90 % of the PDR (kernel, tc, xdp: core 1's non-idle time, i.e. system, irq and softirq
time and NAPI threads alike; the DPDK engine: its worker's busy cycles), and for tc and xdp also at
the kernel's rate of the same case. For the daemon the offload setup rate (flows per second from
the packet that makes conntrack assure them to the flow in the fast path).

--one-cpu measures the in-kernel systems' own cost per packet, everything on core 0 (the method
of the perf notes): cross-core wake-ups, which cost thousands of cycles per packet on this VM and
hide the engines' differences on two cores, are gone. tpgen warms the flows up as above; then
perf/xdpgen sends them as XDP frames (BPF_PROG_TEST_RUN, live frames, redirected into gen-down) as
fast as it can, so the box's veth receives what a NIC driver hands its XDP hook, not the skbs of
a socket. Two figures per system: the box veths' NAPI threads' own time per packet (all the box's
receive, forwarding and transmit runs there; the scheduler counts it exactly), and by difference,
core 0's busy cycles per packet the generator got back minus the same with the frames dropped by
XDP where they enter the box (which includes the generator's receiving of a forwarded frame).
Also the daemon's time per packet, and each hook's floor: a program on box-down that only
redirects every frame to box-up (tc-floor, xdp-floor), the least the box costs with that hook.
Writes results-one-cpu.json and .md.

--sender xdpgen measures the in-kernel systems on two cores as above, with xdpgen's paced XDP
frames instead of tpgen (one frame per interval, the frames not yet due dropped by its program):
the NDR by bisection, and the box's NAPI threads' cycles per packet at the kernel's NDR. Writes
results-xdpgen.json and .md.

Writes results.json, results.md and PNG plots (gnuplot) to --out (default perf/results), and
prints the Markdown. --smoke runs one short case through the kernel, the XDP hook, the DPDK engine
and testpmd and checks the figures are sane; it ends with "perf_harness: N passed, M failed".
"""
import argparse
import contextlib
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
XDPGEN = os.path.join(BUILD, "perf", "xdpgen")
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
BPFFS = "/run/tetherpath-perf-bpffs"  # a private bpffs for the kernel engine's pins
# kernel: the kernel alone; tc, xdp: tetherpath's kernel engine with that hook on both ports;
# dpdk-*: tetherpath's DPDK engine over that socket kind; testpmd-*: the I/O ceiling over it.
SYSTEMS = ["kernel", "tc", "xdp", "dpdk-af_packet", "dpdk-af_xdp", "testpmd-af_packet", "testpmd-af_xdp"]
DEFAULT_SYSTEMS = ["kernel", "tc", "xdp", "dpdk-af_packet", "dpdk-af_xdp", "testpmd-af_xdp"]
KERNEL_ENGINE = ("tc", "xdp")
BACKEND = "af_xdp"  # --backend: the generator's sockets (and what "tetherpath"/"ceiling" mean)
# A search whose result is within this fraction of what the generator could offer did not find
# the system's limit, only the generator's.
GEN_LIMIT = 0.97
BOX_CORE = 1  # where the box's receive runs; --one-cpu: 0, with the generator
ONE_CPU_SYSTEMS = ("kernel",) + KERNEL_ENGINE


def vdev(index, iface, backend=None):
    if (backend or BACKEND) == "af_xdp":
        return f"net_af_xdp{index},iface={iface},start_queue=0,queue_count=1"
    return f"net_af_packet{index},iface={iface},framecnt=4096"


def backend_of(system):
    return system.split("-", 1)[1] if "-" in system else None


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
            # tx checksum offload off: a CHECKSUM_PARTIAL frame redirected by XDP would leave
            # with its checksum unfinished.
            nsx(ns, f"ethtool -K {dev} tx off rx off tso off gso off gro off", check=False)
        # The generator's veths run GRO, so they have NAPI at all times: XDP can redirect into
        # their box-side peers (a veth takes redirected frames only while its peer has NAPI), and
        # what they receive is handled by NAPI threads on core 0 instead of in the softirq of the
        # box's core that sent it (where it would count as the forwarder's work; a NAPI runs
        # where it was scheduled unless it is threaded).
        for ns, dev in ((GEN, "gen-down"), (GEN, "gen-up"), (BOX, "box-down"), (BOX, "box-up")):
            nsx(ns, f"ip link set {dev} up")
        for dev in ("gen-down", "gen-up"):
            nsx(GEN, f"ethtool -K {dev} gro on")
            nsx(GEN, f"sh -c 'echo 1 > /sys/class/net/{dev}/threaded'")  # needs the NAPI to exist
            nsx(GEN, f"sh -c 'echo 1 > /sys/class/net/{dev}/queues/rx-0/rps_cpus'")
        wait_for(lambda: pin_napi(("gen-down", "gen-up"), 0) == 2, 5, "the generator veths' NAPI threads")

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

    def napi_on_box_core(self):
        """The in-kernel systems (kernel, tc, xdp) receive on the box's veths in NAPI threads
        pinned to core 1 (--one-cpu: 0): one mechanism all three can use (RPS, which steered the
        kernel before, comes after XDP), and the generator hands a frame to a veth with NAPI by
        putting it in a ring, where RPS cost it an enqueue and an interrupt to core 1 per batch.
        GRO gives a veth NAPI (and does not merge forwarded UDP)."""
        for dev in ("box-down", "box-up"):
            nsx(BOX, f"ethtool -K {dev} gro on")
            nsx(BOX, f"sh -c 'echo 1 > /sys/class/net/{dev}/threaded'")
            nsx(BOX, f"sh -c 'echo 0 > /sys/class/net/{dev}/queues/rx-0/rps_cpus'")
        self.pin_box_napi()

    def pin_box_napi(self):
        """Pins the box veths' NAPI threads that run now (attaching XDP may restart them)."""
        wait_for(lambda: pin_napi(("box-down", "box-up"), BOX_CORE) == 2, 10, "the box veths' NAPI threads")

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
            # Whatever a kernel-engine run left (the daemon detaches its own programs; a
            # crashed one may not have).
            nsx(BOX, f"ip link set dev {dev} xdp off", check=False)
            nsx(BOX, f"tc qdisc del dev {dev} clsact", check=False)
            # Back to no NAPI for the DPDK systems. A device keeps "threaded" after its NAPI is
            # gone, and would give a later AF_XDP socket's NAPI an unpinned thread; it can be
            # cleared only while the device has NAPI.
            if nsx(BOX, f"cat /sys/class/net/{dev}/threaded").stdout.strip() != "0":
                nsx(BOX, f"ethtool -K {dev} gro on")
                nsx(BOX, f"sh -c 'echo 0 > /sys/class/net/{dev}/threaded'")
            nsx(BOX, f"ethtool -K {dev} gro off")
            # The DPDK systems' socket work in the kernel (AF_PACKET receive) on core 1 as well.
            nsx(BOX, f"sh -c 'echo 2 > /sys/class/net/{dev}/queues/rx-0/rps_cpus'")
            nsx(BOX, f"ip addr flush dev {dev}", check=False)
            nsx(BOX, f"ip neigh flush dev {dev}", check=False)
            for fam in (4, 6):
                nsx(BOX, f"ip -{fam} route flush dev {dev}", check=False)
            nsx(BOX, f"sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1", check=False)


def pin_napi(devs, cpu):
    """Pins the NAPI threads of the given veths to one core, real-time, so that they preempt a
    busy-polling process there as a softirq would (as a normal thread one waits for the
    scheduler's time slice while its ring overflows); returns how many it found."""
    pids = napi_threads(devs)
    for pid in pids:
        sh(f"taskset -p -c {cpu} {pid}")
        sh(f"chrt -f -p 50 {pid}")
    return len(pids)


def napi_threads(devs):
    """The pids of the given veths' NAPI threads (kernel threads named napi/<dev>-<id>, the name
    truncated to 15 characters)."""
    pids = []
    for line in sh("ps -e -o pid=,comm=", check=False).stdout.splitlines():
        pid, _, comm = line.strip().partition(" ")
        if any(comm.startswith(f"napi/{d}-"[:15]) for d in devs):
            pids.append(pid)
    return pids


def run_ns(pids):
    """Each thread's time on a CPU so far, ns (the scheduler's exact sum, /proc/<pid>/schedstat),
    by pid; a thread that has ended is left out."""
    times = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                times[pid] = int(f.read().split()[0])
        except FileNotFoundError:
            pass
    return times


def ran_ns(before, pids):
    """The threads' time since `before` (run_ns); one that ended meanwhile counts what it had."""
    now = run_ns(pids)
    return sum(now.get(pid, t0) - t0 for pid, t0 in before.items())


def process_threads(pid):
    return [f"{pid}/task/{t}" for t in os.listdir(f"/proc/{pid}/task")] if pid else []


def cpu_times(cpu):
    """One core's /proc/stat fields (user nice system idle iowait irq softirq steal ...), s."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                return [int(x) / os.sysconf("SC_CLK_TCK") for x in line.split()[1:]]
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


def core_busy_seconds(cpu):
    """Non-idle time of one core so far: everything but idle and iowait (user, system, irq,
    softirq, steal). With the tickless idle of this kernel the idle time is exact, while the busy
    fields are sampled at the tick, which never comes while the core handles a short burst of
    interrupts from idle: wall time minus idle counts that work, the sum of system+irq+softirq
    would miss it at moderate loads."""
    v = cpu_times(cpu)
    return time.monotonic() - v[3] - v[4]


def core_ticked_seconds(cpu):
    """system+irq+softirq time of one core as the tick sampled it (kept next to the non-idle time
    in results.json, to show what the tick misses)."""
    v = cpu_times(cpu)
    return v[2] + v[5] + v[6]


def ensure_bpffs():
    """A bpffs of the harness's own for the kernel engine's pins (ip netns exec mounts a fresh
    /sys, so /sys/fs/bpf would not be the one the daemon sees anyway)."""
    os.makedirs(BPFFS, exist_ok=True)
    if sh(f"mountpoint -q {BPFFS}", check=False).returncode != 0:
        sh(f"mount -t bpf bpf {BPFFS}")


def release_bpffs():
    if sh(f"mountpoint -q {BPFFS}", check=False).returncode == 0:
        sh(f"rm -rf {BPFFS}/tetherpath", check=False)
        sh(f"umount {BPFFS}", check=False)
    if os.path.isdir(BPFFS):
        os.rmdir(BPFFS)


class Forwarder:
    """One of the systems, brought up on the box."""

    def __init__(self, name, topo, log_dir):
        self.name, self.topo, self.log_dir = name, topo, log_dir
        self.proc = None
        self.hooks = None

    @property
    def daemon(self):
        return self.name in KERNEL_ENGINE or self.name.startswith("dpdk-")

    def start(self):
        self.topo.clear_box()
        if self.name == "kernel":
            self.topo.kernel_side("box-down", "box-up")
            self.topo.napi_on_box_core()
        elif self.name in KERNEL_ENGINE:
            # The kernel keeps its whole configuration on the box's veths; the daemon offloads
            # established flows into the programs on those same veths.
            self.topo.kernel_side("box-down", "box-up")
            self.topo.napi_on_box_core()
            ensure_bpffs()
            self.run_daemon(f"""dataplane: {{engine: kernel}}
kernel_engine: {{bpffs: {BPFFS}, keep_forwarding_on_exit: false}}
ports:
  - {{name: box-up, role: upstream, hook: {self.name}}}
  - {{name: box-down, role: downstream, hook: {self.name}}}
""", "box-up", "box-down")
            ports = ctl("ports")
            self.hooks = {p["name"]: p.get("hook") for p in ports["ports"]} if ports else {}
            if any(h != self.name for h in self.hooks.values()):
                raise RuntimeError(f"{self.name}: the ports run {self.hooks} (tetherctl ports)")
            self.topo.pin_box_napi()
        elif self.name.startswith("dpdk-"):
            self.topo.raw_ports()
            b = backend_of(self.name)
            self.run_daemon(f"""ports:
  - {{name: up0, role: upstream, device: "{vdev(0, 'box-up', b)}"}}
  - {{name: down0, role: downstream, device: "{vdev(1, 'box-down', b)}"}}
dataplane: {{main_lcore: 0, worker_lcores: [1], burst: 32, memory_mb: 1024, hugepages: off,
            flow_capacity: 131072, idle_sleep_max_us: 0}}
""", "up0", "down0")
            wait_for(lambda: nsx(BOX, "ip link show down0", check=False).returncode == 0, 10, "TAPs")
            self.topo.kernel_side("down0", "up0")
        elif self.name.startswith("testpmd-"):
            self.topo.raw_ports()
            b = backend_of(self.name)
            log = open(os.path.join(self.log_dir, "testpmd.log"), "a")
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", BOX, "taskset", "-c", "0,1", "stdbuf", "-oL", TESTPMD, "-l", "0,1", "--no-huge", "-m", "512",
                 "--no-pci", "--file-prefix", "tpp-testpmd",
                 "--vdev", vdev(0, "box-down", b), "--vdev", vdev(1, "box-up", b), "--",
                 "--forward-mode=io", "--auto-start", "--nb-cores=1", "--total-num-mbufs=32768"],
                stdin=subprocess.PIPE, stdout=log, stderr=log)
            wait_for(lambda: "Press enter to exit" in open(log.name).read(), 30,
                     "testpmd did not start (see testpmd.log)")
        else:
            raise RuntimeError(f"unknown system {self.name}")

    def run_daemon(self, head, up, down):
        cfg = os.path.join(self.log_dir, f"{self.name}.yaml")
        with open(cfg, "w") as f:
            f.write(head + f"""offload: {{enabled: true, protocols: [udp, tcp, icmp], keepalive_interval_s: 30}}
upstream: {{iface: {up}, ipv4_addr: 100.65.0.2, ipv4_gateway: 100.65.0.1}}
downstreams:
  - {{iface: {down}, prefix: 10.10.0.0/24}}
  - {{iface: {down}, prefix: "2001:db8:a::/64"}}
metrics: {{enabled: false}}
state_dir: {STATE}
run_dir: {STATE}
""")
        log = open(os.path.join(self.log_dir, f"{self.name}.log"), "a")
        # The kernel engine's daemon has no worker: all of it stays off the forwarding core. The
        # DPDK engine is given both cores (the harness runs on core 0) and pins its lcores.
        pin = ["taskset", "-c", "0" if self.name in KERNEL_ENGINE else "0,1"]
        self.proc = subprocess.Popen(["ip", "netns", "exec", BOX] + pin + [TETHERPATH, "--config", cfg],
                                     stdout=log, stderr=log)
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"tetherpath ({self.name}) exited with {self.proc.returncode}: "
                                   + open(log.name).read().strip()[-300:])
            return os.path.exists(SOCK) and ctl("status") is not None
        wait_for(up, 30, f"tetherpath ({self.name}) to come up (see {log.name})")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM if self.daemon else signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.name in KERNEL_ENGINE:
            self.topo.clear_box()
            release_bpffs()

    # Busy cycles of the forwarding core so far (cycles per packet = delta / packets).
    def cycles(self, tsc_hz):
        if self.name == "kernel" or self.name in KERNEL_ENGINE:
            return core_busy_seconds(1) * tsc_hz
        if self.name.startswith("dpdk-"):
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
    # taskset: its start-up, before the EAL pins it to lcore 0, must not run on the box's core.
    cmd = (f"ip netns exec {GEN} taskset -c 0 {TPGEN} -l 0 --no-huge -m 512 --no-pci --file-prefix tpp-gen "
           f"--log-level=*:warning "
           f"--vdev {vdev(0, 'gen-down')} --vdev {vdev(1, 'gen-up')} -- "
           f"--mode {mode} {frame_args(fam, flows, size)} {args}")
    return run_generator("tpgen", cmd, log_dir)


def frame_args(fam, flows, size):
    a = ADDR[fam]
    return (f"--family {fam} --flows {flows} --size {size} --client-mac {MAC['gen-down']} "
            f"--box-mac {MAC['box-down']} --client-ip {a['client']} --server-ip {a['server']}")


def run_generator(name, cmd, log_dir):
    """Runs tpgen or xdpgen, logs its command and output, returns the JSON it printed."""
    r = sh(cmd, check=False)
    with open(os.path.join(log_dir, f"{name}.log"), "a") as f:
        f.write(cmd + "\n" + r.stderr + r.stdout + "\n")
    if r.returncode != 0:
        raise RuntimeError(f"{name} failed: {r.stderr.strip()[-300:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_case(fw, case, opts, log_dir):
    flows_name, size, fam = case
    began = time.monotonic()
    out = warm_up(fw, case, log_dir)
    res = tpgen("search", fam, FLOWS[flows_name], size,
                f"--duration {opts.duration} --trials {opts.trials}", log_dir)
    out.update({k: res[k] for k in ("offered_max", "ndr", "pdr", "search_trials")})
    # The search starts at what the generator can offer: a result that reaches it is the
    # generator's limit, a lower bound of the system's.
    out["generator_limited"] = {k: res[k] >= GEN_LIMIT * res["offered_max"] for k in ("ndr", "pdr")}
    out["latency_at50"] = {k: res["at50"][k] for k in ("lat_p50_us", "lat_p99_us", "lat_p999_us")}
    out["latency_at90"] = {k: res["at90"][k] for k in ("lat_p50_us", "lat_p99_us", "lat_p999_us")}
    out["cycles_rate"] = max(res["pdr"] * 0.9, 1000)
    f0 = kernel_forwarded(fam)
    t0 = core_ticked_seconds(1)
    out["cycles_per_packet"], rx = cycles_at(fw, case, out["cycles_rate"], res["tsc_hz"], opts, log_dir)
    if rx and fw.name in ("kernel",) + KERNEL_ENGINE:
        out["cycles_per_packet_ticked"] = round((core_ticked_seconds(1) - t0) * res["tsc_hz"] / rx)
    # What the kernel's own forwarding did not carry of that trial, the fast path did.
    out["fast_path_share"] = round(1 - min(kernel_forwarded(fam) - f0, rx) / rx, 4) if rx else None
    # The kernel engine's cost per packet at the kernel's own load too: per-packet costs fall
    # with the load (larger batches per wake-up), so the ratio is taken at one rate.
    k = kernel_rate.get(case)
    if fw.name == "kernel":
        kernel_rate[case] = out["cycles_rate"]
    elif fw.name in KERNEL_ENGINE and k:
        # (not above what the generator could offer in this system's run)
        out["kernel_rate"] = min(k, out["cycles_rate"])
        out["cycles_at_kernel_rate"] = cycles_at(fw, case, out["kernel_rate"], res["tsc_hz"], opts, log_dir)[0]
    out["seconds"] = round(time.monotonic() - began, 1)
    return out


def warm_up(fw, case, log_dir):
    """Every flow through the kernel until it is assured and, with the daemon, offloaded."""
    flows_name, size, fam = case
    flows = FLOWS[flows_name]
    # Every case starts from an empty conntrack table (and so an empty fast path).
    nsx(BOX, "conntrack -F", check=False)
    if fw.daemon:
        wait_for(lambda: ctl("status")["flows"] == 0, 20, "the fast path to empty")
    # For the daemon, watch the fast path fill while the warm-up runs: the offload setup rate is
    # flows over the time from the assuring sweep to the last flow installed.
    filled = {}
    watching = fw.daemon

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
    out = {"system": fw.name, "flows": flows_name, "size": size, "family": fam, "generator": BACKEND}
    if fw.hooks:
        out["hooks"] = fw.hooks
    try:
        warm = tpgen("warmup", fam, flows, size, "--rate 25000", log_dir)
        if watching:
            try:
                wait_for(lambda: "at" in filled, 30, "offload of every flow")
            except RuntimeError:
                # The kernel's slow path drops now and then under the warm-up's burst; a flow
                # whose first packets were all lost is never assured. Its second chance is a
                # second warm-up (the assuring sweep of the flows already offloaded is harmless).
                tpgen("warmup", fam, flows, size, "--rate 25000", log_dir)
                wait_for(lambda: "at" in filled, 30, "offload of every flow")
    except RuntimeError:
        pass
    finally:
        watching = False
        if watcher.is_alive():
            watcher.join()
    if fw.daemon:
        out["offloaded_flows"] = ctl("status")["flows"]
        out["offload_setup_flows_per_s"] = (
            round(flows / max(filled["at"] - warm["assure_sweep_unix"], 1e-3)) if "at" in filled else None)
    return out


def saturated(fw, case, opts, log_dir):
    """--one-cpu: the generator at full speed through the system, everything on core 0 (which the
    generator keeps saturated): cycles per packet the generator got back."""
    flows_name, size, fam = case
    began = time.monotonic()
    out = warm_up(fw, case, log_dir)
    f0 = kernel_forwarded(fam)
    with xdp_attached(GEN, "gen-up", xdp_drop_obj(log_dir)):
        rx, fig = full_speed(case, opts, log_dir, "received", lambda: rx_packets(GEN, "gen-up"),
                             daemon_pid=fw.proc.pid if fw.daemon and fw.proc else None)
    out.update(fig, generator="xdpgen")
    out["fast_path_share"] = round(1 - min(kernel_forwarded(fam) - f0, rx) / rx, 4) if rx else None
    out["seconds"] = round(time.monotonic() - began, 1)
    return out


def full_speed_seconds(opts):
    return opts.duration * 4


def xdpgen(case, seconds, log_dir, rate=0):
    """The XDP sender (perf/generators/xdpgen.cpp): the case's flows as XDP frames into gen-down for
    `seconds`, paced at `rate` frames per second, or as fast as core 0 can (0)."""
    flows_name, size, fam = case
    cmd = (f"ip netns exec {GEN} taskset -c 0 {XDPGEN} --device gen-down {frame_args(fam, FLOWS[flows_name], size)} "
           f"--duration {seconds} --rate {rate:.0f}")
    return run_generator("xdpgen", cmd, log_dir)


def measured_xdpgen(case, seconds, log_dir, rate, counter, core, threads, daemon=()):
    """One xdpgen run (perf/generators/xdpgen.cpp) of `seconds` at `rate` (0: full speed), measured
    around: xdpgen's report, what counter() counted, the threads' and the daemon's time on a CPU
    (ns), and the core's busy seconds."""
    ns0, dns0, n0, busy0 = run_ns(threads), run_ns(daemon), counter(), core_busy_seconds(core)
    res = xdpgen(case, seconds, log_dir, rate)
    time.sleep(0.05)  # the last frames through the box
    return (res, counter() - n0, ran_ns(ns0, threads), ran_ns(dns0, daemon),
            core_busy_seconds(core) - busy0)


def full_speed(case, opts, log_dir, what, counter, daemon_pid=None):
    """--one-cpu: one trial of xdpgen at full speed. counter() reads the packets that count (got
    back, or entered the box); returns how many, and as figures: core 0's busy cycles per counted
    packet (xdpgen's calls wait a little between their runs: its idle time is left out), the
    counted packets per second as `what`_pps,
    and the box veths' NAPI threads' own time per packet. All the box's receive, forwarding and
    transmit into the peer veth runs in those threads, and the scheduler counts their time
    exactly (the generator's receiving runs in its own veths' threads); and the daemon's time
    per packet, if one runs."""
    res, n, ns, dns, busy = measured_xdpgen(case, full_speed_seconds(opts), log_dir, 0, counter, 0,
                                            napi_threads(("box-down", "box-up")), process_threads(daemon_pid))
    hz, secs = res["tsc_hz"], res["seconds"]
    per_packet = (lambda x: round(x / n)) if n else (lambda x: None)
    return n, {"tsc_hz": round(hz), "seconds_measured": secs, "sent_pps": round(res["sent"] / secs),
               f"{what}_pps": round(n / secs), "all_in_cycles": per_packet(hz * busy),
               "napi_cycles": per_packet(hz * ns / 1e9),
               **({"daemon_cycles": per_packet(hz * dns / 1e9)} if daemon_pid else {})}


def rx_packets(ns, dev):
    return json.loads(nsx(ns, f"ip -s -j link show {dev}").stdout)[0]["stats64"]["rx"]["packets"]


# XDP_DROP (1), no headers needed: the earliest point at which a frame has entered the box.
XDP_DROP_SOURCE = """__attribute__((section("xdp"), used)) int drop(void *ctx) { return 1; }
char _license[] __attribute__((section("license"), used)) = "GPL";
"""


def xdp_drop_obj(log_dir):
    src, obj = os.path.join(log_dir, "xdp_drop.c"), os.path.join(log_dir, "xdp_drop.o")
    if not os.path.exists(obj):
        with open(src, "w") as f:
            f.write(XDP_DROP_SOURCE)
        sh(f"clang -O2 -target bpf -c {src} -o {obj}")
    return obj


@contextlib.contextmanager
def xdp_attached(ns, dev, obj):
    """An XDP program on a veth for the block (a veth counts what its program drops as received)."""
    nsx(ns, f"ip link set dev {dev} xdpdrv off", check=False)
    nsx(ns, f"ip link set dev {dev} xdpdrv obj {obj} sec xdp")
    try:
        yield
    finally:
        nsx(ns, f"ip link set dev {dev} xdpdrv off", check=False)


# Programs on box-down that hand every frame to box-up as it came, with no lookup and no rewrite:
# what the box costs with that hook before any forwarder's own work (tc: the skb built around the
# frame, GRO, the classifier, bpf_redirect and the veth's transmit; XDP: the redirect). Helper 23
# is bpf_redirect; headers would need the build's include paths.
FLOOR_SOURCE = """static long (*redirect)(unsigned int ifindex, unsigned long long flags) = (void *)23;
__attribute__((section("%s"), used)) int floor_(void *ctx) { return redirect(%d, 0); }
char _license[] __attribute__((section("license"), used)) = "GPL";
"""
FLOORS = {"tc-floor": "classifier", "xdp-floor": "xdp"}


def floor_obj(log_dir, name):
    ifindex = int(nsx(BOX, "cat /sys/class/net/box-up/ifindex").stdout)
    src, obj = (os.path.join(log_dir, f"{name}-{ifindex}.{x}") for x in ("c", "o"))
    if not os.path.exists(obj):
        with open(src, "w") as f:
            f.write(FLOOR_SOURCE % (FLOORS[name], ifindex))
        sh(f"clang -O2 -target bpf -c {src} -o {obj}")
    return obj


@contextlib.contextmanager
def tc_attached(ns, dev, obj):
    """A direct-action tc program on a device's ingress for the block."""
    nsx(ns, f"tc qdisc replace dev {dev} clsact")
    try:
        nsx(ns, f"tc filter add dev {dev} ingress bpf direct-action obj {obj} sec classifier")
        yield
    finally:
        nsx(ns, f"tc qdisc del dev {dev} clsact", check=False)


def bare_box(topo, case, opts, log_dir, name, hooked, what, counter):
    """--one-cpu: the box with only the program(s) hooked() attaches, NAPI on core 0 as for the
    systems, measured as they are."""
    flows_name, size, fam = case
    topo.clear_box()
    topo.napi_on_box_core()
    try:
        with hooked():
            topo.pin_box_napi()
            _, fig = full_speed(case, opts, log_dir, what, counter)
    finally:
        topo.clear_box()
    return {"system": name, "flows": flows_name, "size": size, "family": fam, "generator": "xdpgen", **fig}


def generator_alone(topo, case, opts, log_dir):
    """--one-cpu: what the generator and a frame's way into the box cost, per frame that entered:
    its frames dropped by an XDP program on box-down, before any of the box's own work that the
    XDP hook would skip too."""
    return bare_box(topo, case, opts, log_dir, "generator",
                    lambda: xdp_attached(BOX, "box-down", xdp_drop_obj(log_dir)),
                    "entered", lambda: rx_packets(BOX, "box-down"))


def hook_floor(topo, case, opts, log_dir, name):
    """--one-cpu: a hook's floor (FLOOR_SOURCE), counted where the generator gets frames back."""
    @contextlib.contextmanager
    def hooked():
        attach = tc_attached if name == "tc-floor" else xdp_attached
        with xdp_attached(GEN, "gen-up", xdp_drop_obj(log_dir)), attach(BOX, "box-down", floor_obj(log_dir, name)):
            yield
    return bare_box(topo, case, opts, log_dir, name, hooked, "received", lambda: rx_packets(GEN, "gen-up"))


def paced_trial(case, rate, seconds, log_dir, threads=()):
    """--sender xdpgen: one trial at `rate` (0: full speed). Frames sent and received (counted by
    gen-up's XDP drop), the loss, the rate achieved while sending, and the threads' time."""
    res, got, ns, _, busy = measured_xdpgen(case, seconds, log_dir, rate, lambda: rx_packets(GEN, "gen-up"),
                                            BOX_CORE, threads)
    sent = res["sent"]
    return {"rate": rate, "achieved": sent / res["sending_seconds"] if res["sending_seconds"] > 0 else 0,
            "sent": sent, "received": got,
            "loss": max(0, sent - got) / sent if sent else 1.0, "tsc_hz": res["tsc_hz"],
            "thread_cycles": round(res["tsc_hz"] * ns / 1e9 / got) if got else None,
            "core_cycles": round(res["tsc_hz"] * busy / got) if got else None}


MIN_RATE = 1000  # frames per second: below it the search gives up (an NDR of 0)


def search_ndr(case, hi, opts, log_dir):
    """The highest paced rate with no loss: bisection in [0, hi] to 2 %, at most 12 steps, none
    below MIN_RATE (xdpgen's rate 0 is full speed). Returns it and the number of trials."""
    trials = 1
    if paced_trial(case, hi, opts.duration, log_dir)["loss"] == 0:
        return hi, trials
    lo = 0.0
    while hi - lo > 0.02 * hi and hi >= MIN_RATE and trials <= 12:
        mid = (lo + hi) / 2
        trials += 1
        if paced_trial(case, mid, opts.duration, log_dir)["loss"] == 0:
            lo = mid
        else:
            hi = mid
    return (lo if lo >= MIN_RATE else 0.0), trials


def xdp_sender_case(fw, case, opts, log_dir):
    """--sender xdpgen (two cores: the box's NAPI threads on core 1, xdpgen on core 0): the NDR
    with XDP frames as a NIC would hand them; the box's cycles per packet at the kernel's NDR."""
    flows_name, size, fam = case
    began = time.monotonic()
    out = warm_up(fw, case, log_dir)
    out["generator"] = "xdpgen"
    f0 = kernel_forwarded(fam)
    with xdp_attached(GEN, "gen-up", xdp_drop_obj(log_dir)):
        # What the pacer can offer: a paced trial at the full-speed rate, as achieved.
        full = paced_trial(case, 0, opts.duration, log_dir)
        offered = paced_trial(case, full["achieved"], opts.duration, log_dir)["achieved"]
        ndrs, steps = [], 0
        for _ in range(opts.trials):
            ndr, n = search_ndr(case, offered, opts, log_dir)
            ndrs.append(ndr)
            steps += n
        ndr = statistics.median(ndrs)
        out.update(offered_max=round(offered), ndr=round(ndr), search_trials=steps,
                   generator_limited={"ndr": ndr >= GEN_LIMIT * offered})
        if fw.name == "kernel":
            kernel_rate[case] = ndr
        # One rate for all (per-packet costs fall as the load rises): the kernel's NDR.
        rate = min(kernel_rate.get(case, 0), offered)
        rx = 0
        if rate >= MIN_RATE:
            t = paced_trial(case, rate, opts.duration * 2, log_dir, napi_threads(("box-down", "box-up")))
            out.update(cycles_rate=round(rate), cycles_loss=round(t["loss"], 5), napi_cycles=t["thread_cycles"],
                       core_cycles=t["core_cycles"])
            rx = t["received"]
    out["fast_path_share"] = round(1 - min(kernel_forwarded(fam) - f0, rx) / rx, 4) if rx else None
    out["seconds"] = round(time.monotonic() - began, 1)
    return out


def xdp_sender_markdown(results, opts):
    lines = [f"Two cores: the box's NAPI threads on core 1; xdpgen on core 0 sending the case's flows as "
             f"XDP frames (as a NIC driver hands them), paced; NDR (no loss) by bisection to 2 %, "
             f"median of {opts.trials}, {opts.duration:g} s trials; each NDR as \"NDR / what the generator "
             f"offered in that system's run (Mpps)\". Cycles per packet at the kernel's NDR (the same rate "
             f"for all): the box veths' NAPI threads' time, and core 1's non-idle time, with the loss in that "
             f"trial when there was one.", "",
             "| case | kernel NDR / offered | tc NDR / offered (vs kernel) | xdp NDR / offered (vs kernel) | at Mpps "
             "| kernel NAPI / core cycles | tc NAPI / core (NAPI vs kernel) | xdp NAPI / core (NAPI vs kernel) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    verdicts = []
    for case, systems in by_case(results).items():
        k = systems.get("kernel")
        if not k:
            continue

        def ndr_cell(r):
            if not r:
                return "—"
            ge = "≥ " if r["generator_limited"]["ndr"] else ""
            rel = f" ({r['ndr'] / k['ndr']:.1f}×)" if r is not k and k["ndr"] else ""
            return f"{ge}{r['ndr'] / 1e6:.3f} / {r['offered_max'] / 1e6:.3f}{rel}"

        def cyc_cell(r):
            if not r or not r.get("napi_cycles"):
                return "—"
            rel = (f" ({r['napi_cycles'] / k['napi_cycles']:.2f}×)"
                   if r is not k and k.get("napi_cycles") else "")
            loss = f", {r['cycles_loss']:.2%} lost" if r.get("cycles_loss") else ""
            return f"{r['napi_cycles']} / {r.get('core_cycles') or '—'}{rel}{loss}"

        at = f"{k['cycles_rate'] / 1e6:.3f}" if k.get("cycles_rate") else "—"
        lines.append(f"| {case[0]} flows, {case[1]} B, IPv{case[2]} | {ndr_cell(k)} | "
                     f"{ndr_cell(systems.get('tc'))} | {ndr_cell(systems.get('xdp'))} | {at} | "
                     f"{cyc_cell(k)} | {cyc_cell(systems.get('tc'))} | {cyc_cell(systems.get('xdp'))} |")
        for name in KERNEL_ENGINE:
            r = systems.get(name)
            if not r or not k["ndr"]:
                continue
            share, factor = TARGETS[name]
            x = r["ndr"] / k["ndr"]
            ndr_v = ("met" if x >= factor else "not reached, generator-limited" if r["generator_limited"]["ndr"]
                     else "NOT met")
            c = r["napi_cycles"] / k["napi_cycles"] if r.get("napi_cycles") and k.get("napi_cycles") else None
            verdicts.append(f"- {case[0]} flows, {case[1]} B, IPv{case[2]}, {name}: NDR {x:.1f}× the kernel's ({ndr_v}: "
                            f"≥ {factor:g}×); NAPI cycles {f'{c:.2f}×' if c else '—'} "
                            f"({'met' if c and c <= share else 'NOT met'}: ≤ {share:.2f}×).")
    if verdicts:
        lines += ["", "Against the targets:", ""] + verdicts
    return "\n".join(lines) + "\n"


def xdp_sender_run(topo, systems, cases, opts, log_dir):
    results, failures = [], []
    run_systems(topo, systems, cases, log_dir, lambda fw, case: xdp_sender_case(fw, case, opts, log_dir),
                lambda r: f"NDR {r['ndr'] / 1e6:.3f} Mpps (offered {r['offered_max'] / 1e6:.3f}), "
                          f"{r.get('napi_cycles')} NAPI cycles/pkt at {r.get('cycles_rate', 0) / 1e6:.3f} Mpps",
                results, failures)
    write_results(results, xdp_sender_markdown(results, opts), opts, "results-xdpgen")
    by = {r["system"]: r for r in results}
    return in_kernel_verdict(opts, systems, by, failures,
                             [(f"{s}: an NDR found", s in by and by[s]["ndr"] > 0) for s in systems])


def write_results(results, md, opts, stem):
    doc = run_doc(results)
    with open(os.path.join(opts.out, f"{stem}.json"), "w") as f:
        json.dump(doc, f, indent=2)
    with open(os.path.join(opts.out, f"{stem}.md"), "w") as f:
        f.write(f"Command: `{doc['command']}` ({doc['date']}, {doc['machine']})\n\n" + md)
    print(md)
    print(f"results: {opts.out}/{stem}.json, {stem}.md")


def in_kernel_verdict(opts, systems, by, failures, checks):
    """--one-cpu and --sender xdpgen: the exit status; with --smoke, the mode's own checks and what
    every in-kernel system must show (its NAPI time counted; the kernel engine's fast path carried
    the measured traffic)."""
    if not opts.smoke:
        for f in failures:
            print(f)
        return 1 if failures else 0
    checks = [(f, False) for f in failures] + checks
    for s in systems:
        checks.append((f"{s}: its NAPI threads' time counted", s in by and (by[s].get("napi_cycles") or 0) > 0))
        if s in KERNEL_ENGINE:
            checks.append((f"{s}: the fast path carried the measured traffic",
                           s in by and (by[s].get("fast_path_share") or 0) >= 0.99))
    return report_checks(checks)


def by_case(results):
    """{case: {system: result}}, cases in the order they were run."""
    out = {}
    for r in results:
        out.setdefault((r["flows"], r["size"], r["family"]), {})[r["system"]] = r
    return out


def report_checks(checks):
    """--smoke: each check's verdict, the tally, the exit status."""
    for name, ok in checks:
        print(f"  {'ok   ' if ok else 'FAIL '} {name}")
    failed = sum(1 for _, ok in checks if not ok)
    print(f"perf_harness: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


def run_doc(results):
    return {"command": " ".join(["python3", "perf/harness.py"] + sys.argv[1:]),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{os.cpu_count()} cores, " + sh("uname -r", check=False).stdout.strip(),
            "results": results}


def add_box_cycles(results):
    """--one-cpu: each system's all-in cycles per packet minus the generator's alone, per case."""
    for systems in by_case(results).values():
        base = systems["generator"]["all_in_cycles"] if "generator" in systems else None
        for name in ONE_CPU_SYSTEMS + tuple(FLOORS):
            r = systems.get(name)
            if r:
                r["box_cycles"] = r["all_in_cycles"] - base if base and r["all_in_cycles"] else None


def vs_kernel(value, kernel_value):
    return f"{value / kernel_value:.2f}×" if value and kernel_value else "—"


def one_cpu_markdown(results, opts):
    lines = [f"One CPU (core 0: xdpgen, the box's NAPI threads, the generator's, the kernel engine's "
             f"daemon), xdpgen sending the case's flows as XDP frames into the box as fast as it can, "
             f"{full_speed_seconds(opts):g} s per figure. **NAPI**: the box veths' NAPI threads' time per "
             f"packet, where all the box's receive, forwarding and transmit runs. **By difference**: core "
             f"0's busy cycles per packet the generator got back, minus the same with the frames dropped "
             f"by XDP as they enter the box (generator row: per frame that entered). **tc-floor**, "
             f"**xdp-floor**: a program on box-down that only redirects every frame to box-up, "
             f"unchanged: the least the box costs with that hook.", "",
             "| case | system | received Mpps | NAPI cycles/pkt | vs kernel | all-in cycles/pkt "
             "| by difference | vs kernel | fast-path share | flows offloaded |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    verdicts = []
    for case, systems in by_case(results).items():
        name_case = f"{case[0]} flows, {case[1]} B, IPv{case[2]}"
        kernel = systems.get("kernel", {})
        for name in ("generator",) + ONE_CPU_SYSTEMS + tuple(FLOORS):
            r = systems.get(name)
            if not r:
                continue
            pps = r.get("received_pps") or r.get("entered_pps") or 0
            other = name not in ("kernel", "generator")
            napi_vs = vs_kernel(r.get("napi_cycles"), kernel.get("napi_cycles")) if other else "—"
            box_vs = vs_kernel(r.get("box_cycles"), kernel.get("box_cycles")) if other else "—"
            lines.append(f"| {name_case} | {name} | {pps / 1e6:.3f} | {r.get('napi_cycles') or '—'} | {napi_vs} | "
                         f"{r.get('all_in_cycles') or '—'} | {r.get('box_cycles') or '—'} | {box_vs} | "
                         f"{r.get('fast_path_share', '—')} | {r.get('offloaded_flows', '—')} |")
            if name in TARGETS and r.get("napi_cycles") and kernel.get("napi_cycles"):
                share = TARGETS[name][0]
                ratio = r["napi_cycles"] / kernel["napi_cycles"]
                verdicts.append(f"- {name_case}, {name}: {ratio:.2f}× the kernel's NAPI cycles "
                                f"({'met' if ratio <= share else 'NOT met'}: ≤ {share:.2f}×), "
                                f"{vs_kernel(r.get('box_cycles'), kernel.get('box_cycles'))} by difference; "
                                f"{pps / max(kernel.get('received_pps') or 1, 1):.1f}× its packet rate on one core"
                                + floor_said(systems.get(f"{name}-floor"), kernel) + ".")
    if verdicts:
        lines += ["", "Against the cycles targets (xdp ≤ 1/3 of the kernel's, tc ≤ 1/2):", ""] + verdicts
    return "\n".join(lines) + "\n"


def floor_said(floor, kernel):
    if not floor or not floor.get("napi_cycles") or not kernel.get("napi_cycles"):
        return ""
    return (f"; its hook's floor alone (redirect, nothing else) "
            f"{floor['napi_cycles'] / kernel['napi_cycles']:.2f}×")


def kernel_forwarded(fam):
    """Packets the box's kernel has forwarded itself (IP forwarding, not a program's redirect)."""
    if fam == 4:
        lines = nsx(BOX, "cat /proc/net/snmp").stdout.splitlines()
        head, vals = [line.split() for line in lines if line.startswith("Ip:")][:2]
        return int(vals[head.index("ForwDatagrams")])
    for line in nsx(BOX, "cat /proc/net/snmp6").stdout.splitlines():
        if line.startswith("Ip6OutForwDatagrams"):
            return int(line.split()[1])
    raise RuntimeError("no Ip6OutForwDatagrams in /proc/net/snmp6")


kernel_rate = {}  # case -> the rate at which the kernel's cycles per packet were measured


def cycles_at(fw, case, rate, tsc_hz, opts, log_dir):
    flows_name, size, fam = case
    c0 = fw.cycles(tsc_hz)
    fixed = tpgen("fixed", fam, FLOWS[flows_name], size, f"--rate {rate:.0f} --duration {opts.duration * 2}",
                  log_dir)
    c1 = fw.cycles(tsc_hz)
    rx = fixed["trial"]["rx"]
    return (round((c1 - c0) / rx) if c0 is not None and rx else None), rx


def parse_cases(spec):
    cases = []
    for c in spec.split(","):
        flows, size, fam = c.split("/")
        if flows not in FLOWS or size not in ("64", "imix", "1500") or fam not in ("4", "6"):
            raise SystemExit(f"harness: bad case '{c}' (flows 1|1k|64k / size 64|imix|1500 / family 4|6)")
        cases.append((flows, size, int(fam)))
    return cases


TARGETS = {"xdp": (1 / 3, 3.0), "tc": (1 / 2, 2.0)}  # issue #14: cycles ≤ share, NDR ≥ factor


def kernel_cycles_ratio(r, kernel):
    """The system's cycles per packet over the kernel's (tc, xdp: at the kernel's rate)."""
    mine = r.get("cycles_at_kernel_rate") or r["cycles_per_packet"]
    k = kernel.get("cycles_per_packet") if kernel else None
    return mine / k if mine and k else None


def ndr_vs(r, base):
    """The NDR ratio, as a bound where the generator limited either side; None if unknown."""
    if not base or not base["ndr"] or not r["ndr"]:
        return None, "—"
    ratio = r["ndr"] / base["ndr"]
    mine, theirs = r["generator_limited"]["ndr"], base["generator_limited"]["ndr"]
    if mine and theirs:
        return None, "both generator-limited"
    if mine:
        return ratio, f"≥ {ratio:.2f}×"
    if theirs:
        return ratio, f"≤ {ratio:.2f}×"
    return ratio, f"{ratio:.2f}×"


def markdown(results, opts):
    lines = [f"Generator: tpgen on DPDK {BACKEND}, one core. Offered load per case: UDP, one client "
             f"address, flows by source port. Trials {opts.duration} s, {opts.trials} search(es) per "
             f"figure (median). Mpps = million packets/s received; offered max = what the generator "
             f"could send: a figure that reaches it (≥ {GEN_LIMIT:.0%}) is marked ≥, the generator's "
             f"limit and a lower bound of the system's. Cycles per packet at 90 % of the PDR "
             f"(kernel, tc, xdp: core 1's non-idle time, softirq included; dpdk-*: the worker's busy "
             f"cycles); the ratio vs the kernel for tc and xdp is taken at the kernel's rate.", "",
             "| case | system | flows offloaded | offered max | NDR Mpps | PDR Mpps | NDR vs kernel | "
             "of ceiling (NDR) | cycles/pkt | cycles vs kernel | p50/p99/p99.9 µs @90% PDR |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    verdicts = []
    for case, systems in by_case(results).items():
        kernel = systems.get("kernel")
        name_case = f"{case[0]} flows, {case[1]} B, IPv{case[2]}"
        for name in SYSTEMS:
            r = systems.get(name)
            if not r:
                continue
            lat = r["latency_at90"]
            _, vs = ndr_vs(r, kernel) if name != "kernel" else (None, "—")
            ceiling = systems.get("testpmd-" + (backend_of(name) or "")) if name.startswith("dpdk-") else None
            of = f"{100 * r['ndr'] / ceiling['ndr']:.0f} %" if ceiling and ceiling["ndr"] else "—"
            cyc = r["cycles_per_packet"] if r["cycles_per_packet"] is not None else "—"
            if r.get("cycles_at_kernel_rate"):
                cyc = f"{cyc} ({r['cycles_at_kernel_rate']} at the kernel's rate)"
            cr = kernel_cycles_ratio(r, kernel) if name != "kernel" else None
            crs = f"{cr:.2f}× (1/{1 / cr:.1f})" if cr else "—"
            gl = r["generator_limited"]
            ndr = f"{'≥ ' if gl['ndr'] else ''}{r['ndr'] / 1e6:.3f}"
            pdr = f"{'≥ ' if gl['pdr'] else ''}{r['pdr'] / 1e6:.3f}"
            lines.append(f"| {name_case} | {name} | {r.get('offloaded_flows', '—')} | "
                         f"{r['offered_max'] / 1e6:.3f} | {ndr} | {pdr} | {vs} | {of} | {cyc} | {crs} | "
                         f"{lat['lat_p50_us']:.0f} / {lat['lat_p99_us']:.0f} / {lat['lat_p999_us']:.0f} |")
            if name in TARGETS:
                share, factor = TARGETS[name]
                ratio, _ = ndr_vs(r, kernel)
                if cr is None:
                    cyc_v = "cycles not measured"
                else:
                    cyc_v = f"cycles {cr:.2f}× the kernel's ({'met' if cr <= share else 'NOT met'}: ≤ {share:.2f}×)"
                if gl["ndr"]:
                    ndr_v = ("NDR ≥ offered max: generator-limited" +
                             (f" (≥ {ratio:.2f}× the kernel's)" if ratio and not kernel["generator_limited"]["ndr"]
                              else ""))
                elif ratio is None:
                    ndr_v = "NDR not comparable"
                else:
                    bound = "≤ " if kernel["generator_limited"]["ndr"] else ""
                    ndr_v = f"NDR {bound}{ratio:.2f}× the kernel's ({'met' if ratio >= factor else 'NOT met'}: ≥ {factor:.0f}×)"
                verdicts.append(f"- {name_case}, {name}: {cyc_v}; {ndr_v}.")
    if verdicts:
        lines += ["", "Kernel engine against the targets (xdp: ≤ 1/3 of the kernel's cycles per packet "
                  "and NDR ≥ 3×; tc: ≤ 1/2 and ≥ 2×):", ""] + verdicts
    partial = [r for r in results if r.get("offloaded_flows") is not None and r["offloaded_flows"] < FLOWS[r["flows"]]]
    if partial:
        lines += ["", "Not every flow was in the fast path when measured (the warm-up's slow path lost "
                  "some; their packets took the kernel's path through the box): " + ", ".join(
                      f"{r['system']} {r['flows']} flows {r['size']} IPv{r['family']}: {r['offloaded_flows']} "
                      f"(fast path share {r.get('fast_path_share')})" for r in partial)]
    setup = [r for r in results if r.get("offload_setup_flows_per_s")]
    if setup:
        lines += ["", "Offload setup: flows per second from the assuring packet to the fast path: " + ", ".join(
            f"{r['system']} {r['flows']} flows IPv{r['family']}: {r['offload_setup_flows_per_s']}/s" for r in setup)]
    return "\n".join(lines) + "\n"


def plots(results, out_dir):
    if not shutil.which("gnuplot"):
        return []
    cases, systems = [], [s for s in SYSTEMS if any(r["system"] == s for r in results)]
    for r in results:
        c = f"{r['flows']}/{r['size']}/v{r['family']}"
        if c not in cases:
            cases.append(c)

    def table(metric):
        rows = []
        for c in cases:
            vals = []
            for s in systems:
                m = [r for r in results if f"{r['flows']}/{r['size']}/v{r['family']}" == c and r["system"] == s]
                v = metric(m[0]) if m else None
                vals.append("0" if v is None else f"{v}")
            rows.append(f"\"{c}\" " + " ".join(vals))
        return "\n".join(rows) + "\n"
    made = []
    specs = [("throughput.png", "NDR (Mpps; generator-limited ones are lower bounds)", lambda r: r["ndr"] / 1e6),
             ("latency_p99.png", "p99 latency at 90% of PDR (µs)", lambda r: r["latency_at90"]["lat_p99_us"]),
             ("cycles.png", "cycles per packet at 90% of PDR", lambda r: r["cycles_per_packet"])]
    for name, title, metric in specs:
        data = os.path.join(out_dir, name + ".dat")
        with open(data, "w") as f:
            f.write(table(metric))
        using = ", ".join(f"'{data if i == 0 else ''}' using {i + 2}{':xtic(1)' if i == 0 else ''} title '{s}'"
                          for i, s in enumerate(systems))
        script = f"""set terminal png size 1200,500 noenhanced
set output '{os.path.join(out_dir, name)}'
set title '{title}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30
set key top left
set yrange [0:*]
plot {using}
"""
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if r.returncode == 0:
            made.append(name)
        os.remove(data)
    return made


def run_systems(topo, systems, cases, log_dir, measure, summary, results, failures):
    """Each system brought up in turn and measured on every case: measure(fw, case) -> result,
    summary(result) -> its line. One system or case failing does not lose the others."""
    for name in systems:
        fw = Forwarder(name, topo, log_dir)
        try:
            try:
                fw.start()
            except RuntimeError as e:
                failures.append(f"{name}: {e} (logs in {log_dir})")
                print(f"  {name:10s}: FAILED to start: {e}", flush=True)
                continue
            for case in cases:
                try:
                    r = measure(fw, case)
                except RuntimeError as e:
                    failures.append(f"{name} {case}: {e} (logs in {log_dir})")
                    print(f"  {name:10s} {case}: FAILED: {e}", flush=True)
                    continue
                print(f"  {name:14s} {case[0]:>3s} flows {case[1]:>4s} B IPv{case[2]} ({r['seconds']:.0f} s): "
                      + summary(r), flush=True)
                results.append(r)
        finally:
            fw.stop()


def one_cpu_run(topo, systems, cases, opts, log_dir):
    results, failures = [], []
    run_systems(topo, systems, cases, log_dir, lambda fw, case: saturated(fw, case, opts, log_dir),
                lambda r: f"{r['received_pps'] / 1e6:.3f} Mpps on one core, {r['all_in_cycles']} cycles/pkt all in",
                results, failures)
    floors = [f"{s}-floor" for s in systems if f"{s}-floor" in FLOORS]
    for case in cases:
        for name in ["generator"] + floors:
            try:
                r = (generator_alone(topo, case, opts, log_dir) if name == "generator"
                     else hook_floor(topo, case, opts, log_dir, name))
            except (RuntimeError, subprocess.CalledProcessError) as e:  # the others' rows stay
                failures.append(f"{name} {case}: {e} (logs in {log_dir})")
                continue
            pps = r.get("entered_pps", r.get("received_pps")) or 0
            print(f"  {name:10s} {case[0]:>3s} flows {case[1]:>4s} B IPv{case[2]}: {pps / 1e6:.3f} Mpps "
                  f"{'into the box' if name == 'generator' else 'back'}, {r['all_in_cycles']} cycles/frame all in, "
                  f"{r['napi_cycles']} NAPI", flush=True)
            results.append(r)
    add_box_cycles(results)
    write_results(results, one_cpu_markdown(results, opts), opts, "results-one-cpu")
    by = {r["system"]: r for r in results}
    checks = [("the generator alone: its frames entered the box",
               "generator" in by and (by["generator"]["all_in_cycles"] or 0) > 0)]
    for s in floors:
        checks.append((f"{s}: frames came back", s in by and by[s]["received_pps"] > 0))
    for s in systems:
        checks.append((f"{s}: forwarded on one core", s in by and by[s]["received_pps"] > 0))
        checks.append((f"{s}: costs more than the generator alone", s in by and (by[s].get("box_cycles") or 0) > 0))
    return in_kernel_verdict(opts, systems, by, failures, checks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "perf", "results"))
    ap.add_argument("--cases", default=",".join(f"{f}/{s}/{v}" for v in (4, 6) for f in ("1k", "64k")
                                                 for s in ("64", "imix")))
    ap.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS),
                    help=f"any of {','.join(SYSTEMS)} (tetherpath, ceiling: dpdk-, testpmd- on --backend)")
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--backend", choices=["af_packet", "af_xdp"], default="af_xdp",
                    help="the generator's ports (AF_XDP offers ~1.5x what AF_PACKET can)")
    ap.add_argument("--one-cpu", action="store_true",
                    help="the in-kernel systems' own cost per packet, all on one core")
    ap.add_argument("--sender", choices=["tpgen", "xdpgen"], default="tpgen",
                    help="xdpgen: the in-kernel systems' NDR with XDP frames from perf/xdpgen (two cores)")
    opts = ap.parse_args()
    global BACKEND, BOX_CORE
    BACKEND = opts.backend
    in_kernel_only = opts.one_cpu or opts.sender == "xdpgen"
    if opts.one_cpu:
        BOX_CORE = 0
    if in_kernel_only and opts.systems == ",".join(DEFAULT_SYSTEMS):
        opts.systems = ",".join(ONE_CPU_SYSTEMS)
    alias = {"tetherpath": f"dpdk-{BACKEND}", "ceiling": f"testpmd-{BACKEND}"}
    if opts.smoke:
        opts.cases, opts.duration, opts.trials = "1k/64/4", 0.3, 1
        opts.systems = ",".join(ONE_CPU_SYSTEMS) if in_kernel_only else "kernel,xdp,tetherpath,ceiling"
    systems = [alias.get(s, s) for s in opts.systems.split(",")]
    for s in systems:
        if s not in SYSTEMS:
            raise SystemExit(f"harness: unknown system '{s}' (known: {', '.join(SYSTEMS)}, tetherpath, ceiling)")
        if in_kernel_only and s not in ONE_CPU_SYSTEMS:
            raise SystemExit(f"harness: --one-cpu and --sender xdpgen measure {', '.join(ONE_CPU_SYSTEMS)}, "
                             f"not '{s}' (a DPDK worker polls a core of its own and takes no XDP frames)")
    if os.geteuid() != 0:
        print("SKIP perf harness: needs root (network namespaces)")
        return 0
    for b in (TPGEN, XDPGEN, TETHERPATH, TETHERCTL, TESTPMD):
        if not os.path.exists(b):
            print(f"perf harness: {b} is missing (build first; dpdk-testpmd comes with dpdk-dev)")
            return 1
    cases = parse_cases(opts.cases)
    # The harness and what it runs stay on the generator's core; the box's core has only the
    # system under test (DPDK processes are given both cores explicitly and pin their lcores).
    os.sched_setaffinity(0, {0})
    os.makedirs(opts.out, exist_ok=True)
    log_dir = tempfile.mkdtemp(prefix="tpp-")
    topo = Topology()
    results, failures = [], []
    if in_kernel_only:
        try:
            topo.up()
            if opts.one_cpu:
                return one_cpu_run(topo, systems, cases, opts, log_dir)
            return xdp_sender_run(topo, systems, cases, opts, log_dir)
        except Exception as e:  # the topology still goes away
            print(f"harness error: {e} (logs in {log_dir})")
            return 1
        finally:
            topo.down()
            release_bpffs()
    try:
        topo.up()
        run_systems(topo, systems, cases, log_dir, lambda fw, case: run_case(fw, case, opts, log_dir),
                    lambda r: f"NDR {r['ndr'] / 1e6:.3f} PDR {r['pdr'] / 1e6:.3f} Mpps, "
                              f"p99 {r['latency_at90']['lat_p99_us']:.0f} µs, "
                              f"cycles/pkt {r['cycles_per_packet']}",
                    results, failures)
    except Exception as e:  # the run is reported as failed, the topology still goes away
        failures.append(f"harness error: {e} (logs in {log_dir})")
    finally:
        topo.down()
        release_bpffs()
    write_results(results, markdown(results, opts), opts, "results")
    made = plots(results, opts.out)
    if made:
        print("plots: " + ", ".join(made))
    if opts.smoke:
        checks = []
        by = {r["system"]: r for r in results}
        for s in systems:
            checks.append((f"{s}: a PDR above zero", s in by and by[s]["pdr"] > 0))
            checks.append((f"{s}: latency measured", s in by and by[s]["latency_at90"]["lat_p50_us"] > 0))
        for s in systems:
            if s in by and not s.startswith("testpmd-"):
                checks.append((f"{s}: cycles per packet measured", (by[s]["cycles_per_packet"] or 0) > 0))
            if s in by and (s in KERNEL_ENGINE or s.startswith("dpdk-")):
                checks.append((f"{s}: every flow offloaded", by[s].get("offloaded_flows", 0) >= 1000))
            if s in by and s in KERNEL_ENGINE:
                checks.append((f"{s}: both ports run the {s} hook", by[s].get("hooks") and
                               set(by[s]["hooks"].values()) == {s}))
                checks.append((f"{s}: the fast path carried the measured traffic",
                               by[s].get("fast_path_share", 0) >= 0.99))
        ceiling, dpdk = by.get(f"testpmd-{BACKEND}"), by.get(f"dpdk-{BACKEND}")
        if ceiling and dpdk:
            checks.append(("the I/O ceiling is not below the DPDK engine (sanity)",
                           ceiling["pdr"] >= 0.6 * dpdk["pdr"]))
        for f in failures:
            checks.append((f, False))
        return report_checks(checks)
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
