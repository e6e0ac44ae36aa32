// Bad configurations get one exact message naming file, line, column and key; good ones load.
#include <gtest/gtest.h>

#include <fstream>

#include "config.hpp"

namespace tp::conf {
namespace {

const char* kGood = R"(ports:
  - name: modem0
    role: upstream
    device: net_af_packet0,iface=veth0
    mac: "02:00:00:00:00:01"
  - name: wifi0
    role: downstream
    device: net_af_packet1,iface=veth1
    queues: 2
    mtu: 1400
dataplane:
  worker_lcores: [1, 2]
  burst: 64
  hugepages: "off"
state_dir: /run/tp
)";

TEST(Config, GoodFileLoads) {
  const Config c = load_string(kGood, "good.yaml");
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0].role, Role::upstream);
  EXPECT_EQ(c.ports[1].queues, 2);
  EXPECT_EQ(c.ports[1].mtu, 1400);
  ASSERT_TRUE(c.ports[0].mac.has_value());
  EXPECT_EQ((*c.ports[0].mac)[5], 1);
  EXPECT_EQ(c.dataplane.worker_lcores, (std::vector<unsigned>{1, 2}));
  EXPECT_EQ(c.dataplane.burst, 64);
  EXPECT_EQ(c.dataplane.hugepages, Hugepages::off);
  EXPECT_EQ(c.state_dir, "/run/tp");
}

struct Bad {
  const char* yaml;
  const char* message;
};

template <std::size_t N>
void check_bad(const Bad (&cases)[N]) {
  for (const Bad& b : cases) {
    SCOPED_TRACE(b.yaml);
    try {
      load_string(b.yaml, "bad.yaml");
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), b.message);
    }
  }
}

TEST(Config, BadFilesNameFileLineColumnAndKey) {
  const Bad cases[] = {
      {"", "bad.yaml: the file is empty"},
      {"ports: [", "bad.yaml:1:1: end of sequence flow not found"},
      {"portz: []\n",
       "bad.yaml:1:1: portz: unknown key (known: board, ports, dataplane, kernel_engine, offload, "
       "upstream, uplinks, routing, sessions, downstreams, local_prefixes, limits, api, metrics, "
       "vehicle, signed_config, state_dir, run_dir)"},
      {"dataplane: {}\n", "bad.yaml:1:1: missing key 'ports'"},
      {"ports: []\n", "bad.yaml:1:8: ports: expected a non-empty list of ports"},
      {"ports:\n  - name: m\n    role: upstream\n", "bad.yaml:2:5: ports[0]: missing key 'device'"},
      {"ports:\n  - name: m\n    role: sideways\n    device: d\n",
       "bad.yaml:3:11: ports[0].role: expected one of upstream, downstream, got 'sideways'"},
      {"ports:\n  - name: m\n    role: upstream\n    device: d\n    mtu: 100000\n",
       "bad.yaml:5:10: ports[0].mtu: expected an integer from 576 to 9000, got 100000"},
      {"ports:\n  - name: m\n    role: upstream\n    device: d\n    queues: two\n",
       "bad.yaml:5:13: ports[0].queues: expected an integer, got 'two'"},
      {"ports:\n  - name: m\n    role: upstream\n    device: d\n    mac: 01:00:00:00:00:01\n",
       "bad.yaml:5:10: ports[0].mac: expected a unicast MAC address, got '01:00:00:00:00:01'"},
      {"ports:\n  - name: m\n    role: upstream\n    device: d\n    colour: red\n",
       "bad.yaml:5:5: ports[0].colour: unknown key (known: name, role, engine, device, hook, "
       "queues, mtu, mac, persist_enabled)"},
      {"ports:\n  - {name: m, role: upstream, device: a}\n  - {name: m, role: downstream, device: "
       "b}\n",
       "bad.yaml:3:5: ports[1]: duplicate port name 'm'"},
      {"ports:\n  - {name: m, role: downstream, device: a}\n",
       "bad.yaml:2:3: ports: expected at least one port with role upstream"},
      {"ports:\n  - {name: waytoolonginterfacename, role: upstream, device: a}\n",
       "bad.yaml:2:12: ports[0].name: expected an interface name of 1 to 15 characters, got "
       "'waytoolonginterfacename'"},
      {"ports:\n  - {name: m, role: upstream, device: a}\ndataplane:\n  worker_lcores: [1, 1]\n",
       "bad.yaml:4:22: dataplane.worker_lcores[1]: lcore 1 is listed twice"},
      {"ports:\n  - {name: m, role: upstream, device: a}\ndataplane:\n  main_lcore: 1\n",
       "bad.yaml:4:3: dataplane: main_lcore 1 cannot also be a worker lcore"},
      {"ports:\n  - {name: m, role: upstream, device: a}\ndataplane:\n  exception_ring_size: "
       "1000\n",
       "bad.yaml:4:24: dataplane.exception_ring_size: expected a power of two"},
      {"ports:\n  - {name: m, role: upstream, device: a}\nstate_dir: relative/path\n",
       "bad.yaml:3:12: state_dir: expected an absolute path"},
  };
  check_bad(cases);
}

