// The kernel engine's own behaviour through BpfFastPath and BPF_PROG_TEST_RUN: the real programs,
// the real maps, filled through the real interface, in a private network namespace whose veths
// give the ports their ifindexes. The shared golden table and the boundary tests run it too
// (bpf_under_test.cpp); here is what only this engine has: capacity, the IPv6 rules' markers and
// kernel-only prefixes, topology edits reaching the maps, attaching and the XDP fallback.
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "bpf_fast_path.hpp"
#include "netns.hpp"
#include "packet_builder.hpp"

namespace tp::test {
namespace {

constexpr uint8_t kModem = 0, kWifi = 1, kUsb = 2;
const std::string kModemMac = "02:00:00:00:00:01", kGatewayMac = "02:00:00:00:00:fe";
const std::string kWifiMac = "02:00:00:00:01:01", kWifiClientMac = "02:00:00:00:01:0a";
const std::string kModemAddr = "100.64.0.2", kWifiAddr = "192.168.50.1";
const std::string kModemAddr6 = "2001:db8:100::2", kWifiAddr6 = "2001:db8:50::1";
const std::string kWifiClient = "192.168.50.10", kServer = "203.0.113.10";
const std::string kWifiClient6 = "2001:db8:50::10", kServer6 = "2001:db8:ffff::10";
constexpr uint16_t kNhGateway = 1, kNhWifiClient = 2, kNhWifiVlan = 4, kNhGatewayVlan = 5,
                   kNhWithdrawn = 6;
constexpr uint16_t kModemMtu = 1400;
constexpr uint16_t kCport = 40000, kNatPort = 61000;
constexpr uint8_t kSyn = 0x02;

uint16_t be16(uint16_t v) { return __builtin_bswap16(v); }

EtherAddr ether(const std::string& s) {
  EtherAddr a;
  const Mac m = mac(s);
  std::memcpy(a.addr_bytes, m.data(), 6);
  return a;
}

bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

PacketBuilder up4() {
  return PacketBuilder().eth(kWifiClientMac, kWifiMac).ipv4(kWifiClient, kServer);
}
PacketBuilder down4() {
  return PacketBuilder().eth(kGatewayMac, kModemMac).ipv4(kServer, kModemAddr);
}
struct Case {
  std::string name;
  uint8_t in_port;
  Bytes in;
  std::optional<uint8_t> out_port;  // forwarded, else punted with `reason`
  Bytes out;
  Reason reason = Reason::unknown_flow;
  bool pushes_tag = false;  // tc puts a pushed tag into skb->vlan_tci, which test-run hides
};

Case fwd(std::string name, uint8_t in, const PacketBuilder& b, uint8_t out, const PacketBuilder& o,
         bool pushes_tag = false) {
  return {std::move(name), in, b.build(), out, o.build(), Reason::unknown_flow, pushes_tag};
}
Case punt(std::string name, uint8_t in, const Bytes& b, Reason r) {
  return {std::move(name), in, b, std::nullopt, {}, r};
}
Case punt(std::string name, uint8_t in, const PacketBuilder& b, Reason r) {
  return punt(std::move(name), in, b.build(), r);
}

Bytes without_tag(const Bytes& b) {
  Bytes o = b;
  o.erase(o.begin() + 12, o.begin() + 16);
  return o;
}

struct RunResult {
  int err = 0;
  uint32_t retval = 0;
  Bytes out;
};

class BpfFastPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF programs and a network namespace)";
    ns = std::make_unique<PrivateNetns>();
    ASSERT_TRUE(ns->ok());
    // One veth pair per port: the box's end carries the port, the peer stands for its network.
    for (const char* p : {"tpm", "tpw", "tpu"}) {
      ASSERT_TRUE(sh(std::string("ip link add ") + p + "0 type veth peer name " + p + "1"));
      ASSERT_TRUE(sh(std::string("ip link set ") + p + "0 up"));
      ASSERT_TRUE(sh(std::string("ip link set ") + p + "1 up"));
    }
    std::string error;
    fp = BpfFastPath::create(BpfOptions{64, 16}, error);
    if (!fp) GTEST_SKIP() << "BPF unavailable: " << error;
    ifindex[kModem] = static_cast<int>(if_nametoindex("tpm0"));
    ifindex[kWifi] = static_cast<int>(if_nametoindex("tpw0"));
    ifindex[kUsb] = static_cast<int>(if_nametoindex("tpu0"));
    for (uint8_t p : {kModem, kWifi, kUsb}) ASSERT_EQ(0, fp->set_port_device(p, ifindex[p], false));
    fp->update_topology([](Topology& t) {
      set_port(t.ports[kModem], kModemMac, kModemAddr, kModemAddr6, kModemMtu);
      set_port(t.ports[kWifi], kWifiMac, kWifiAddr, kWifiAddr6, 1500);
      set_port(t.ports[kUsb], "02:00:00:00:02:01", "192.168.60.1", "2001:db8:60::1", 1500);
      set_nexthop(t.nexthops[kNhGateway], kModem, kModemMac, kGatewayMac, kModemMtu);
      set_nexthop(t.nexthops[kNhWifiClient], kWifi, kWifiMac, kWifiClientMac, 1500);
      set_nexthop(t.nexthops[kNhWifiVlan], kWifi, kWifiMac, kWifiClientMac, 1500, 20);
      set_nexthop(t.nexthops[kNhGatewayVlan], kModem, kModemMac, kGatewayMac, kModemMtu, 30);
    });
    ASSERT_EQ(0, masquerade(6, kCport, 80, kNatPort));
    ASSERT_EQ(0, masquerade(17, 5353, 53, 61001));
    ASSERT_EQ(0, masquerade(17, 7000, 7000, 61002));
    ASSERT_EQ(0, masquerade(1, 0x1234, 0, 0x4321));
    ASSERT_EQ(0, masquerade(17, 9000, 9000, 61009, kNhWifiClient, kNhWithdrawn));
    ASSERT_EQ(0, vlan_flow(20, 6000, 443, 61003, kNhGateway, kNhWifiVlan));
    ASSERT_EQ(0, vlan_flow(21, 6001, 443, 61004, kNhGatewayVlan, kNhWifiClient));
    ASSERT_EQ(0, route6(6, kCport, 443));
    ASSERT_EQ(0, route6(58, 7, 0));
  }

  void TearDown() override {
    fp.reset();
    ns.reset();  // the namespace and its veths go with it
  }

  static void set_port(PortInfo& p, const std::string& m, const std::string& v4,
                       const std::string& v6, uint16_t mtu) {
    p.enabled = true;
    p.mac = ether(m);
    p.mtu = p.mtu6 = mtu;
    p.local4[p.n_local4++] = ip4(v4);
    p.local6[p.n_local6++] = ip6(v6);
  }
  static void set_nexthop(NextHop& nh, uint16_t port, const std::string& src,
                          const std::string& dst, uint16_t mtu, uint16_t vlan = 0) {
    nh.port = port;
    nh.src_mac = ether(src);
    nh.dst_mac = ether(dst);
    nh.mtu = mtu;
    nh.vlan = vlan;
    nh.valid = true;
  }

  FlowKey4 orig4(uint8_t proto, uint16_t cport, uint16_t sport, uint16_t vlan = 0) const {
    const bool icmp = proto == 1;
    return {
        ip4(kWifiClient), ip4(kServer), be16(cport), be16(icmp ? 8 : sport), proto, kWifi, vlan};
  }
  FlowKey4 reply4(uint8_t proto, uint16_t sport, uint16_t nat) const {
    const bool icmp = proto == 1;
    return {ip4(kServer),
            ip4(kModemAddr),
            be16(icmp ? nat : sport),
            be16(icmp ? 0 : nat),
            proto,
            kModem,
            0};
  }
  int masquerade(uint8_t proto, uint16_t cport, uint16_t sport, uint16_t nat,
                 uint16_t down_nh = kNhWifiClient, uint16_t up_nh = kNhGateway) {
    const FlowKey4 o = orig4(proto, cport, sport), r = reply4(proto, sport, nat);
    return fp->install(plan_nat44(o, Rewrite::snat, ip4(kModemAddr), be16(nat), up_nh),
                       plan_nat44(r, Rewrite::dnat, ip4(kWifiClient), be16(cport), down_nh));
  }
  int vlan_flow(uint16_t vlan, uint16_t cport, uint16_t sport, uint16_t nat, uint16_t up_nh,
                uint16_t down_nh) {
    const FlowKey4 o = orig4(17, cport, sport, vlan), r = reply4(17, sport, nat);
    return fp->install(plan_nat44(o, Rewrite::snat, ip4(kModemAddr), be16(nat), up_nh),
                       plan_nat44(r, Rewrite::dnat, ip4(kWifiClient), be16(cport), down_nh));
  }
  int route6(uint8_t proto, uint16_t cport, uint16_t sport) {
    const bool icmp = proto == 58;
    FlowPlan6 o, r;
    o.match = {
        ip6(kWifiClient6), ip6(kServer6), be16(cport), be16(icmp ? 128 : sport), proto, kWifi, 0};
    r.match = {ip6(kServer6),
               ip6(kWifiClient6),
               be16(icmp ? cport : sport),
               be16(icmp ? 129 : cport),
               proto,
               kModem,
               0};
    o.nexthop = kNhGateway;
    r.nexthop = kNhWifiClient;
    return fp->install(o, r);
  }

  RunResult run_tc(uint8_t port, const Bytes& in, uint32_t flags = 0) {
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>(ifindex[port]);
    return run(fp->prog_fd(BpfFastPath::Hook::tc), in, &ctx, sizeof(ctx), flags);
  }
  RunResult run_xdp(uint8_t port, const Bytes& in) {
    xdp_md ctx{};
    ctx.data_end = static_cast<uint32_t>(in.size());  // the frame, no metadata in front
    ctx.ingress_ifindex = static_cast<uint32_t>(ifindex[port]);
    return run(fp->prog_fd(BpfFastPath::Hook::xdp), in, &ctx, sizeof(ctx), 0);
  }
  static RunResult run(int fd, const Bytes& in, void* ctx, size_t ctx_size, uint32_t flags) {
    RunResult r;
    r.out.resize(in.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in.data(), .data_out = r.out.data(),
                .data_size_in = static_cast<uint32_t>(in.size()),
                .data_size_out = static_cast<uint32_t>(r.out.size()), .ctx_in = ctx,
                .ctx_size_in = static_cast<uint32_t>(ctx_size), .flags = flags);
    r.err = bpf_prog_test_run_opts(fd, &o);
    if (r.err) r.err = -errno;
    r.retval = o.retval;
    r.out.resize(o.data_size_out);
    return r;
  }

  // One case through a hook; the egress port is the one whose fwd_tx_packets moved.
  enum class Hook { tc, tc_csum_complete, xdp };
  void check(const Case& c, Hook hook) {
    SCOPED_TRACE(c.name);
    const ReasonTotals before = fp->reasons();
    std::array<PortCounts, 3> tx_before;
    for (uint8_t p = 0; p < 3; ++p) tx_before[p] = fp->port_counts(p);
    RunResult r =
        hook == Hook::xdp
            ? run_xdp(c.in_port, c.in)
            : run_tc(c.in_port, c.in,
                     hook == Hook::tc_csum_complete ? BPF_F_TEST_SKB_CHECKSUM_COMPLETE : 0);
    ASSERT_EQ(r.err, 0) << "test run failed: " << std::strerror(-r.err);
    const ReasonTotals after = fp->reasons();
    int egress = -1;
    for (uint8_t p = 0; p < 3; ++p)
      if (fp->port_counts(p).fwd_tx_packets != tx_before[p].fwd_tx_packets) egress = p;
    if (c.out_port) {
      EXPECT_EQ(r.retval, hook == Hook::xdp ? uint32_t{XDP_REDIRECT} : uint32_t{TC_ACT_REDIRECT});
      for (size_t i = 0; i < kReasonCount; ++i)
        EXPECT_EQ(after[i], before[i]) << "punted: " << name(static_cast<Reason>(i));
      EXPECT_EQ(egress, *c.out_port);
      EXPECT_EQ(verify_checksums(r.out), "");
      const Bytes want = hook != Hook::xdp && c.pushes_tag ? without_tag(c.out) : c.out;
      EXPECT_EQ(hex(r.out), hex(want));
    } else {
      EXPECT_EQ(r.retval, hook == Hook::xdp ? uint32_t{XDP_PASS} : uint32_t{TC_ACT_PIPE});
      EXPECT_EQ(egress, -1);
      const size_t want = static_cast<size_t>(c.reason);
      EXPECT_EQ(after[want], before[want] + 1) << "expected " << name(c.reason);
      for (size_t i = 0; i < kReasonCount; ++i)
        if (i != want) {
          EXPECT_EQ(after[i], before[i]) << "counted " << name(static_cast<Reason>(i));
        }
      EXPECT_EQ(hex(r.out), hex(c.in)) << "a punted frame reaches the kernel as it arrived";
    }
  }

  std::unique_ptr<PrivateNetns> ns;
  std::unique_ptr<BpfFastPath> fp;
  std::array<int, kMaxPorts> ifindex{};
};

