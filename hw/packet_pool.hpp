// The packet buffer pool the ports receive into.
//
// DPDK 22.11's net_af_xdp registers a pool's memory as its UMEM assuming the objects are packed
// back to back from the first one (populated objects x object size). A pool whose objects must
// be IOVA-contiguous is laid out with gaps at page boundaries (with 4 KiB pages, one 2.3 KiB
// buffer per page), so part of it lies beyond that UMEM: the kernel silently discards those
// buffers from the fill ring and rejects them as TX descriptors, and the port stops receiving
// once the fill ring has run dry. Virtual devices never DMA, so a pool only they use can be packed
// (no IOVA contiguity), which makes the UMEM cover it exactly. (DPDK 24.03 computes the UMEM from
// the real memory range instead.)
#pragma once

#include <rte_mempool.h>

namespace tp::hw {

// Like rte_pktmbuf_pool_create; `packed` drops IOVA contiguity (only for pools no PCI device
// DMAs into). nullptr with rte_errno set on failure.
rte_mempool* create_packet_pool(const char* name, unsigned n, unsigned cache_size,
                                uint16_t data_room, bool packed, int socket_id);

}  // namespace tp::hw