// Two ports, m upstream and w downstream, then the section under test.
#define TWO_PORTS                                      \
  "ports:\n  - {name: m, role: upstream, device: a}\n" \
  "  - {name: w, role: downstream, device: b}\n"

TEST(Config, BadRuntimeSectionsNameFileLineColumnAndKey) {
  const Bad cases[] = {
      {TWO_PORTS "upstream: {iface: w, ipv4_addr: 100.64.0.2}\n",
       "bad.yaml:4:19: upstream.iface: port 'w' is not an upstream port"},
      {TWO_PORTS "upstream: {iface: x, ipv4_addr: 100.64.0.2}\n",
       "bad.yaml:4:19: upstream.iface: expected the name of an upstream port (m), got 'x'"},
      {TWO_PORTS "upstream: {iface: m, ipv4_addr: 192.0.2}\n",
       "bad.yaml:4:33: upstream.ipv4_addr: expected an IP address, got '192.0.2'"},
      {TWO_PORTS "upstream: {iface: m, ipv4_addr: '2001:db8::1'}\n",
       "bad.yaml:4:33: upstream.ipv4_addr: expected an IPv4 address, got '2001:db8::1'"},
      {TWO_PORTS "upstream: {iface: m}\n",
       "bad.yaml:4:11: upstream: expected ipv4_addr and ipv4_gateway, ipv6_gateways, or both"},
      {TWO_PORTS "downstreams:\n  - {iface: w, prefix: 192.0.2/24}\n",
       "bad.yaml:5:24: downstreams[0].prefix: expected an address/length prefix like "
       "192.168.50.0/24, got '192.0.2/24'"},
      {TWO_PORTS "downstreams:\n  - {iface: w, prefix: '2001:db8/64'}\n",
       "bad.yaml:5:24: downstreams[0].prefix: expected an address/length prefix like "
       "192.168.50.0/24, got '2001:db8/64'"},
      {TWO_PORTS "downstreams:\n  - {iface: w, prefix: ''}\n",
       "bad.yaml:5:24: downstreams[0].prefix: expected an address/length prefix like "
       "192.168.50.0/24, got ''"},
      {TWO_PORTS "downstreams:\n  - {iface: m, prefix: 10.0.0.0/8}\n",
       "bad.yaml:5:13: downstreams[0].iface: port 'm' is not a downstream port"},
      {TWO_PORTS "downstreams:\n  - {iface: w, prefix: 10.0.0.0/8}\n  - {iface: w, prefix: "
                 "10.0.0.0/8}\n",
       "bad.yaml:6:5: downstreams[1]: downstream w 10.0.0.0/8 is listed twice"},
      {TWO_PORTS "local_prefixes: [10.0.0.0/33]\n",
       "bad.yaml:4:18: local_prefixes[0]: expected an address/length prefix like 192.168.50.0/24, "
       "got '10.0.0.0/33'"},
      {TWO_PORTS "limits:\n  upstreams:\n    - {iface: w, limit_bytes: 10}\n",
       "bad.yaml:6:15: limits.upstreams[0].iface: port 'w' is not an upstream port"},
      {TWO_PORTS "limits:\n  upstreams:\n    - {iface: m, limit_bytes: -1}\n",
       "bad.yaml:6:31: limits.upstreams[0].limit_bytes: expected an integer from 0 to "
       "1152921504606846976, got -1"},
      {TWO_PORTS "limits:\n  upstreams:\n    - {iface: m, warning_bytes: 5}\n",
       "bad.yaml:6:7: limits.upstreams[0]: missing key 'limit_bytes'"},
      {TWO_PORTS "limits:\n  upstreams:\n    - {iface: m, limit_bytes: 1}\n    - {iface: m, "
                 "limit_bytes: 2}\n",
       "bad.yaml:7:15: limits.upstreams[1].iface: a limit for m is already set"},
      {TWO_PORTS "limits:\n  every: 1\n",
       "bad.yaml:5:3: limits.every: unknown key (known: persist_interval_s, upstreams)"},
      {TWO_PORTS "api:\n  mode: 01777\n",
       "bad.yaml:5:9: api.mode: expected an integer from 0 to 511, got 01777"},
      {TWO_PORTS "api:\n  socket: api.sock\n",
       "bad.yaml:5:11: api.socket: expected an absolute path shorter than 108 characters"},
      {TWO_PORTS "metrics:\n  address: 192.168.1.1\n",
       "bad.yaml:5:12: metrics.address: expected a loopback address (metrics are not served off "
       "the box)"},
  };
  check_bad(cases);
}

