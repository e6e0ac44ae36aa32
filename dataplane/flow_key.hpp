// Flow keys: the exact fields the engine matches, never a hash of them. One table per IP version,
// so the version is the table; the key holds the ingress port, VLAN and the full 5-tuple.
// Addresses and ports are kept in network byte order, exactly as they sit in the packet.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace tp {

// 8-byte aligned: rte_hash_crc reads keys 8 bytes at a time.
struct alignas(8) FlowKey4 {
  uint32_t src;
  uint32_t dst;
  uint16_t sport;  // ICMP echo: the identifier
  uint16_t dport;  // ICMP echo: the type (8 request, 0 reply), so requests and replies differ
  uint8_t proto;
  uint8_t port;   // ingress port index
  uint16_t vlan;  // 0: untagged
  bool operator==(const FlowKey4&) const = default;
};
static_assert(sizeof(FlowKey4) == 16 && std::has_unique_object_representations_v<FlowKey4>);

struct alignas(8) FlowKey6 {
  std::array<uint8_t, 16> src;
  std::array<uint8_t, 16> dst;
  uint16_t sport;
  uint16_t dport;  // ICMPv6 echo: the type (128 request, 129 reply)
  uint8_t proto;
  uint8_t port;
  uint16_t vlan;
  bool operator==(const FlowKey6&) const = default;
};
static_assert(sizeof(FlowKey6) == 40 && std::has_unique_object_representations_v<FlowKey6>);

// Address family traits: templates pick the key and header layout with `if constexpr`.
struct V4 {
  using Key = FlowKey4;
  static constexpr int version = 4;
};
struct V6 {
  using Key = FlowKey6;
  static constexpr int version = 6;
};

}  // namespace tp
