// IPv6 offload by address (offload.ipv6: neighbours) against a real rule table, topology and
// engine: rules follow the roles and the neighbour table, packets from a client's prefix go to
// the router, packets to a known client go to it, traffic between downstreams and to the box stays
// in the kernel.
#include <gtest/gtest.h>

#include "dpdk_env.hpp"
#include "engine_harness.hpp"
#include "fake_kernel.hpp"
#include "ipv6_rules.hpp"

namespace tp::test {
namespace {

using namespace lab;

class Ipv6RulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_eal();
    h = std::make_unique<EngineHarness>();
    sync = std::make_unique<TopologySync>(*h->fast_path);
    rules = std::make_unique<Ipv6Rules>(*h->fast_path, *sync, kernel);
    cfg = config();
    cfg.ports[kUsbIf].prefixes.push_back(*Prefix::parse("2001:db8:60::/64"));
    kernel.connected.emplace_back("2001:db8:60::", 64, kUsbIf);
  }
  void TearDown() override { rules.reset(); }

  // Sends one UDP packet in on `port`; returns the egress port's name or the punt reason, and
  // the frame that left.
  std::string send(uint8_t port, const std::string& src, const std::string& dst,
                   Bytes* out_frame = nullptr) {
    const bool from_modem = port == kModem;
    const Bytes in =
        PacketBuilder()
            .eth(from_modem ? kGatewayMac : kWifiClientMac, from_modem ? kModemMac : kWifiMac)
            .ipv6(src, dst)
            .udp(5000, 6000)
            .payload(30)
            .build();
    return h->send(port, in, out_frame);
  }
  // What send() must produce when forwarded: new MACs, hop limit one less.
  static Bytes forwarded(const std::string& src_mac, const std::string& dst_mac,
                         const std::string& src, const std::string& dst) {
    return PacketBuilder()
        .eth(src_mac, dst_mac)
        .ipv6(src, dst)
        .hop_limit(63)
        .udp(5000, 6000)
        .payload(30)
        .build();
  }

  FakeKernel kernel;
  PolicyConfig cfg;
  std::unique_ptr<EngineHarness> h;
  std::unique_ptr<TopologySync> sync;
  std::unique_ptr<Ipv6Rules> rules;
};

TEST_F(Ipv6RulesTest, ClientsAndPrefixesAreForwardedWithHopLimitAndMacs) {
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "unknown_flow");
  rules->rebuild(cfg);
  // Two markers (wifi and usb /64), two prefix rules, one client (the wifi neighbour).
  EXPECT_EQ(rules->size(), 5u);
  Bytes got;
  ASSERT_EQ(send(kWifi, kWifiClient6, kServer6, &got), "modem");
  EXPECT_EQ(hex(got), hex(forwarded(kModemMac, kGatewayMac, kWifiClient6, kServer6)));
  ASSERT_EQ(send(kModem, kServer6, kWifiClient6, &got), "wifi");
  EXPECT_EQ(hex(got), hex(forwarded(kWifiMac, kWifiClientMac, kServer6, kWifiClient6)));
  // Any address of the client's /64 goes up (the router decides), but only resolved clients
  // come down.
  EXPECT_EQ(send(kWifi, "2001:db8:50::99", kServer6), "modem");
  EXPECT_EQ(send(kModem, kServer6, "2001:db8:50::99"), "unknown_flow");
  bool counted = false;
  rules->for_each([&](const Ipv6Rules::View& v) {
    if (v.kind == Rule6::client) counted = v.packets == 1 && v.bytes == 78;
  });
  EXPECT_TRUE(counted);
}

TEST_F(Ipv6RulesTest, BetweenDownstreamsAndToTheBoxStaysInTheKernel) {
  rules->rebuild(cfg);
  EXPECT_EQ(send(kWifi, kWifiClient6, "2001:db8:60::20"), "unknown_flow");
  EXPECT_EQ(send(kWifi, kWifiClient6, kWifiAddr6), "local");
  EXPECT_EQ(send(kWifi, "2001:db8:77::1", kServer6), "unknown_flow");  // not a downstream prefix
}

// The box's addresses on other ports (here the upstream's), or on no port at all, are the
// kernel's: a client's packet to one must not go up to the router.
TEST_F(Ipv6RulesTest, TrafficToTheBoxOnAnyPortStaysInTheKernel) {
  kernel.local.insert(ip(kModemAddr6.c_str()));
  kernel.local.insert(ip("2001:db8:aaaa::1"));  // a loopback address, say
  rules->rebuild(cfg);
  EXPECT_EQ(send(kWifi, kWifiClient6, kModemAddr6), "local");
  EXPECT_EQ(send(kWifi, kWifiClient6, "2001:db8:aaaa::1"), "local");
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "modem");
  // An address the box gains later is the kernel's from the next rebuild (the control plane
  // rebuilds on every address change).
  kernel.local.insert(ip("2001:db8:aaaa::2"));
  rules->rebuild(cfg);
  EXPECT_EQ(send(kWifi, kWifiClient6, "2001:db8:aaaa::2"), "local");
}

