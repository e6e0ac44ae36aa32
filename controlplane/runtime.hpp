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
#include "exception_path.hpp"
#include "flow_table.hpp"
#include "port.hpp"
#include "tap.hpp"
#include "topology.hpp"
#include "worker.hpp"

namespace tp {

struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Runtime {
 public:
  explicit Runtime(const conf::Config& cfg);  // throws RuntimeError
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  void start();  // launches the workers and the exception path
  void stop();   // drains and joins them; idempotent

  // Control thread, every ~100 ms: port carrier -> TAP carrier, TAP admin state -> port.
  void poll_links();
  // Called from poll_links when a port loses its carrier or is set down.
  std::function<void(uint8_t port)> on_port_down;
  // Human-readable counters: ports, exception path, workers (clocks per packet), reasons.
  void report(std::ostream& out) const;

  FlowTable4& flows4() { return *v4_; }
  FlowTable6& flows6() { return *v6_; }
  TopologyPublisher& topology() { return *topology_; }
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
    bool link_reported = true;
    bool admin_up = true;
  };

  conf::Config cfg_;
  rte_mempool* pool_ = nullptr;
  rte_mempool* exception_pool_ = nullptr;
  rte_rcu_qsbr* qsv_ = nullptr;
  std::unique_ptr<FlowTable4> v4_;
  std::unique_ptr<FlowTable6> v6_;
  std::unique_ptr<TopologyPublisher> topology_;
  std::unique_ptr<DataLimits> limits_ = std::make_unique<DataLimits>();
  std::vector<PortState> ports_;
  std::array<PortRuntime, kMaxPorts> port_rt_;
  std::vector<std::array<rte_ring*, kMaxPorts>> punt_rings_;  // [worker][port], nullptr-filled
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<hw::ExceptionPath> exception_;
  std::atomic<bool> stop_workers_{false};
  bool running_ = false;
};

}  // namespace tp
