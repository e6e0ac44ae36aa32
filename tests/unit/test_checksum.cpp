// RFC 1624 incremental updates must equal full recomputation (RFC 1071) for any header and any
// change, including the 0x0000/0xffff corner that RFC 1624 section 3 is about.
#include <gtest/gtest.h>

#include <random>

#include "checksum.hpp"
#include "flow_action.hpp"

namespace tp {
namespace {

uint16_t full(const std::vector<uint16_t>& words) {
  uint32_t s = 0;
  for (uint16_t w : words) s += w;
  return csum::finish(s);
}

TEST(Checksum, IncrementalEqualsFullRecomputation) {
  std::mt19937 rng(1624);
  for (int iter = 0; iter < 200000; ++iter) {
    std::vector<uint16_t> words(10);
    for (auto& w : words) w = static_cast<uint16_t>(rng());
    const uint16_t before = full(words);
    // Change one to three words, as NAT changes address halves and a port.
    uint32_t delta = 0;
    const int changes = 1 + static_cast<int>(rng() % 3);
    for (int c = 0; c < changes; ++c) {
      const size_t at = rng() % words.size();
      const auto nw = static_cast<uint16_t>(rng());
      delta += csum::word_delta(words[at], nw);
      words[at] = nw;
    }
    const uint16_t incremental = csum::apply(before, csum::fold(delta));
    const uint16_t recomputed = full(words);
    // Both are valid encodings of the same sum; eqn. 3 never yields 0xffff from a real checksum.
    ASSERT_EQ(incremental, recomputed) << "iteration " << iter;
  }
}

TEST(Checksum, Rfc1624Example) {
  // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
  EXPECT_EQ(csum::apply(0xdd2f, csum::fold(csum::word_delta(0x5555, 0x3285))), 0x0000);
}

TEST(Checksum, TtlDecrementDelta) {
  std::vector<uint16_t> hdr = {0x4500, 0x0073, 0x0000, 0x4000, 0x4011,
                               0x0000, 0xc0a8, 0x0001, 0xc0a8, 0x00c7};
  const uint16_t before = full(hdr);
  EXPECT_EQ(before, 0xb861);
  hdr[4] = 0x3f11;
  EXPECT_EQ(csum::apply(before, csum::fold(kTtlDecrementDelta)), full(hdr));
}

TEST(Checksum, SumBytesHandlesOddLength) {
  const uint8_t b[3] = {0x12, 0x34, 0x56};
  EXPECT_EQ(csum::sum_bytes(b, 3), 0x1234 + 0x5600);
}

}  // namespace
}  // namespace tp
