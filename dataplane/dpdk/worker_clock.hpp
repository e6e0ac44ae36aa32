// The workers' coarse clock: milliseconds of the TSC, what FlowAction::last_seen holds. One
// definition, so the control plane compares last-seen stamps with the same clock.
#pragma once

#include <rte_cycles.h>

#include <cstdint>

namespace tp {

inline uint32_t worker_clock_ms(uint64_t tsc, uint64_t tsc_per_ms) {
  return static_cast<uint32_t>(tsc / tsc_per_ms);
}

inline uint32_t worker_clock_ms() { return worker_clock_ms(rte_rdtsc(), rte_get_tsc_hz() / 1000); }

}  // namespace tp
