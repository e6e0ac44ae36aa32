// The kernel's own route lookup for a forwarded packet, against the real kernel in a network
// namespace of the test's own: ip rules by source and by mark, blackhole / unreachable /
// prohibit routes, multipath routes (the next hop is the one `ip route get` names for the same
// packet) and rule changes reaching the mirror as events.
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "netns.hpp"
#include "route_lookup.hpp"
#include "rtnl_mirror.hpp"
#include "shell.hpp"

namespace tp {
namespace {

using test::out_of;
using test::sh;
IpAddr ip(const char* s) { return *IpAddr::parse(s); }

// A box with a downstream (tpl-d) and two uplinks (tpl-m: the modem, tpl-p: a phone).
class RouteLookupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ns_.ok()) GTEST_SKIP() << "needs root: a network namespace of its own";
    ASSERT_EQ(sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 && "
                 "for l in d m p; do ip link add tpl-$l type veth peer name tpl-$l-peer && "
                 "ip link set tpl-$l up && ip link set tpl-$l-peer up; done && "
                 "ip addr add 192.168.50.1/24 dev tpl-d && ip addr add 100.64.0.2/24 dev tpl-m && "
                 "ip addr add 100.65.0.2/24 dev tpl-p && "
                 "ip -6 addr add 2001:db8:50::1/64 dev tpl-d nodad && "
                 "ip -6 addr add 2001:db8:100::2/64 dev tpl-m nodad && "
                 "ip route add default via 100.64.0.1 && "
                 "ip -6 route add default via 2001:db8:100::1"),
              0);
    d_ = static_cast<int>(if_nametoindex("tpl-d"));
    m_ = static_cast<int>(if_nametoindex("tpl-m"));
    p_ = static_cast<int>(if_nametoindex("tpl-p"));
  }
  RouteQuery from_client(const char* client, const char* server, uint16_t sport = 40000) {
    return {d_, ip(client), ip(server), 0, IPPROTO_TCP, htons(sport), htons(80)};
  }
  test::PrivateNetns ns_;
  RouteLookup lookup_;
  int d_ = 0, m_ = 0, p_ = 0;
};

TEST_F(RouteLookupTest, TheMainTableAndARuleBySource) {
  Forwarding f = lookup_.forward(from_client("192.168.50.10", "203.0.113.10"));
  ASSERT_TRUE(f.refused.empty()) << f.refused;
  EXPECT_EQ(f.route.oif, m_);
  EXPECT_EQ(f.route.next_hop, ip("100.64.0.1"));
  ASSERT_EQ(sh("ip route add default via 100.65.0.1 table 100 && "
               "ip rule add from 192.168.50.11 lookup 100"),
            0);
  f = lookup_.forward(from_client("192.168.50.11", "203.0.113.10"));
  ASSERT_TRUE(f.refused.empty()) << f.refused;
  EXPECT_EQ(f.route.oif, p_);
  EXPECT_EQ(f.route.next_hop, ip("100.65.0.1"));
  // The way back to the client: on-link, the client itself is the next hop.
  f = lookup_.forward(
      {p_, ip("203.0.113.10"), ip("192.168.50.11"), 0, IPPROTO_TCP, htons(80), htons(40000)});
  ASSERT_TRUE(f.refused.empty()) << f.refused;
  EXPECT_EQ(f.route.oif, d_);
  EXPECT_EQ(f.route.next_hop, ip("192.168.50.11"));
  const Forwarding v6 = lookup_.forward(from_client("2001:db8:50::10", "2001:db8:ffff::10"));
  ASSERT_TRUE(v6.refused.empty()) << v6.refused;
  EXPECT_EQ(v6.route.oif, m_);
  EXPECT_EQ(v6.route.next_hop, ip("2001:db8:100::1"));
}

TEST_F(RouteLookupTest, RoutesThatDropAreRefusalsByName) {
  ASSERT_EQ(sh("ip route add blackhole 203.0.113.20 && ip route add unreachable 203.0.113.21 && "
               "ip route add prohibit 203.0.113.22 && ip -6 route add blackhole 2001:db8:ffff::20"),
            0);
  EXPECT_EQ(lookup_.forward(from_client("192.168.50.10", "203.0.113.20")).refused, "route_dropped");
  EXPECT_EQ(lookup_.forward(from_client("192.168.50.10", "203.0.113.21")).refused,
            "route_unreachable");
  EXPECT_EQ(lookup_.forward(from_client("192.168.50.10", "203.0.113.22")).refused,
            "route_prohibit");
  EXPECT_EQ(lookup_.forward(from_client("2001:db8:50::10", "2001:db8:ffff::20")).refused,
            "route_dropped");
  EXPECT_EQ(lookup_.forward(from_client("192.168.50.10", "100.64.0.2")).refused, "route_local");
  // Reverse-path filtering: the kernel drops what it would not route back the same way.
  ASSERT_EQ(sh("sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.tpl-d.rp_filter=1"), 0);
  EXPECT_EQ(lookup_.forward(from_client("10.1.2.3", "203.0.113.10")).refused, "route_dropped");
}