TEST_F(BpfFastPathTest, InstallBothDirectionsOrNeither) {
  const FlowKey4 o = orig4(6, 1111, 80), r = reply4(6, 80, 2222);
  const FlowPlan4 po = plan_nat44(o, Rewrite::snat, ip4(kModemAddr), be16(2222), kNhGateway);
  const FlowPlan4 pr = plan_nat44(r, Rewrite::dnat, ip4(kWifiClient), be16(1111), kNhWifiClient);
  ASSERT_EQ(0, fp->install(po, pr));
  EXPECT_EQ(-EEXIST, fp->install(po, pr));
  // The reply direction is taken by another flow: the first direction must not stay behind.
  const FlowKey4 o2 = orig4(6, 1112, 80);
  EXPECT_EQ(
      -EEXIST,
      fp->install(plan_nat44(o2, Rewrite::snat, ip4(kModemAddr), be16(2222), kNhGateway), pr));
  EXPECT_FALSE(fp->usage(o2).has_value());
  ASSERT_TRUE(fp->usage(o).has_value());
  EXPECT_EQ(fp->usage(o)->last_used_ms, 0u);
  fp->remove(o, r);
  EXPECT_FALSE(fp->usage(o).has_value());
  EXPECT_FALSE(fp->usage(r).has_value());
  EXPECT_EQ(-EINVAL, fp->install(po, po));
}

