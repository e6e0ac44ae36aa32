// The engine boundary: everything the control plane asks of a forwarding engine, in the
// engine-neutral types of flow_plan.hpp and topology.hpp. The DPDK engine (dpdk/dpdk_fast_path)
// and the kernel's tc/XDP engine (bpf/bpf_fast_path) implement it; the control plane holds a
// FastPath& and never reaches past it. Control thread only: each engine publishes what it writes
// so that its packet path never sees a half-written entry (RCU for DPDK, one atomic map update
// per entry for BPF).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "flow_plan.hpp"
#include "reason.hpp"
#include "topology.hpp"

namespace tp {

// One flow direction's use. `last_used_ms` is on the engine's clock (FastPath::clock_ms()), which
// only moves forward; engines may coarsen it (the BPF engine moves it at most once a second per
// flow, which spares a busy flow's packets a store each).
struct FlowUsage {
  uint64_t packets = 0;
  uint64_t bytes = 0;  // IP bytes (total length), link-layer headers excluded
  uint32_t last_used_ms = 0;
};

// What the fast path did on one port, summed over workers or CPUs. IP bytes, as data limits count.
struct PortCounts {
  uint64_t rx_packets = 0, rx_ip_bytes = 0;       // every frame seen arriving
  uint64_t fwd_rx_packets = 0, fwd_rx_bytes = 0;  // forwarded, counted on the ingress port
  uint64_t fwd_tx_packets = 0, fwd_tx_bytes = 0;  // forwarded, counted on the egress port
  uint64_t punted = 0, dropped = 0;
  // Sent out of the port by the kernel (what it forwarded, what it sent itself), never decreasing.
  // The DPDK engine sees it on every port (the exception path); the kernel engine on the upstream
  // ports (their tc egress program).
  uint64_t kernel_tx_packets = 0, kernel_tx_bytes = 0;
};

// A counter made of the difference of two counters read a moment apart can dip for a moment; what
// is reported must not. Keeps and returns the highest value seen (compared modulo 2^64, so a
// momentary "-1" is a dip, not a leap).
inline uint64_t never_decreasing(uint64_t& kept, uint64_t now) {
  if (static_cast<int64_t>(now - kept) > 0) kept = now;
  return kept;
}

using ReasonTotals = std::array<uint64_t, kReasonCount>;

class FastPath {
 public:
  virtual ~FastPath() = default;
  virtual std::string_view name() const = 0;

  // Topology: `edit` changes the engine's current snapshot, which is then published as a whole.
  virtual void update_topology(const std::function<void(Topology&)>& edit) = 0;
  virtual Topology topology() const = 0;

  // Flows: both directions or neither. 0, or -ENOSPC (full), -EEXIST (a direction is taken),
  // -EINVAL (a plan the engine cannot carry out).
  virtual int install(const FlowPlan4& orig, const FlowPlan4& reply) = 0;
  virtual int install(const FlowPlan6& orig, const FlowPlan6& reply) = 0;
  virtual void remove(const FlowKey4& orig, const FlowKey4& reply) = 0;
  virtual void remove(const FlowKey6& orig, const FlowKey6& reply) = 0;
  // Many flows at once (a policy update resetting a session's connections). An engine whose
  // per-key removal is a system call (BPF) removes them in batches.
  virtual void remove_many(std::span<const std::pair<FlowKey4, FlowKey4>> flows) {
    for (const auto& [orig, reply] : flows) remove(orig, reply);
  }
  virtual void remove_many(std::span<const std::pair<FlowKey6, FlowKey6>> flows) {
    for (const auto& [orig, reply] : flows) remove(orig, reply);
  }
  virtual std::optional<FlowUsage> usage(const FlowKey4& dir) const = 0;
  virtual std::optional<FlowUsage> usage(const FlowKey6& dir) const = 0;
  // Many directions at once (a keepalive round): out[i] for keys[i], nullopt when not installed;
  // `out` as long as `keys`. An engine whose per-key read is a system call (BPF) reads its table
  // in batches instead.
  virtual void read_usage(std::span<const FlowKey4> keys,
                          std::span<std::optional<FlowUsage>> out) const {
    for (std::size_t i = 0; i < keys.size() && i < out.size(); ++i) out[i] = usage(keys[i]);
  }
  virtual void read_usage(std::span<const FlowKey6> keys,
                          std::span<std::optional<FlowUsage>> out) const {
    for (std::size_t i = 0; i < keys.size() && i < out.size(); ++i) out[i] = usage(keys[i]);
  }
  // IPv6 address rules (offload.ipv6: neighbours).
  virtual int add_rule(const RulePlan6& rule) = 0;
  virtual void remove_rule(const RuleKey6& key) = 0;
  virtual std::optional<FlowUsage> usage(const RuleKey6& key) const = 0;
  // Now, on the clock of FlowUsage::last_used_ms.
  virtual uint32_t clock_ms() const = 0;

  // Data limits: IP bytes through a port, both directions, are counted from `used` once armed:
  // the fast path's and the kernel path's (what the kernel forwards after a punt, and what it
  // sends out of the port itself). When they reach `limit`, what would be forwarded through the
  // port is punted (Reason::data_limit) until disarmed or re-armed; the kernel path is counted,
  // never blocked (the kernel's own policy applies to it). The fast path's overshoot is bounded by
  // the engine (one burst per worker for DPDK, one packet per CPU for BPF); the kernel path's is
  // whatever it carries. DPDK sees every packet in its workers; BPF counts the kernel's egress
  // only on ports with BpfFastPath::attach_egress.
  virtual void arm_limit(uint8_t port, uint64_t limit, uint64_t used) = 0;
  virtual void disarm_limit(uint8_t port) = 0;
  virtual uint64_t limit_used(uint8_t port) const = 0;
  virtual bool limit_reached(uint8_t port) const = 0;

  virtual PortCounts port_counts(uint8_t port) const = 0;
  virtual ReasonTotals reasons() const = 0;
};

}  // namespace tp
