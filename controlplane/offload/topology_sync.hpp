// Keeps the dataplane's published Topology in step with the kernel: next hops (egress port,
// neighbour MAC, port MAC, route MTU) shared by the flows that use them, and the box's own
// addresses on each port. Next hops are reference-counted and keyed by (port, neighbour address,
// route MTU); a MAC change updates the neighbour's entries and every flow using them follows.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "fast_path.hpp"
#include "ip_addr.hpp"
#include "rtnl_mirror.hpp"

namespace tp {

class TopologySync {
 public:
  // Next hops the engine already holds (the kernel engine's pinned state, taken over from a
  // previous run) are reserved: flows of that run still point at them until they are installed
  // again or dropped, and a reused index would send them to another neighbour meanwhile.
  explicit TopologySync(FastPath& engine);
  // The previous run's flows are all installed again or dropped (the first complete conntrack
  // dump): its next hops are free for reuse.
  void release_inherited();

  // A next hop for (port, address) with this MAC, for flows whose route has `route_mtu` (0: none;
  // the engine applies the egress port's MTU either way): an existing one (reference added) or a
  // new one. 0 when the table is full.
  uint16_t acquire(uint8_t port, const IpAddr& addr, const MacAddr& mac, uint16_t route_mtu = 0);
  void release(uint16_t index);
  // The neighbour's MAC changed: update its entries. Returns true if any existed.
  bool update_mac(uint8_t port, const IpAddr& addr, const MacAddr& mac);
  // The box's own addresses on a port, for the engine's "local" punt.
  void set_local_addresses(uint8_t port, const std::vector<IpAddr>& addrs);
  // The IPv6 prefixes no address rule may forward to or from (Topology::kernel_only6); published
  // only when they changed. False, and nothing published, when there are more than the engine
  // checks (kMaxKernelOnly6).
  bool set_kernel_only6(const std::vector<Prefix>& prefixes);

  std::size_t size() const { return by_key_.size(); }

 private:
  using Key = std::tuple<uint8_t, IpAddr, uint16_t>;  // port, neighbour, route MTU
  struct Entry {
    Key key;
    uint32_t refs = 0;
  };
  void publish(const std::function<void(Topology&)>& edit);

  FastPath& engine_;
  std::vector<Prefix> kernel_only6_;
  // What each port's local addresses were last published as: the kernel engine's publication
  // costs milliseconds, and a resync sends every port's again (none: not published yet).
  std::array<std::optional<std::vector<IpAddr>>, kMaxPorts> local_;
  std::map<Key, uint16_t> by_key_;
  std::array<Entry, kMaxNextHops> entries_{};
  std::array<bool, kMaxNextHops> inherited_{};
};

}  // namespace tp
