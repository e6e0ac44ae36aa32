// The packet pool's layout: net_af_xdp (DPDK 22.11) maps [first object, first + n x object
// size) as its UMEM, so every buffer must lie inside that range (hw/packet_pool.hpp).
#include <gtest/gtest.h>

#include <rte_mbuf.h>

#include <algorithm>
#include <cstdint>

#include "dpdk_env.hpp"
#include "packet_pool.hpp"

namespace tp {
namespace {

struct Span {
  uintptr_t lo = UINTPTR_MAX, hi = 0;
};

// Bytes from the first object's header to the last object's end, over n objects' size.
double span_over_packed(rte_mempool* mp) {
  Span s;
  rte_mempool_obj_iter(
      mp,
      [](rte_mempool* m, void* arg, void* obj, unsigned) {
        auto* sp = static_cast<Span*>(arg);
        const auto start = reinterpret_cast<uintptr_t>(obj) - m->header_size;
        sp->lo = std::min(sp->lo, start);
        sp->hi = std::max(sp->hi, start + m->header_size + m->elt_size + m->trailer_size);
      },
      &s);
  const double object = mp->header_size + mp->elt_size + mp->trailer_size;
  return static_cast<double>(s.hi - s.lo) / (object * mp->size);
}

TEST(PacketPool, PackedPoolLiesExactlyInsideTheAfXdpUmem) {
  test::init_eal();
  rte_mempool* mp = hw::create_packet_pool("pp_packed", 4096, 256, 2048 + 128, true, 0);
  ASSERT_NE(mp, nullptr);
  EXPECT_DOUBLE_EQ(span_over_packed(mp), 1.0);
  rte_mbuf* m = rte_pktmbuf_alloc(mp);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(rte_pktmbuf_data_room_size(mp), 2048 + 128);
  EXPECT_EQ(rte_pktmbuf_headroom(m), RTE_PKTMBUF_HEADROOM);
  rte_pktmbuf_free(m);
  rte_mempool_free(mp);
}

// What the packed pool avoids: on 4 KiB pages (the unit tests run --no-huge) DPDK keeps each
// IOVA-contiguous buffer inside one page, one per page, so the pool spans far more than the UMEM.
TEST(PacketPool, IovaContiguousPoolOnSmallPagesHasGaps) {
  test::init_eal();
  rte_mempool* mp = hw::create_packet_pool("pp_contig", 4096, 256, 2048 + 128, false, 0);
  ASSERT_NE(mp, nullptr);
  EXPECT_GT(span_over_packed(mp), 1.5);
  rte_mempool_free(mp);
}

}  // namespace
}  // namespace tp
