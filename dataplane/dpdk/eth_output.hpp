// Stage 4, output: write the next hop's MACs and make the 802.1Q tag match the egress side
// (keep, retag, strip or push one).
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <cstring>

#include "parse.hpp"
#include "topology.hpp"

namespace tp {

inline bool tagged(const Parsed& p) { return p.l3_off != sizeof(rte_ether_hdr); }

// Checked before any rewrite, so a packet that cannot be output reaches the kernel untouched.
inline bool eth_output_fits(const rte_mbuf* m, const Parsed& p, const NextHop& nh) {
  return tagged(p) || nh.vlan == 0 || rte_pktmbuf_headroom(m) >= sizeof(rte_vlan_hdr);
}

// Precondition: eth_output_fits(). Both MACs are rewritten last, so stripping or pushing a tag
// only moves the frame start: the ethertype after the MACs or the tag is already in place.
inline void eth_output(rte_mbuf* m, const Parsed& p, const NextHop& nh) {
  const bool tagged_in = tagged(p);
  auto* frame = rte_pktmbuf_mtod(m, uint8_t*);
  if (tagged_in && nh.vlan != 0) {
    auto* tag = reinterpret_cast<rte_vlan_hdr*>(frame + sizeof(rte_ether_hdr));
    const uint16_t tci = rte_be_to_cpu_16(tag->vlan_tci);
    tag->vlan_tci = rte_cpu_to_be_16(static_cast<uint16_t>((tci & 0xf000) | nh.vlan));
  } else if (tagged_in) {
    frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_adj(m, sizeof(rte_vlan_hdr)));
  } else if (nh.vlan != 0) {
    frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, sizeof(rte_vlan_hdr)));
    auto* tag = reinterpret_cast<rte_vlan_hdr*>(frame + sizeof(rte_ether_hdr));
    tag->vlan_tci = rte_cpu_to_be_16(nh.vlan);
    reinterpret_cast<rte_ether_hdr*>(frame)->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
  }
  auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
  std::memcpy(eth->dst_addr.addr_bytes, nh.dst_mac.addr_bytes, RTE_ETHER_ADDR_LEN);
  std::memcpy(eth->src_addr.addr_bytes, nh.src_mac.addr_bytes, RTE_ETHER_ADDR_LEN);
}

}  // namespace tp
