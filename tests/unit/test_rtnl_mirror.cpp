// The rtnetlink mirror against the real kernel, in a network namespace of the test's own: route
// MTUs as the kernel forwards by them, at the dump and as routes change; which messages are
// changes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "netns.hpp"
#include "rtnl_mirror.hpp"

namespace tp {
namespace {

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }
IpAddr ip(const char* s) { return *IpAddr::parse(s); }

uint16_t route_mtu(const RtnlMirror& m, const char* dst) {
  const auto r = m.route(ip(dst));
  EXPECT_TRUE(r) << dst;
  return r ? r->mtu : 9999;
}

TEST(RtnlMirror, RouteMtusAsTheKernelForwardsByThem) {
  test::PrivateNetns ns;
  if (!ns.ok()) GTEST_SKIP() << "needs root: a network namespace of its own";
  ASSERT_EQ(sh("ip link add tpm0 type veth peer name tpm1 && ip link set tpm0 up && "
               "ip link set tpm1 up && ip addr add 198.51.100.1/24 dev tpm0 && "
               "ip -6 addr add 2001:db8:77::1/64 dev tpm0 nodad"),
            0);
  ASSERT_EQ(sh("ip route add 203.0.113.0/24 via 198.51.100.2 mtu 1300 && "
               "ip -6 route add 2001:db8:88::/48 via 2001:db8:77::2 mtu 1300 && "
               "ip -6 route add 2001:db8:99::/48 via 2001:db8:77::2 mtu lock 1300"),
            0);
  RtnlMirror m;
  EXPECT_EQ(route_mtu(m, "203.0.113.5"), 1300);
  EXPECT_EQ(route_mtu(m, "198.51.100.9"), 0);  // the connected route has none
  // IPv6 forwarding uses a route's MTU only when it is locked; otherwise the interface's IPv6
  // MTU (which a router advertisement sets) applies.
  EXPECT_EQ(route_mtu(m, "2001:db8:88::5"), 0);
  EXPECT_EQ(route_mtu(m, "2001:db8:99::5"), 1300);

  ASSERT_EQ(sh("ip route change 203.0.113.0/24 via 198.51.100.2 mtu 1280 && "
               "ip -6 route change 2001:db8:99::/48 via 2001:db8:77::2 mtu lock 1400"),
            0);
  m.on_readable();
  EXPECT_EQ(route_mtu(m, "203.0.113.5"), 1280);
  EXPECT_EQ(route_mtu(m, "2001:db8:99::5"), 1400);
  ASSERT_EQ(sh("ip route change 203.0.113.0/24 via 198.51.100.2"), 0);
  m.on_readable();
  EXPECT_EQ(route_mtu(m, "203.0.113.5"), 0);
}

// Routes of one prefix and metric that differ only by gateway are each the kernel's: IPv4 forwards
// by the first, and deleting one leaves the other.
TEST(RtnlMirror, RoutesThatDifferOnlyByGateway) {
  test::PrivateNetns ns;
  if (!ns.ok()) GTEST_SKIP() << "needs root: a network namespace of its own";
  ASSERT_EQ(sh("ip link add tpm0 type veth peer name tpm1 && ip link set tpm0 up && "
               "ip link set tpm1 up && ip addr add 198.51.100.1/24 dev tpm0 && "
               "ip route add 203.0.113.0/24 via 198.51.100.2 metric 5"),
            0);
  RtnlMirror m;
  ASSERT_EQ(sh("ip route append 203.0.113.0/24 via 198.51.100.3 metric 5"), 0);
  m.on_readable();
  auto r = m.route(ip("203.0.113.9"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->next_hop, ip("198.51.100.2")) << "the kernel forwards by the first";
  ASSERT_EQ(sh("ip route del 203.0.113.0/24 via 198.51.100.2 metric 5"), 0);
  m.on_readable();
  r = m.route(ip("203.0.113.9"));
  ASSERT_TRUE(r) << "the appended route is still the kernel's";
  EXPECT_EQ(r->next_hop, ip("198.51.100.3"));
}

// Reads events until none has come for a while (what setting up the namespace still sends).
void settle(RtnlMirror& m) {
  for (uint64_t seen = ~0ull; seen != m.events;) {
    seen = m.events;
    usleep(200 * 1000);
    m.on_readable();
  }
}

// Every change decides every flow again: the kernel's repetitions of links and addresses (an
// address's lifetime refreshed, a link sent again for a setting the flows do not depend on) must
// not count as changes; real ones must, and every route message is one (the kernel drops routes
// without a word, so a route that reads as known may be one it got back).
TEST(RtnlMirror, ChangesOnlyWhenWhatFlowsDependOnChanges) {
  test::PrivateNetns ns;
  if (!ns.ok()) GTEST_SKIP() << "needs root: a network namespace of its own";
  ASSERT_EQ(sh("sysctl -qw net.ipv6.conf.default.addr_gen_mode=1 && "
               "ip link add tpm0 type veth peer name tpm1 && ip link set tpm0 up && "
               "ip link set tpm1 up && ip addr add 198.51.100.1/24 dev tpm0 && "
               "ip -6 addr add 2001:db8:77::1/64 dev tpm0 nodad && "
               "ip route add 203.0.113.0/24 via 198.51.100.2 mtu 1300 && "
               "ip -6 route add 2001:db8:88::/48 via 2001:db8:77::2 expires 300"),
            0);
  RtnlMirror m;
  int changes = 0;
  m.on_change = [&] { ++changes; };
  settle(m);
  // How many changes the mirror saw in what cmd made the kernel send.
  auto changes_after = [&](const char* cmd) {
    changes = 0;
    EXPECT_EQ(sh(cmd), 0) << cmd;
    settle(m);
    return changes;
  };
  // Routes first: the IPv6 address's lifetime change below gives its prefix route an expiry in
  // the past on some kernels (6.18), and the gateway is no longer reachable.
  EXPECT_GE(changes_after("ip -6 route replace 2001:db8:88::/48 via 2001:db8:77::2 expires 600"),
            1);
  EXPECT_GE(changes_after("ip -6 route replace blackhole 2001:db8:88::/48"), 1);
  EXPECT_GE(changes_after("ip -6 route replace 2001:db8:88::/48 via 2001:db8:77::2"), 1);
  const uint64_t before = m.events;
  EXPECT_EQ(
      changes_after("ip link set dev tpm0 txqueuelen 2000 && "
                    "ip addr change 198.51.100.1/24 dev tpm0 valid_lft 600 preferred_lft 600 && "
                    "ip -6 addr change 2001:db8:77::1/64 dev tpm0 valid_lft 600 "
                    "preferred_lft 600"),
      0);
  EXPECT_GE(m.events - before, 3u) << "the kernel sent the repetitions";

  EXPECT_GE(changes_after("ip route replace 203.0.113.0/24 via 198.51.100.3 mtu 1300"), 1);
  EXPECT_GE(changes_after("ip addr add 198.51.100.7/24 dev tpm0"), 1);
  EXPECT_TRUE(m.is_local(ip("198.51.100.7")));
  // What takes a route's place and gives it back is a change each time: a blackhole, an admin
  // down of its link (IPv4 drops the routes without a word), a different set of nexthops.
  EXPECT_GE(changes_after("ip route replace blackhole 203.0.113.0/24"), 1);
  EXPECT_GE(changes_after("ip route replace 203.0.113.0/24 via 198.51.100.3 mtu 1300"), 1);
  EXPECT_GE(changes_after("ip link set dev tpm0 down && ip link set dev tpm0 up"), 1);
  EXPECT_GE(changes_after("ip route replace 203.0.113.0/24 via 198.51.100.3 mtu 1300"), 1)
      << "the route the link's going down took, back";
  EXPECT_GE(changes_after("ip route replace 203.0.113.0/24 nexthop via 198.51.100.2 "
                          "nexthop via 198.51.100.3"),
            1);
  EXPECT_GE(changes_after("ip route replace 203.0.113.0/24 nexthop via 198.51.100.2 "
                          "nexthop via 198.51.100.4"),
            1);
  EXPECT_GE(changes_after("ip link set dev tpm0 mtu 1400"), 1);
  EXPECT_GE(changes_after("ip link set dev tpm1 down"), 1);  // tpm0 loses its carrier
  EXPECT_GE(changes_after("ip link set dev tpm0 down && ip link set dev tpm0 name tpm9"), 1);
  EXPECT_EQ(m.ifindex("tpm0"), 0);
  EXPECT_NE(m.ifindex("tpm9"), 0);
}

}  // namespace
}  // namespace tp