// set_local_prefixes: traffic to or from them is never forwarded by a rule, whichever side they
// are on and whatever their length.
TEST_F(Ipv6RulesTest, LocalPrefixesAreNeverForwardedByARule) {
  cfg.local_prefixes = {*Prefix::parse("2001:db8:ffff::/48"),  // the server's network
                        *Prefix::parse("10.0.0.0/8")};
  rules->rebuild(cfg);
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "local");
  EXPECT_EQ(send(kModem, kServer6, kWifiClient6), "local");
  EXPECT_EQ(send(kWifi, kWifiClient6, "2001:db8:eeee::10"), "modem");
  EXPECT_EQ(send(kModem, "2001:db8:eeee::10", kWifiClient6), "wifi");
  // A prefix inside a downstream /64: the client in it is the kernel's both ways.
  cfg.local_prefixes = {*Prefix::parse("2001:db8:50::10/126")};
  rules->rebuild(cfg);
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "local");
  EXPECT_EQ(send(kModem, kServer6, kWifiClient6), "local");
  EXPECT_EQ(send(kWifi, "2001:db8:50::99", kServer6), "modem");
  // Set back: forwarded again.
  cfg.local_prefixes.clear();
  rules->rebuild(cfg);
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "modem");
  EXPECT_EQ(send(kModem, kServer6, kWifiClient6), "wifi");
}

// More local prefixes and box addresses than the engine can check: no rule forwards anything
// rather than one forwarding what it must not.
TEST_F(Ipv6RulesTest, TooManyLocalPrefixesLeaveEverythingToTheKernel) {
  for (int i = 0; i < 64; ++i)
    cfg.local_prefixes.push_back(*Prefix::parse("2001:db8:f" + std::to_string(i) + "::/48"));
  rules->rebuild(cfg);
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "unknown_flow");
  EXPECT_EQ(send(kModem, kServer6, kWifiClient6), "unknown_flow");
  cfg.local_prefixes.resize(4);
  rules->rebuild(cfg);
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "modem");
}

// The default route's MTU (locked, as IPv6 forwarding only then uses it) bounds what the
// from-prefix rule forwards; when it changes, the rebuild that follows moves the rule.
TEST_F(Ipv6RulesTest, TheRoutesMtuBoundsTheRules) {
  auto big = [&](uint16_t bytes) {
    return h->send(kWifi, PacketBuilder()
                              .eth(kWifiClientMac, kWifiMac)
                              .ipv6(kWifiClient6, kServer6)
                              .udp(5000, 6000)
                              .payload(bytes - 48)
                              .build());
  };
  rules->rebuild(cfg);
  EXPECT_EQ(big(1400), "modem");
  kernel.default_route_mtu = 1300;
  rules->rebuild(cfg);
  EXPECT_EQ(big(1301), "too_big");
  EXPECT_EQ(big(1300), "modem");
  kernel.default_route_mtu = 0;
  rules->rebuild(cfg);
  EXPECT_EQ(big(1400), "modem");
}

TEST_F(Ipv6RulesTest, RulesFollowTheNeighbourTable) {
  rules->rebuild(cfg);
  const IpAddr client = ip("2001:db8:50::10");
  rules->neighbour_changed(kWifiIf, client, std::nullopt);
  EXPECT_EQ(send(kModem, kServer6, kWifiClient6), "unknown_flow");
  rules->neighbour_changed(kWifiIf, client, MacAddr{2, 0, 0, 0, 1, 0x0b});
  Bytes got;
  ASSERT_EQ(send(kModem, kServer6, kWifiClient6, &got), "wifi");
  EXPECT_EQ(got[5], 0x0b);  // the new MAC
  // A client outside every prefix of its port gets no rule.
  rules->neighbour_changed(kWifiIf, ip("2001:db8:99::1"), MacAddr{2, 0, 0, 0, 1, 0x0c});
  EXPECT_EQ(send(kModem, kServer6, "2001:db8:99::1"), "unknown_flow");
  // The router going away takes the way up with it; its return brings it back.
  kernel.neigh.erase({kModemIf, ip("2001:db8:100::1")});
  rules->neighbour_changed(kModemIf, ip("2001:db8:100::1"), std::nullopt);
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "unknown_flow");
  EXPECT_GE(rules->waiting_for_router(), 1u);
  kernel.neigh[{kModemIf, ip("2001:db8:100::1")}] = {2, 0, 0, 0, 0, 0xfe};
  rules->neighbour_changed(kModemIf, ip("2001:db8:100::1"), MacAddr{2, 0, 0, 0, 0, 0xfe});
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "modem");
}

TEST_F(Ipv6RulesTest, RolesDecide) {
  rules->rebuild(cfg);
  PolicyConfig limited = cfg;
  limited.ports[kModemIf].limited = true;
  rules->rebuild(limited);
  EXPECT_EQ(rules->size(), 0u);
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "unknown_flow");
  rules->rebuild(cfg);
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "modem");
  PolicyConfig no_wifi = cfg;
  no_wifi.ports[kWifiIf].prefixes.clear();
  rules->rebuild(no_wifi);
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "unknown_flow");
  EXPECT_EQ(rules->size(), 2u);  // usb's marker and prefix rule
  rules->rebuild(cfg);
  rules->port_down(kWifi);
  EXPECT_EQ(send(kModem, kServer6, kWifiClient6), "unknown_flow");
  EXPECT_EQ(send(kWifi, kWifiClient6, kServer6), "unknown_flow");
  rules->clear();
  EXPECT_EQ(rules->size(), 0u);
  EXPECT_EQ(sync->size(), 0u);  // every next hop released
}

}  // namespace
}  // namespace tp::test