TEST_F(BpfFastPathTest, FullMapRefusesWithEnospc) {
  // 64 entries per family; SetUp used 14 for IPv4.
  int err = 0;
  uint16_t i = 0;
  for (; i < 100 && err == 0; ++i)
    err = masquerade(17, static_cast<uint16_t>(20000 + i), 9, 30000 + i);
  EXPECT_EQ(err, -ENOSPC);
  EXPECT_EQ(i, 26);  // 25 pairs fit (50 + 14 = 64), the 26th does not
  EXPECT_FALSE(fp->usage(orig4(17, static_cast<uint16_t>(20000 + i - 1), 9)).has_value());
}

TEST_F(BpfFastPathTest, UsageLastUsedIsTheEngineClock) {
  const uint32_t t0 = fp->clock_ms();
  ASSERT_EQ(run_tc(kWifi, up4().tcp(kCport, 80).payload(10).build()).retval,
            uint32_t{TC_ACT_REDIRECT});
  const auto u = fp->usage(orig4(6, kCport, 80));
  ASSERT_TRUE(u.has_value());
  EXPECT_GE(u->last_used_ms, t0);
  EXPECT_LE(u->last_used_ms, fp->clock_ms());
  EXPECT_EQ(u->packets, 0u);  // not kept: see BpfFastPath::usage
  // The reply direction saw nothing.
  EXPECT_EQ(fp->usage(reply4(6, 80, kNatPort))->last_used_ms, 0u);
}