// Three ports: m and p upstream, w downstream, then the uplinks under test.
#define THREE_PORTS                                                                              \
  "ports:\n  - {name: m, role: upstream, device: a}\n  - {name: p, role: upstream, device: c}\n" \
  "  - {name: w, role: downstream, device: b}\nuplinks:\n"

TEST(Config, BadUplinksNameFileLineColumnAndKey) {
  const Bad cases[] = {
      {THREE_PORTS "  - {name: modem, iface: w}\n",
       "bad.yaml:6:26: uplinks[0].iface: port 'w' is not an upstream port"},
      {THREE_PORTS "  - {name: modem, iface: m}\n  - {name: modem, iface: p}\n",
       "bad.yaml:7:12: uplinks[1].name: uplink 'modem' is listed twice"},
      {THREE_PORTS "  - {name: modem, iface: m}\n  - {name: phone, iface: m}\n",
       "bad.yaml:7:26: uplinks[1].iface: 'm' is already uplink 'modem'"},
      {THREE_PORTS "  - {name: 'mo dem', iface: m}\n",
       "bad.yaml:6:12: uplinks[0].name: expected 1 to 32 of A-Z a-z 0-9 _ -"},
      {THREE_PORTS "  - {name: modem, iface: m, kind: satellite}\n",
       "bad.yaml:6:35: uplinks[0].kind: expected one of cellular, wifi, ethernet, usb, "
       "bluetooth, got 'satellite'"},
      {THREE_PORTS "  - {name: modem, iface: m, roaming: abroad}\n",
       "bad.yaml:6:38: uplinks[0].roaming: expected one of home, national, international, got "
       "'abroad'"},
      {THREE_PORTS "  - {name: modem, iface: m, weight: 0}\n",
       "bad.yaml:6:37: uplinks[0].weight: expected an integer from 1 to 256, got 0"},
      {THREE_PORTS "  - {name: modem}\n", "bad.yaml:6:5: uplinks[0]: missing key 'iface'"},
      {"ports:\n  - {name: m, role: upstream, device: a}\n  - {name: w, role: downstream, "
       "device: b}\nupstream: {iface: m, ipv4_addr: 100.64.0.2}\nuplinks:\n  - {name: modem, "
       "iface: m}\n",
       "bad.yaml:6:26: uplinks[0].iface: 'm' is already the upstream (set_upstream's single "
       "uplink)"},
  };
  check_bad(cases);
}

