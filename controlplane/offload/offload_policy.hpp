// Which conntrack entries the fast path takes, and how: a pure function of the entry, the
// kernel's routes/neighbours/addresses and the configuration. The rewrite of each direction is
// read off the original and reply tuples exactly as the kernel's flowtable does
// (nf_flow_offload_ip: SNAT when the reply is addressed elsewhere than the original source, DNAT
// when it comes from elsewhere than the original destination): the fast path copies the kernel's
// NAT decision, it never chooses a mapping.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "conntrack_entry.hpp"
#include "flow_action.hpp"
#include "rtnl_mirror.hpp"

namespace tp {

// A port as the connection manager described it (set_upstream, add_downstream).
struct PortRole {
  uint8_t port = 0;              // the engine's port index
  bool upstream = false;         // the current upstream
  bool limited = false;          // the upstream's data limit is reached
  std::vector<Prefix> prefixes;  // downstream prefixes: offload only their clients' flows
  bool emergency_only = false;   // a cellular uplink while an emergency session is active
};

struct PolicyConfig {
  bool tcp = true, udp = true, icmp = true;
  bool ipv6_conntrack = true;  // false: IPv6 is offloaded by neighbour rules (Ipv6Rules) instead
  uint32_t no_offload_mark = 0, no_offload_mask = 0;
  // The bits of the conntrack mark the box's rules copy into each packet's mark before routing
  // (a connmark restore, as mwan3 does): the route lookups use them, so fwmark rules apply.
  uint32_t route_mark_mask = 0;
  // tetherpath's own bits (a connection's session and uplink), which its classifier restores in
  // the original direction only: the reply is routed back to the client without them.
  uint32_t original_mark_mask = 0;
  // While an emergency session is active: only connections whose mark has `emergency_mark` in
  // the bits of `emergency_mask` cross an emergency_only port; the others stay in the kernel,
  // which holds them (tetherpath's classifier drops their packets, their conntrack entries live).
  uint32_t emergency_mark = 0, emergency_mask = 0;
  // Garage mode (a remote task): only connections whose mark has one of `garage_marks` in the
  // bits of `garage_mask` are offloaded; the kernel holds the others likewise.
  bool garage = false;
  std::vector<uint32_t> garage_marks;
  uint32_t garage_mask = 0;
  // Sessions whose data limit is reached: connections whose mark has one of these values in the
  // bits of `limited_mask` stay in the kernel, which drops them (tetherpath's classifier).
  std::vector<uint32_t> limited_marks;
  uint32_t limited_mask = 0;
  std::vector<Prefix> local_prefixes;  // traffic to or from these stays in the kernel
  std::map<int, PortRole> ports;       // TAP ifindex -> port
};

// Where one direction enters and leaves.
struct Direction {
  uint8_t in_port = 0;
  uint8_t out_port = 0;
  int out_ifindex = 0;
  IpAddr next_hop;
  MacAddr next_hop_mac{};
  uint16_t mtu = 0;  // the route's own MTU, where the kernel forwards by it (RouteResult::mtu)
  Rewrite rewrite = Rewrite::route;
  IpAddr nat_addr;
  uint16_t nat_port = 0;  // network order
};

struct Decision {
  // wait_route: the kernel's routing refuses it now; a route or rule change may not.
  enum Verdict { offload, no, wait_neighbour, wait_route } verdict = no;
  std::string_view reason;  // why not (a stable name, counted)
  Direction orig, reply;
};

Decision decide(const CtEntry& e, const KernelView& kernel, const PolicyConfig& cfg);

}  // namespace tp
