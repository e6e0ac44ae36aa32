// Flow keys: the exact fields the engine matches, never a hash of them. One table per IP version,
// so the version is the table; the key holds the ingress port, VLAN and the full 5-tuple.
// Addresses and ports are kept in network byte order, exactly as they sit in the packet.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace tp {

// 8-byte aligned: the flow table hashes and compares keys a word at a time.
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

// IPv6 rules keyed by address, for kernels that do not track IPv6 (Android's IPv6 tethering
// offload keys its rules the same way): a client's address as reached from the upstream, a
// downstream /64 as a source (toward the upstream), and a downstream /64 as a destination, a
// marker that keeps traffic between downstreams in the kernel.
enum class Rule6 : uint8_t { client = 1, from_prefix = 2, to_prefix = 3 };
inline constexpr uint8_t kAnyPort = 0xff;

struct alignas(8) RuleKey6 {
  std::array<uint8_t, 16> addr;  // the client's address, or a /64 with its low half zero
  Rule6 kind;
  uint8_t port;   // ingress port; kAnyPort for to_prefix markers
  uint16_t vlan;  // ingress VLAN; 0 for markers
  uint32_t zero = 0;
  bool operator==(const RuleKey6&) const = default;
};
static_assert(sizeof(RuleKey6) == 24 && std::has_unique_object_representations_v<RuleKey6>);

inline RuleKey6 rule_key6(const uint8_t* addr, Rule6 kind, uint8_t port, uint16_t vlan) {
  RuleKey6 k{};
  const bool prefix = kind != Rule6::client;
  std::memcpy(k.addr.data(), addr, prefix ? 8 : 16);  // a /64 keeps its high half only
  k.kind = kind;
  k.port = port;
  k.vlan = vlan;
  return k;
}

// Address family traits: templates pick the key and header layout with `if constexpr`.
struct V4 {
  using Key = FlowKey4;
  static constexpr int version = 4;
};
struct V6 {
  using Key = FlowKey6;
  static constexpr int version = 6;
};
struct R6 {
  using Key = RuleKey6;
  static constexpr int version = 6;
};

}  // namespace tp