TEST(Config, BadTrackingAndRoutingNameFileLineColumnAndKey) {
  const Bad cases[] = {
      {THREE_PORTS "  - {name: modem, iface: m, track: {interval_ms: 500}}\n",
       "bad.yaml:6:36: uplinks[0].track: missing key 'targets' (the addresses to probe over this "
       "uplink)"},
      {THREE_PORTS "  - {name: modem, iface: m, track: {method: arp, targets: ['2001:db8::1']}}\n",
       "bad.yaml:6:60: uplinks[0].track.targets[0]: ARP probes need IPv4 neighbours (the uplink's "
       "gateway)"},
      {THREE_PORTS "  - {name: modem, iface: m, ipv6_prefixes: [10.0.0.0/8]}\n",
       "bad.yaml:6:45: uplinks[0].ipv6_prefixes[0]: expected an IPv6 prefix"},
      {THREE_PORTS "  - {name: modem, iface: m, ipv6_prefixes: ['fe80::/64']}\n",
       "bad.yaml:6:45: uplinks[0].ipv6_prefixes[0]: expected a global (2000::/3) or unique local "
       "(fc00::/7) prefix"},
      {"ports:\n  - {name: m, role: upstream, device: a}\n  - {name: p, role: upstream, device: "
       "c}\nuplinks:\n  - {name: a, iface: m, ipv6_prefixes: ['2001:db8::/32']}\n"
       "  - {name: b, iface: p, ipv6_prefixes: ['2001:db8:1::/48']}\n",
       "bad.yaml:6:41: uplinks[1].ipv6_prefixes[0]: overlaps 2001:db8::/32 of uplink 'a'"},
      {THREE_PORTS "  - {name: modem, iface: m, track: {method: http, targets: [1.1.1.1]}}\n",
       "bad.yaml:6:45: uplinks[0].track.method: expected one of ping, arp, got 'http'"},
      {THREE_PORTS "  - {name: modem, iface: m, track: {targets: [1.2.3.999]}}\n",
       "bad.yaml:6:47: uplinks[0].track.targets[0]: expected an IP address, got '1.2.3.999'"},
      {THREE_PORTS "  - {name: modem, iface: m, track: {targets: [1.1.1.1], interval_ms: 50}}\n",
       "bad.yaml:6:70: uplinks[0].track.interval_ms: expected an integer from 100 to 600000, got "
       "50"},
      {THREE_PORTS "  - {name: modem, iface: m, track: {targets: [1.1.1.1], timeout_ms: 2000}}\n",
       "bad.yaml:6:69: uplinks[0].track.timeout_ms: expected at most interval_ms"},
      {THREE_PORTS "  - {name: modem, iface: m, track: {targets: [1.1.1.1], reliability: 2}}\n",
       "bad.yaml:6:70: uplinks[0].track.reliability: expected at most the number of targets"},
      {THREE_PORTS "  - {name: modem, iface: m}\nrouting: {manage: true, table: 254}\n",
       "bad.yaml:7:32: routing.table: tables 250 to 255 are reserved (main, local)"},
      {THREE_PORTS "  - {name: modem, iface: m}\nrouting: {mark_mask: 0x0f0f}\n",
       "bad.yaml:7:22: routing.mark_mask: expected contiguous bits"},
      {"ports:\n  - {name: m, role: upstream, device: a}\n  - {name: p, role: upstream, device: "
       "c}\n  - {name: q, role: upstream, device: d}\n  - {name: r, role: upstream, device: e}\n"
       "uplinks:\n  - {name: a, iface: m}\n  - {name: b, iface: p}\n  - {name: c, iface: q}\n"
       "  - {name: d, iface: r}\nrouting: {mark_mask: 0x3}\n",
       "bad.yaml:11:22: routing.mark_mask: too few bits for 4 uplinks"},
      {"offload: {no_offload_mask: 0x100, no_offload_mark: 0x100}\n" THREE_PORTS
       "  - {name: modem, iface: m}\nrouting: {mark_mask: 0xf00}\n",
       "bad.yaml:8:22: routing.mark_mask: overlaps offload.no_offload_mask: the marks must not "
       "collide"},
  };
  check_bad(cases);
}

