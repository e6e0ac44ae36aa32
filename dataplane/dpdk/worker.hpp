// A worker lcore's loop: RX burst -> engine -> buffered TX, punts onto the exception rings, and
// kernel-originated frames from the inject rings out to their ports. Owns its RX queues and one
// TX queue on every port; reports an RCU quiescent state every iteration; sleeps, offline, when
// its ports are idle. No lock, allocation or syscall while packets flow.
#pragma once

#include <rte_ethdev.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "counters.hpp"
#include "doorbell.hpp"
#include "engine.hpp"

namespace tp {

// Per port, what workers need at run time. `active` follows the kernel's admin state of the
// port's TAP (`ip link set modem0 down` stops RX/TX on the port).
struct PortRuntime {
  uint16_t eth_port = 0;
  std::atomic<bool> active{true};
  rte_ring* inject = nullptr;  // kernel -> port frames, drained by one worker (single consumer)
};

struct alignas(64) WorkerStats {
  Counter busy_cycles;  // TSC cycles in iterations that moved packets
  Counter idle_cycles;  // TSC cycles in iterations that did not, sleeping included
  Counter sleeps;
  Counter punt_ring_full;  // punted packets dropped because the exception ring was full
  Counter tx_dropped;      // packets the PMD would not take
  Counter injected;        // kernel -> port frames transmitted
};

struct WorkerConfig {
  unsigned id = 0;  // RCU thread id and TX queue index
  uint16_t burst = 32;
  uint32_t idle_sleep_max_us = 900;
  // (port index, RX queue) pairs this worker polls; port index is the engine's port number.
  std::vector<std::pair<uint8_t, uint16_t>> rx;
  // Port indexes whose inject ring this worker drains.
  std::vector<uint8_t> inject;
  // One descriptor per entry of `rx` that polls readable when that queue has frames. When every
  // queue has one, an idle worker sleeps until traffic arrives; otherwise it sleeps at most
  // idle_sleep_max_us at a time.
  std::vector<int> rx_wait_fds;
};

class Worker {
 public:
  Worker(const WorkerConfig& cfg, const Engine::Tables& tables, rte_rcu_qsbr* qsv,
         std::array<PortRuntime, kMaxPorts>& ports, uint16_t n_ports,
         std::array<rte_ring*, kMaxPorts> punt_rings);

  // Runs until stop is set; drains partial TX bursts before returning.
  void run(const std::atomic<bool>& stop);

  // Rung by the exception path after it queues frames on an inject ring this worker drains, and
  // by shutdown. `exception_doorbell` is rung by this worker after it punts.
  Doorbell doorbell;
  Doorbell* exception_doorbell = nullptr;
  // The box is suspended: the worker sleeps until this is false again and the doorbell rings,
  // traffic or not (set by the control thread, then the doorbell rung).
  std::atomic<bool> suspended{false};

  WorkerCounters counters;
  WorkerStats stats;

 private:
  struct Poll {
    uint32_t packets = 0;
    bool full = false;
  };
  Poll poll_once(uint32_t now);
  bool inject_pending() const;
  void send(uint8_t port, rte_mbuf** pkts, uint16_t n);
  void flush_all();
  void idle_sleep(uint32_t& backoff_us);
  void suspend_sleep(const std::atomic<bool>& stop);

  WorkerConfig cfg_;
  Engine engine_;
  DataLimits* limits_;
  rte_rcu_qsbr* qsv_;
  std::array<PortRuntime, kMaxPorts>& ports_;
  uint16_t n_ports_;
  std::array<rte_ring*, kMaxPorts> punt_rings_;  // ours, single producer
  std::array<rte_eth_dev_tx_buffer*, kMaxPorts> tx_buffers_{};
  EngineOutput out_;
  bool all_queues_wake_ = false;  // every RX queue has a descriptor the doorbell watches
};

}  // namespace tp
