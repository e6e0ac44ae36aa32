// What the engine does to one direction of an offloaded flow. Everything that can be computed
// at install time is (VPP nat_6t_flow_t): the new address/port and the checksum deltas, so the
// per-packet work is a few stores and two RFC 1624 updates.
#pragma once

#include <atomic>
#include <cstdint>

#include "flow_plan.hpp"
#include "topology.hpp"

namespace tp {

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

// The DPDK engine's form of a plan: both transport deltas in one, since it rewrites the bytes.
inline FlowAction action_of(const FlowPlan4& p) {
  FlowAction a;
  a.nat_addr = p.nat_addr;
  a.nat_port = p.nat_port;
  a.l3_delta = p.csum.l3;
  a.l4_delta = p.csum.l4();
  a.set_route(p.rewrite, p.nexthop);
  return a;
}

inline FlowAction make_route_action(uint16_t nexthop) {
  return action_of(plan_route4(FlowKey4{}, nexthop));
}

inline FlowAction make_nat44_action(const FlowKey4& key, Rewrite rw, uint32_t new_addr_be,
                                    uint16_t new_port_be, uint16_t nexthop) {
  return action_of(plan_nat44(key, rw, new_addr_be, new_port_be, nexthop));
}

}  // namespace tp
