// One's-complement checksum arithmetic (RFC 1071) and incremental update (RFC 1624, eqn. 3).
// Values are the numeric (host-order) value of big-endian 16-bit words; since the one's-complement
// sum commutes with byte swapping, callers convert with rte_be_to_cpu_16 at the edges.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tp::csum {

constexpr uint16_t fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Delta to add when a 16-bit word changes from old_word to new_word: ~m + m'.
constexpr uint32_t word_delta(uint16_t old_word, uint16_t new_word) {
  return static_cast<uint16_t>(~old_word) + uint32_t{new_word};
}

constexpr uint32_t addr_delta(uint32_t old_addr, uint32_t new_addr) {
  return word_delta(old_addr >> 16, new_addr >> 16) +
         word_delta(old_addr & 0xffff, new_addr & 0xffff);
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). `delta` is a folded sum of word_delta() terms.
constexpr uint16_t apply(uint16_t checksum, uint16_t delta) {
  return static_cast<uint16_t>(~fold(uint32_t{static_cast<uint16_t>(~checksum)} + delta));
}

// Full computation, for tests and the builder: one's-complement sum of big-endian words.
inline uint32_t sum_bytes(const void* data, std::size_t len, uint32_t initial = 0) {
  auto* p = static_cast<const uint8_t*>(data);
  uint64_t sum = initial;
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
  if (len & 1) sum += uint32_t{p[len - 1]} << 8;
  return fold(sum);
}

inline uint16_t finish(uint32_t sum) { return static_cast<uint16_t>(~fold(sum)); }

}  // namespace tp::csum
