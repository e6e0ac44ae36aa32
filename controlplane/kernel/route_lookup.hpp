// The kernel's own forwarding decision for one packet: RTM_GETROUTE with the packet's input
// interface, addresses, mark, protocol and ports, which is what `ip route get DST from SRC iif
// IF mark M ipproto P sport S dport D` asks. Every ip rule, every table, blackhole / unreachable /
// prohibit routes, multipath hashing and reverse-path filtering answer exactly as for the packet
// itself; a userspace copy of the routing tables could only approximate them. One round trip per
// question (a few microseconds), asked by the control plane when it decides a flow, never by a
// worker.
#pragma once

#include <cstdint>
#include <string_view>

#include "ip_addr.hpp"

struct mnl_socket;

namespace tp {

struct RouteResult {
  int oif = 0;
  IpAddr next_hop;  // the gateway, or the destination itself when it is on-link
  // The route's own MTU where the kernel forwards by it (IPv4: whenever set; IPv6: only when
  // locked, otherwise the interface's IPv6 MTU applies); 0 when none does.
  uint16_t mtu = 0;
};

// A forwarded packet as the routing decision sees it (after conntrack's NAT in PREROUTING).
struct RouteQuery {
  int iif = 0;
  IpAddr src, dst;
  uint32_t mark = 0;  // the packet's mark when it is routed
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;  // network order; TCP and UDP only
};

// The kernel forwards the packet by `route`, or does not, for the stable reason `refused`.
struct Forwarding {
  std::string_view refused;  // empty: forwarded
  RouteResult route;
};

class RouteLookup {
 public:
  RouteLookup();  // throws std::runtime_error
  ~RouteLookup();
  RouteLookup(const RouteLookup&) = delete;
  RouteLookup& operator=(const RouteLookup&) = delete;

  Forwarding forward(const RouteQuery& q);
  uint64_t lookups = 0;

 private:
  mnl_socket* sock_ = nullptr;
  uint32_t seq_ = 1;
};

// The kernel's answer to a route lookup that failed (a negative errno), as a reason name.
std::string_view route_refusal(int err);

}  // namespace tp
