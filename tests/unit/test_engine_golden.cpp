// The DPDK engine's own golden cases, beyond the shared table (test_golden.cpp): bursts, buffer
// headroom, per-burst data-limit accounting, per-worker counters.
#include <gtest/gtest.h>

#include <functional>

#include "dpdk_env.hpp"
#include "engine_harness.hpp"
#include "golden_cases.hpp"

namespace tp::test {
namespace {

using namespace lab;

class GoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_eal();
    h = std::make_unique<EngineHarness>();
    install_golden_state(*h->fast_path);
  }

  std::unique_ptr<EngineHarness> h;
};

TEST_F(GoldenTest, NoHeadroomPuntsUntouched) {
  const Bytes in = down4().udp(443, 61003).payload(30).build();
  rte_mbuf* m = rte_pktmbuf_alloc(mbuf_pool());
  ASSERT_NE(m, nullptr);
  m->data_off = 0;  // no room to push the VLAN tag
  std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(in.size())), in.data(), in.size());
  EngineOutput& out = h->run(kModem, &m, 1);
  ASSERT_EQ(out.punt.n, 1);
  EXPECT_EQ(out.punt.reasons[0], Reason::no_headroom);
  EXPECT_EQ(hex(from_mbuf(m)), hex(in));
  rte_pktmbuf_free(m);
}

TEST_F(GoldenTest, CountersFollowPackets) {
  std::vector<rte_mbuf*> burst;
  for (int i = 0; i < 3; ++i) burst.push_back(to_mbuf(up4().tcp(kCport, 80).payload(100).build()));
  burst.push_back(to_mbuf(up4().tcp(kCport, 80, kSyn).build()));
  burst.push_back(to_mbuf(Bytes(5, 0)));
  EngineOutput& out = h->run(kWifi, burst.data(), static_cast<uint16_t>(burst.size()), 777);
  EXPECT_EQ(out.tx[kModem].n, 3);

  const FlowKey4 orig{ip4(kWifiClient),
                      ip4(kServer),
                      __builtin_bswap16(kCport),
                      __builtin_bswap16(80),
                      6,
                      kWifi,
                      0};
  const FlowAction* a = h->v4->find(orig);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->packets.load(), 3u);
  EXPECT_EQ(a->bytes.load(), 3u * 140);
  EXPECT_EQ(a->last_seen.load(), 777u);

  const WorkerCounters& c = *h->counters;
  EXPECT_EQ(c.ports[kWifi].rx_packets.get(), 5u);
  EXPECT_EQ(c.ports[kWifi].rx_ip_bytes.get(), 3u * 140 + 40);  // IP bytes: SYN is 40
  EXPECT_EQ(c.ports[kWifi].fwd_rx_packets.get(), 3u);
  EXPECT_EQ(c.ports[kModem].fwd_tx_bytes.get(), 3u * 140);
  EXPECT_EQ(c.ports[kWifi].punted.get(), 1u);
  EXPECT_EQ(c.ports[kWifi].dropped.get(), 1u);
  EXPECT_EQ(c.reasons[static_cast<size_t>(Reason::tcp_control)].get(), 1u);
  EXPECT_EQ(c.reasons[static_cast<size_t>(Reason::runt)].get(), 1u);
  for (rte_mbuf* m : burst) rte_pktmbuf_free(m);
}

TEST_F(GoldenTest, BurstKeepsOrderAndSplitsByEgress) {
  std::vector<rte_mbuf*> burst;
  // Alternate v4 and v6 packets of the two upstream flows, with a punt in between.
  for (int i = 0; i < 20; ++i) {
    Bytes b = i % 3 == 0   ? up6().tcp(kCport, 443).payload(static_cast<size_t>(i)).build()
              : i % 3 == 1 ? up4().tcp(kCport, 80).payload(static_cast<size_t>(i)).build()
                           : up4().tcp(kCport, 80, kSyn).payload(static_cast<size_t>(i)).build();
    burst.push_back(to_mbuf(b));
  }
  EngineOutput& out = h->run(kWifi, burst.data(), static_cast<uint16_t>(burst.size()));
  ASSERT_EQ(out.n_tx_ports, 1);
  ASSERT_EQ(out.tx[kModem].n, 14);
  ASSERT_EQ(out.punt.n, 6);
  std::vector<size_t> want, got;
  for (size_t i = 0; i < 20; ++i)
    if (i % 3 != 2) want.push_back(14 + (i % 3 == 0 ? 60 : 40) + i);
  for (uint16_t i = 0; i < out.tx[kModem].n; ++i) got.push_back(out.tx[kModem].pkts[i]->data_len);
  EXPECT_EQ(got, want);
  for (rte_mbuf* m : burst) rte_pktmbuf_free(m);
}

