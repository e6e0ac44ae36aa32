#include "dpdk_fast_path.hpp"

#include <cerrno>

#include "worker_clock.hpp"

namespace tp {

void DpdkFastPath::update_topology(const std::function<void(Topology&)>& edit) {
  auto t = t_.topology->edit();
  edit(*t);
  t_.topology->publish(std::move(t));
}

int DpdkFastPath::install(const FlowPlan4& orig, const FlowPlan4& reply) {
  return t_.v4->insert(orig.match, action_of(orig), reply.match, action_of(reply));
}

int DpdkFastPath::install(const FlowPlan6& orig, const FlowPlan6& reply) {
  FlowAction ao, ar;
  ao.set_nexthop(orig.nexthop);
  ar.set_nexthop(reply.nexthop);
  return t_.v6->insert(orig.match, ao, reply.match, ar);
}

int DpdkFastPath::add_rule(const RulePlan6& rule) {
  if (!t_.rules6) return -EINVAL;
  // A to_prefix marker is only ever found, never forwarded: its action points nowhere.
  const FlowAction a = rule.nexthop ? make_route_action(rule.nexthop) : FlowAction{};
  return t_.rules6->insert_one(rule.match, a);
}

void DpdkFastPath::remove_rule(const RuleKey6& key) {
  if (t_.rules6) t_.rules6->remove_one(key);
}

std::optional<FlowUsage> DpdkFastPath::usage(const RuleKey6& key) const {
  return t_.rules6 ? of(t_.rules6->find(key)) : std::nullopt;
}

std::optional<FlowUsage> DpdkFastPath::of(const FlowAction* a) {
  if (!a) return std::nullopt;
  return FlowUsage{a->packets.load(std::memory_order_relaxed),
                   a->bytes.load(std::memory_order_relaxed),
                   a->last_seen.load(std::memory_order_relaxed)};
}

uint32_t DpdkFastPath::clock_ms() const { return worker_clock_ms(); }

PortCounts DpdkFastPath::port_counts(uint8_t port) const {
  PortCounts t;
  for (const WorkerCounters* w : counters_) {
    const PortCounters& c = w->ports[port % kMaxPorts];
    t.rx_packets += c.rx_packets.get();
    t.rx_ip_bytes += c.rx_ip_bytes.get();
    t.fwd_rx_packets += c.fwd_rx_packets.get();
    t.fwd_rx_bytes += c.fwd_rx_bytes.get();
    t.fwd_tx_packets += c.fwd_tx_packets.get();
    t.fwd_tx_bytes += c.fwd_tx_bytes.get();
    t.punted += c.punted.get();
    t.dropped += c.dropped.get();
  }
  return t;
}

ReasonTotals DpdkFastPath::reasons() const {
  ReasonTotals r{};
  for (const WorkerCounters* w : counters_)
    for (std::size_t i = 0; i < kReasonCount; ++i) r[i] += w->reasons[i].get();
  return r;
}

}  // namespace tp
