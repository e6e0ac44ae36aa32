// The kernel engine's own behaviour through BpfFastPath and BPF_PROG_TEST_RUN: the real programs,
// the real maps, filled through the real interface, in a private network namespace whose veths
// give the ports their ifindexes. The shared golden table and the boundary tests run it too
// (bpf_under_test.cpp); here is what only this engine has: capacity, the IPv6 rules' markers and
// kernel-only prefixes, topology edits reaching the maps, attaching and the XDP fallback.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bpf_fast_path.hpp"
#include "golden_cases.hpp"
#include "lab_topology.hpp"
#include "netns.hpp"
#include "packet_builder.hpp"

namespace tp::test {
namespace {

// Filled by hand: LIBBPF_OPTS is a GNU statement expression that clang's -Wpedantic refuses in
// C++. sz tells libbpf which fields this build knows.
bpf_test_run_opts run_opts(const Bytes& in, Bytes& out, void* ctx, size_t ctx_size) {
  bpf_test_run_opts o{};
  o.sz = sizeof(o);
  o.data_in = in.data();
  o.data_out = out.data();
  o.data_size_in = static_cast<uint32_t>(in.size());
  o.data_size_out = static_cast<uint32_t>(out.size());
  o.ctx_in = ctx;
  o.ctx_size_in = static_cast<uint32_t>(ctx_size);
  return o;
}

using namespace lab;

uint16_t be16(uint16_t v) { return __builtin_bswap16(v); }

EtherAddr ether(const std::string& s) {
  EtherAddr a;
  const Mac m = mac(s);
  std::memcpy(a.addr_bytes, m.data(), 6);
  return a;
}

bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

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
    fp = BpfFastPath::create(options(), error);
    // The fallback clock must load wherever the default does.
    if (!fp && options().fine_clock && BpfFastPath::create(BpfOptions{64, 16}, error))
      FAIL() << "the fine clock's programs did not load where the coarse clock's did";
    if (!fp) GTEST_SKIP() << "BPF unavailable: " << error;
    ifindex[kModem] = static_cast<int>(if_nametoindex("tpm0"));
    ifindex[kWifi] = static_cast<int>(if_nametoindex("tpw0"));
    ifindex[kUsb] = static_cast<int>(if_nametoindex("tpu0"));
    for (uint8_t p : {kModem, kWifi, kUsb}) ASSERT_EQ(0, fp->set_port_device(p, ifindex[p], false));
    install_lab_topology(*fp);
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

  virtual BpfOptions options() const { return BpfOptions{64, 16}; }
  // Tests run with both clocks (BpfFastPathFineClockTest).
  void usage_last_used_is_the_engine_clock();
  void stale_heartbeat_punts_until_the_next_beat();

