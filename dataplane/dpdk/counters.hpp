// Per-core counters: each worker owns one WorkerCounters and is its only writer, so increments are
// a relaxed load and store (no locked RMW); the control plane sums all workers with relaxed loads.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "reason.hpp"
#include "topology.hpp"

namespace tp {

class Counter {
 public:
  void add(uint64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Byte counts are IP bytes (the IP total length / payload length + 40), link-layer headers
// excluded, which is what data limits count.
struct PortCounters {
  Counter rx_packets;      // every frame the engine saw from this port
  Counter rx_ip_bytes;     // IP bytes of every IP packet from this port, fast path or punted
  Counter fwd_rx_packets;  // forwarded by the fast path, counted on the ingress port
  Counter fwd_rx_bytes;
  Counter fwd_tx_packets;  // forwarded by the fast path, counted on the egress port
  Counter fwd_tx_bytes;
  Counter injected_ip_bytes;  // frames from the kernel out this port (the exception path's tx)
  Counter punted;
  Counter dropped;
};

struct alignas(64) WorkerCounters {
  std::array<Counter, kReasonCount> reasons;
  std::array<PortCounters, kMaxPorts> ports;
  Counter bursts;
  Counter packets;
};

}  // namespace tp
