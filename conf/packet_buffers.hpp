// How many packet buffers the ports' pool must hold, and what they weigh, from the configuration
// alone: the runtime sizes its pool by these numbers, and loading a configuration refuses one
// whose buffers cannot fit in dataplane.memory_mb instead of letting it fail at start.
#pragma once

#include <cstdint>
#include <string>

#include "config.hpp"

namespace tp::conf {

// Descriptors of every RX and TX queue (hw/port.cpp sets them up so; runtime.cpp checks both
// agree).
inline constexpr uint32_t kRxDescriptors = 1024;
inline constexpr uint32_t kTxDescriptors = 1024;
// Each lcore's cache of the pool; DPDK lets it fill to 1.5 times this before flushing it back
// (its flushthresh; tests/unit/test_packet_buffers.cpp checks).
inline constexpr uint32_t kPoolCache = 256;
inline constexpr uint32_t kPoolCacheFull = kPoolCache * 3 / 2;
// The exception path's own pool, for frames from the kernel.
inline constexpr uint32_t kExceptionBuffers = 4095;
// DPDK's layout of a buffer (sizeof(rte_mbuf), RTE_PKTMBUF_HEADROOM, RTE_MBUF_DEFAULT_BUF_SIZE;
// runtime.cpp checks them against DPDK's headers) and the mempool's header in front of each
// object, one cache line.
inline constexpr uint32_t kMbufHeader = 128, kMbufHeadroom = 128, kMinDataRoom = 2048 + 128;
inline constexpr uint32_t kMempoolObjectHeader = 64;

// Buffers the ports' pool can have out at once, by where they sit.
struct PacketBuffers {
  uint64_t rx = 0;          // every RX descriptor of every queue of every port
  uint64_t tx = 0;          // every TX descriptor: one TX queue per worker on every port
  uint64_t punt_rings = 0;  // every worker's ring toward the kernel, per port, full
  uint64_t caches = 0;      // the workers' and the main lcore's caches, full
  uint64_t in_flight = 0;   // per worker, a received burst and a TX buffer per port
  uint64_t total() const { return rx + tx + punt_rings + caches + in_flight; }
};

PacketBuffers packet_buffers(const Config& c);
// Data room of every buffer: the largest port MTU's frame with a VLAN tag and FCS, after the
// headroom; at least DPDK's default.
uint16_t data_room(const Config& c);
// What both pools (ports and exception path) take of dataplane.memory_mb at least.
uint64_t packet_buffer_bytes(const Config& c);
// Why dataplane.memory_mb cannot hold the packet buffers (naming what needs them), or empty.
std::string packet_buffers_shortfall(const Config& c);

}  // namespace tp::conf
