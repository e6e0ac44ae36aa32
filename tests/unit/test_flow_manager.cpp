// The offload lifecycle against real flow tables and a real engine: a conntrack entry becomes
// fast-path flows whose packets come out translated; state changes, destroys, neighbour changes,
// resyncs and port loss take them out again.
#include <gtest/gtest.h>

#include "dpdk_env.hpp"
#include "engine_harness.hpp"
#include "fake_kernel.hpp"
#include "flow_manager.hpp"

namespace tp::test {
namespace {

using namespace lab;

class FlowManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h = std::make_unique<EngineHarness>();
    sync = std::make_unique<TopologySync>(*h->fast_path);
    fm = std::make_unique<FlowManager>(*h->fast_path, *sync, kernel, config(), nullptr);
  }

  // One upstream TCP packet of the masqueraded flow; returns where it went.
  std::string send_up(uint16_t cport = 40000, Bytes* out_frame = nullptr) {
    const Bytes in = PacketBuilder()
                         .eth(kWifiClientMac, kWifiMac)
                         .ipv4(kWifiClient, kServer)
                         .tcp(cport, 80)
                         .payload(20)
                         .build();
    return h->send(kWifi, in, out_frame);
  }

  FakeKernel kernel;
  std::unique_ptr<EngineHarness> h;
  std::unique_ptr<TopologySync> sync;
  std::unique_ptr<FlowManager> fm;
};

TEST_F(FlowManagerTest, EstablishedFlowIsForwardedTranslated) {
  EXPECT_EQ(send_up(), "unknown_flow");
  fm->upsert(masqueraded_tcp());
  EXPECT_EQ(fm->size(), 1u);
  Bytes got;
  ASSERT_EQ(send_up(40000, &got), "modem");
  const Bytes want = PacketBuilder()
                         .eth(kModemMac, kGatewayMac)
                         .ipv4(kModemAddr, kServer)
                         .ttl(63)
                         .tcp(61000, 80)
                         .payload(20)
                         .build();
  EXPECT_EQ(hex(got), hex(want));
  // The same entry again (an UPDATE, or our own keepalive's echo) changes nothing.
  fm->upsert(masqueraded_tcp());
  EXPECT_EQ(fm->stats().installed, 1u);
  EXPECT_EQ(fm->stats().unchanged, 1u);
}

TEST_F(FlowManagerTest, PartialUpdateEventKeepsTheFlow) {
  fm->upsert(masqueraded_tcp());
  // What a timeout refresh echoes back: tuples, no status, no TCP state.
  CtEntry e = masqueraded_tcp();
  e.present = 0;
  e.status = 0;
  e.tcp_state = 0;
  fm->upsert(e);
  EXPECT_EQ(fm->size(), 1u);
  EXPECT_EQ(fm->stats().removed, 0u);
  EXPECT_EQ(send_up(), "modem");
}

TEST_F(FlowManagerTest, PartialEventOfAnUnknownEntryIsNotJudged) {
  CtEntry e = masqueraded_tcp();
  e.present = CtEntry::kStatus;  // no TCP state
  fm->upsert(e);
  EXPECT_EQ(fm->size(), 0u);
  EXPECT_EQ(fm->stats().incomplete, 1u);
}

TEST_F(FlowManagerTest, TcpStatePastEstablishedRemoves) {
  fm->upsert(masqueraded_tcp());
  CtEntry e = masqueraded_tcp();
  e.tcp_state = 4;  // FIN_WAIT
  fm->upsert(e);
  EXPECT_EQ(fm->size(), 0u);
  EXPECT_EQ(send_up(), "unknown_flow");
  EXPECT_EQ(fm->stats().refused.at("tcp_not_established"), 1u);
}

TEST_F(FlowManagerTest, DestroyRemoves) {
  fm->upsert(masqueraded_tcp());
  fm->destroyed(masqueraded_tcp());
  EXPECT_EQ(fm->size(), 0u);
  EXPECT_EQ(send_up(), "unknown_flow");
}

