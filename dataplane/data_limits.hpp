// Data limits, enforced where the bytes flow so that the overshoot has a bound the control plane's
// polling period cannot give: each worker charges a burst's IP bytes to the ports it crossed (one
// relaxed RMW per port per burst, only on ports with a limit armed), and the burst that crosses a
// limit raises the port's bit in `blocked`. Every engine reads `blocked` once per burst and punts
// what would be forwarded through a blocked port, so after the crossing each worker forwards at
// most the burst it already has in hand: the overshoot is at most one burst per worker.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "topology.hpp"

namespace tp {

class DataLimits {
 public:
  // Workers.
  void charge(uint8_t port, uint64_t bytes) {
    Budget& b = ports_[port % kMaxPorts];
    if (!bytes || !b.armed.load(std::memory_order_relaxed)) return;
    const uint64_t used = b.used.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (used >= b.limit.load(std::memory_order_relaxed))
      blocked_.fetch_or(1u << (port % kMaxPorts), std::memory_order_relaxed);
  }
  uint32_t blocked() const { return blocked_.load(std::memory_order_relaxed); }

  // Control thread. Counting restarts at `used` (0 for a new limit, the persisted figure after a
  // restart); a limit already reached blocks at once.
  void arm(uint8_t port, uint64_t limit, uint64_t used) {
    Budget& b = ports_[port % kMaxPorts];
    b.armed.store(false, std::memory_order_relaxed);
    b.limit.store(limit, std::memory_order_relaxed);
    b.used.store(used, std::memory_order_relaxed);
    set_blocked(port, used >= limit);
    b.armed.store(true, std::memory_order_release);
  }
  void disarm(uint8_t port) {
    ports_[port % kMaxPorts].armed.store(false, std::memory_order_relaxed);
    set_blocked(port, false);
  }
  uint64_t used(uint8_t port) const {
    return ports_[port % kMaxPorts].used.load(std::memory_order_relaxed);
  }
  bool is_blocked(uint8_t port) const { return (blocked() >> (port % kMaxPorts)) & 1; }

 private:
  void set_blocked(uint8_t port, bool on) {
    const uint32_t bit = 1u << (port % kMaxPorts);
    if (on)
      blocked_.fetch_or(bit, std::memory_order_relaxed);
    else
      blocked_.fetch_and(~bit, std::memory_order_relaxed);
  }

  struct alignas(64) Budget {
    std::atomic<bool> armed{false};
    std::atomic<uint64_t> limit{0};
    std::atomic<uint64_t> used{0};
  };
  std::array<Budget, kMaxPorts> ports_;
  alignas(64) std::atomic<uint32_t> blocked_{0};
};

}  // namespace tp