  void TearDown() override {
    fp.reset();
    ns.reset();  // the namespace and its veths go with it
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
    return add_masquerade4(*fp, proto, kWifiClient, cport, kServer, sport, nat, kWifi, down_nh,
                           up_nh);
  }
  int vlan_flow(uint16_t vlan, uint16_t cport, uint16_t sport, uint16_t nat, uint16_t up_nh,
                uint16_t down_nh) {
    const FlowKey4 o = orig4(17, cport, sport, vlan), r = reply4(17, sport, nat);
    return fp->install(plan_nat44(o, Rewrite::snat, ip4(kModemAddr), be16(nat), up_nh),
                       plan_nat44(r, Rewrite::dnat, ip4(kWifiClient), be16(cport), down_nh));
  }
  int route6(uint8_t proto, uint16_t cport, uint16_t sport) {
    return add_route6(*fp, proto, kWifiClient6, cport, kServer6, sport);
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
    bpf_test_run_opts o = run_opts(in, r.out, ctx, ctx_size);
    o.flags = flags;
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

void BpfFastPathTest::usage_last_used_is_the_engine_clock() {
  // Every loaded hook reads the clock the options chose (this kernel has the coarse one).
  EXPECT_EQ(fp->coarse_clock(BpfFastPath::Hook::tc), !options().fine_clock);
  if (fp->prog_fd(BpfFastPath::Hook::xdp) >= 0) {
    EXPECT_EQ(fp->coarse_clock(BpfFastPath::Hook::xdp), !options().fine_clock);
  }
  const uint32_t t0 = fp->clock_ms();
  ASSERT_EQ(run_tc(kWifi, up4().tcp(kCport, 80).payload(10).build()).retval,
            uint32_t{TC_ACT_REDIRECT});
  const auto u = fp->usage(orig4(6, kCport, 80));
  ASSERT_TRUE(u.has_value());
  EXPECT_GE(u->last_used_ms, t0);
  EXPECT_LE(u->last_used_ms, fp->clock_ms());
  EXPECT_EQ(u->packets, 1u);
  EXPECT_EQ(u->bytes, 50u);
  // The reply direction saw nothing.
  EXPECT_EQ(fp->usage(reply4(6, 80, kNatPort))->last_used_ms, 0u);
  EXPECT_EQ(fp->usage(reply4(6, 80, kNatPort))->packets, 0u);
}

TEST_F(BpfFastPathTest, UsageLastUsedIsTheEngineClock) { usage_last_used_is_the_engine_clock(); }

// Per-flow counts on both hooks, and only for what was forwarded: a punt of the same flow's
// packet (SYN) counts nothing on the flow.
TEST_F(BpfFastPathTest, FlowCountsOnBothHooks) {
  const FlowKey4 o = orig4(6, kCport, 80);
  ASSERT_EQ(run_tc(kWifi, up4().tcp(kCport, 80).payload(100).build()).retval,
            uint32_t{TC_ACT_REDIRECT});
  ASSERT_EQ(run_tc(kWifi, up4().tcp(kCport, 80, kSyn).build()).retval, uint32_t{TC_ACT_PIPE});
  if (fp->prog_fd(BpfFastPath::Hook::xdp) >= 0) {
    ASSERT_TRUE(sh("ethtool -K tpm1 gro on"));
    ASSERT_EQ(0, fp->set_port_device(kModem, ifindex[kModem], false));
    ASSERT_EQ(run_xdp(kWifi, up4().tcp(kCport, 80).payload(60).build()).retval,
              uint32_t{XDP_REDIRECT});
    EXPECT_EQ(fp->usage(o)->packets, 2u);
    EXPECT_EQ(fp->usage(o)->bytes, 140u + 100);
  } else {
    EXPECT_EQ(fp->usage(o)->packets, 1u);
    EXPECT_EQ(fp->usage(o)->bytes, 140u);
  }
}

// One flow direction carried by every CPU at once: the counts are atomic adds, so none is lost.
// The IPv6 flow routes only, so each test-run repetition matches it again (hop limit 255 leaves
// room for the repetitions).
TEST_F(BpfFastPathTest, FlowCountsLoseNothingAcrossCpus) {
  const unsigned cpus = std::max(2u, std::thread::hardware_concurrency());
  const Bytes f = up6().hop_limit(255).tcp(kCport, 443).payload(20).build();  // 80 IP bytes
  constexpr uint32_t kRepeat = 200, kRuns = 100;
  // The forwarded frame comes back addressed to the Wi-Fi port, for the next repetition.
  fp->update_topology([](Topology& t) {
    t.nexthops[kNhGateway].dst_mac = ether(kWifiMac);
    t.nexthops[kNhGateway].src_mac = ether(kWifiClientMac);
  });
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (unsigned c = 0; c < cpus; ++c)
    threads.emplace_back([&, c] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(c % std::thread::hardware_concurrency(), &set);
      pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      for (uint32_t i = 0; i < kRuns; ++i) {
        Bytes out(f.size() + 256);
        __sk_buff skb{};
        skb.ifindex = static_cast<uint32_t>(ifindex[kWifi]);
        bpf_test_run_opts o = run_opts(f, out, &skb, sizeof(skb));
        o.repeat = kRepeat;
        if (bpf_prog_test_run_opts(fp->prog_fd(BpfFastPath::Hook::tc), &o) != 0 ||
            o.retval != TC_ACT_REDIRECT)
          failed.fetch_add(1);
      }
    });
  for (auto& t : threads) t.join();
  ASSERT_EQ(failed.load(), 0);
  const FlowKey6 key{ip6(kWifiClient6), ip6(kServer6), be16(kCport), be16(443), 6, kWifi, 0};
  const auto u = fp->usage(key);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->packets, uint64_t{cpus} * kRuns * kRepeat);
  EXPECT_EQ(u->bytes, uint64_t{cpus} * kRuns * kRepeat * 80);
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

// The kernel path's download: what the ingress program hands to the kernel is charged to the
// port's limit all the same (the kernel forwards it), including what the limit itself punts.
TEST_F(BpfFastPathTest, DataLimitChargesPunts) {
  fp->arm_limit(kModem, 1000, 0);
  // No flow: the kernel's. 100 IP bytes.
  ASSERT_EQ(run_tc(kModem, down4().udp(53, 40999).payload(72).build()).retval,
            uint32_t{TC_ACT_PIPE});
  EXPECT_EQ(fp->limit_used(kModem), 100u);
  if (fp->prog_fd(BpfFastPath::Hook::xdp) >= 0) {
    ASSERT_EQ(run_xdp(kModem, down4().udp(53, 40999).payload(72).build()).retval,
              uint32_t{XDP_PASS});
    EXPECT_EQ(fp->limit_used(kModem), 200u);
  }
  fp->arm_limit(kModem, 100, 100);
  const uint64_t before = fp->reasons()[static_cast<size_t>(Reason::data_limit)];
  ASSERT_EQ(run_tc(kModem, down4().tcp(80, kNatPort).payload(100).build()).retval,
            uint32_t{TC_ACT_PIPE});
  EXPECT_EQ(fp->reasons()[static_cast<size_t>(Reason::data_limit)], before + 1);
  EXPECT_EQ(fp->limit_used(kModem), 240u);
  // Not IP, or no IP length to go by: nothing.
  ASSERT_EQ(
      run_tc(kModem,
             PacketBuilder().eth(kGatewayMac, kModemMac).ethertype(0x0806).payload(28).build())
          .retval,
      uint32_t{TC_ACT_PIPE});
  EXPECT_EQ(fp->limit_used(kModem), 240u);
}

// The egress program charges every IP packet leaving its port by its IP length, and lets every
// frame through untouched (TC_ACT_PIPE), whatever its shape.
TEST_F(BpfFastPathTest, EgressProgramChargesIpLeavingThePort) {
  const int fd = fp->egress_prog_fd(false);
  ASSERT_GE(fd, 0);
  auto egress = [&](const Bytes& frame) {
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>(ifindex[kModem]);
    const RunResult r = run(fd, frame, &ctx, sizeof(ctx), 0);
    EXPECT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, uint32_t{TC_ACT_PIPE});
    EXPECT_EQ(hex(r.out), hex(frame)) << "the egress program changed a frame";
  };
  const auto out4 = [] {
    return PacketBuilder().eth(kModemMac, kGatewayMac).ipv4(kModemAddr, kServer);
  };
  fp->arm_limit(kModem, 1 << 20, 0);
  egress(out4().udp(61000, 53).payload(72).build());  // 100
  EXPECT_EQ(fp->limit_used(kModem), 100u);
  egress(up6_out().tcp(kCport, 443).payload(20).build());  // 80
  EXPECT_EQ(fp->limit_used(kModem), 180u);
  egress(out4().vlan(20).tcp(kNatPort, 80).payload(10).build());  // 50, behind a tag
  EXPECT_EQ(fp->limit_used(kModem), 230u);
  // Not IP, truncated, a runt, a stack of tags: through, uncharged.
  egress(PacketBuilder().eth(kModemMac, kGatewayMac).ethertype(0x0806).payload(28).build());
  // (A test run refuses an IP frame shorter than its IP header: the cut is in a tag's ethertype.)
  Bytes cut = out4().vlan(20).udp(61000, 53).payload(72).build();
  cut.resize(14 + 3);
  egress(cut);
  egress(Bytes(14, 0xff));
  egress(out4().vlan(20).vlan2(30).udp(61000, 53).build());
  EXPECT_EQ(fp->limit_used(kModem), 230u);
  // A port without a limit armed: nothing.
  fp->disarm_limit(kModem);
  egress(out4().udp(61000, 53).payload(72).build());
  EXPECT_EQ(fp->limit_used(kModem), 230u);
}

// With tp_tc_egress on the egress port, the tc ingress program no longer charges that port for what
// it redirects (the egress program sees the packet leave); XDP, whose redirects pass no tc egress,
// still does. Without it, tc charges both ports itself.
TEST_F(BpfFastPathTest, ForwardedPacketsAreChargedOncePerPort) {
  // The kernel's own packets out of the veth (an MLD report, 76 IP bytes, when IPv6 comes up)
  // would be charged by the egress program too: this test counts only its own.
  ASSERT_TRUE(sh("sysctl -qw net.ipv6.conf.tpm0.disable_ipv6=1"));
  const Bytes up = up4().tcp(kCport, 80).payload(100).build();  // 140 IP bytes
  fp->arm_limit(kModem, 1 << 20, 0);
  fp->arm_limit(kWifi, 1 << 20, 0);
  ASSERT_EQ(run_tc(kWifi, up).retval, uint32_t{TC_ACT_REDIRECT});
  EXPECT_EQ(fp->limit_used(kWifi), 140u);
  EXPECT_EQ(fp->limit_used(kModem), 140u);
  std::string error;
  ASSERT_TRUE(fp->attach_egress(kModem, error)) << error;
  EXPECT_TRUE(sh("tc filter show dev tpm0 egress | grep -q tp_tc_egress"));
  ASSERT_EQ(run_tc(kWifi, up).retval, uint32_t{TC_ACT_REDIRECT});
  EXPECT_EQ(fp->limit_used(kWifi), 280u);
  EXPECT_EQ(fp->limit_used(kModem), 140u) << "left to the egress program, which a test run skips";
  if (fp->prog_fd(BpfFastPath::Hook::xdp) >= 0) {
    ASSERT_TRUE(sh("ethtool -K tpm1 gro on"));
    ASSERT_EQ(0, fp->set_port_device(kModem, ifindex[kModem], false));
    ASSERT_EQ(run_xdp(kWifi, up).retval, uint32_t{XDP_REDIRECT});
    EXPECT_EQ(fp->limit_used(kModem), 280u);
  }
  fp->detach_egress(kModem);
  EXPECT_FALSE(sh("tc filter show dev tpm0 egress | grep -q tp_tc_egress"));
  EXPECT_TRUE(sh("tc qdisc show dev tpm0 | grep -q clsact"));
  const uint64_t used = fp->limit_used(kModem);
  ASSERT_EQ(run_tc(kWifi, up).retval, uint32_t{TC_ACT_REDIRECT});
  EXPECT_EQ(fp->limit_used(kModem), used + 140);
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
  const auto down_out = PacketBuilder()
                            .eth(kWifiMac, kWifiClientMac)
                            .ipv6("2001:db8:ffff::20", "2001:db8:50::20")
                            .hop_limit(63)
                            .udp(53, 5000)
                            .payload(20);
  check(fwd("client rule", kModem, down, kWifi, down_out), Hook::tc);
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
  check(fwd("client rule again", kModem, down, kWifi, down_out), Hook::tc);
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

// What a packet costs the programs: the verifier's instruction count, and the program time the
// kernel measures around one test run (duration, repeat 1: a repeated run would see the frame it
// already rewrote), the median of many runs of a forwarded TCP segment. Printed for the record;
// the verdicts are checked.
TEST_F(BpfFastPathTest, ProgramCost) {
  const Bytes f = up4().tcp(kCport, 80).payload(100).build();
  // The modem's peer runs GRO, so that XDP can redirect to it.
  ASSERT_TRUE(sh("ethtool -K tpm1 gro on"));
  ASSERT_EQ(0, fp->set_port_device(kModem, ifindex[kModem], false));
  for (const auto hook : {BpfFastPath::Hook::tc, BpfFastPath::Hook::xdp}) {
    const int fd = fp->prog_fd(hook);
    if (fd < 0) continue;
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    ASSERT_EQ(0, bpf_obj_get_info_by_fd(fd, &info, &len));
    constexpr int kRuns = 20000;
    std::vector<uint32_t> ns(kRuns);
    for (int i = 0; i < kRuns; ++i) {
      Bytes out(f.size() + 256);
      __sk_buff skb{};
      xdp_md xdp{};
      skb.ifindex = xdp.ingress_ifindex = static_cast<uint32_t>(ifindex[kWifi]);
      xdp.data_end = static_cast<uint32_t>(f.size());
      const bool is_xdp = hook == BpfFastPath::Hook::xdp;
      bpf_test_run_opts o =
          run_opts(f, out, is_xdp ? static_cast<void*>(&xdp) : static_cast<void*>(&skb),
                   is_xdp ? sizeof(xdp) : sizeof(skb));
      o.repeat = 1;
      ASSERT_EQ(0, bpf_prog_test_run_opts(fd, &o));
      ASSERT_EQ(o.retval, is_xdp ? uint32_t{XDP_REDIRECT} : uint32_t{TC_ACT_REDIRECT});
      ns[static_cast<size_t>(i)] = o.duration;
    }
    std::nth_element(ns.begin(), ns.begin() + kRuns / 2, ns.end());
    std::printf("%s: %u instructions verified, %u translated, median %u ns per forwarded packet\n",
                hook == BpfFastPath::Hook::xdp ? "xdp" : "tc", info.verified_insns,
                info.xlated_prog_len / 8, ns[kRuns / 2]);
  }
}

// The control plane rewrites a next hop while packets go through it. Edits alternate between
// {MTU 1500, the gateway's MACs} and {MTU 40, other MACs}; the program reads the MTU long before
// the MACs. A packet that passed the MTU check must leave with the gateway's MACs: with the
// entry rewritten in place between the two reads, it would leave with the other pair.
TEST_F(BpfFastPathTest, TopologyEditsAreNeverSeenHalfWritten) {
  const std::string other_src = "0a:cc:cc:cc:cc:cc", other_dst = "0a:bb:bb:bb:bb:bb";
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> edits{0};
  std::thread writer([&] {
    for (size_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      const bool small = i % 2;
      fp->update_topology([&](Topology& t) {
        NextHop& nh = t.nexthops[kNhGateway];
        nh.mtu = small ? 40 : 1500;  // the frame below has 50 IP bytes
        nh.src_mac = ether(small ? other_src : kModemMac);
        nh.dst_mac = ether(small ? other_dst : kGatewayMac);
      });
      edits.fetch_add(1, std::memory_order_relaxed);
    }
  });
  const Bytes f = up4().tcp(kCport, 80).payload(10).build();
  Bytes want(12);
  const Mac d = mac(kGatewayMac), s = mac(kModemMac);
  std::copy(d.begin(), d.end(), want.begin());
  std::copy(s.begin(), s.end(), want.begin() + 6);
  int torn = 0, runs = 0, forwarded = 0;
  std::string example;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (std::chrono::steady_clock::now() < end) {
    const RunResult r = run_tc(kWifi, f);
    ++runs;
    if (r.err || r.retval != TC_ACT_REDIRECT) continue;
    ++forwarded;
    const std::string got = hex(Bytes(r.out.begin(), r.out.begin() + 12));
    if (got != hex(want) && torn++ == 0) example = got;
  }
  stop = true;
  writer.join();
  std::printf("%d runs (%d forwarded) during %lu topology edits\n", runs, forwarded,
              static_cast<unsigned long>(edits.load()));
  EXPECT_GT(edits.load(), 1u);
  EXPECT_GT(forwarded, 0);
  EXPECT_EQ(torn, 0) << "a packet passed one edit's MTU check and left with the other's MACs, e.g. "
                     << example;
}

// XDP redirects only to devices that take XDP frames; a packet whose egress device does not goes
// to the kernel untouched, counted as xdp_egress (tc forwards the same packet).
TEST_F(BpfFastPathTest, XdpEgressWithoutXdpRedirects) {
  if (fp->prog_fd(BpfFastPath::Hook::xdp) < 0) GTEST_SKIP() << fp->xdp_unavailable();
  const PacketBuilder up = up4().tcp(kCport, 80).payload(10);
  // The modem's peer runs neither GRO nor XDP: a veth then takes no redirected frames.
  ASSERT_TRUE(sh("ethtool -K tpm1 gro off"));
  ASSERT_EQ(0, fp->set_port_device(kModem, ifindex[kModem], false));
  check(punt("modem takes no XDP frames", kWifi, up, Reason::xdp_egress), Hook::xdp);
  const Case forwarded =
      fwd("the same through tc", kWifi, up, kModem, up4_out().tcp(kNatPort, 80).payload(10));
  check(forwarded, Hook::tc);
  ASSERT_TRUE(sh("ethtool -K tpm1 gro on"));
  ASSERT_EQ(0, fp->set_port_device(kModem, ifindex[kModem], false));
  check(forwarded, Hook::xdp);
}

// With a bound set, a daemon whose heartbeat is older than the bound gets no packet forwarded on
// either hook: each goes to the kernel untouched, counted stale_heartbeat, until the next beat.
void BpfFastPathTest::stale_heartbeat_punts_until_the_next_beat() {
  const PacketBuilder up = up4().tcp(kCport, 80).payload(10);
  const Case forwarded =
      fwd("forwarded", kWifi, up, kModem, up4_out().tcp(kNatPort, 80).payload(10));
  const bool xdp = fp->prog_fd(BpfFastPath::Hook::xdp) >= 0;
  if (xdp) {
    ASSERT_TRUE(sh("ethtool -K tpm1 gro on"));  // the modem's device takes XDP frames
    ASSERT_EQ(0, fp->set_port_device(kModem, ifindex[kModem], false));
  }
  // No bound (the default): no check, although nothing ever beat.
  check(forwarded, Hook::tc);
  constexpr auto kBound = std::chrono::milliseconds(300);
  fp->set_heartbeat_bound(static_cast<uint32_t>(kBound.count()));
  check(forwarded, Hook::tc);
  if (xdp) check(forwarded, Hook::xdp);
  std::this_thread::sleep_for(kBound + std::chrono::milliseconds(50));
  check(punt("stale (tc)", kWifi, up, Reason::stale_heartbeat), Hook::tc);
  if (xdp) check(punt("stale (xdp)", kWifi, up, Reason::stale_heartbeat), Hook::xdp);
  // Packets the kernel gets anyway keep their own reason.
  check(punt("SYN while stale", kWifi, up4().tcp(kCport, 80, kSyn), Reason::tcp_control), Hook::tc);
  fp->heartbeat();
  check(forwarded, Hook::tc);
  if (xdp) check(forwarded, Hook::xdp);
  // Removing the bound ends the check.
  fp->set_heartbeat_bound(0);
  std::this_thread::sleep_for(kBound + std::chrono::milliseconds(50));
  check(forwarded, Hook::tc);
}

TEST_F(BpfFastPathTest, StaleHeartbeatPuntsUntilTheNextBeat) {
  stale_heartbeat_punts_until_the_next_beat();
}

// The clock of a kernel without bpf_ktime_get_coarse_ns (before 5.11): the loader clears the
// programs' tp_coarse_clock before loading, and the daemon's side reads CLOCK_MONOTONIC. The
// last-used times and the heartbeat work the same on it.
class BpfFastPathFineClockTest : public BpfFastPathTest {
 protected:
  BpfOptions options() const override {
    BpfOptions o{64, 16};
    o.fine_clock = true;
    return o;
  }
};

TEST_F(BpfFastPathFineClockTest, UsageLastUsedIsTheEngineClock) {
  usage_last_used_is_the_engine_clock();
}

TEST_F(BpfFastPathFineClockTest, StaleHeartbeatPuntsUntilTheNextBeat) {
  stale_heartbeat_punts_until_the_next_beat();
}

// With bpffs mounted, libxdp attaches through its dispatcher, so that tetherpath's XDP program
// shares the device with others. Mounts /sys/fs/bpf when nothing is mounted there (and unmounts
// only that), adds xdp-filter's allow-all program next to tetherpath's, and runs a forwarded
// frame through the dispatcher itself.
TEST_F(BpfFastPathTest, XdpCoexistsThroughTheLibxdpDispatcher) {
  if (fp->prog_fd(BpfFastPath::Hook::xdp) < 0) GTEST_SKIP() << fp->xdp_unavailable();
  const char* kOther = "/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o";
  if (access(kOther, R_OK) != 0) GTEST_SKIP() << "no second XDP program here: " << kOther;
  struct Bpffs {
    bool mounted = false;
    Bpffs() {
      if (!sh("grep -q ' /sys/fs/bpf bpf ' /proc/mounts"))
        mounted = mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) == 0;
    }
    ~Bpffs() {
      if (mounted) umount("/sys/fs/bpf");
    }
  } bpffs;
  ASSERT_TRUE(sh("grep -q ' /sys/fs/bpf bpf ' /proc/mounts"));
  ASSERT_TRUE(sh("ethtool -K tpm1 gro on && ethtool -K tpw1 gro on"));
  for (uint8_t p : {kModem, kWifi}) ASSERT_EQ(0, fp->set_port_device(p, ifindex[p], false));
  std::string error;
  ASSERT_TRUE(fp->attach(kWifi, BpfFastPath::Hook::xdp, error)) << error;
  ASSERT_EQ(fp->attached_hook(kWifi), BpfFastPath::Hook::xdp) << fp->attach_note(kWifi);
  {
    // libxdp falls back to a single program when its dispatcher cannot load (its compatibility
    // check needs freplace programs; this lab VM's kernel refuses them with EPERM).
    xdp_multiprog* first = xdp_multiprog__get_from_ifindex(ifindex[kWifi]);
    ASSERT_EQ(libxdp_get_error(first), 0);
    const bool legacy = xdp_multiprog__is_legacy(first);
    xdp_multiprog__close(first);
    if (legacy) GTEST_SKIP() << "libxdp loaded no dispatcher on this kernel (see its message)";
  }
  xdp_program* other = xdp_program__open_file(kOther, nullptr, nullptr);
  ASSERT_EQ(libxdp_get_error(other), 0);
  ASSERT_EQ(0, xdp_program__attach(other, ifindex[kWifi], XDP_MODE_NATIVE, 0));

  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex[kWifi]);
  ASSERT_EQ(libxdp_get_error(mp), 0);
  EXPECT_FALSE(xdp_multiprog__is_legacy(mp)) << "libxdp fell back to a single program";
  std::string names;
  for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p;
       p = xdp_multiprog__next_prog(p, mp))
    names += std::string(xdp_program__name(p)) + " ";
  std::printf("dispatcher on tpw0 runs: %s\n", names.c_str());
  EXPECT_NE(names.find("tp_xdp"), std::string::npos);
  EXPECT_NE(names.find("xdpfilt_alw_all"), std::string::npos);
  // The dispatcher runs both; tetherpath's redirect is its verdict.
  const Bytes f = up4().tcp(kCport, 80).payload(10).build();
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(f.size());
  ctx.ingress_ifindex = static_cast<uint32_t>(ifindex[kWifi]);
  const RunResult r = run(xdp_program__fd(xdp_multiprog__main_prog(mp)), f, &ctx, sizeof(ctx), 0);
  ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
  EXPECT_EQ(r.retval, uint32_t{XDP_REDIRECT});
  xdp_multiprog__close(mp);

  // Detaching tetherpath's leaves the other program in place.
  fp->detach(kWifi);
  mp = xdp_multiprog__get_from_ifindex(ifindex[kWifi]);
  if (!libxdp_get_error(mp) && mp) {
    std::string left;
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p;
         p = xdp_multiprog__next_prog(p, mp))
      left += std::string(xdp_program__name(p)) + " ";
    if (xdp_multiprog__is_legacy(mp)) left = xdp_program__name(xdp_multiprog__main_prog(mp));
    EXPECT_EQ(left.find("tp_xdp"), std::string::npos) << left;
    EXPECT_NE(left.find("xdpfilt_alw_all"), std::string::npos) << left;
    xdp_multiprog__close(mp);
  } else {
    ADD_FAILURE() << "nothing left on tpw0";
  }
  xdp_program__detach(other, ifindex[kWifi], XDP_MODE_NATIVE, 0);
  xdp_program__close(other);
}

