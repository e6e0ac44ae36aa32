// Data limits, enforced where the bytes flow so that the overshoot has a bound the control plane's
// polling period cannot give: each worker charges a burst's IP bytes to the ports it crossed (one
// relaxed RMW per port per burst, only on ports with a limit armed), and every engine asks once per
// burst which ports are blocked and punts what would be forwarded through them. After the burst
// that crosses a limit, each worker forwards at most the burst it already has in hand: the
// overshoot is at most one burst per worker.
//
// "Blocked" is not stored: it is derived, per burst, from the armed mask and each armed port's
// used and limit. A stored bit raised by a worker could land after the control thread disarmed or
// re-armed the port (the worker read `armed` before) and then outlive the limit it came from,
// punting the upstream forever while status showed no limit.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "max_ports.hpp"

namespace tp {

class DataLimits {
 public:
  // Workers.
  void charge(uint8_t port, uint64_t bytes) {
    const uint32_t bit = 1u << (port % kMaxPorts);
    if (!bytes || !(armed_.load(std::memory_order_relaxed) & bit)) return;
    ports_[port % kMaxPorts].used.fetch_add(bytes, std::memory_order_relaxed);
  }
  uint32_t blocked() const {
    // Acquire pairs with arm()'s release: a port seen armed is seen with its new limit and count.
    uint32_t armed = armed_.load(std::memory_order_acquire);
    uint32_t out = 0;
    while (armed) {
      const unsigned p = static_cast<unsigned>(__builtin_ctz(armed));
      armed &= armed - 1;
      const Budget& b = ports_[p];
      if (b.used.load(std::memory_order_relaxed) >= b.limit.load(std::memory_order_relaxed))
        out |= 1u << p;
    }
    return out;
  }

  // Control thread. Counting restarts at `used` (0 for a new limit, the persisted figure after a
  // restart); a limit already reached blocks at once.
  void arm(uint8_t port, uint64_t limit, uint64_t used) {
    const uint32_t bit = 1u << (port % kMaxPorts);
    Budget& b = ports_[port % kMaxPorts];
    armed_.fetch_and(~bit, std::memory_order_relaxed);
    b.limit.store(limit, std::memory_order_relaxed);
    b.used.store(used, std::memory_order_relaxed);
    armed_.fetch_or(bit, std::memory_order_release);
  }
  void disarm(uint8_t port) {
    armed_.fetch_and(~(1u << (port % kMaxPorts)), std::memory_order_release);
  }
  uint64_t used(uint8_t port) const {
    return ports_[port % kMaxPorts].used.load(std::memory_order_relaxed);
  }
  bool is_blocked(uint8_t port) const { return (blocked() >> (port % kMaxPorts)) & 1; }

 private:
  struct alignas(64) Budget {
    std::atomic<uint64_t> limit{0};
    std::atomic<uint64_t> used{0};
  };
  std::array<Budget, kMaxPorts> ports_;
  alignas(64) std::atomic<uint32_t> armed_{0};
};

}  // namespace tp