TEST(Config, TrackingAndRoutingAreRead) {
  const Config c = load_string(THREE_PORTS
                               "  - {name: modem, iface: m, track: {targets: [198.51.100.1, "
                               "'2001:db8::1'], interval_ms: 500, down: 2, max_rtt_ms: 300}}\n"
                               "routing: {manage: true, table: 300, priority: 500, mark_mask: "
                               "0xf000, masquerade: false, failback_s: 10, sticky_s: 120}\n",
                               "good.yaml");
  const TrackConfig& t = c.uplinks[0].track;
  ASSERT_EQ(t.targets.size(), 2u);
  EXPECT_EQ(t.targets[1].str(), "2001:db8::1");
  EXPECT_EQ(t.interval_ms, 500u);
  EXPECT_EQ(t.timeout_ms, 500u);  // the interval, when under a second
  EXPECT_EQ(t.down, 2u);
  EXPECT_EQ(t.up, 3u);
  EXPECT_EQ(t.max_rtt_ms, 300u);
  EXPECT_EQ(t.method, TrackMethod::ping);
  EXPECT_EQ(load_string(THREE_PORTS "  - {name: m, iface: m, ipv6_prefixes: ['2001:db8:1::/48']}\n",
                        "v6.yaml")
                .uplinks[0]
                .ipv6_prefixes,
            std::vector<Prefix>{*Prefix::parse("2001:db8:1::/48")});
  EXPECT_EQ(load_string(THREE_PORTS
                        "  - {name: m, iface: m, track: {method: arp, targets: [10.0.0.1]}}\n",
                        "arp.yaml")
                .uplinks[0]
                .track.method,
            TrackMethod::arp);
  EXPECT_TRUE(c.routing.manage);
  EXPECT_EQ(c.routing.table, 300u);
  EXPECT_EQ(c.routing.priority, 500u);
  EXPECT_EQ(c.routing.mark_mask, 0xf000u);
  EXPECT_FALSE(c.routing.masquerade);
  EXPECT_EQ(c.routing.failback_s, 10u);
  EXPECT_EQ(c.routing.sticky_s, 120u);
  EXPECT_EQ(mark_shift(c.routing.mark_mask), 12);
}

TEST(Config, UplinksAreRead) {
  const Config c = load_string(THREE_PORTS
                               "  - {name: modem, iface: m, kind: cellular, metered: true, "
                               "roaming: national, metric: 10, ipv4_addr: 100.64.0.2, "
                               "ipv4_gateway: 100.64.0.1, ipv6_gateways: ['fe80::1']}\n"
                               "  - {name: phone, iface: p, kind: wifi, weight: 3}\n",
                               "good.yaml");
  ASSERT_EQ(c.uplinks.size(), 2u);
  EXPECT_EQ(c.uplinks[0].name, "modem");
  EXPECT_EQ(c.uplinks[0].kind, UplinkKind::cellular);
  EXPECT_TRUE(c.uplinks[0].metered);
  EXPECT_EQ(c.uplinks[0].roaming, Roaming::national);
  EXPECT_EQ(c.uplinks[0].metric, 10u);
  EXPECT_EQ(c.uplinks[0].ipv4_gateway->str(), "100.64.0.1");
  EXPECT_EQ(c.uplinks[1].kind, UplinkKind::wifi);
  EXPECT_EQ(c.uplinks[1].roaming, Roaming::home);
  EXPECT_EQ(c.uplinks[1].weight, 3u);
  EXPECT_EQ(c.uplinks[1].metric, 100u);
}

