// IPv6 offload for kernels that do not track IPv6 (offload.ipv6: neighbours), the way Android's
// tethering offload does it: no per-flow state, rules keyed by address. For each downstream /64
// prefix, packets from it go to the upstream's default router; for each resolved neighbour inside
// such a prefix, packets from the upstream to that address go to it. A marker per downstream prefix
// keeps traffic between downstreams in the kernel, and the engine leaves to the kernel whatever a
// rule would forward to or from the box's own addresses (any interface) or a local prefix. Rules
// follow the neighbour table: a client that appears gets its rule, one that changes MAC moves with
// it, one that goes away loses it (its packets go to the kernel, which resolves it again).
// Control thread only.
#pragma once

#include <cstring>
#include <functional>
#include <map>
#include <optional>

#include "fast_path.hpp"
#include "offload_policy.hpp"
#include "rtnl_mirror.hpp"
#include "topology_sync.hpp"

namespace tp {

class Ipv6Rules {
 public:
  Ipv6Rules(FastPath& engine, TopologySync& topo, const KernelView& kernel);
  ~Ipv6Rules();

  // Roles (upstream, downstream and local prefixes), routes or the box's addresses changed: the
  // rules are made to match them.
  void rebuild(const PolicyConfig& cfg);
  void neighbour_changed(int ifindex, const IpAddr& addr, std::optional<MacAddr> mac);
  // A port went down: rules through it go (rebuild() brings them back when it is up).
  void port_down(uint8_t port);
  void clear();

  std::size_t size() const { return rules_.size(); }
  uint64_t waiting_for_router() const { return waiting_for_router_; }
  // Rebuilds that found more local prefixes and box addresses than the engine checks, and so left
  // every IPv6 packet to the kernel.
  uint64_t too_many_local() const { return too_many_local_; }
  struct View {
    Rule6 kind;
    IpAddr addr;
    uint8_t in_port, out_port;
    uint64_t packets, bytes;
  };
  void for_each(const std::function<void(const View&)>& fn) const;

 private:
  // The next hop a rule forwards to: the neighbour's port, address and MAC, and the MTU of the
  // route that leads there (RouteResult::mtu). A marker has none.
  struct Hop {
    uint8_t port;
    IpAddr addr;
    MacAddr mac;
    uint16_t mtu;
  };
  struct Rule {
    uint8_t out_port = 0;
    IpAddr hop_addr;
    uint16_t hop_mtu = 0;
    uint16_t nexthop = 0;  // 0: a marker, nothing to forward
  };
  struct KeyLess {
    bool operator()(const RuleKey6& a, const RuleKey6& b) const {
      return std::memcmp(&a, &b, sizeof a) < 0;
    }
  };
  using Rules = std::map<RuleKey6, Rule, KeyLess>;

  // The rule, installed or replaced when its next hop changed.
  void put(const RuleKey6& key, const std::optional<Hop>& hop);
  void remove(Rules::iterator it);
  // The upstream's role and TAP ifindex, if one is set.
  const PortRole* upstream(int& ifindex) const;
  // The downstream port and prefix a neighbour belongs to, if it is a client.
  const PortRole* downstream_of(int ifindex, const IpAddr& addr) const;
  // The MTU of the route to a client (0: none).
  uint16_t route_mtu(const IpAddr& addr) const;

  FastPath& engine_;
  TopologySync& topo_;
  const KernelView& kernel_;
  PolicyConfig cfg_;
  Rules rules_;
  uint64_t waiting_for_router_ = 0;
  uint64_t too_many_local_ = 0;
  bool local_published_ = false;  // the engine checks the current local prefixes and addresses
};

}  // namespace tp
