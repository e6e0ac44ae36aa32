// The uplinks' parts that talk to the kernel, against the real kernel in namespaces of the test's
// own: ping rounds over one interface, the policy routing and masquerade programmed for the
// uplinks, and the monitor moving new connections off an uplink whose probes stop answering.
//
//   this test's namespace (the box)                     tpu-far (the networks behind both)
//   tpl-m 100.64.0.2/24  ------------------------------  tpl-m-far 100.64.0.1/24
//   tpl-p 100.65.0.2/24  ------------------------------  tpl-p-far 100.65.0.1/24
//                                                        lo: 198.51.100.1 (the probe target)
#include <gtest/gtest.h>
#include <net/if.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "arp_prober.hpp"
#include "icmp_prober.hpp"
#include "netns.hpp"
#include "shell.hpp"
#include "uplink_masquerade.hpp"
#include "uplink_monitor.hpp"
#include "uplink_routing.hpp"

namespace tp {
namespace {

using test::out_of;
using test::sh;
IpAddr ip(const char* s) { return *IpAddr::parse(s); }

std::string route_dev(const std::string& args) {
  const std::string r = out_of("ip route get " + args + " 2>&1");
  const auto at = r.find(" dev ");
  return at == std::string::npos ? r : r.substr(at + 5, r.find(' ', at + 5) - at - 5);
}

// Echo requests arriving at the far side of the modem link are dropped (the link stays up).
void modem_blackholed(bool on) {
  if (on)
    sh("ip netns exec tpu-far nft 'add table inet tpu_drop; "
       "add chain inet tpu_drop pre { type filter hook prerouting priority -300; }; "
       "add rule inet tpu_drop pre iifname \"tpl-m-far\" icmp type echo-request drop'");
  else
    sh("ip netns exec tpu-far nft delete table inet tpu_drop 2>/dev/null");
}

conf::UplinkConfig uplink(const char* name, const char* iface, uint32_t metric, const char* addr,
                          const char* gateway) {
  conf::UplinkConfig u;
  u.name = name;
  u.iface = iface;
  u.metric = metric;
  u.ipv4_addr = ip(addr);
  u.ipv4_gateway = ip(gateway);
  return u;
}

// The modem, pinged at 198.51.100.1 every 100 ms: down after 2 silent rounds, up after 2 good.
conf::UplinkConfig tracked_modem() {
  conf::UplinkConfig m = uplink("modem", "tpl-m", 10, "100.64.0.2", "100.64.0.1");
  m.track.targets = {ip("198.51.100.1")};
  m.track.interval_ms = 100;
  m.track.timeout_ms = 80;
  m.track.down = 2;
  m.track.up = 2;
  return m;
}

class UplinksKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ns_.ok()) GTEST_SKIP() << "needs root: network namespaces of its own";
    sh("ip netns del tpu-far 2>/dev/null");
    ASSERT_EQ(sh("ip netns add tpu-far && ip -n tpu-far link set lo up && "
                 "ip -n tpu-far addr add 198.51.100.1/32 dev lo && "
                 "for l in m p; do ip link add tpl-$l type veth peer name tpl-$l-far && "
                 "ip link set tpl-$l-far netns tpu-far && ip link set tpl-$l up && "
                 "ip -n tpu-far link set tpl-$l-far up; done && "
                 "ip addr add 100.64.0.2/24 dev tpl-m && ip addr add 100.65.0.2/24 dev tpl-p && "
                 "ip -n tpu-far addr add 100.64.0.1/24 dev tpl-m-far && "
                 "ip -n tpu-far addr add 100.65.0.1/24 dev tpl-p-far && "
                 "ip route add default via 100.64.0.1"),
              0);
    made_ = true;
  }
  void TearDown() override {
    if (made_) sh("ip netns del tpu-far");
  }
  // Runs the loop until `done` or the time is up; whether `done` became true.
  template <class F>
  bool run_until(F done, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
      io_.run_for(std::chrono::milliseconds(20));
      io_.restart();
    }
    return done();
  }
  static ManagedUplink modem() {
    return {"modem",
            static_cast<int>(if_nametoindex("tpl-m")),
            ip("100.64.0.2"),
            ip("100.64.0.1"),
            {},
            1,
            {},
            std::nullopt};
  }
  static ManagedUplink phone() {
    return {"phone",
            static_cast<int>(if_nametoindex("tpl-p")),
            ip("100.65.0.2"),
            ip("100.65.0.1"),
            {},
            3,
            {},
            std::nullopt};
  }

  test::PrivateNetns ns_;
  bool made_ = false;
  boost::asio::io_context io_;
};

