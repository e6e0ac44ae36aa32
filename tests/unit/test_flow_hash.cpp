// The flow table's hash is keyed at creation: keys built offline to collide (here: under the
// CRC32C the table hashed with before, whose linearity makes such keys easy to find) still spread
// over the buckets, and two tables place the same keys differently unless given the same seed.
#include <gtest/gtest.h>

#include <rte_hash_crc.h>

#include <array>
#include <vector>

#include "dpdk_env.hpp"
#include "flow_table.hpp"

namespace tp {
namespace {

// `n` distinct IPv4 keys (one client toward port 443 of many servers, from many ports) with the
// same CRC32C. CRC is linear over GF(2), so the bit flips of the free fields whose CRC differences
// cancel form a subspace: Gaussian elimination finds it, any combination of its basis collides.
std::vector<FlowKey4> crc_collisions(std::size_t n) {
  const FlowKey4 base{0x0132a8c0u, 0x0a7100cbu, 0x409cu, 0xbb01u, 17, 1, 0};
  auto crc = [](const FlowKey4& k) { return rte_hash_crc(&k, sizeof k, 0); };
  // The free bits: destination address and both ports.
  auto flip = [](FlowKey4 k, unsigned bit) {
    if (bit < 32)
      k.dst ^= 1u << bit;
    else if (bit < 48)
      k.sport ^= static_cast<uint16_t>(1u << (bit - 32));
    else
      k.dport ^= static_cast<uint16_t>(1u << (bit - 48));
    return k;
  };
  // Rows: (CRC difference of a set of flips, the set as a 64-bit mask); reduce to zero differences.
  std::vector<std::pair<uint32_t, uint64_t>> rows;
  for (unsigned b = 0; b < 64; ++b) rows.push_back({crc(flip(base, b)) ^ crc(base), 1ull << b});
  std::vector<uint64_t> kernel;
  for (unsigned bit = 0, r = 0; bit < 32 && r < rows.size(); ++bit) {
    std::size_t p = r;
    while (p < rows.size() && !((rows[p].first >> bit) & 1)) ++p;
    if (p == rows.size()) continue;
    std::swap(rows[r], rows[p]);
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (i != r && ((rows[i].first >> bit) & 1)) {
        rows[i].first ^= rows[r].first;
        rows[i].second ^= rows[r].second;
      }
    ++r;
  }
  for (const auto& [diff, mask] : rows)
    if (diff == 0) kernel.push_back(mask);
  std::vector<FlowKey4> keys;
  for (uint64_t combo = 0; keys.size() < n && combo < (1ull << kernel.size()); ++combo) {
    uint64_t mask = 0;
    for (std::size_t i = 0; i < kernel.size(); ++i)
      if ((combo >> i) & 1) mask ^= kernel[i];
    FlowKey4 k = base;
    for (unsigned b = 0; b < 64; ++b)
      if ((mask >> b) & 1) k = flip(k, b);
    keys.push_back(k);
  }
  return keys;
}

TEST(FlowHash, KeysBuiltToCollideStillSpread) {
  test::init_eal();
  test::QsbrVar q(1);
  const auto keys = crc_collisions(400);
  ASSERT_EQ(keys.size(), 400u);
  for (const auto& k : keys)
    ASSERT_EQ(rte_hash_crc(&k, sizeof k, 0), rte_hash_crc(&keys[0], sizeof k, 0));
  auto t = FlowTable4::create("fh_crafted", 1024, q.v, SOCKET_ID_ANY);
  ASSERT_TRUE(t);
  for (const auto& k : keys) ASSERT_EQ(t->insert_one(k, FlowAction{}), 0);
  for (const auto& k : keys) EXPECT_NE(t->find(k), nullptr);
  // 400 keys in 183 buckets of 7 slots: at random, runs of a bucket or two. Sharing one hash,
  // they would fill 58 buckets in a row, and every lookup among them would walk that run.
  const auto st = t->probe_stats();
  EXPECT_LE(st.max_distance, 6u);
  EXPECT_LT(st.beyond_home, 100u);
}

// Where each key sits, in bucket order.
std::vector<uint32_t> placement(const FlowTable4& t) {
  std::vector<uint32_t> out;
  t.for_each([&](const FlowKey4& k, const FlowAction&) { out.push_back(k.src); });
  return out;
}

TEST(FlowHash, EachTableDrawsItsOwnKeyUnlessSeeded) {
  test::init_eal();
  test::QsbrVar q(1);
  auto fill = [&](const char* name, std::optional<uint64_t> seed) {
    auto t = FlowTable4::create(name, 1024, q.v, SOCKET_ID_ANY, seed);
    EXPECT_TRUE(t);
    for (uint32_t i = 0; i < 500; ++i)
      EXPECT_EQ(t->insert_one(FlowKey4{i, 0x0a7100cbu, 0x409cu, 0xbb01u, 17, 1, 0}, {}), 0);
    return placement(*t);
  };
  EXPECT_NE(fill("fh_random_a", std::nullopt), fill("fh_random_b", std::nullopt));
  EXPECT_EQ(fill("fh_seeded_a", 42), fill("fh_seeded_b", 42));
  EXPECT_NE(fill("fh_seeded_c", 42), fill("fh_seeded_d", 43));
}

}  // namespace
}  // namespace tp
