// The daemon's dataplane runtime: everything between EAL and the control plane's decisions. It
// opens the ports and their TAPs, builds the flow tables and the topology, runs the workers and
// the exception path, and mirrors link state between ports and TAPs. Built from a validated
// Config; constructing it either succeeds whole or throws with nothing left behind.
#pragma once

#include <rte_rcu_qsbr.h>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"
#include "dataplane.hpp"
#include "dpdk_fast_path.hpp"
#include "exception_path.hpp"
#include "flow_table.hpp"
#include "port.hpp"
#include "tap.hpp"
#include "topology_publisher.hpp"
#include "worker.hpp"

namespace tp {

class DpdkRuntime : public Dataplane {
 public:
  explicit DpdkRuntime(const conf::Config& cfg);  // throws RuntimeError
  ~DpdkRuntime() override;
  DpdkRuntime(const DpdkRuntime&) = delete;
  DpdkRuntime& operator=(const DpdkRuntime&) = delete;

  std::string_view engine() const override { return "dpdk"; }
  void start() override;  // launches the workers and the exception path
  void stop() override;   // drains and joins them; idempotent
  void set_suspended(bool suspended) override;

  // Port carrier -> TAP carrier, TAP admin state -> port, the TAP's MTUs (IPv4 and IPv6, as the
  // kernel has them now) -> the topology.
  void poll_links() override;
  // The ports' carrier is the PMD's, which tells no one: it is polled.
  std::chrono::milliseconds link_poll_interval() const override {
    return std::chrono::milliseconds(100);
  }
  // Human-readable counters: ports, exception path, workers (clocks per packet), reasons.
  void report(std::ostream& out) const override;
  std::size_t port_count() const override { return ports_.size(); }
  std::size_t worker_count() const override { return workers_.size(); }
  PortTotals port_totals(std::size_t port) const override;
  LinkState link_state(std::size_t port) const override {
    return {ports_[port].admin_up, ports_[port].link_up};
  }
  WorkerTotals worker_totals(std::size_t worker) const override;
  // A pool running dry stops RX.
  std::optional<std::pair<unsigned, unsigned>> free_mbufs() const override;

  FlowTable4& flows4() { return *v4_; }
  FlowTable6& flows6() { return *v6_; }
  // Only with offload.ipv6 "neighbours"; null otherwise.
  RuleTable6* rules6() { return rules6_.get(); }
  bool has_rules6() const override { return rules6_ != nullptr; }
  // Clients and downstream prefixes: a car's hotspot has tens of clients.
  static constexpr uint32_t kIpv6RuleCapacity = 8192;
  TopologyPublisher& topology() { return *topology_; }
  // The engine boundary the control plane drives: these tables, topology and limits.
  FastPath& fast_path() override { return *fast_path_; }
  rte_rcu_qsbr* qsv() { return qsv_; }
  DataLimits& limits() { return *limits_; }

 private:
  void build();
  void release();

  struct PortState {
    conf::PortConfig cfg;
    std::unique_ptr<hw::Port> port;
    std::unique_ptr<hw::Tap> tap;
    bool link_up = true;
    bool usable = true;  // admin up with carrier, as last reported
    bool admin_up = true;
    uint16_t mtu = 0, mtu6 = 0;  // as published
  };

  conf::Config cfg_;
  rte_mempool* pool_ = nullptr;
  rte_mempool* exception_pool_ = nullptr;
  rte_rcu_qsbr* qsv_ = nullptr;
  std::unique_ptr<FlowTable4> v4_;
  std::unique_ptr<FlowTable6> v6_;
  std::unique_ptr<RuleTable6> rules6_;
  std::unique_ptr<TopologyPublisher> topology_;
  std::unique_ptr<DataLimits> limits_ = std::make_unique<DataLimits>();
  std::unique_ptr<DpdkFastPath> fast_path_;
  std::vector<PortState> ports_;
  std::array<PortRuntime, kMaxPorts> port_rt_;
  std::vector<std::array<rte_ring*, kMaxPorts>> punt_rings_;  // [worker][port], nullptr-filled
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<hw::ExceptionPath> exception_;
  std::atomic<bool> stop_workers_{false};
  std::vector<unsigned> launched_;  // lcores running a worker, until stop() has joined them
};

}  // namespace tp