TEST_F(UplinksKernelTest, PingRoundsOverOneInterfaceSeeWhoAnswers) {
  std::vector<ProbeRound> rounds;
  // 198.51.100.7 is nobody: the far side answers with an unreachable, which is no echo reply.
  IcmpProber p(io_, "tpl-m", {ip("198.51.100.1"), ip("198.51.100.7")},
               std::chrono::milliseconds(100), std::chrono::milliseconds(80),
               [&](const ProbeRound& r) { rounds.push_back(r); });
  ASSERT_TRUE(run_until([&] { return rounds.size() >= 3; }, std::chrono::seconds(3)));
  for (const ProbeRound& r : rounds) {
    ASSERT_EQ(r.rtt_ms.size(), 2u);
    EXPECT_TRUE(r.rtt_ms[0].has_value());
    EXPECT_FALSE(r.rtt_ms[1].has_value());
  }
  EXPECT_GE(p.answered(), 3u);
  modem_blackholed(true);
  rounds.clear();
  ASSERT_TRUE(run_until([&] { return rounds.size() >= 2; }, std::chrono::seconds(3)));
  EXPECT_FALSE(rounds.back().rtt_ms[0].has_value());
}

TEST_F(UplinksKernelTest, ProbesLeaveByTheirUplinkWhateverTheRoutingSays) {
  // The main table's default route is the modem's; probes of the phone still take the phone.
  modem_blackholed(true);
  std::vector<ProbeRound> rounds;
  IcmpProber p(io_, "tpl-p", {ip("198.51.100.1")}, std::chrono::milliseconds(100),
               std::chrono::milliseconds(80), [&](const ProbeRound& r) { rounds.push_back(r); });
  ASSERT_TRUE(run_until([&] { return rounds.size() >= 2; }, std::chrono::seconds(3)));
  // No route back to 100.65.0.2's probes is needed by source: the far side has the link's prefix.
  EXPECT_TRUE(rounds.back().rtt_ms[0].has_value());
}

TEST_F(UplinksKernelTest, ArpRoundsSeeTheGatewayUntilItStopsAnswering) {
  std::vector<ProbeRound> rounds;
  // 100.64.0.9 is on the link's prefix but nobody has it.
  ArpProber p(io_, "tpl-m", {ip("100.64.0.1"), ip("100.64.0.9")}, std::chrono::milliseconds(100),
              std::chrono::milliseconds(80), [&](const ProbeRound& r) { rounds.push_back(r); });
  ASSERT_TRUE(run_until([&] { return rounds.size() >= 3; }, std::chrono::seconds(3)));
  for (const ProbeRound& r : rounds) {
    ASSERT_EQ(r.rtt_ms.size(), 2u);
    EXPECT_TRUE(r.rtt_ms[0].has_value());
    EXPECT_FALSE(r.rtt_ms[1].has_value());
  }
  // ICMP is no part of it: echo requests dropped on the far side change nothing.
  modem_blackholed(true);
  rounds.clear();
  ASSERT_TRUE(run_until([&] { return rounds.size() >= 2; }, std::chrono::seconds(3)));
  EXPECT_TRUE(rounds.back().rtt_ms[0].has_value());
  // The gateway stops answering ARP (the link stays up).
  ASSERT_EQ(sh("ip -n tpu-far link set tpl-m-far arp off"), 0);
  rounds.clear();
  ASSERT_TRUE(run_until([&] { return rounds.size() >= 3; }, std::chrono::seconds(3)));
  EXPECT_FALSE(rounds[1].rtt_ms[0].has_value());
  EXPECT_FALSE(rounds[2].rtt_ms[0].has_value());
  EXPECT_GE(p.answered(), 5u);
}

