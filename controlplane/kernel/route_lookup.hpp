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
#include <unordered_map>
#include <vector>

#include "ip_addr.hpp"

struct mnl_socket;
struct nlmsghdr;

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
  bool operator==(const RouteQuery&) const = default;
};

struct RouteQueryHash {
  std::size_t operator()(const RouteQuery& q) const;
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

  // Many questions at once (deciding every flow again after a route change): one round trip per
  // question costs two system calls and a wakeup; a batch of them in one send costs that once.
  // While collecting, forward() answers what was fetched and notes the rest (answering
  // "route_lookup_pending"); fetch() asks the kernel everything noted; after collected(),
  // forward() asks the kernel what was not fetched; forget() drops the answers (they are good
  // only until the next route change).
  void collect() { collecting_ = true; }
  std::size_t fetch();
  void collected() { collecting_ = false; }
  void forget();

 private:
  static std::size_t encode(char* at, const RouteQuery& q, uint32_t seq);
  static Forwarding decode(const nlmsghdr* m, const RouteQuery& q);

  mnl_socket* sock_ = nullptr;
  uint32_t seq_ = 1;
  bool collecting_ = false;
  std::vector<RouteQuery> wanted_;
  std::unordered_map<RouteQuery, Forwarding, RouteQueryHash> fetched_;
};

// The kernel's answer to a route lookup that failed (a negative errno), as a reason name.
std::string_view route_refusal(int err);

}  // namespace tp
