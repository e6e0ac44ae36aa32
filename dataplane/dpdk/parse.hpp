// Stage 1, classify: read a frame's headers, decide whether it is a fast-path candidate and build
// its flow key. Every read is bounds-checked against the first segment's data length, so a
// truncated buffer or a lying length field ends in Reason::malformed, never a read past the end.
#pragma once

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <cstring>

#include "flow_key.hpp"
#include "reason.hpp"
#include "topology.hpp"

namespace tp {

// Reason::count_ stands for "no exception yet: look the flow up".
inline constexpr Reason kCandidate = Reason::count_;

struct Parsed {
  uint16_t l3_off = 0;
  uint16_t l4_off = 0;
  uint16_t vlan = 0;
  uint16_t ip_bytes = 0;  // total length of the IP packet
  uint8_t version = 0;    // 4, 6, or 0 for non-IP
  uint8_t proto = 0;
  // Addressed to one of the box's own addresses. Still a candidate: NAPT replies are addressed
  // to the box's upstream address and match their flow; a miss is then Reason::local.
  bool to_local = false;
  union {  // filled completely by parse() for candidates, left unwritten otherwise
    FlowKey4 k4;
    FlowKey6 k6;
  };
};

namespace detail {

constexpr uint8_t kIcmpEchoRequest = 8, kIcmpEchoReply = 0;
constexpr uint8_t kIcmp6EchoRequest = 128, kIcmp6EchoReply = 129;

inline bool is_icmp4_error(uint8_t t) { return t == 3 || t == 4 || t == 5 || t == 11 || t == 12; }

inline uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// TCP/UDP/ICMP: fills the key's ports, or says why the packet is not a candidate.
inline Reason parse_l4(const uint8_t* l4, uint32_t avail, uint8_t proto, uint16_t& sport,
                       uint16_t& dport) {
  switch (proto) {
    case IPPROTO_TCP: {
      if (avail < sizeof(rte_tcp_hdr)) return Reason::malformed;
      const uint8_t doff = l4[12] >> 4;
      if (doff < 5 || doff * 4u > avail) return Reason::malformed;
      if (l4[13] & (RTE_TCP_SYN_FLAG | RTE_TCP_FIN_FLAG | RTE_TCP_RST_FLAG))
        return Reason::tcp_control;
      sport = load16(l4);
      dport = load16(l4 + 2);
      return kCandidate;
    }
    case IPPROTO_UDP:
      if (avail < sizeof(rte_udp_hdr)) return Reason::malformed;
      sport = load16(l4);
      dport = load16(l4 + 2);
      return kCandidate;
    case IPPROTO_ICMP: {
      if (avail < sizeof(rte_icmp_hdr)) return Reason::malformed;
      const uint8_t type = l4[0];
      if (type == kIcmpEchoRequest || type == kIcmpEchoReply) {
        sport = load16(l4 + 4);  // identifier
        dport = rte_cpu_to_be_16(type);
        return kCandidate;
      }
      return is_icmp4_error(type) ? Reason::icmp_error : Reason::icmp_other;
    }
    case IPPROTO_ICMPV6: {
      if (avail < sizeof(rte_icmp_hdr)) return Reason::malformed;
      const uint8_t type = l4[0];
      if (type == kIcmp6EchoRequest || type == kIcmp6EchoReply) {
        sport = load16(l4 + 4);
        dport = rte_cpu_to_be_16(type);
        return kCandidate;
      }
      if (type >= 133 && type <= 137) return Reason::ndp;
      return type < 128 ? Reason::icmp_error : Reason::icmp_other;
    }
    default:
      return Reason::unsupported_l4;
  }
}

inline bool ipv4_is_local(const PortInfo& port, uint32_t dst) {
  for (uint8_t i = 0; i < port.n_local4; ++i)
    if (port.local4[i] == dst) return true;
  return false;
}

inline bool ipv6_is_local(const PortInfo& port, const uint8_t* dst) {
  for (uint8_t i = 0; i < port.n_local6; ++i)
    if (std::memcmp(port.local6[i].data(), dst, 16) == 0) return true;
  return false;
}

// Not global unicast: unspecified, loopback, v4-mapped, link-local (fe80::/10), multicast.
inline bool ipv6_non_global(const uint8_t* a) {
  static constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (a[0] == 0xff) return true;
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return true;
  if (a[0] != 0) return false;
  static constexpr uint8_t kZero[15] = {};
  if (std::memcmp(a, kZero, 15) == 0) return a[15] <= 1;  // :: and ::1
  return std::memcmp(a, kV4MappedPrefix, 12) == 0;
}

inline Reason parse_ipv4(const uint8_t* ip, uint32_t avail, const PortInfo& port, Parsed& p) {
  if (avail < sizeof(rte_ipv4_hdr)) return Reason::malformed;
  const auto* h = reinterpret_cast<const rte_ipv4_hdr*>(ip);
  const uint8_t ihl = h->version_ihl & 0x0f;
  if ((h->version_ihl >> 4) != 4 || ihl < 5) return Reason::malformed;
  const uint16_t total = rte_be_to_cpu_16(h->total_length);
  if (total < ihl * 4u || total > avail) return Reason::malformed;
  if (ihl > 5) return Reason::ipv4_options;
  // A corrupt header must reach the kernel's counters, not be "fixed" by an incremental update.
  if (rte_raw_cksum(h, sizeof(rte_ipv4_hdr)) != 0xffff) return Reason::malformed;
  p.ip_bytes = total;
  if (h->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
    return Reason::fragment;
  if (h->time_to_live <= 1) return Reason::ttl_expired;
  const uint32_t dst_host = rte_be_to_cpu_32(h->dst_addr);
  if (dst_host == 0xffffffff || (dst_host >> 28) == 0xe) return Reason::not_unicast_ip;
  p.to_local = ipv4_is_local(port, h->dst_addr);
  p.proto = h->next_proto_id;
  p.l4_off = static_cast<uint16_t>(p.l3_off + sizeof(rte_ipv4_hdr));
  p.k4.src = h->src_addr;
  p.k4.dst = h->dst_addr;
  p.k4.proto = h->next_proto_id;
  return parse_l4(ip + sizeof(rte_ipv4_hdr), total - sizeof(rte_ipv4_hdr), h->next_proto_id,
                  p.k4.sport, p.k4.dport);
}

// RFC 8200 section 4: walk the chain to tell a fragment from other extension headers.
inline Reason ipv6_ext_reason(const uint8_t* ext, uint32_t avail, uint8_t next) {
  for (int depth = 0; depth < 8; ++depth) {
    uint32_t len;
    switch (next) {
      case IPPROTO_FRAGMENT:
        return avail < 8 ? Reason::malformed : Reason::fragment;
      case IPPROTO_HOPOPTS:
      case IPPROTO_ROUTING:
      case IPPROTO_DSTOPTS:
      case 135:
      case 139:
      case 140:
      case 253:
      case 254:
        if (avail < 8) return Reason::malformed;
        len = (ext[1] + 1u) * 8;
        break;
      case IPPROTO_AH:
        if (avail < 8) return Reason::malformed;
        len = (ext[1] + 2u) * 4;
        break;
      default:
        return Reason::ipv6_ext_header;
    }
    if (len > avail) return Reason::malformed;
    next = ext[0];
    ext += len;
    avail -= len;
  }
  return Reason::ipv6_ext_header;
}

inline bool ipv6_is_ext_header(uint8_t next) {
  switch (next) {
    case IPPROTO_HOPOPTS:
    case IPPROTO_ROUTING:
    case IPPROTO_FRAGMENT:
    case IPPROTO_DSTOPTS:
    case IPPROTO_AH:
    case 135:
    case 139:
    case 140:
    case 253:
    case 254:
      return true;
    default:
      return false;
  }
}

inline Reason parse_ipv6(const uint8_t* ip, uint32_t avail, const PortInfo& port, Parsed& p) {
  if (avail < sizeof(rte_ipv6_hdr)) return Reason::malformed;
  const auto* h = reinterpret_cast<const rte_ipv6_hdr*>(ip);
  if ((ip[0] >> 4) != 6) return Reason::malformed;
  const uint32_t total = rte_be_to_cpu_16(h->payload_len) + uint32_t{sizeof(rte_ipv6_hdr)};
  if (total > avail) return Reason::malformed;  // also rejects jumbograms (payload_len 0 + HBH)
  p.ip_bytes = static_cast<uint16_t>(total);
  if (h->hop_limits <= 1) return Reason::ttl_expired;
  if (ipv6_non_global(h->src_addr) || ipv6_non_global(h->dst_addr)) return Reason::ipv6_non_global;
  p.to_local = ipv6_is_local(port, h->dst_addr);
  const uint32_t payload = total - sizeof(rte_ipv6_hdr);
  if (ipv6_is_ext_header(h->proto))
    return ipv6_ext_reason(ip + sizeof(rte_ipv6_hdr), payload, h->proto);
  p.proto = h->proto;
  p.l4_off = static_cast<uint16_t>(p.l3_off + sizeof(rte_ipv6_hdr));
  std::memcpy(p.k6.src.data(), h->src_addr, 16);
  std::memcpy(p.k6.dst.data(), h->dst_addr, 16);
  p.k6.proto = h->proto;
  return parse_l4(ip + sizeof(rte_ipv6_hdr), payload, h->proto, p.k6.sport, p.k6.dport);
}

}  // namespace detail

// Classifies the frame in `m` (first segment only; headers split across segments are malformed)
// as received on `port_id`. On kCandidate, `p` holds the flow key for the lookup.
inline Reason parse(const rte_mbuf* m, uint8_t port_id, const PortInfo& port, Parsed& p) {
  const auto* frame = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint32_t len = m->data_len;
  if (len < sizeof(rte_ether_hdr)) return Reason::runt;
  const auto* eth = reinterpret_cast<const rte_ether_hdr*>(frame);
  uint16_t ether_type = eth->ether_type;
  uint32_t l3 = sizeof(rte_ether_hdr);
  if (ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN) ||
      ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_QINQ)) {
    if (len < l3 + sizeof(rte_vlan_hdr)) return Reason::malformed;
    const auto* tag = reinterpret_cast<const rte_vlan_hdr*>(frame + l3);
    p.vlan = rte_be_to_cpu_16(tag->vlan_tci) & 0x0fff;
    ether_type = tag->eth_proto;
    l3 += sizeof(rte_vlan_hdr);
    if (ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN) ||
        ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_QINQ))
      return Reason::vlan_stacked;
  }
  if (ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) return Reason::arp;
  if (!rte_is_unicast_ether_addr(&eth->dst_addr)) return Reason::l2_multicast;
  if (std::memcmp(eth->dst_addr.addr_bytes, port.mac.addr_bytes, RTE_ETHER_ADDR_LEN) != 0)
    return Reason::l2_other_host;
  p.l3_off = static_cast<uint16_t>(l3);
  if (ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
    p.version = 4;
    p.k4.port = port_id;
    p.k4.vlan = p.vlan;
    return detail::parse_ipv4(frame + l3, len - l3, port, p);
  }
  if (ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6)) {
    p.version = 6;
    p.k6.port = port_id;
    p.k6.vlan = p.vlan;
    return detail::parse_ipv6(frame + l3, len - l3, port, p);
  }
  return Reason::not_ip;
}

// The IP bytes a frame carries by its own header (0 for non-IP or too short), for charging the
// kernel's frames to a data limit without a full parse.
inline uint32_t frame_ip_bytes(const rte_mbuf* m) {
  const auto* frame = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint32_t len = m->data_len;
  uint32_t l3 = sizeof(rte_ether_hdr);
  if (len < l3) return 0;
  uint16_t ether_type = reinterpret_cast<const rte_ether_hdr*>(frame)->ether_type;
  if (ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN)) {
    if (len < l3 + sizeof(rte_vlan_hdr)) return 0;
    ether_type = reinterpret_cast<const rte_vlan_hdr*>(frame + l3)->eth_proto;
    l3 += sizeof(rte_vlan_hdr);
  }
  if (ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) && len >= l3 + sizeof(rte_ipv4_hdr))
    return rte_be_to_cpu_16(detail::load16(frame + l3 + 2));
  if (ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6) && len >= l3 + sizeof(rte_ipv6_hdr))
    return rte_be_to_cpu_16(detail::load16(frame + l3 + 4)) + uint32_t{sizeof(rte_ipv6_hdr)};
  return 0;
}

}  // namespace tp