TEST_F(UplinksKernelTest, ArpProbesFollowAnInterfaceThatComesLater) {
  // A phone's USB network: the interface does not exist when tracking starts.
  std::vector<ProbeRound> rounds;
  ArpProber p(io_, "tpl-u", {ip("100.66.0.1")}, std::chrono::milliseconds(100),
              std::chrono::milliseconds(80), [&](const ProbeRound& r) { rounds.push_back(r); });
  ASSERT_TRUE(run_until([&] { return rounds.size() >= 2; }, std::chrono::seconds(3)));
  EXPECT_FALSE(rounds.back().rtt_ms[0].has_value());
  EXPECT_EQ(p.sent(), 0u);
  const char* plug_in =
      "ip link add tpl-u type veth peer name tpl-u-far && ip link set tpl-u-far netns tpu-far && "
      "ip addr add 100.66.0.2/24 dev tpl-u && ip link set tpl-u up && "
      "ip -n tpu-far addr add 100.66.0.1/24 dev tpl-u-far && ip -n tpu-far link set tpl-u-far up";
  ASSERT_EQ(sh(plug_in), 0);
  EXPECT_TRUE(
      run_until([&] { return rounds.back().rtt_ms[0].has_value(); }, std::chrono::seconds(3)));
  // Gone and back again, under a new index.
  ASSERT_EQ(sh("ip link del tpl-u"), 0);
  ASSERT_TRUE(
      run_until([&] { return !rounds.back().rtt_ms[0].has_value(); }, std::chrono::seconds(3)));
  ASSERT_EQ(sh(plug_in), 0);
  EXPECT_TRUE(
      run_until([&] { return rounds.back().rtt_ms[0].has_value(); }, std::chrono::seconds(3)));
}

TEST_F(UplinksKernelTest, RoutingTablesRulesAndTheSharedDefault) {
  UplinkRouting r;
  conf::RoutingConfig cfg;
  cfg.manage = true;
  cfg.mark_mask = 0xf00;
  EXPECT_EQ(r.program(cfg, {modem(), phone()}), std::vector<std::string>{});
  // Again: replaced, not duplicated.
  EXPECT_EQ(r.program(cfg, {modem(), phone()}), std::vector<std::string>{});
  const std::string rules = out_of("ip rule show");
  EXPECT_NE(rules.find("1000:\tfrom 100.64.0.2 lookup 1001"), std::string::npos) << rules;
  EXPECT_NE(rules.find("1000:\tfrom 100.65.0.2 lookup 1002"), std::string::npos) << rules;
  EXPECT_NE(rules.find("1001:\tfrom all fwmark 0x100/0xf00 lookup 1001"), std::string::npos);
  EXPECT_NE(rules.find("1001:\tfrom all fwmark 0x200/0xf00 lookup 1002"), std::string::npos);
  EXPECT_NE(rules.find("1002:\tfrom all lookup main suppress_prefixlength 0"), std::string::npos);
  EXPECT_NE(rules.find("1005:\tfrom all lookup 1000"), std::string::npos);
  EXPECT_EQ(out_of("ip rule show | grep -c '^1005:'"), "1\n");

  EXPECT_TRUE(r.set_active({phone()}).empty());
  EXPECT_EQ(route_dev("203.0.113.5"), "tpl-p");
  EXPECT_EQ(route_dev("203.0.113.5 mark 0x100"), "tpl-m");  // pinned by mark
  EXPECT_EQ(route_dev("203.0.113.5 from 100.64.0.2"), "tpl-m");
  EXPECT_EQ(route_dev("100.64.0.9"), "tpl-m");  // main's specific routes still win
  EXPECT_TRUE(r.set_active({modem(), phone()}).empty());
  const std::string shared = out_of("ip route show table 1000");
  EXPECT_NE(shared.find("nexthop via 100.64.0.1 dev tpl-m weight 1"), std::string::npos) << shared;
  EXPECT_NE(shared.find("nexthop via 100.65.0.1 dev tpl-p weight 3"), std::string::npos) << shared;
  EXPECT_TRUE(r.set_active({}).empty());
  EXPECT_EQ(out_of("ip route show table 1000"), "");
  EXPECT_EQ(route_dev("203.0.113.5"), "tpl-m");  // main's default route, the integrator's

  // The modem absent: the phone keeps its table and mark (running connections carry them).
  ManagedUplink second = phone();
  second.position = 1;
  EXPECT_EQ(r.program(cfg, {second}), std::vector<std::string>{});
  EXPECT_NE(out_of("ip rule show").find("1001:\tfrom all fwmark 0x200/0xf00 lookup 1002"),
            std::string::npos);
  EXPECT_EQ(out_of("ip route show table 1001"), "");

  r.remove();
  EXPECT_EQ(out_of("ip rule show | grep -c '^100[0-5]:'"), "0\n");
  EXPECT_EQ(out_of("ip route show table 1001"), "");
}

