// What one direction of an offloaded flow is to be, computed once by the control plane in types
// every engine reads: the match, the rewrite, the next hop and the checksum deltas. The deltas are
// split so that one plan is right for every engine: the DPDK engine and XDP add them to the packet
// bytes; tc hands them to bpf_l3_csum_replace / bpf_l4_csum_replace, the address part with
// BPF_F_PSEUDO_HDR and the port part without, which keeps a CHECKSUM_PARTIAL skb correct (its
// checksum field holds only the pseudo-header sum, which covers addresses but not ports).
#pragma once

#include <cstdint>

#include "checksum.hpp"
#include "flow_key.hpp"

namespace tp {

enum class Rewrite : uint8_t {
  route = 0,  // forward unchanged but for TTL/hop limit and MACs (IPv6, routed IPv4)
  snat = 1,   // new source address and source port (ICMP echo: identifier)
  dnat = 2,   // new destination address and destination port (ICMP echo: identifier)
};

// Folded RFC 1624 deltas (csum::word_delta sums), as numeric values of the big-endian words.
struct CsumDeltas {
  uint16_t l3 = 0;       // IPv4 header: the address change and the TTL decrement
  uint16_t l4_addr = 0;  // TCP/UDP: the address change, which the pseudo-header carries
  uint16_t l4_port = 0;  // TCP/UDP: the port change; ICMP echo: the identifier change
  // The whole transport checksum update, for engines that rewrite bytes.
  uint16_t l4() const { return csum::fold(uint32_t{l4_addr} + l4_port); }
  bool operator==(const CsumDeltas&) const = default;
};

struct FlowPlan4 {
  FlowKey4 match;  // ingress port and VLAN included
  Rewrite rewrite = Rewrite::route;
  uint32_t nat_addr = 0;  // network order
  uint16_t nat_port = 0;  // network order
  uint16_t nexthop = 0;   // index into Topology::nexthops: egress port, MACs, VLAN, MTU
  CsumDeltas csum;
};

struct FlowPlan6 {  // IPv6 is routed, not translated: hop limit and MACs change
  FlowKey6 match;
  uint16_t nexthop = 0;
};

// An IPv6 address rule (offload.ipv6: neighbours). to_prefix markers have no next hop (0).
struct RulePlan6 {
  RuleKey6 match;
  uint16_t nexthop = 0;
};

// TTL lives in the high byte of the TTL/protocol word: decrementing it subtracts 0x0100.
inline constexpr uint32_t kTtlDecrementDelta = csum::word_delta(0x0100, 0x0000);

// IPv4 routed without NAT: only the TTL changes.
inline FlowPlan4 plan_route4(const FlowKey4& key, uint16_t nexthop) {
  FlowPlan4 p;
  p.match = key;
  p.nexthop = nexthop;
  p.csum.l3 = csum::fold(kTtlDecrementDelta);
  return p;
}

// IPv4 NAPT for the direction whose packets match `key`: SNAT replaces (src, sport), DNAT
// replaces (dst, dport). For ICMP echo the identifier travels in sport either way. Addresses and
// ports in network order, as in the key.
inline FlowPlan4 plan_nat44(const FlowKey4& key, Rewrite rw, uint32_t new_addr_be,
                            uint16_t new_port_be, uint16_t nexthop) {
  if (rw == Rewrite::route) return plan_route4(key, nexthop);
  auto ntoh32 = [](uint32_t v) { return __builtin_bswap32(v); };
  auto ntoh16 = [](uint16_t v) { return __builtin_bswap16(v); };
  const bool snat = rw == Rewrite::snat;
  const bool icmp = key.proto == 1;
  const uint32_t old_addr = ntoh32(snat ? key.src : key.dst);
  const uint16_t old_port = ntoh16(icmp || snat ? key.sport : key.dport);
  const uint32_t addr = csum::addr_delta(old_addr, ntoh32(new_addr_be));

  FlowPlan4 p;
  p.match = key;
  p.rewrite = rw;
  p.nat_addr = new_addr_be;
  p.nat_port = new_port_be;
  p.nexthop = nexthop;
  p.csum.l3 = csum::fold(addr + kTtlDecrementDelta);
  // ICMP's checksum has no pseudo-header; TCP's and UDP's cover the addresses.
  p.csum.l4_addr = icmp ? 0 : csum::fold(addr);
  p.csum.l4_port = csum::fold(csum::word_delta(old_port, ntoh16(new_port_be)));
  return p;
}

}  // namespace tp