TEST_F(BpfFastPathTest, PortTotalsCountIpBytes) {
  const Bytes f = up4().tcp(kCport, 80).payload(100).build();  // 140 IP bytes
  for (int i = 0; i < 3; ++i) ASSERT_EQ(run_tc(kWifi, f).retval, uint32_t{TC_ACT_REDIRECT});
  ASSERT_EQ(run_tc(kWifi, up4().tcp(kCport, 80, kSyn).build()).retval, uint32_t{TC_ACT_PIPE});
  const PortCounts w = fp->port_counts(kWifi), m = fp->port_counts(kModem);
  EXPECT_EQ(w.rx_packets, 4u);
  EXPECT_EQ(w.rx_ip_bytes, 3u * 140 + 40);
  EXPECT_EQ(w.fwd_rx_packets, 3u);
  EXPECT_EQ(w.fwd_rx_bytes, 3u * 140);
  EXPECT_EQ(w.punted, 1u);
  EXPECT_EQ(m.fwd_tx_packets, 3u);
  EXPECT_EQ(m.fwd_tx_bytes, 3u * 140);
  EXPECT_EQ(m.rx_packets, 0u);
}

TEST_F(BpfFastPathTest, DataLimitPuntsBothDirections) {
  const Bytes up = up4().tcp(kCport, 80).payload(100).build();        // 140 IP bytes
  const Bytes down = down4().tcp(80, kNatPort).payload(100).build();  // 140 IP bytes
  fp->arm_limit(kModem, 300, 0);
  EXPECT_FALSE(fp->limit_reached(kModem));
  ASSERT_EQ(run_tc(kWifi, up).retval, uint32_t{TC_ACT_REDIRECT});
  ASSERT_EQ(run_tc(kModem, down).retval, uint32_t{TC_ACT_REDIRECT});
  EXPECT_EQ(fp->limit_used(kModem), 280u);
  ASSERT_EQ(run_tc(kWifi, up).retval, uint32_t{TC_ACT_REDIRECT});  // crosses the limit
  EXPECT_TRUE(fp->limit_reached(kModem));
  const auto before = fp->reasons()[static_cast<size_t>(Reason::data_limit)];
  EXPECT_EQ(run_tc(kWifi, up).retval, uint32_t{TC_ACT_PIPE});
  EXPECT_EQ(run_tc(kModem, down).retval, uint32_t{TC_ACT_PIPE});
  EXPECT_EQ(fp->reasons()[static_cast<size_t>(Reason::data_limit)], before + 2);
  fp->disarm_limit(kModem);
  EXPECT_FALSE(fp->limit_reached(kModem));
  EXPECT_EQ(run_tc(kWifi, up).retval, uint32_t{TC_ACT_REDIRECT});
  fp->arm_limit(kModem, 1000, 0);
  EXPECT_EQ(fp->limit_used(kModem), 0u);
}