// The burst that crosses a limit is still forwarded; from the next burst on, everything through
// the port is punted (overshoot: at most that one burst), both directions, until disarmed.
TEST_F(GoldenTest, DataLimitPuntsFromTheBurstAfterTheCrossing) {
  auto burst_of = [](int n, const PacketBuilder& b) {
    std::vector<rte_mbuf*> v;
    for (int i = 0; i < n; ++i) v.push_back(to_mbuf(b.build()));
    return v;
  };
  auto run = [&](uint8_t port, std::vector<rte_mbuf*>& v) -> EngineOutput& {
    return h->run(port, v.data(), static_cast<uint16_t>(v.size()));
  };
  h->limits->arm(kModem, 1000, 0);
  auto b1 = burst_of(5, up4().tcp(kCport, 80).payload(100));  // 5 x 140 IP bytes
  EXPECT_EQ(run(kWifi, b1).tx[kModem].n, 5);
  EXPECT_EQ(h->limits->used(kModem), 700u);
  EXPECT_FALSE(h->limits->is_blocked(kModem));
  auto b2 = burst_of(5, up4().tcp(kCport, 80).payload(100));
  EXPECT_EQ(run(kWifi, b2).tx[kModem].n, 5);  // read the limit before crossing it
  EXPECT_TRUE(h->limits->is_blocked(kModem));
  EXPECT_EQ(h->limits->used(kModem), 1400u);  // the overshoot: one burst

  auto b3 = burst_of(3, up4().tcp(kCport, 80).payload(100));
  EngineOutput& o3 = run(kWifi, b3);
  ASSERT_EQ(o3.punt.n, 3);
  EXPECT_EQ(o3.n_tx_ports, 0);
  EXPECT_EQ(o3.punt.reasons[0], Reason::data_limit);
  EXPECT_EQ(h->limits->used(kModem), 1400u);  // punted upstream traffic is charged when injected

  auto b4 = burst_of(2, down4().tcp(80, kNatPort).payload(60));
  EngineOutput& o4 = run(kModem, b4);
  ASSERT_EQ(o4.punt.n, 2);
  EXPECT_EQ(o4.punt.reasons[1], Reason::data_limit);
  EXPECT_EQ(h->limits->used(kModem), 1400u + 2 * 100);  // received bytes count, punted or not

  h->limits->disarm(kModem);
  auto b5 = burst_of(1, up4().tcp(kCport, 80));
  EXPECT_EQ(run(kWifi, b5).tx[kModem].n, 1);
  for (auto* v : {&b1, &b2, &b3, &b4, &b5})
    for (rte_mbuf* m : *v) rte_pktmbuf_free(m);
}

TEST_F(GoldenTest, DataLimitOfZeroBlocksAtOnce) {
  h->limits->arm(kModem, 0, 0);
  rte_mbuf* m = to_mbuf(up4().tcp(kCport, 80).build());
  EngineOutput& out = h->run(kWifi, &m, 1);
  ASSERT_EQ(out.punt.n, 1);
  EXPECT_EQ(out.punt.reasons[0], Reason::data_limit);
  rte_pktmbuf_free(m);
  // Limits on other ports leave this one alone.
  h->limits->disarm(kModem);
  h->limits->arm(kUsb, 0, 0);
  m = to_mbuf(up4().tcp(kCport, 80).build());
  EXPECT_EQ(h->run(kWifi, &m, 1).tx[kModem].n, 1);
  rte_pktmbuf_free(m);
}

}  // namespace
}  // namespace tp::test
