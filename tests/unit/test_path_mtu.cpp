// The fast path forwards nothing the kernel would answer with Packet Too Big / Fragmentation
// Needed: the egress interface's MTU as the kernel has it now (a later `ip link set ... mtu`, the
// IPv6 MTU a router advertised), and a route's own MTU, bound what a flow forwards.
#include <gtest/gtest.h>

#include "dpdk_env.hpp"
#include "engine_harness.hpp"
#include "fake_kernel.hpp"
#include "flow_manager.hpp"

namespace tp::test {
namespace {

using namespace lab;

// A TCP packet of `bytes` IP bytes of the masqueraded flow, client to server.
Bytes up(uint16_t bytes) {
  return PacketBuilder()
      .eth(kWifiClientMac, kWifiMac)
      .ipv4(kWifiClient, kServer)
      .tcp(40000, 80)
      .payload(bytes - 40)
      .build();
}

class PathMtuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_eal();
    h = std::make_unique<EngineHarness>();
    sync = std::make_unique<TopologySync>(*h->fast_path);
    fm = std::make_unique<FlowManager>(*h->fast_path, *sync, kernel, config(), nullptr);
    fm->upsert(masqueraded_tcp());
  }
  void set_port_mtu(uint8_t port, uint16_t mtu) {
    auto t = h->topology->edit();
    t->ports[port].mtu = mtu;
    h->topology->publish(std::move(t));
  }

  FakeKernel kernel;
  std::unique_ptr<EngineHarness> h;
  std::unique_ptr<TopologySync> sync;
  std::unique_ptr<FlowManager> fm;
};

// The egress port's MTU as published now, not as it was when the flow's next hop was made.
TEST_F(PathMtuTest, EgressMtuLoweredAfterInstallBoundsTheFlow) {
  EXPECT_EQ(h->send(kWifi, up(1400)), "modem");
  set_port_mtu(kModem, 1300);
  EXPECT_EQ(h->send(kWifi, up(1301)), "too_big");
  EXPECT_EQ(h->send(kWifi, up(1300)), "modem");
}

// IPv6 leaves under the IPv6 MTU, which a router advertisement may set below the link's.
TEST_F(PathMtuTest, Ipv6IsBoundedByTheIpv6Mtu) {
  ASSERT_EQ(h->add_route6(17, kWifiClient6, 5000, kServer6, 53), 0);
  auto up6 = [](uint16_t bytes) {
    return PacketBuilder()
        .eth(kWifiClientMac, kWifiMac)
        .ipv6(kWifiClient6, kServer6)
        .udp(5000, 53)
        .payload(bytes - 48)
        .build();
  };
  EXPECT_EQ(h->send(kWifi, up6(1400)), "modem");
  auto t = h->topology->edit();
  t->ports[kModem].mtu6 = 1280;
  h->topology->publish(std::move(t));
  EXPECT_EQ(h->send(kWifi, up6(1281)), "too_big");
  EXPECT_EQ(h->send(kWifi, up6(1280)), "modem");
  EXPECT_EQ(h->send(kWifi, up(1400)), "modem");  // IPv4 keeps the link MTU
}

// A route's own MTU (`ip route ... mtu 1300`): the flows it carries are decided again when it
// changes and leave through a next hop that carries it.
TEST_F(PathMtuTest, RouteMtuBoundsTheFlowsOnTheRoute) {
  kernel.default_route_mtu = 1300;
  fm->reevaluate_all();
  EXPECT_EQ(h->send(kWifi, up(1301)), "too_big");
  EXPECT_EQ(h->send(kWifi, up(1300)), "modem");
  kernel.default_route_mtu = 0;
  fm->reevaluate_all();
  EXPECT_EQ(h->send(kWifi, up(1400)), "modem");
  EXPECT_EQ(fm->size(), 1u);
  EXPECT_EQ(sync->size(), 2u);  // the capped next hop went with the last flow using it
}

// Next hops of one neighbour reached over routes of different MTUs all follow its MAC.
TEST_F(PathMtuTest, EveryNextHopOfANeighbourFollowsItsMac) {
  const IpAddr gw = ip("100.64.0.1");
  const uint16_t plain = sync->acquire(kModem, gw, {2, 0, 0, 0, 0, 0xfe});
  const uint16_t capped = sync->acquire(kModem, gw, {2, 0, 0, 0, 0, 0xfe}, 1300);
  ASSERT_NE(plain, capped);
  EXPECT_EQ(h->topology->get()->nexthops[capped].mtu, 1300);
  EXPECT_TRUE(sync->update_mac(kModem, gw, {2, 0, 0, 0, 0, 0xef}));
  for (uint16_t nh : {plain, capped})
    EXPECT_EQ(h->topology->get()->nexthops[nh].dst_mac.addr_bytes[5], 0xef);
  sync->release(plain);
  sync->release(capped);
}

}  // namespace
}  // namespace tp::test
