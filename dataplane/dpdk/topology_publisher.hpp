// The DPDK engine's publication of a Topology: the control plane builds a new snapshot, swaps the
// pointer, waits for a QSBR grace period, then frees the old one (grout's policy tables). Workers
// load the pointer once per burst.
#pragma once

#include <rte_rcu_qsbr.h>

#include <atomic>
#include <memory>

#include "topology.hpp"

namespace tp {

// Single-writer (control thread) RCU publication of a Topology.
class TopologyPublisher {
 public:
  explicit TopologyPublisher(rte_rcu_qsbr* qsv) : qsv_(qsv), current_(new Topology{}) {}
  ~TopologyPublisher() { delete current_.load(std::memory_order_relaxed); }
  TopologyPublisher(const TopologyPublisher&) = delete;
  TopologyPublisher& operator=(const TopologyPublisher&) = delete;

  // Worker side: valid until the worker's next quiescent-state report.
  const Topology* get() const { return current_.load(std::memory_order_acquire); }

  // Control side: a copy to edit and hand back to publish().
  std::unique_ptr<Topology> edit() const {
    return std::make_unique<Topology>(*current_.load(std::memory_order_relaxed));
  }

  // Release-store orders the new snapshot's contents before the pointer; the grace period
  // guarantees no worker still reads the old one when it is freed. Blocks until every online
  // worker has reported a quiescent state (one loop iteration).
  void publish(std::unique_ptr<Topology> next) {
    Topology* old = current_.exchange(next.release(), std::memory_order_acq_rel);
    rte_rcu_qsbr_synchronize(qsv_, RTE_QSBR_THRID_INVALID);
    delete old;
  }

 private:
  rte_rcu_qsbr* qsv_;
  std::atomic<Topology*> current_;
};

}  // namespace tp
