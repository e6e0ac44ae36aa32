// Stage 3, rewrite: apply a flow direction's precomputed action to the IP and transport headers.
// IPv4 NAPT (RFC 3022) with incremental checksums (RFC 1624); IPv6 is routed, not translated.
#pragma once

#include <rte_byteorder.h>
#include <rte_ip.h>

#include <cstring>

#include "checksum.hpp"
#include "flow_action.hpp"
#include "parse.hpp"

namespace tp {

namespace detail {

inline void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

inline void update_csum(uint8_t* field, uint16_t delta) {
  const uint16_t old = rte_be_to_cpu_16(load16(field));
  store16(field, rte_cpu_to_be_16(csum::apply(old, delta)));
}

}  // namespace detail

// TTL decrement, then SNAT or DNAT of address and port/identifier. The caller has already
// checked TTL > 1 and the header lengths (parse()); `rw` is from the same load as the next hop.
inline void rewrite_ipv4(uint8_t* frame, const Parsed& p, const FlowAction& a, Rewrite rw) {
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(frame + p.l3_off);
  ip->time_to_live--;
  detail::update_csum(reinterpret_cast<uint8_t*>(&ip->hdr_checksum), a.l3_delta);
  if (rw == Rewrite::route) return;
  const bool snat = rw == Rewrite::snat;
  (snat ? ip->src_addr : ip->dst_addr) = a.nat_addr;

  uint8_t* l4 = frame + p.l4_off;
  switch (p.proto) {
    case IPPROTO_TCP:
      detail::store16(l4 + (snat ? 0 : 2), a.nat_port);
      detail::update_csum(l4 + 16, a.l4_delta);
      break;
    case IPPROTO_UDP: {
      detail::store16(l4 + (snat ? 0 : 2), a.nat_port);
      // RFC 768: zero means "no checksum" and stays zero; a computed zero is sent as all ones.
      const uint16_t old = rte_be_to_cpu_16(detail::load16(l4 + 6));
      if (old != 0) {
        const uint16_t c = csum::apply(old, a.l4_delta);
        detail::store16(l4 + 6, rte_cpu_to_be_16(c == 0 ? 0xffff : c));
      }
      break;
    }
    case IPPROTO_ICMP:  // echo: the identifier maps both ways
      detail::store16(l4 + 4, a.nat_port);
      detail::update_csum(l4 + 2, a.l4_delta);
      break;
  }
}

// Hop limit is not covered by any IPv6 checksum.
inline void rewrite_ipv6(uint8_t* frame, const Parsed& p) {
  reinterpret_cast<rte_ipv6_hdr*>(frame + p.l3_off)->hop_limits--;
}

}  // namespace tp