TEST_F(FlowManagerTest, NeighbourMacChangeUpdatesInPlace) {
  fm->upsert(masqueraded_tcp());
  const MacAddr new_mac = {2, 0, 0, 0, 0, 0xee};
  kernel.neigh[{kModemIf, ip("100.64.0.1")}] = new_mac;
  fm->neighbour_changed(kModemIf, ip("100.64.0.1"), new_mac);
  Bytes got;
  ASSERT_EQ(send_up(40000, &got), "modem");
  EXPECT_EQ(got[5], 0xee);
  EXPECT_EQ(fm->stats().installed, 1u) << "a MAC change must not reinstall flows";
}

TEST_F(FlowManagerTest, NeighbourGoneHandsFlowsBack) {
  fm->upsert(masqueraded_tcp());
  kernel.neigh.erase({kModemIf, ip("100.64.0.1")});
  fm->neighbour_changed(kModemIf, ip("100.64.0.1"), std::nullopt);
  EXPECT_EQ(fm->size(), 0u);
  EXPECT_EQ(send_up(), "unknown_flow");
  EXPECT_EQ(fm->pending(), 1u) << "it waits for the neighbour again";
  const MacAddr mac = {2, 0, 0, 0, 0, 0xfe};
  kernel.neigh[{kModemIf, ip("100.64.0.1")}] = mac;
  fm->neighbour_changed(kModemIf, ip("100.64.0.1"), mac);
  EXPECT_EQ(fm->size(), 1u) << "back without a conntrack event";
}

TEST_F(FlowManagerTest, WaitsForAnUnresolvedNeighbour) {
  kernel.neigh.erase({kWifiIf, ip("192.168.50.10")});
  fm->upsert(masqueraded_tcp());
  EXPECT_EQ(fm->size(), 0u);
  EXPECT_EQ(fm->pending(), 1u);
  const MacAddr mac = {2, 0, 0, 0, 1, 0x0a};
  kernel.neigh[{kWifiIf, ip("192.168.50.10")}] = mac;
  fm->neighbour_changed(kWifiIf, ip("192.168.50.10"), mac);
  EXPECT_EQ(fm->size(), 1u);
  EXPECT_EQ(fm->pending(), 0u);
}

// A blackhole route for the server: the kernel drops the flow's packets, so the fast path hands
// it back; when the route goes, the flow comes back without waiting for a conntrack event.
TEST_F(FlowManagerTest, FollowsTheKernelsRoutesBothWays) {
  fm->upsert(masqueraded_tcp());
  ASSERT_EQ(send_up(), "modem");
  kernel.refused[ip("203.0.113.10")] = "route_dropped";
  fm->reevaluate_all();
  EXPECT_EQ(fm->size(), 0u);
  EXPECT_EQ(fm->parked(), 1u);
  EXPECT_EQ(send_up(), "unknown_flow");
  EXPECT_EQ(fm->stats().refused.at("route_dropped"), 1u);
  // Its uplink fails: it is that uplink's by its NAT address, and forgotten with it.
  EXPECT_TRUE(fm->take_natted_to({ip("100.65.0.2")}).empty());
  const auto taken = fm->take_natted_to({ip("100.64.0.2")});
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].orig.src, ip("192.168.50.10"));
  EXPECT_EQ(fm->parked(), 0u);
  fm->upsert(masqueraded_tcp());  // the kernel still had it: parked again
  fm->neighbour_changed(kWifiIf, ip("192.168.50.10"), MacAddr{2, 0, 0, 0, 1, 0x0a});
  EXPECT_EQ(fm->size(), 0u) << "a neighbour does not change a route";
  kernel.refused.clear();
  fm->reevaluate_all();
  EXPECT_EQ(fm->size(), 1u);
  EXPECT_EQ(fm->parked(), 0u);
  EXPECT_EQ(send_up(), "modem");
  fm->destroyed(masqueraded_tcp());
  kernel.refused[ip("203.0.113.10")] = "route_dropped";
  fm->upsert(masqueraded_tcp());
  fm->destroyed(masqueraded_tcp());
  EXPECT_EQ(fm->parked(), 0u) << "a destroyed entry is forgotten";
}