// Each uplink's network routes its own IPv6 prefix (the one it delegated to the box's clients):
// packets from there leave by it whichever uplink takes new connections.
TEST_F(UplinksKernelTest, Ipv6SourcesLeaveByTheUplinkThatRoutesTheirPrefix) {
  ASSERT_EQ(sh("ip addr add fd00:64::2/64 dev tpl-m nodad && "
               "ip addr add fd00:65::2/64 dev tpl-p nodad && "
               "ip -n tpu-far addr add fd00:64::1/64 dev tpl-m-far nodad && "
               "ip -n tpu-far addr add fd00:65::1/64 dev tpl-p-far nodad"),
            0);
  ManagedUplink m = modem(), p = phone();
  m.gateways6 = {ip("fd00:64::1")};
  p.gateways6 = {ip("fd00:65::1")};
  m.prefixes6 = {*Prefix::parse("2001:db8:64::/48")};
  p.prefixes6 = {*Prefix::parse("2001:db8:65::/48")};
  UplinkRouting r;
  conf::RoutingConfig cfg;
  cfg.manage = true;
  EXPECT_EQ(r.program(cfg, {m, p}), std::vector<std::string>{});
  const std::string rules = out_of("ip -6 rule show");
  EXPECT_NE(rules.find("1004:\tfrom 2001:db8:64::/48 lookup 1001"), std::string::npos) << rules;
  EXPECT_NE(rules.find("1004:\tfrom 2001:db8:65::/48 lookup 1002"), std::string::npos) << rules;
  EXPECT_TRUE(r.set_active({m}).empty());
  EXPECT_EQ(route_dev("2001:db8:ffff::1 from 2001:db8:65::10"), "tpl-p");
  EXPECT_EQ(route_dev("2001:db8:ffff::1 from 2001:db8:64::10"), "tpl-m");
  EXPECT_EQ(route_dev("2001:db8:ffff::1 from fd00:1::1"), "tpl-m");  // the shared table's
  // The box's other networks stay reachable from the phone's prefix: main's routes come first.
  EXPECT_EQ(route_dev("fd00:64::9 from 2001:db8:65::10"), "tpl-m");
  EXPECT_TRUE(r.set_active({p}).empty());
  EXPECT_EQ(route_dev("2001:db8:ffff::1 from 2001:db8:64::10"), "tpl-m");
  EXPECT_EQ(route_dev("2001:db8:ffff::1 from fd00:1::1"), "tpl-p");
  r.remove();
  EXPECT_EQ(out_of("ip -6 rule show | grep -c '^100[0-5]:'"), "0\n");
}

TEST_F(UplinksKernelTest, MoreUplinksThanMarkValuesIsAnError) {
  UplinkRouting r;
  conf::RoutingConfig cfg;
  cfg.manage = true;
  cfg.mark_mask = 0x1;  // one value only (the YAML refuses it; the API may outgrow a mask)
  const auto errors = r.program(cfg, {modem(), phone()});
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find("mark rule"), std::string::npos) << errors[0];
  r.remove();
}