TEST(Config, RuntimeSectionsAreRead) {
  const Config c = load_string(TWO_PORTS
                               "upstream:\n  iface: m\n  ipv4_addr: 100.64.0.2\n"
                               "  ipv6_gateways: ['fe80::1']\n"
                               "downstreams:\n  - {iface: w, prefix: 192.168.50.1/24}\n"
                               "local_prefixes: [10.0.0.0/8, 'fd00::/8']\n"
                               "limits:\n  persist_interval_s: 5\n"
                               "  upstreams: [{iface: m, limit_bytes: 1000}]\n"
                               "api: {group: root, mode: 0600}\n"
                               "metrics: {address: '::1', port: 9999}\n"
                               "state_dir: /var/lib/x\n"
                               "run_dir: /run/x\n"
                               "offload: {route_mark_mask: 0xff00}\n",
                               "good.yaml");
  ASSERT_TRUE(c.upstream.has_value());
  EXPECT_EQ(c.upstream->iface, "m");
  EXPECT_EQ(c.upstream->ipv4_addr->str(), "100.64.0.2");
  EXPECT_EQ(c.upstream->ipv6_gateways.at(0).str(), "fe80::1");
  ASSERT_EQ(c.downstreams.size(), 1u);
  EXPECT_TRUE(c.downstreams[0].prefix.contains(*IpAddr::parse("192.168.50.77")));
  EXPECT_FALSE(c.downstreams[0].prefix.contains(*IpAddr::parse("192.168.51.1")));
  EXPECT_EQ(c.local_prefixes.size(), 2u);
  EXPECT_EQ(c.limits.persist_interval_s, 5u);
  EXPECT_EQ(c.limits.upstreams.at(0).limit_bytes, 1000u);
  EXPECT_EQ(c.limits.upstreams.at(0).warning_bytes, 1000u);  // defaults to the limit
  EXPECT_EQ(c.state_dir, "/var/lib/x");                      // persistent: usage.json
  EXPECT_EQ(c.api.socket, "/run/x/api.sock");                // the socket belongs to the run
  EXPECT_EQ(c.api.mode, 0600u);
  EXPECT_EQ(c.metrics.port, 9999);
  EXPECT_EQ(c.offload.route_mark_mask, 0xff00u);
}

const char* kKernel = R"(ports:
  - name: modem0
    role: upstream
  - name: wifi0
    role: downstream
    hook: tc
dataplane:
  engine: kernel
  flow_capacity: 1024
kernel_engine:
  bpffs: /run/bpf
  keep_forwarding_on_exit: true
)";

TEST(Config, KernelEnginePortsAreTheKernelsInterfaces) {
  const Config c = load_string(kKernel, "kernel.yaml");
  EXPECT_EQ(c.dataplane.engine, Engine::kernel);
  EXPECT_TRUE(c.dataplane.worker_lcores.empty());
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_TRUE(c.ports[0].device.empty());
  EXPECT_EQ(c.ports[0].hook, Hook::automatic);
  EXPECT_EQ(c.ports[1].hook, Hook::tc);
  EXPECT_EQ(c.kernel_engine.bpffs, "/run/bpf");
  EXPECT_TRUE(c.kernel_engine.keep_forwarding_on_exit);
  EXPECT_EQ(load_string(kGood, "good.yaml").dataplane.engine, Engine::dpdk);
}