TEST_F(FlowManagerTest, ResyncPurgesWhatTheDumpDidNotShow) {
  fm->upsert(masqueraded_tcp(40000, 61000));
  fm->upsert(masqueraded_tcp(40001, 61001));
  EXPECT_EQ(fm->size(), 2u);
  fm->resync_begin();
  fm->upsert(masqueraded_tcp(40001, 61001));
  fm->upsert(masqueraded_tcp(40002, 61002));
  EXPECT_EQ(fm->size(), 2u) << "the dump is decided at its end, in one batch";
  fm->resync_end();
  EXPECT_EQ(fm->size(), 2u);
  EXPECT_EQ(send_up(40000), "unknown_flow");
  EXPECT_EQ(send_up(40001), "modem");
  EXPECT_EQ(send_up(40002), "modem");
  fm->upsert(masqueraded_tcp(40003, 61003));
  EXPECT_EQ(fm->size(), 3u) << "after the dump, events apply at once again";
}

TEST_F(FlowManagerTest, AnOffloadedFlowSaysWhereItLeaves) {
  EXPECT_FALSE(fm->out_ifindex(masqueraded_tcp()));
  fm->upsert(masqueraded_tcp());
  EXPECT_EQ(fm->out_ifindex(masqueraded_tcp()), kModemIf);
}

TEST_F(FlowManagerTest, AnAbandonedResyncPurgesNothing) {
  fm->upsert(masqueraded_tcp(40000, 61000));
  fm->resync_begin();
  fm->upsert(masqueraded_tcp(40001, 61001));
  fm->resync_abandoned();  // the dump failed: what it did not show may still be in the kernel
  EXPECT_EQ(fm->size(), 2u);
  EXPECT_EQ(send_up(40000), "modem");
  EXPECT_EQ(send_up(40001), "modem");
  fm->upsert(masqueraded_tcp(40002, 61002));
  EXPECT_EQ(fm->size(), 3u);
}

TEST_F(FlowManagerTest, PortDownHandsItsFlowsBack) {
  fm->upsert(masqueraded_tcp());
  fm->port_down(kUsb);
  EXPECT_EQ(fm->size(), 1u);
  fm->port_down(kModem);
  EXPECT_EQ(fm->size(), 0u);
}

TEST_F(FlowManagerTest, ReleaseAllEmptiesTheFastPath) {
  for (uint16_t i = 0; i < 100; ++i)
    fm->upsert(masqueraded_tcp(static_cast<uint16_t>(30000 + i), static_cast<uint16_t>(50000 + i)));
  EXPECT_EQ(fm->size(), 100u);
  EXPECT_EQ(h->v4->size(), 200u);
  fm->release_all();
  EXPECT_EQ(fm->size(), 0u);
  EXPECT_EQ(h->v4->size(), 0u);
  EXPECT_EQ(sync->size(), 0u) << "next hops are released with their last flow";
}

}  // namespace
// A restarted daemon on the kernel engine's pinned state: next hops the previous run's flows
// still point at are not handed out until those flows are installed again or dropped.
TEST_F(FlowManagerTest, InheritedNextHopsAreNotReusedUntilReleased) {
  h->fast_path->update_topology([](Topology& t) {
    t.nexthops[1].valid = true;
    t.nexthops[1].port = kModem;
  });
  const Topology before = h->fast_path->topology();
  TopologySync next_run(*h->fast_path);
  const MacAddr mac{0x02, 0, 0, 0, 0, 0x42};
  const uint16_t first = next_run.acquire(kWifi, *IpAddr::parse("192.168.50.10"), mac);
  ASSERT_NE(first, 0);
  EXPECT_FALSE(before.nexthops[first].valid) << "next hop " << first << " was in use";
  next_run.release_inherited();
  EXPECT_EQ(next_run.acquire(kUsb, *IpAddr::parse("192.168.60.10"), mac), 1);
}

}  // namespace tp::test
