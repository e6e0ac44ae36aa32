// What the engine does to one direction of an offloaded flow. Everything that can be computed
// at install time is (VPP nat_6t_flow_t): the new address/port and the checksum deltas, so the
// per-packet work is a few stores and two RFC 1624 updates.
#pragma once

#include <atomic>
#include <cstdint>

#include "checksum.hpp"
#include "flow_key.hpp"
#include "topology.hpp"

namespace tp {

enum class Rewrite : uint8_t {
  route = 0,  // forward unchanged but for TTL/hop limit and MACs (IPv6, routed IPv4)
  snat = 1,   // new source address and source port (ICMP echo: identifier)
  dnat = 2,   // new destination address and destination port (ICMP echo: identifier)
};

struct FlowAction {
  // Immutable once the entry is published.
  uint32_t nat_addr = 0;  // network order
  uint16_t nat_port = 0;  // network order
  uint16_t l3_delta = 0;  // IPv4 header: address change plus the TTL decrement
  uint16_t l4_delta = 0;  // TCP/UDP: pseudo-header address + port; ICMP: identifier only
  // The rewrite kind (top two bits, immutable) and the next hop (the rest) share one word: the
  // control plane repoints a flow at another next hop (route or neighbour change) with one atomic
  // store and the worker reads both with one relaxed load (the next-hop table it indexes is
  // RCU-published, see topology.hpp). Sharing it keeps the action at 32 bytes.
  std::atomic<uint16_t> route{0};
  // Written only by the worker that owns this direction's ingress queue (RSS keeps a 5-tuple on
  // one queue), read by the control plane: single writer, so plain relaxed load+store, no RMW.
  std::atomic<uint32_t> last_seen{0};  // the worker's coarse clock at the last packet
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> bytes{0};  // IP bytes (total length), link-layer headers excluded

  static constexpr unsigned kRewriteShift = 14;
  static constexpr uint16_t kNextHopMask = (1u << kRewriteShift) - 1;

  FlowAction() = default;
  FlowAction(const FlowAction& o)
      : nat_addr(o.nat_addr),
        nat_port(o.nat_port),
        l3_delta(o.l3_delta),
        l4_delta(o.l4_delta),
        route(o.route.load(std::memory_order_relaxed)) {}
  FlowAction& operator=(const FlowAction& o) {
    nat_addr = o.nat_addr;
    nat_port = o.nat_port;
    l3_delta = o.l3_delta;
    l4_delta = o.l4_delta;
    route.store(o.route.load(std::memory_order_relaxed), std::memory_order_relaxed);
    last_seen.store(0, std::memory_order_relaxed);
    packets.store(0, std::memory_order_relaxed);
    bytes.store(0, std::memory_order_relaxed);
    return *this;
  }

  static Rewrite rewrite_of(uint16_t route) { return static_cast<Rewrite>(route >> kRewriteShift); }
  static uint16_t nexthop_of(uint16_t route) { return route & kNextHopMask; }
  Rewrite rewrite() const { return rewrite_of(route.load(std::memory_order_relaxed)); }
  uint16_t nexthop() const { return nexthop_of(route.load(std::memory_order_relaxed)); }
  // Control thread only (the one writer of `route`).
  void set_route(Rewrite rw, uint16_t nh) {
    route.store(static_cast<uint16_t>(static_cast<unsigned>(rw) << kRewriteShift | nh),
                std::memory_order_relaxed);
  }
  void set_nexthop(uint16_t nh) { set_route(rewrite(), nh); }
};
static_assert(sizeof(FlowAction) == 32, "two directions with their keys must fit in 128 bytes");
static_assert(kMaxNextHops - 1 <= FlowAction::kNextHopMask);

// TTL lives in the high byte of the TTL/protocol word: decrementing it subtracts 0x0100.
inline constexpr uint32_t kTtlDecrementDelta = csum::word_delta(0x0100, 0x0000);

// IPv4 routed without NAT: only the TTL changes.
inline FlowAction make_route_action(uint16_t nexthop) {
  FlowAction a;
  a.l3_delta = csum::fold(kTtlDecrementDelta);
  a.set_route(Rewrite::route, nexthop);
  return a;
}

// IPv4 NAPT for the direction whose packets match `key`: SNAT replaces (src, sport), DNAT
// replaces (dst, dport). For ICMP echo the identifier travels in sport either way. Addresses and
// ports in network order, as in the key.
inline FlowAction make_nat44_action(const FlowKey4& key, Rewrite rw, uint32_t new_addr_be,
                                    uint16_t new_port_be, uint16_t nexthop) {
  auto ntoh32 = [](uint32_t v) { return __builtin_bswap32(v); };
  auto ntoh16 = [](uint16_t v) { return __builtin_bswap16(v); };
  const bool snat = rw == Rewrite::snat;
  const bool icmp = key.proto == 1;
  const uint32_t old_addr = ntoh32(snat ? key.src : key.dst);
  const uint16_t old_port = ntoh16(icmp || snat ? key.sport : key.dport);
  const uint32_t addr = csum::addr_delta(old_addr, ntoh32(new_addr_be));
  const uint32_t port = csum::word_delta(old_port, ntoh16(new_port_be));

  FlowAction a;
  a.nat_addr = new_addr_be;
  a.nat_port = new_port_be;
  a.l3_delta = csum::fold(addr + kTtlDecrementDelta);
  // ICMP's checksum has no pseudo-header; TCP's and UDP's cover the addresses.
  a.l4_delta = csum::fold(icmp ? port : addr + port);
  a.set_route(rw, nexthop);
  return a;
}

}  // namespace tp
