// The DPDK engine behind the engine boundary: flows go into the RCU flow tables, the topology is
// published by QSBR, data limits are the lock-free DataLimits the workers charge, and the counters
// are the workers' own, summed.
#pragma once

#include <vector>

#include "counters.hpp"
#include "data_limits.hpp"
#include "fast_path.hpp"
#include "flow_table.hpp"
#include "topology_publisher.hpp"

namespace tp {

class DpdkFastPath final : public FastPath {
 public:
  struct Tables {
    FlowTable4* v4;
    FlowTable6* v6;
    RuleTable6* rules6;  // nullptr unless offload.ipv6 is "neighbours"
    TopologyPublisher* topology;
    DataLimits* limits;
  };
  explicit DpdkFastPath(const Tables& t) : t_(t) {}
  // Each worker's counters, once it exists; they must outlive this object.
  void add_counters(const WorkerCounters* c) { counters_.push_back(c); }

  std::string_view name() const override { return "dpdk"; }
  void update_topology(const std::function<void(Topology&)>& edit) override;
  Topology topology() const override { return *t_.topology->get(); }
  int install(const FlowPlan4& orig, const FlowPlan4& reply) override;
  int install(const FlowPlan6& orig, const FlowPlan6& reply) override;
  void remove(const FlowKey4& orig, const FlowKey4& reply) override { t_.v4->remove(orig, reply); }
  void remove(const FlowKey6& orig, const FlowKey6& reply) override { t_.v6->remove(orig, reply); }
  std::optional<FlowUsage> usage(const FlowKey4& dir) const override {
    return of(t_.v4->find(dir));
  }
  std::optional<FlowUsage> usage(const FlowKey6& dir) const override {
    return of(t_.v6->find(dir));
  }
  int add_rule(const RulePlan6& rule) override;
  void remove_rule(const RuleKey6& key) override;
  std::optional<FlowUsage> usage(const RuleKey6& key) const override;
  uint32_t clock_ms() const override;
  void arm_limit(uint8_t port, uint64_t limit, uint64_t used) override {
    t_.limits->arm(port, limit, used);
  }
  void disarm_limit(uint8_t port) override { t_.limits->disarm(port); }
  uint64_t limit_used(uint8_t port) const override { return t_.limits->used(port); }
  bool limit_reached(uint8_t port) const override { return t_.limits->is_blocked(port); }
  PortCounts port_counts(uint8_t port) const override;
  ReasonTotals reasons() const override;

 private:
  static std::optional<FlowUsage> of(const FlowAction* a);

  Tables t_;
  std::vector<const WorkerCounters*> counters_;
};

}  // namespace tp
