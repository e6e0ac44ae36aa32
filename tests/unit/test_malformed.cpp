// Malformed input never crashes the engine and every packet ends in exactly one place: forwarded,
// punted or dropped, with the counters agreeing.
#include <gtest/gtest.h>

#include <rte_errno.h>

#include <random>

#include "dpdk_env.hpp"
#include "engine_harness.hpp"

namespace tp::test {
namespace {

using namespace lab;

class MalformedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h = std::make_unique<EngineHarness>();
    ASSERT_EQ(0, h->add_masquerade4(6, kWifiClient, 40000, kServer, 80, 61000));
    ASSERT_EQ(0, h->add_masquerade4(17, kWifiClient, 5353, kServer, 53, 61001));
    ASSERT_EQ(0, h->add_route6(6, kWifiClient6, 40000, kServer6, 443));
  }

  // Runs the frames as one burst and checks that each lands exactly once.
  void run_and_account(const std::vector<Bytes>& frames, uint8_t port = kWifi) {
    std::vector<rte_mbuf*> burst;
    for (const Bytes& f : frames) {
      rte_mbuf* m = to_mbuf(f);
      ASSERT_NE(m, nullptr);
      burst.push_back(m);
    }
    const uint64_t before = total_outcomes();
    EngineOutput& out = h->run(port, burst.data(), static_cast<uint16_t>(burst.size()));
    uint32_t landed = out.punt.n + out.drop.n;
    for (uint16_t i = 0; i < out.n_tx_ports; ++i) landed += out.tx[out.tx_ports[i]].n;
    EXPECT_EQ(landed, burst.size());
    EXPECT_EQ(total_outcomes() - before, burst.size());
    for (rte_mbuf* m : burst) rte_pktmbuf_free(m);
  }

  uint64_t total_outcomes() const {
    uint64_t n = 0;
    for (const auto& p : h->counters->ports)
      n += p.fwd_rx_packets.get() + p.punted.get() + p.dropped.get();
    return n;
  }

  std::vector<Bytes> valid_frames() const {
    return {
        PacketBuilder()
            .eth(kWifiClientMac, kWifiMac)
            .ipv4(kWifiClient, kServer)
            .tcp(40000, 80)
            .payload(60)
            .build(),
        PacketBuilder()
            .eth(kWifiClientMac, kWifiMac)
            .vlan(5)
            .ipv4(kWifiClient, kServer)
            .udp(5353, 53)
            .payload(20)
            .build(),
        PacketBuilder()
            .eth(kWifiClientMac, kWifiMac)
            .ipv6(kWifiClient6, kServer6)
            .ipv6_ext(0)
            .ipv6_ext(44)
            .udp(1, 2)
            .build(),
        PacketBuilder()
            .eth(kWifiClientMac, kWifiMac)
            .ipv6(kWifiClient6, kServer6)
            .tcp(40000, 443)
            .payload(30)
            .build(),
        PacketBuilder()
            .eth(kWifiClientMac, kWifiMac)
            .ipv4(kWifiClient, kServer)
            .icmp(8, 0, 1, 1)
            .build(),
        PacketBuilder()
            .eth(kWifiClientMac, kWifiMac)
            .ipv6(kWifiClient6, kServer6)
            .icmp6(128, 0, 1, 1)
            .build(),
    };
  }

  std::unique_ptr<EngineHarness> h;
};

TEST_F(MalformedTest, EveryTruncation) {
  for (const Bytes& f : valid_frames()) {
    std::vector<Bytes> cuts;
    for (size_t len = 0; len < f.size(); ++len) {
      cuts.emplace_back(f.begin(), f.begin() + static_cast<long>(len));
      if (cuts.size() == kMaxBurst) {
        run_and_account(cuts);
        cuts.clear();
      }
    }
    if (!cuts.empty()) run_and_account(cuts);
  }
}

TEST_F(MalformedTest, TruncatedFramesAreNeverForwarded) {
  // Cut inside the IP packet: the length fields now lie, so nothing may be forwarded.
  const Bytes f = valid_frames()[0];
  for (size_t len = 14; len < f.size(); ++len) {
    rte_mbuf* m = to_mbuf(Bytes(f.begin(), f.begin() + static_cast<long>(len)));
    EngineOutput& out = h->run(kWifi, &m, 1);
    EXPECT_EQ(out.n_tx_ports, 0) << "forwarded a frame cut to " << len << " bytes";
    rte_pktmbuf_free(m);
  }
}

TEST_F(MalformedTest, RandomByteFlips) {
  std::mt19937 rng(20261121);
  const auto frames = valid_frames();
  for (int round = 0; round < 3000; ++round) {
    std::vector<Bytes> burst;
    for (int i = 0; i < 32; ++i) {
      Bytes f = frames[rng() % frames.size()];
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) f[rng() % f.size()] = static_cast<uint8_t>(rng());
      burst.push_back(std::move(f));
    }
    run_and_account(burst);
  }
}

TEST_F(MalformedTest, RandomGarbage) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::vector<Bytes> burst;
    for (int i = 0; i < 32; ++i) {
      Bytes f(rng() % 200);
      for (auto& b : f) b = static_cast<uint8_t>(rng());
      // Make some of the garbage reach the IP parsers.
      if (f.size() >= 14 && rng() % 2) {
        const Mac m = mac(kWifiMac);
        std::copy(m.begin(), m.end(), f.begin());
        f[12] = rng() % 2 ? 0x08 : 0x86;
        f[13] = f[12] == 0x08 ? 0x00 : 0xdd;
      }
      burst.push_back(std::move(f));
    }
    run_and_account(burst, static_cast<uint8_t>(rng() % 3));
  }
}

TEST_F(MalformedTest, JumboFramesArePuntedAsTooBig) {
  rte_mempool* big =
      rte_pktmbuf_pool_create("tp_jumbo", 63, 0, 0, 10000 + RTE_PKTMBUF_HEADROOM, SOCKET_ID_ANY);
  ASSERT_NE(big, nullptr) << rte_strerror(rte_errno);
  const Bytes f = PacketBuilder()
                      .eth(kWifiClientMac, kWifiMac)
                      .ipv4(kWifiClient, kServer)
                      .tcp(40000, 80)
                      .payload(9000 - 40)
                      .build();
  rte_mbuf* m = rte_pktmbuf_alloc(big);
  std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
  EngineOutput& out = h->run(kWifi, &m, 1);
  ASSERT_EQ(out.punt.n, 1);
  EXPECT_EQ(out.punt.reasons[0], Reason::too_big);
  rte_pktmbuf_free(m);
  rte_mempool_free(big);
}

TEST_F(MalformedTest, HeadersSplitAcrossSegmentsAreMalformed) {
  const Bytes f = PacketBuilder()
                      .eth(kWifiClientMac, kWifiMac)
                      .ipv4(kWifiClient, kServer)
                      .tcp(40000, 80)
                      .payload(100)
                      .build();
  rte_mbuf* head = to_mbuf(Bytes(f.begin(), f.begin() + 30));  // cut inside the IPv4 header
  rte_mbuf* tail = to_mbuf(Bytes(f.begin() + 30, f.end()));
  ASSERT_EQ(rte_pktmbuf_chain(head, tail), 0);
  EngineOutput& out = h->run(kWifi, &head, 1);
  ASSERT_EQ(out.punt.n, 1);
  EXPECT_EQ(out.punt.reasons[0], Reason::malformed);
  rte_pktmbuf_free(head);
}

}  // namespace
}  // namespace tp::test