TEST_F(UplinksKernelTest, MasqueradeOutOfExactlyTheUplinks) {
  UplinkMasquerade m;
  EXPECT_EQ(m.apply({"tpl-m", "tpl-p"}), "");
  EXPECT_NE(out_of("nft list table ip tetherpath_nat")
                .find("oifname { \"tpl-m\", \"tpl-p\" } masquerade"),
            std::string::npos);
  EXPECT_EQ(m.apply({"tpl-p"}), "");
  const std::string one = out_of("nft list table ip tetherpath_nat");
  EXPECT_NE(one.find("oifname \"tpl-p\" masquerade"), std::string::npos) << one;
  EXPECT_NE(m.apply({"bad\"name"}), "");
  EXPECT_EQ(out_of("nft list table ip tetherpath_nat"), one);  // nothing changed
  EXPECT_EQ(m.remove(), "");
  EXPECT_EQ(sh("nft list table ip tetherpath_nat >/dev/null 2>&1"), 256);
}

TEST_F(UplinksKernelTest, AnUplinkWhoseProbesStopLosesNewConnectionsAndGetsThemBack) {
  std::vector<std::string> events;
  UplinkMonitor::Host host;
  host.link_up = [](const std::string&) { return true; };
  host.health_changed = [&](const conf::UplinkConfig& u, Health was, Health now) {
    events.push_back(u.name + ":" + to_string(was) + "->" + to_string(now));
  };
  UplinkMonitor mon(io_, host);
  conf::RoutingConfig routing;
  routing.manage = true;
  routing.failback_s = 1;
  const conf::UplinkConfig m = tracked_modem();
  const conf::UplinkConfig p = uplink("phone", "tpl-p", 20, "100.65.0.2", "100.65.0.1");
  EXPECT_TRUE(mon.configure(routing, {m, p}).empty());
  EXPECT_EQ(mon.active(), std::vector<std::string>{"modem"});
  EXPECT_EQ(route_dev("203.0.113.5"), "tpl-m");

  modem_blackholed(true);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] { return mon.status("modem")->health == Health::down; },
                        std::chrono::seconds(5)));
  const auto detect = std::chrono::steady_clock::now() - t0;
  EXPECT_LE(detect, std::chrono::milliseconds(2 * 100 + 80 + 300));  // two rounds and a bit
  EXPECT_EQ(mon.active(), std::vector<std::string>{"phone"});
  EXPECT_EQ(route_dev("203.0.113.5"), "tpl-p");
  EXPECT_EQ(events, std::vector<std::string>{"modem:up->down"});

  modem_blackholed(false);
  ASSERT_TRUE(run_until([&] { return mon.status("modem")->health == Health::up; },
                        std::chrono::seconds(5)));
  EXPECT_EQ(route_dev("203.0.113.5"), "tpl-p");  // the failback hold
  ASSERT_TRUE(run_until([&] { return mon.active() == std::vector<std::string>{"modem"}; },
                        std::chrono::seconds(3)));
  EXPECT_EQ(route_dev("203.0.113.5"), "tpl-m");

  routing.manage = false;  // hands the routing back
  mon.configure(routing, {m, p});
  EXPECT_EQ(out_of("ip rule show | grep -c '^100[0-5]:'"), "0\n");
  EXPECT_EQ(sh("nft list table ip tetherpath_nat >/dev/null 2>&1"), 256);
}