TEST_F(RouteLookupTest, AMarkRuleAppliesToTheMarkAsked) {
  ASSERT_EQ(sh("ip rule add fwmark 0x100/0xf00 lookup 101 && "
               "ip route add default via 100.65.0.1 table 101"),
            0);
  RouteQuery q = from_client("192.168.50.10", "203.0.113.10");
  EXPECT_EQ(lookup_.forward(q).route.oif, m_);
  q.mark = 0x100;
  EXPECT_EQ(lookup_.forward(q).route.oif, p_);
}

// A multipath route: each flow's next hop is the one the kernel hashes the same packet to.
TEST_F(RouteLookupTest, MultipathPicksWhatTheKernelPicksForThatFlow) {
  ASSERT_EQ(sh("sysctl -qw net.ipv4.fib_multipath_hash_policy=1 && "
               "ip route add 198.51.100.0/24 nexthop via 100.64.0.1 nexthop via 100.65.0.1"),
            0);
  int modem = 0, phone = 0;
  for (int port = 40000; port < 40032; ++port) {
    const Forwarding f = lookup_.forward(from_client("192.168.50.10", "198.51.100.7", port));
    ASSERT_TRUE(f.refused.empty()) << f.refused;
    const std::string kernel =
        out_of("ip route get 198.51.100.7 from 192.168.50.10 iif tpl-d ipproto tcp sport " +
               std::to_string(port) + " dport 80");
    const bool via_phone = kernel.find("dev tpl-p") != std::string::npos;
    EXPECT_EQ(f.route.oif, via_phone ? p_ : m_) << kernel;
    EXPECT_EQ(f.route.next_hop, ip(via_phone ? "100.65.0.1" : "100.64.0.1"));
    (via_phone ? phone : modem)++;
  }
  // The ports are part of the hash (policy 1): both next hops carry some of the 32 flows.
  EXPECT_GT(modem, 0);
  EXPECT_GT(phone, 0);
}

// Batched questions (as when every flow is decided again) get the answers single ones get: routes,
// multipath choices and refusals alike, more of them than one batch holds.
TEST_F(RouteLookupTest, BatchedLookupsAnswerAsSingleOnes) {
  ASSERT_EQ(sh("sysctl -qw net.ipv4.fib_multipath_hash_policy=1 && "
               "ip route add 198.51.100.0/24 nexthop via 100.64.0.1 nexthop via 100.65.0.1 && "
               "ip route add blackhole 203.0.113.20"),
            0);
  std::vector<RouteQuery> qs;
  for (int port = 40000; port < 40100; ++port) {
    qs.push_back(from_client("192.168.50.10", "198.51.100.7", static_cast<uint16_t>(port)));
    qs.push_back(from_client("192.168.50.10", "203.0.113.20", static_cast<uint16_t>(port)));
  }
  qs.push_back(from_client("2001:db8:50::10", "2001:db8:ffff::10"));
  std::vector<Forwarding> single;
  for (const auto& q : qs) single.push_back(lookup_.forward(q));

  lookup_.collect();
  EXPECT_EQ(lookup_.forward(qs[0]).refused, "route_lookup_pending");
  for (const auto& q : qs) lookup_.forward(q);
  const uint64_t before = lookup_.lookups;
  EXPECT_EQ(lookup_.fetch(), qs.size() + 1);  // qs[0] was asked twice
  EXPECT_EQ(lookup_.lookups - before, qs.size() + 1);
  for (std::size_t i = 0; i < qs.size(); ++i) {
    const Forwarding f = lookup_.forward(qs[i]);
    EXPECT_EQ(f.refused, single[i].refused) << i;
    EXPECT_EQ(f.route.oif, single[i].route.oif) << i;
    EXPECT_EQ(f.route.next_hop, single[i].route.next_hop) << i;
  }
  EXPECT_EQ(lookup_.lookups - before, qs.size() + 1) << "every answer came from the batch";
  lookup_.collected();  // what was not fetched is asked at once again
  EXPECT_TRUE(lookup_.forward(from_client("192.168.50.11", "198.51.100.8")).refused.empty());
  lookup_.forget();
  EXPECT_EQ(lookup_.forward(qs[1]).refused, "route_dropped");
}

TEST_F(RouteLookupTest, RuleChangesAreEventsOfTheMirror) {
  RtnlMirror mirror;
  int changes = 0;
  mirror.on_change = [&] { ++changes; };
  ASSERT_EQ(sh("ip rule add from 192.168.50.12 lookup 102 && "
               "ip -6 rule add from 2001:db8:50::12 lookup 102"),
            0);
  mirror.on_readable();
  EXPECT_GE(changes, 2);
  EXPECT_TRUE(mirror.has_address(m_, ip("100.64.0.2")));
  EXPECT_FALSE(mirror.has_address(p_, ip("100.64.0.2")));
}

}  // namespace
}  // namespace tp
