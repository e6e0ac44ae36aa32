#include "packet_buffers.hpp"

#include <algorithm>

namespace tp::conf {

PacketBuffers packet_buffers(const Config& c) {
  const uint64_t ports = c.ports.size(), workers = c.dataplane.worker_lcores.size();
  PacketBuffers b;
  for (const PortConfig& p : c.ports) b.rx += uint64_t{p.queues} * kRxDescriptors;
  b.tx = ports * workers * kTxDescriptors;
  b.punt_rings = ports * workers * c.dataplane.exception_ring_size;
  b.caches = (workers + 1) * kPoolCacheFull;
  b.in_flight = workers * c.dataplane.burst * (1 + ports);
  return b;
}

uint16_t data_room(const Config& c) {
  uint32_t mtu = 0;
  for (const PortConfig& p : c.ports) mtu = std::max<uint32_t>(mtu, p.mtu);
  const uint32_t frame = mtu + 14 + 4 + 4;  // Ethernet header, one VLAN tag, FCS
  return static_cast<uint16_t>(std::max(kMinDataRoom, frame + kMbufHeadroom));
}

uint64_t packet_buffer_bytes(const Config& c) {
  const uint64_t object = kMempoolObjectHeader + kMbufHeader + data_room(c);
  return (packet_buffers(c).total() + kExceptionBuffers) * object;
}

std::string packet_buffers_shortfall(const Config& c) {
  const uint64_t need_mb = (packet_buffer_bytes(c) + (1 << 20) - 1) >> 20;
  if (need_mb <= c.dataplane.memory_mb) return "";
  const PacketBuffers b = packet_buffers(c);
  return std::to_string(c.dataplane.memory_mb) +
         " MB cannot hold the packet buffers, which alone " + "take at least " +
         std::to_string(need_mb) + " MB: " + std::to_string(b.total()) + " for the ports (" +
         std::to_string(b.rx) + " RX descriptors over the ports' queues, " + std::to_string(b.tx) +
         " TX descriptors, " + std::to_string(b.punt_rings) + " in the exception rings, " +
         std::to_string(b.caches + b.in_flight) + " in caches and bursts) and " +
         std::to_string(kExceptionBuffers) + " for the exception path, of " +
         std::to_string(kMempoolObjectHeader + kMbufHeader + data_room(c)) +
         " bytes each; raise memory_mb or configure fewer queues";
}

}  // namespace tp::conf