TEST_F(BpfFastPathTest, Ipv6RulesAsMatchRules6) {
  const auto client = ip6("2001:db8:50::20"), server = ip6("2001:db8:ffff::20");
  ASSERT_EQ(0, fp->add_rule({rule_key6(client.data(), Rule6::client, kModem, 0), kNhWifiClient}));
  ASSERT_EQ(0, fp->add_rule({rule_key6(client.data(), Rule6::from_prefix, kWifi, 0), kNhGateway}));
  EXPECT_EQ(-EEXIST,
            fp->add_rule({rule_key6(client.data(), Rule6::client, kModem, 0), kNhWifiClient}));
  const auto down = PacketBuilder()
                        .eth(kGatewayMac, kModemMac)
                        .ipv6("2001:db8:ffff::20", "2001:db8:50::20")
                        .udp(53, 5000)
                        .payload(20);
  const auto up = PacketBuilder()
                      .eth(kWifiClientMac, kWifiMac)
                      .ipv6("2001:db8:50::20", "2001:db8:ffff::20")
                      .udp(5000, 53)
                      .payload(20);
  check(fwd("client rule", kModem, down, kWifi,
            PacketBuilder()
                .eth(kWifiMac, kWifiClientMac)
                .ipv6("2001:db8:ffff::20", "2001:db8:50::20")
                .hop_limit(63)
                .udp(53, 5000)
                .payload(20)),
        Hook::tc);
  check(fwd("from_prefix rule", kWifi, up, kModem,
            PacketBuilder()
                .eth(kModemMac, kGatewayMac)
                .ipv6("2001:db8:50::20", "2001:db8:ffff::20")
                .hop_limit(63)
                .udp(5000, 53)
                .payload(20)),
        Hook::tc);
  EXPECT_TRUE(fp->usage(rule_key6(client.data(), Rule6::client, kModem, 0)).has_value());
  // A to_prefix marker on the destination keeps traffic between downstreams in the kernel.
  const auto usb_net = ip6("2001:db8:60::");
  ASSERT_EQ(0, fp->add_rule({rule_key6(usb_net.data(), Rule6::to_prefix, kAnyPort, 0), 0}));
  check(punt("to a downstream prefix", kWifi,
             PacketBuilder()
                 .eth(kWifiClientMac, kWifiMac)
                 .ipv6("2001:db8:50::20", "2001:db8:60::5")
                 .udp(5000, 53),
             Reason::unknown_flow),
        Hook::tc);
  // kernel_only6: a rule hit whose other end is kernel-only is the kernel's.
  fp->update_topology([&](Topology& t) {
    Prefix6& p = t.kernel_only6[t.n_kernel_only6++];
    std::memcpy(&p.hi, server.data(), 8);
    std::memcpy(&p.lo, server.data() + 8, 8);
    p.mask_hi = p.mask_lo = ~uint64_t{0};
  });
  check(punt("kernel-only server", kModem, down, Reason::local), Hook::tc);
  fp->update_topology([](Topology& t) { t.n_kernel_only6 = 0; });
  check(fwd("client rule again", kModem, down, kWifi,
            PacketBuilder()
                .eth(kWifiMac, kWifiClientMac)
                .ipv6("2001:db8:ffff::20", "2001:db8:50::20")
                .hop_limit(63)
                .udp(53, 5000)
                .payload(20)),
        Hook::tc);
  fp->remove_rule(rule_key6(client.data(), Rule6::client, kModem, 0));
  check(punt("rule removed", kModem, down, Reason::unknown_flow), Hook::tc);
}