TEST_F(UplinksKernelTest, StickyClientsKeepTheirUplinkUntilItFails) {
  UplinkMonitor::Host host;
  host.link_up = [](const std::string&) { return true; };
  UplinkMonitor mon(io_, host);
  conf::RoutingConfig routing;
  routing.manage = true;
  routing.sticky_s = 60;
  const conf::UplinkConfig m = tracked_modem();
  const conf::UplinkConfig p = uplink("phone", "tpl-p", 10, "100.65.0.2", "100.65.0.1");
  ASSERT_TRUE(mon.configure(routing, {m, p}).empty());
  EXPECT_EQ(mon.active(), (std::vector<std::string>{"modem", "phone"}));  // equal metrics share

  const IpAddr client = ip("192.168.50.10");
  mon.saw_connection(client, ip("100.64.0.2"));
  mon.saw_connection(client, ip("100.65.0.2"));  // an older connection elsewhere: no move
  mon.saw_connection(ip("192.168.50.11"), ip("100.65.0.2"));
  mon.saw_connection(ip("192.168.50.12"), ip("192.168.50.12"));  // not NATed: nothing to say
  const std::string rules = out_of("ip rule show");
  EXPECT_NE(rules.find("1004:\tfrom 192.168.50.10 lookup 1001"), std::string::npos) << rules;
  EXPECT_NE(rules.find("1004:\tfrom 192.168.50.11 lookup 1002"), std::string::npos) << rules;
  EXPECT_EQ(rules.find("192.168.50.12"), std::string::npos) << rules;
  EXPECT_EQ(mon.status("modem")->sticky_clients, 1u);
  EXPECT_EQ(mon.status("phone")->sticky_clients, 1u);

  modem_blackholed(true);  // the modem fails: its clients are free to take the phone
  ASSERT_TRUE(run_until([&] { return mon.status("modem")->health == Health::down; },
                        std::chrono::seconds(5)));
  EXPECT_EQ(mon.status("modem")->sticky_clients, 0u);
  EXPECT_EQ(out_of("ip rule show").find("from 192.168.50.10"), std::string::npos);
  EXPECT_EQ(mon.active(), std::vector<std::string>{"phone"});
  EXPECT_NE(out_of("ip rule show").find("from 192.168.50.11 lookup 1002"), std::string::npos);
}