TEST_F(BpfFastPathTest, AttachAndDetach) {
  std::string error;
  ASSERT_TRUE(fp->attach(kWifi, BpfFastPath::Hook::tc, error)) << error;
  EXPECT_EQ(fp->attached_hook(kWifi), BpfFastPath::Hook::tc);
  EXPECT_TRUE(sh("tc filter show dev tpw0 ingress | grep -q tp_tc_ether"));
  // Someone else's filter joins the clsact tetherpath created (a clat, a shaper): any BPF
  // classifier at another priority (this kernel has no other classifier modules).
  bpf_tc_hook h{};
  h.sz = sizeof(h);
  h.ifindex = ifindex[kWifi];
  h.attach_point = BPF_TC_INGRESS;
  bpf_tc_opts other{};
  other.sz = sizeof(other);
  other.handle = 1;
  other.priority = 7;
  other.prog_fd = fp->prog_fd(BpfFastPath::Hook::tc_rawip);
  ASSERT_EQ(0, bpf_tc_attach(&h, &other));
  fp->detach(kWifi);
  EXPECT_FALSE(fp->attached_hook(kWifi).has_value());
  EXPECT_FALSE(sh("tc filter show dev tpw0 ingress | grep -q tp_tc_ether"));
  EXPECT_TRUE(sh("tc filter show dev tpw0 ingress | grep -q tp_tc_rawip")) << "the other went";
  EXPECT_TRUE(sh("tc qdisc show dev tpw0 | grep -q clsact"));

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
