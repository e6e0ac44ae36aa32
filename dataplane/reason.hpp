// Every packet the engine does not forward ends in exactly one named reason, counted per core.
// Punts go to the kernel through the exception path of the ingress port; drops are freed.
// Prefer punt: the kernel is the slow path and owns correctness (xdp-forward, Android offload.c).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace tp {

enum class Reason : uint8_t {
  // Punts.
  unknown_flow,     // no fast-path entry: the kernel routes/NATs it and conntrack may offload it
  tcp_control,      // SYN/FIN/RST: conntrack must see every TCP state change
  fragment,         // IPv4 MF/offset or IPv6 fragment header: the kernel reassembles/tracks
  ttl_expired,      // TTL/hop limit <= 1: the kernel sends Time Exceeded
  ipv4_options,     // IHL > 5
  ipv6_ext_header,  // any extension header other than a fragment header
  too_big,          // larger than the egress MTU: the kernel fragments or sends PTB/Frag Needed
  icmp_error,       // embedded headers need translating, which the kernel does
  icmp_other,       // ICMP that is neither echo nor an error (router solicitations, MLD, ...)
  arp,
  ndp,              // ICMPv6 133..137
  not_ip,           // any other ethertype
  l2_multicast,     // broadcast or multicast destination MAC
  l2_other_host,    // unicast frame for another MAC (promiscuous backends see these)
  not_unicast_ip,   // IPv4 broadcast/multicast destination
  ipv6_non_global,  // link-local, multicast, loopback, unspecified or v4-mapped address
  local,            // to the box itself (no flow matched)
  unsupported_l4,   // any protocol other than TCP, UDP, ICMP, ICMPv6
  vlan_stacked,     // more than one 802.1Q/802.1ad tag
  malformed,        // truncated header, lying length, bad IPv4 header checksum, IHL < 5
  no_nexthop,       // the flow's next hop was withdrawn or its egress port is down
  no_headroom,      // a VLAN tag must be pushed and the buffer has no room in front
  port_disabled,    // the ingress port is not (yet) part of the published topology
  // Drops: not even a frame the kernel could account for.
  runt,             // shorter than an Ethernet header
  count_
};

inline constexpr std::size_t kReasonCount = static_cast<std::size_t>(Reason::count_);
inline constexpr Reason kFirstDropReason = Reason::runt;

constexpr bool is_drop(Reason r) { return r >= kFirstDropReason; }

inline constexpr std::array<std::string_view, kReasonCount> kReasonNames = {
    "unknown_flow", "tcp_control",    "fragment",        "ttl_expired",    "ipv4_options",
    "ipv6_ext_header", "too_big",     "icmp_error",      "icmp_other",     "arp",
    "ndp",          "not_ip",         "l2_multicast",    "l2_other_host",  "not_unicast_ip",
    "ipv6_non_global", "local",       "unsupported_l4",  "vlan_stacked",   "malformed",
    "no_nexthop",   "no_headroom",    "port_disabled",   "runt",
};

constexpr std::string_view name(Reason r) { return kReasonNames[static_cast<std::size_t>(r)]; }

}  // namespace tp