TEST_F(BpfFastPathTest, TopologyChangesReachThePrograms) {
  const Bytes f = up4().tcp(kCport, 80).payload(10).build();
  fp->update_topology([](Topology& t) { t.ports[kModem].enabled = false; });
  check(punt("egress port down", kWifi, f, Reason::no_nexthop), Hook::tc);
  fp->update_topology([](Topology& t) { t.ports[kWifi].enabled = false; });
  check(punt("ingress port down", kWifi, f, Reason::port_disabled), Hook::tc);
  fp->update_topology([](Topology& t) {
    t.ports[kWifi].enabled = t.ports[kModem].enabled = true;
    t.nexthops[kNhGateway].dst_mac = ether("02:00:00:00:00:fd");
    t.ports[kModem].mtu = 49;  // the frame below has 50 IP bytes
  });
  check(punt("port MTU lowered", kWifi, f, Reason::too_big), Hook::tc);
  fp->update_topology([](Topology& t) { t.ports[kModem].mtu = 1500; });
  check(fwd("new gateway MAC", kWifi, up4().tcp(kCport, 80).payload(10), kModem,
            PacketBuilder()
                .eth(kModemMac, "02:00:00:00:00:fd")
                .ipv4(kModemAddr, kServer)
                .ttl(63)
                .tcp(kNatPort, 80)
                .payload(10)),
        Hook::tc);
  EXPECT_EQ(fp->topology().ports[kModem].mtu, 1500);
}

TEST_F(BpfFastPathTest, AttachAndDetach) {
  std::string error;
  ASSERT_TRUE(fp->attach(kWifi, BpfFastPath::Hook::tc, error)) << error;
  EXPECT_EQ(fp->attached_hook(kWifi), BpfFastPath::Hook::tc);
  EXPECT_TRUE(sh("tc filter show dev tpw0 ingress | grep -q tp_tc_ether"));
  fp->detach(kWifi);
  EXPECT_FALSE(fp->attached_hook(kWifi).has_value());
  EXPECT_FALSE(sh("tc qdisc show dev tpw0 | grep -q clsact")) << "the clsact it created stays";

  // XDP into a veth whose peer runs no NAPI would drop the frames: tc instead, said so.
  ASSERT_TRUE(sh("ethtool -K tpm1 gro off"));
  ASSERT_TRUE(fp->attach(kModem, BpfFastPath::Hook::xdp, error)) << error;
  EXPECT_EQ(fp->attached_hook(kModem), BpfFastPath::Hook::tc) << fp->attach_note(kModem);
  std::printf("modem, XDP asked, peer without GRO: %s\n", fp->attach_note(kModem).c_str());
  fp->detach(kModem);

  ASSERT_TRUE(sh("ethtool -K tpm1 gro on"));
  ASSERT_TRUE(fp->attach(kModem, BpfFastPath::Hook::xdp, error)) << error;
  std::printf("modem, XDP asked, peer with GRO: %s\n", fp->attach_note(kModem).c_str());
  if (fp->attached_hook(kModem) == BpfFastPath::Hook::xdp) {
    EXPECT_TRUE(sh("ip link show tpm0 | grep -q xdp"));
  }
  fp->detach(kModem);
  EXPECT_FALSE(sh("ip link show tpm0 | grep -q xdp"));
}

}  // namespace
}  // namespace tp::test
