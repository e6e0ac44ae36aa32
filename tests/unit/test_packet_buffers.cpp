// The packet buffers a configuration needs: a configuration whose buffers cannot fit in
// dataplane.memory_mb is refused when it is loaded, naming the key, instead of failing at start;
// and the estimate behind that refusal never exceeds what DPDK really takes per buffer.
#include <gtest/gtest.h>

#include <rte_mempool.h>

#include "config.hpp"
#include "config_refusal.hpp"
#include "dpdk_env.hpp"
#include "packet_buffers.hpp"
#include "packet_pool.hpp"

namespace tp::conf {
namespace {

// `ports` ports of `queues` queues each, workers on lcores 1..4, then `extra` (more dataplane
// keys).
std::string yaml(int ports, int queues, const std::string& extra = "") {
  std::string y = "ports:\n";
  for (int i = 0; i < ports; ++i)
    y += "  - {name: p" + std::to_string(i) + ", role: " + (i ? "downstream" : "upstream") +
         ", device: net_null" + std::to_string(i) + ", queues: " + std::to_string(queues) + "}\n";
  return y + "dataplane:\n  worker_lcores: [1, 2, 3, 4]\n" + extra;
}

std::string refusal(const std::string& y) {
  const std::string why = config_refusal(y, "big.yaml");
  return why == "(loaded)" ? "accepted" : why;
}

TEST(PacketBuffers, ManyQueuesAreRefusedAtLoadNamingMemoryMb) {
  // 16 ports x 16 queues x 1024 RX descriptors: 262144 buffers for RX alone, over 600 MB.
  const std::string with_key = refusal(yaml(16, 16, "  memory_mb: 512\n"));
  EXPECT_EQ(with_key.rfind("big.yaml:20:14: dataplane.memory_mb: 512 MB cannot hold the packet "
                           "buffers, which alone take at least ",
                           0),
            0u)
      << with_key;
  EXPECT_NE(with_key.find("262144 RX descriptors"), std::string::npos) << with_key;
  EXPECT_NE(with_key.find("raise memory_mb or configure fewer queues"), std::string::npos);
  const std::string default_size = refusal(yaml(16, 16));
  EXPECT_EQ(
      default_size.rfind("big.yaml:1:1: dataplane.memory_mb (the default): 512 MB cannot hold", 0),
      0u)
      << default_size;
  // The same ports with the memory they need load.
  EXPECT_EQ(refusal(yaml(16, 16, "  memory_mb: 2048\n")), "accepted");
  EXPECT_EQ(refusal(yaml(3, 2)), "accepted");
}

TEST(PacketBuffers, CountsEveryDescriptorRingCacheAndBurst) {
  const Config c = load_string(yaml(3, 2, "  burst: 32\n  exception_ring_size: 1024\n"), "c.yaml");
  const PacketBuffers b = packet_buffers(c);
  EXPECT_EQ(b.rx, 3u * 2 * 1024);
  EXPECT_EQ(b.tx, 3u * 4 * 1024);
  EXPECT_EQ(b.punt_rings, 3u * 4 * 1024);
  EXPECT_EQ(b.caches, 5u * 384);
  EXPECT_EQ(b.in_flight, 4u * 32 * 4);
}

// The refusal rests on a lower bound: DPDK's objects are at least as large as counted.
TEST(PacketBuffers, EstimatePerBufferIsALowerBound) {
  test::init_eal();
  for (const char* mtu : {"1500", "9000"}) {
    const Config c = load_string(
        "ports:\n  - {name: p, role: upstream, device: net_null0, mtu: " + std::string(mtu) + "}\n",
        "c.yaml");
    for (bool packed : {true, false}) {
      rte_mempool* mp = hw::create_packet_pool("pb_estimate", 64, 0, data_room(c), packed, 0);
      ASSERT_NE(mp, nullptr);
      EXPECT_GE(mp->header_size + mp->elt_size + mp->trailer_size,
                kMempoolObjectHeader + kMbufHeader + data_room(c))
          << mtu;
      rte_mempool_free(mp);
    }
  }
}

TEST(PacketBuffers, CacheFillsToItsFlushThreshold) {
  test::init_eal();
  rte_mempool* mp = hw::create_packet_pool("pb_cache", 4096, kPoolCache, kMinDataRoom, true, 0);
  ASSERT_NE(mp, nullptr);
  EXPECT_EQ(mp->local_cache[0].flushthresh, kPoolCacheFull);
  rte_mempool_free(mp);
}

}  // namespace
}  // namespace tp::conf