// What the two engines cannot share is refused before anything runs (--check-config).
TEST(Config, EngineMixesAreRefusedWithTheReason) {
  const Bad cases[] = {
      {"ports:\n  - {name: modem0, role: upstream, engine: kernel, device: x}\n",
       "bad.yaml:2:44: ports[0].engine: port modem0 asks for the kernel engine but "
       "dataplane.engine is dpdk: mixing engines is not supported (one engine forwards for every "
       "port; a flow between a DPDK port and a kernel-engine port would cross the kernel "
       "anyway)"},
      {"dataplane: {engine: kernel}\nports:\n  - {name: modem0, role: upstream, device: x}\n",
       "bad.yaml:3:44: ports[0].device: a DPDK port setting; a kernel-engine port is the existing "
       "kernel interface named by 'name' (remove 'device', or set dataplane.engine: dpdk)"},
      {"ports:\n  - {name: modem0, role: upstream, device: x, hook: xdp}\n",
       "bad.yaml:2:53: ports[0].hook: a kernel-engine setting (dataplane.engine: kernel); DPDK "
       "ports have no hook"},
      {"dataplane: {engine: kernel, worker_lcores: [1]}\nports:\n  - {name: m, role: upstream}\n",
       "bad.yaml:1:44: dataplane.worker_lcores: a DPDK setting; the kernel engine has no EAL, "
       "worker lcores or packet buffers (it forwards in the kernel's receive path)"},
      {"kernel_engine: {bpffs: /x}\nports:\n  - {name: m, role: upstream, device: x}\n",
       "bad.yaml:1:16: kernel_engine: applies to dataplane.engine: kernel (this configuration "
       "runs the DPDK engine)"},
      {"dataplane: {engine: kernel}\nports:\n  - {name: m, role: upstream, hook: fast}\n",
       "bad.yaml:3:37: ports[0].hook: expected one of auto, xdp, tc, got 'fast'"},
      {"dataplane: {engine: kernel}\nkernel_engine: {bpffs: bpf}\nports:\n"
       "  - {name: m, role: upstream}\n",
       "bad.yaml:2:24: kernel_engine.bpffs: expected an absolute path (a bpffs mount)"},
  };
  check_bad(cases);
}

TEST(Config, LiveChangesAreTold) {
  const Config a = load_string(TWO_PORTS "local_prefixes: [10.0.0.0/8]\n", "a.yaml");
  Config b = load_string(TWO_PORTS "local_prefixes: [10.0.0.0/16]\n", "b.yaml");
  EXPECT_EQ(live_change_refusal(a, b), "");
  b.ports[1].mtu = 1400;
  EXPECT_EQ(live_change_refusal(a, b), "ports cannot change while running: restart tetherpath");
  b = a;
  b.dataplane.burst = 8;
  EXPECT_NE(live_change_refusal(a, b).find("dataplane"), std::string::npos);
}

TEST(Prefix, ParsingIsStrict) {
  for (const char* bad : {"192.0.2/24", "2001:db8/64", "", "10.0.0.0", "10.0.0.0/", "10.0.0.0/+8",
                          "10.0.0.0/33", "::/129", "10.0.0.0/8/8", " 10.0.0.0/8", "10.0.0.0/0x8"})
    EXPECT_FALSE(Prefix::parse(bad).has_value()) << bad;
  for (const char* good : {"0.0.0.0/0", "192.168.50.0/24", "2001:db8::/32", "::/0", "10.1.2.3/32"})
    EXPECT_TRUE(Prefix::parse(good).has_value()) << good;
}

TEST(Config, BoardProfilesNameTheDevices) {
  const std::string dir = ::testing::TempDir();
  {
    std::ofstream b(dir + "/board.yaml");
    b << "name: t\ndevices:\n  modem: net_null0\n  wifi: net_null1\n";
  }
  const Config c =
      load_string("board: " + dir +
                      "/board.yaml\nports:\n  - {name: m, role: upstream, device: board:modem}\n"
                      "  - {name: w, role: downstream, device: board:wifi}\n",
                  "cfg.yaml");
  EXPECT_EQ(c.ports[0].device, "net_null0");
  EXPECT_EQ(c.ports[1].device, "net_null1");
  try {
    load_string(
        "board: " + dir + "/board.yaml\nports:\n  - {name: m, role: upstream, device: board:usb}\n",
        "cfg.yaml");
    ADD_FAILURE() << "accepted an unknown slot";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "cfg.yaml:3:39: ports[0].device: board profile " + dir +
                                         "/board.yaml has no device 'usb' (it has: modem, wifi)");
  }
  EXPECT_THROW(
      load_string("ports:\n  - {name: m, role: upstream, device: board:modem}\n", "cfg.yaml"),
      ConfigError);
}

TEST(Config, MissingFileIsAnError) {
  EXPECT_THROW(load_file("/nonexistent/tetherpath.yaml"), ConfigError);
}

}  // namespace
}  // namespace tp::conf