// Sessions: each session's new connections take its own table, by the mark the classifier gives
// them; a session's allowed uplinks failing leaves it refused, never routed by another.
TEST_F(UplinksKernelTest, SessionsRouteByTheirOwnTablesAndNeverFallThrough) {
  UplinkMonitor::Host host;
  host.link_up = [](const std::string&) { return true; };
  UplinkMonitor mon(io_, host);
  conf::RoutingConfig routing;
  routing.manage = true;
  routing.session_mark_mask = 0xf0000;
  conf::UplinkConfig m = tracked_modem();
  m.kind = conf::UplinkKind::cellular;
  conf::UplinkConfig p = uplink("phone", "tpl-p", 10, "100.65.0.2", "100.65.0.1");
  p.kind = conf::UplinkKind::wifi;
  std::vector<conf::SessionConfig> sessions(3);
  sessions[0].name = "cellular_only";
  sessions[0].uplinks = {"cellular"};
  sessions[0].match.macs = {{0x02, 0, 0, 0, 0, 0x07}};
  sessions[1].name = "phone_first";
  sessions[1].uplinks = {"phone", "modem"};
  sessions[1].match.addresses = {*Prefix::parse("192.168.60.0/24")};
  sessions[2].name = "local";
  sessions[2].connection = conf::Connection::local;
  sessions[2].match.downstreams = {"lo"};
  ASSERT_EQ(mon.configure(routing, {m, p}, sessions), std::vector<std::string>{});
  // New sessions are held until the caller releases them (after resetting what must move).
  EXPECT_NE(out_of("ip route show table 1128").find("blackhole default"), std::string::npos);
  EXPECT_TRUE(mon.session_uplinks(0).empty());
  mon.release_sessions();
  const std::string rules = out_of("ip rule show");
  EXPECT_NE(rules.find("1003:\tfrom all fwmark 0x10000/0xf0000 lookup 1128"), std::string::npos)
      << rules;
  EXPECT_NE(rules.find("1003:\tfrom all fwmark 0x30000/0xf0000 lookup 1130"), std::string::npos);
  const std::string nft = out_of("nft list table inet tetherpath_sessions");
  EXPECT_NE(nft.find("ether saddr 02:00:00:00:00:07"), std::string::npos) << nft;
  EXPECT_NE(nft.find("ip saddr 192.168.60.0/24"), std::string::npos) << nft;
  EXPECT_EQ(mon.session_uplinks(0), std::vector<std::string>{"modem"});
  EXPECT_EQ(mon.session_uplinks(1), std::vector<std::string>{"phone"});
  EXPECT_TRUE(mon.session_uplinks(2).empty());

  EXPECT_EQ(route_dev("203.0.113.5 mark 0x10000"), "tpl-m");
  EXPECT_EQ(route_dev("203.0.113.5 mark 0x20000"), "tpl-p");
  EXPECT_NE(out_of("ip route get 203.0.113.5 mark 0x30000 2>&1").find("denied"),
            std::string::npos);                              // local: prohibited
  EXPECT_EQ(route_dev("100.65.0.9 mark 0x30000"), "tpl-p");  // the box's own networks stay
  EXPECT_NE(out_of("ip -6 route get 2001:db8::1 mark 0x10000 2>&1").find("No route to host"),
            std::string::npos);  // no uplink routes IPv6: refused, not the shared table's

  modem_blackholed(true);  // the modem fails: its only session is refused, the other moves on
  ASSERT_TRUE(run_until([&] { return mon.status("modem")->health == Health::down; },
                        std::chrono::seconds(5)));
  EXPECT_TRUE(mon.session_uplinks(0).empty());
  EXPECT_NE(out_of("ip route get 203.0.113.5 mark 0x10000 2>&1").find("No route to host"),
            std::string::npos);
  EXPECT_EQ(route_dev("203.0.113.5 mark 0x20000"), "tpl-p");
  modem_blackholed(false);
  ASSERT_TRUE(run_until([&] { return mon.status("modem")->health == Health::up; },
                        std::chrono::seconds(5)));
  EXPECT_EQ(route_dev("203.0.113.5 mark 0x10000"), "tpl-m");

  // A policy update: only the changed session is held, and only its table and rule change.
  const std::string uplink_rules = out_of("ip rule show | grep -v '^1003:'");
  sessions[1].uplinks = {"modem"};
  sessions.erase(sessions.begin());  // cellular_only goes: phone_first keeps its mark
  ASSERT_EQ(mon.configure(routing, {m, p}, sessions), std::vector<std::string>{});
  EXPECT_NE(out_of("ip route show table 1129").find("blackhole default"), std::string::npos);
  EXPECT_EQ(out_of("ip rule show").find("lookup 1128"), std::string::npos);  // gone
  EXPECT_EQ(out_of("ip route show table 1128"), "");
  EXPECT_NE(out_of("ip route get 203.0.113.5 mark 0x30000 2>&1").find("denied"), std::string::npos);
  mon.release_sessions();
  EXPECT_EQ(route_dev("203.0.113.5 mark 0x20000"), "tpl-m");
  EXPECT_EQ(out_of("ip rule show | grep -v '^1003:'"), uplink_rules);
  EXPECT_NE(out_of("nft list table inet tetherpath_sessions").find("0x00020000"),
            std::string::npos);

  // Roaming: the modem abroad, a session that forbids roaming loses it (held, then refused).
  sessions[0].roaming = conf::RoamingPolicy::forbidden;
  ASSERT_EQ(mon.configure(routing, {m, p}, sessions), std::vector<std::string>{});
  mon.release_sessions();
  EXPECT_EQ(route_dev("203.0.113.5 mark 0x20000"), "tpl-m");
  m.roaming = conf::Roaming::international;
  ASSERT_EQ(mon.configure(routing, {m, p}, sessions), std::vector<std::string>{});
  EXPECT_NE(out_of("ip route show table 1129").find("blackhole default"), std::string::npos);
  mon.release_sessions();
  EXPECT_NE(out_of("ip route get 203.0.113.5 mark 0x20000 2>&1").find("No route to host"),
            std::string::npos);
  EXPECT_EQ(out_of("ip rule show | grep -v '^1003:'"), uplink_rules);  // nothing else rewritten

  routing.manage = false;  // everything goes
  mon.configure(routing, {m, p}, sessions);
  EXPECT_EQ(out_of("ip rule show | grep -c '^100[0-5]:'"), "0\n");
  EXPECT_EQ(out_of("ip route show table 1128"), "");
  EXPECT_EQ(sh("nft list table inet tetherpath_sessions >/dev/null 2>&1"), 256);
}

}  // namespace
}  // namespace tp
