// The exception path between the ports and the kernel, on its own thread so that no worker ever
// makes a syscall: punted frames come off the workers' rings and are written to the ingress
// port's TAP; frames the kernel sends out of a TAP are read and queued for the worker that owns
// the port's transmit side. Full queues drop and count; nothing here blocks a worker.
#pragma once

#include <rte_mempool.h>
#include <rte_ring.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "counters.hpp"
#include "doorbell.hpp"
#include "tap.hpp"
#include "worker.hpp"

namespace tp::hw {

struct alignas(64) ExceptionStats {
  Counter to_kernel;            // frames written to a TAP
  Counter to_kernel_dropped;    // the TAP would not take them (kernel queue full, TAP down)
  Counter from_kernel;          // frames read from a TAP and queued for the port
  Counter from_kernel_dropped;  // inject ring full or no mbuf
};

class ExceptionPath {
 public:
  struct PortLink {
    Tap* tap;
    std::vector<rte_ring*> punt_rings;  // one per worker, this thread is their only consumer
    rte_ring* inject;                   // this thread is its only producer
    Doorbell* inject_doorbell;          // the worker that drains `inject`
  };

  ExceptionPath(std::vector<PortLink> ports, rte_mempool* pool);
  ~ExceptionPath();

  void start();
  void stop();  // joins; frames still queued are freed
  // The box is suspended: the thread sleeps on its doorbell alone (no TAP, no timeout) until
  // resumed; what the kernel sends meanwhile waits in the TAPs' queues.
  void set_suspended(bool suspended);

  std::vector<ExceptionStats> stats;  // per port
  // Workers ring it after punting, so this thread can sleep until there is work.
  Doorbell doorbell;

 private:
  void run();
  bool pump(std::size_t port);
  bool punts_pending() const;

  std::vector<PortLink> ports_;
  rte_mempool* pool_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> suspended_{false};
  std::thread thread_;
};

}  // namespace tp::hw
