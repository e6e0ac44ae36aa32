// The offload policy on plain values: which conntrack entries the fast path takes and the exact
// rewrite of each direction, read off the tuples the way the kernel's flowtable does.
#include <gtest/gtest.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>

#include <map>

#include "fake_kernel.hpp"
#include "offload_policy.hpp"

namespace tp {
namespace {

using namespace test;

TEST(OffloadPolicy, MasqueradedTcpCopiesTheKernelsMapping) {
  FakeKernel k;
  const Decision d = decide(masqueraded_tcp(), k, config());
  ASSERT_EQ(d.verdict, Decision::offload) << d.reason;
  EXPECT_EQ(d.orig.in_port, 1);
  EXPECT_EQ(d.orig.out_port, 0);
  EXPECT_EQ(d.orig.rewrite, Rewrite::snat);
  EXPECT_EQ(d.orig.nat_addr, ip("100.64.0.2"));
  EXPECT_EQ(d.orig.nat_port, be(61000));
  EXPECT_EQ(d.orig.next_hop, ip("100.64.0.1"));
  EXPECT_EQ(d.orig.next_hop_mac[5], 0xfe);
  EXPECT_EQ(d.reply.in_port, 0);
  EXPECT_EQ(d.reply.out_port, 1);
  EXPECT_EQ(d.reply.rewrite, Rewrite::dnat);
  EXPECT_EQ(d.reply.nat_addr, ip("192.168.50.10"));
  EXPECT_EQ(d.reply.nat_port, be(40000));
  EXPECT_EQ(d.reply.next_hop, ip("192.168.50.10"));
}

TEST(OffloadPolicy, IcmpEchoMapsTheIdentifier) {
  FakeKernel k;
  CtEntry e;
  e.family = AF_INET;
  e.proto = IPPROTO_ICMP;
  e.orig = {ip("192.168.50.10"), ip("203.0.113.10"), be(0x1234), be(8)};
  e.reply = {ip("203.0.113.10"), ip("100.64.0.2"), be(0x4321), be(0)};
  e.status = IPS_CONFIRMED | IPS_SEEN_REPLY;  // the kernel never marks ICMP assured
  const Decision d = decide(e, k, config());
  ASSERT_EQ(d.verdict, Decision::offload) << d.reason;
  EXPECT_EQ(d.orig.rewrite, Rewrite::snat);
  EXPECT_EQ(d.orig.nat_port, be(0x4321));
  EXPECT_EQ(d.reply.nat_port, be(0x1234));
}

TEST(OffloadPolicy, RoutedIpv6HasNoRewrite) {
  FakeKernel k;
  CtEntry e;
  e.family = AF_INET6;
  e.proto = IPPROTO_UDP;
  e.orig = {ip("2001:db8:50::10"), ip("2001:db8:ffff::10"), be(5000), be(53)};
  e.reply = {ip("2001:db8:ffff::10"), ip("2001:db8:50::10"), be(53), be(5000)};
  e.status = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED;
  const Decision d = decide(e, k, config());
  ASSERT_EQ(d.verdict, Decision::offload) << d.reason;
  EXPECT_EQ(d.orig.rewrite, Rewrite::route);
  EXPECT_EQ(d.reply.rewrite, Rewrite::route);
  EXPECT_EQ(d.orig.next_hop, ip("2001:db8:100::1"));
}

TEST(OffloadPolicy, RefusalsAreNamed) {
  FakeKernel k;
  struct Case {
    const char* reason;
    std::function<void(CtEntry&, PolicyConfig&, FakeKernel&)> change;
  };
  const std::vector<Case> cases = {
      {"not_confirmed", [](CtEntry& e, PolicyConfig&, FakeKernel&) { e.status &= ~IPS_CONFIRMED; }},
      {"no_reply_yet", [](CtEntry& e, PolicyConfig&, FakeKernel&) { e.status &= ~IPS_SEEN_REPLY; }},
      {"not_assured", [](CtEntry& e, PolicyConfig&, FakeKernel&) { e.status &= ~IPS_ASSURED; }},
      {"tcp_not_established", [](CtEntry& e, PolicyConfig&, FakeKernel&) { e.tcp_state = 4; }},
      {"protocol_disabled", [](CtEntry&, PolicyConfig& c, FakeKernel&) { c.tcp = false; }},
      {"protocol", [](CtEntry& e, PolicyConfig&, FakeKernel&) { e.proto = 47; }},
      {"helper", [](CtEntry& e, PolicyConfig&, FakeKernel&) { e.has_helper = true; }},
      {"marked_no_offload",
       [](CtEntry& e, PolicyConfig& c, FakeKernel&) {
         e.mark = 0x1234;
         c.no_offload_mark = 0x1000;
         c.no_offload_mask = 0xf000;
       }},
      {"local", [](CtEntry& e, PolicyConfig&, FakeKernel&) { e.orig.dst = ip("192.168.50.1"); }},
      {"local_prefix",
       [](CtEntry&, PolicyConfig& c, FakeKernel&) {
         c.local_prefixes.push_back({ip("203.0.113.0"), 24});
       }},
      {"double_nat",
       [](CtEntry& e, PolicyConfig&, FakeKernel&) { e.reply.src = ip("203.0.113.99"); }},
      {"not_our_ports",
       [](CtEntry& e, PolicyConfig&, FakeKernel&) {
         e.orig.src = ip("10.9.0.5");
         e.reply.dst = ip("100.64.0.2");
       }},
      {"not_between_upstream_and_downstream",
       [](CtEntry& e, PolicyConfig&, FakeKernel&) {
         e.orig.dst = ip("192.168.60.20");
         e.reply.src = ip("192.168.60.20");
       }},
      {"not_downstream_prefix",
       [](CtEntry&, PolicyConfig& c, FakeKernel&) { c.ports[kWifiIf].prefixes.clear(); }},
      {"data_limit",
       [](CtEntry&, PolicyConfig& c, FakeKernel&) { c.ports[kModemIf].limited = true; }},
      {"route_dropped", [](CtEntry&, PolicyConfig&,
                           FakeKernel& k) { k.refused[ip("203.0.113.10")] = "route_dropped"; }},
      {"route_asymmetric",  // the answers would go back by another port than the client's
       [](CtEntry&, PolicyConfig&, FakeKernel& k) {
         k.policy[ip("203.0.113.10")] = RouteResult{kUsbIf, {}, 0};
       }},
      {"nat_address_elsewhere",  // a rule sends it out of the phone, masqueraded to the modem
       [](CtEntry&, PolicyConfig& c, FakeKernel& k) {
         c.ports[kPhoneIf] = {3, true, false, {}};
         k.policy[ip("192.168.50.10")] = RouteResult{kPhoneIf, ip("100.65.0.1"), 0};
       }},
      {"neighbour_unresolved",
       [](CtEntry&, PolicyConfig&, FakeKernel& k) {
         k.neigh.erase({kWifiIf, ip("192.168.50.10")});
       }},
  };
  for (const Case& c : cases) {
    CtEntry e = masqueraded_tcp();
    PolicyConfig cfg = config();
    FakeKernel kernel;
    c.change(e, cfg, kernel);
    const Decision d = decide(e, kernel, cfg);
    EXPECT_NE(d.verdict, Decision::offload) << c.reason;
    EXPECT_EQ(d.reason, c.reason);
  }
}

// The kernel's own lookup decides the way out: an ip rule that sends one client out of a second
// uplink sends its flow's fast path there too, asked with the packet's input port, addresses,
// ports and restored mark.
TEST(OffloadPolicy, TheKernelsRouteLookupPicksTheUplink) {
  FakeKernel k;
  PolicyConfig c = config();
  c.ports[kPhoneIf] = {3, true, false, {}};
  c.route_mark_mask = 0xff00;
  k.policy[ip("192.168.50.10")] = RouteResult{kPhoneIf, ip("100.65.0.1"), 1400};
  CtEntry e = masqueraded_tcp();
  e.reply.dst = ip("100.65.0.2");  // masqueraded to the phone uplink's address
  e.mark = 0x1234;
  const Decision d = decide(e, k, c);
  ASSERT_EQ(d.verdict, Decision::offload) << d.reason;
  EXPECT_EQ(d.orig.out_port, 3);
  EXPECT_EQ(d.orig.out_ifindex, kPhoneIf);
  EXPECT_EQ(d.orig.next_hop, ip("100.65.0.1"));
  EXPECT_EQ(d.orig.mtu, 1400);
  EXPECT_EQ(d.reply.in_port, 3);
  EXPECT_EQ(d.reply.out_port, 1);
  EXPECT_EQ(d.reply.next_hop, ip("192.168.50.10"));
  // The last question was the reply's: in from the phone, from the server back to the client.
  EXPECT_EQ(k.last_query.iif, kPhoneIf);
  EXPECT_EQ(k.last_query.src, ip("203.0.113.10"));
  EXPECT_EQ(k.last_query.dst, ip("192.168.50.10"));
  EXPECT_EQ(k.last_query.sport, be(80));
  EXPECT_EQ(k.last_query.dport, be(40000));
  EXPECT_EQ(k.last_query.mark, 0x1200u);
  EXPECT_EQ(k.last_query.proto, IPPROTO_TCP);
  EXPECT_EQ(k.lookups, 2u);

  // tetherpath's own session and uplink bits route the original direction only.
  c.original_mark_mask = 0x30000;
  e.mark = 0x21234;
  k.lookups = 0;
  ASSERT_EQ(decide(e, k, c).verdict, Decision::offload);
  EXPECT_EQ(k.first_query.mark, 0x21200u);
  EXPECT_EQ(k.last_query.mark, 0x1200u);
}

// An active emergency session: only its connections cross a cellular uplink in the fast path; the
// others stay in the kernel (which holds them) until it ends.
TEST(OffloadPolicy, OnlyTheEmergencySessionCrossesACellularUplink) {
  FakeKernel k;
  PolicyConfig c = config();
  CtEntry e = masqueraded_tcp();
  e.mark = 0x10000;
  for (auto& [ifindex, role] : c.ports) role.emergency_only = role.upstream;
  c.emergency_mask = 0xf0000;
  c.emergency_mark = 0x20000;
  const Decision held = decide(e, k, c);
  EXPECT_EQ(held.verdict, Decision::no);
  EXPECT_EQ(held.reason, "emergency_hold");
  e.mark = 0x20000;
  EXPECT_EQ(decide(e, k, c).verdict, Decision::offload);
  e.mark = 0x10000;
  for (auto& [ifindex, role] : c.ports) role.emergency_only = false;  // it ended
  EXPECT_EQ(decide(e, k, c).verdict, Decision::offload);
}

// Garage mode: only the remote task's sessions' connections stay in the fast path, whatever the
// uplink; the others stay in the kernel (which holds them) until it ends.
TEST(OffloadPolicy, OnlyTheGarageSessionsAreOffloadedInGarageMode) {
  FakeKernel k;
  PolicyConfig c = config();
  CtEntry e = masqueraded_tcp();
  e.mark = 0x10000;
  c.garage = true;
  c.garage_mask = 0xf0000;
  c.garage_marks = {0x20000, 0x30000};
  const Decision held = decide(e, k, c);
  EXPECT_EQ(held.verdict, Decision::no);
  EXPECT_EQ(held.reason, "garage_hold");
  e.mark = 0x30000;
  EXPECT_EQ(decide(e, k, c).verdict, Decision::offload);
  e.mark = 0;  // no session at all
  EXPECT_EQ(decide(e, k, c).reason, "garage_hold");
  c.garage = false;
  EXPECT_EQ(decide(e, k, c).verdict, Decision::offload);
}

// A session past its data limit: its connections stay in the kernel, which drops them.
TEST(OffloadPolicy, ASessionPastItsLimitStaysInTheKernel) {
  FakeKernel k;
  PolicyConfig c = config();
  CtEntry e = masqueraded_tcp();
  e.mark = 0x31000;  // session slot 2, an uplink mark
  c.limited_mask = 0xf0000;
  c.limited_marks = {0x10000, 0x30000};
  const Decision d = decide(e, k, c);
  EXPECT_EQ(d.verdict, Decision::no);
  EXPECT_EQ(d.reason, "session_limit");
  e.mark = 0x21000;
  EXPECT_EQ(decide(e, k, c).verdict, Decision::offload);
}

TEST(OffloadPolicy, MarkDoesNotMatchOtherValues) {
  FakeKernel k;
  CtEntry e = masqueraded_tcp();
  e.mark = 0x2000;
  PolicyConfig c = config();
  c.no_offload_mark = 0x1000;
  c.no_offload_mask = 0xf000;
  EXPECT_EQ(decide(e, k, c).verdict, Decision::offload);
}

}  // namespace
}  // namespace tp
