#include "topology_sync.hpp"

#include <cstring>
#include <functional>

namespace tp {

TopologySync::TopologySync(FastPath& engine) : engine_(engine) {
  const Topology t = engine_.topology();
  for (uint16_t i = 1; i < kMaxNextHops; ++i) inherited_[i] = t.nexthops[i].valid;
}

void TopologySync::release_inherited() { inherited_.fill(false); }

void TopologySync::publish(const std::function<void(Topology&)>& edit) {
  engine_.update_topology(edit);
}

uint16_t TopologySync::acquire(uint8_t port, const IpAddr& addr, const MacAddr& mac,
                               uint16_t route_mtu) {
  const Key key{port, addr, route_mtu};
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    ++entries_[it->second].refs;
    return it->second;
  }
  uint16_t index = 0;
  for (uint16_t i = 1; i < kMaxNextHops && !index;
       ++i)  // 0 stays invalid: a zeroed action points nowhere
    if (entries_[i].refs == 0 && !inherited_[i]) index = i;
  if (!index) return 0;
  entries_[index] = {key, 1};
  by_key_[key] = index;
  publish([&](Topology& t) {
    NextHop& nh = t.nexthops[index];
    std::memcpy(nh.dst_mac.addr_bytes, mac.data(), 6);
    nh.src_mac = t.ports[port].mac;
    nh.port = port;
    nh.mtu = route_mtu ? route_mtu : kNoRouteMtu;
    nh.vlan = 0;
    nh.valid = true;
  });
  return index;
}

void TopologySync::release(uint16_t index) {
  if (index == 0 || entries_[index].refs == 0) return;
  if (--entries_[index].refs > 0) return;
  by_key_.erase(entries_[index].key);
  // No flow references it any more; it is reused only after a later publish, so no worker can be
  // holding it by then. Leaving `valid` as it was costs nothing.
}

bool TopologySync::update_mac(uint8_t port, const IpAddr& addr, const MacAddr& mac) {
  std::vector<uint16_t> indexes;  // one per route MTU the neighbour is reached with
  for (auto it = by_key_.lower_bound({port, addr, 0});
       it != by_key_.end() && std::get<0>(it->first) == port && std::get<1>(it->first) == addr;
       ++it)
    indexes.push_back(it->second);
  if (indexes.empty()) return false;
  publish([&](Topology& t) {
    for (uint16_t index : indexes) std::memcpy(t.nexthops[index].dst_mac.addr_bytes, mac.data(), 6);
  });
  return true;
}

void TopologySync::set_local_addresses(uint8_t port, const std::vector<IpAddr>& addrs) {
  if (local_[port] == addrs) return;
  local_[port] = addrs;
  publish([&](Topology& t) {
    PortInfo& p = t.ports[port];
    p.n_local4 = p.n_local6 = 0;
    for (const IpAddr& a : addrs) {
      if (a.family == AF_INET && p.n_local4 < kMaxLocalAddrs) p.local4[p.n_local4++] = a.v4_be();
      if (a.family == AF_INET6 && p.n_local6 < kMaxLocalAddrs)
        std::memcpy(p.local6[p.n_local6++].data(), a.bytes.data(), 16);
    }
  });
}

bool TopologySync::set_kernel_only6(const std::vector<Prefix>& prefixes) {
  if (prefixes.size() > kMaxKernelOnly6) return false;
  if (prefixes == kernel_only6_) return true;
  kernel_only6_ = prefixes;
  publish([&](Topology& t) {
    t.n_kernel_only6 = 0;
    for (const Prefix& p : prefixes) {
      std::array<uint8_t, 16> mask{};
      for (int bit = 0; bit < p.len; ++bit) mask[bit / 8] |= static_cast<uint8_t>(0x80 >> bit % 8);
      std::array<uint8_t, 16> net;
      for (int i = 0; i < 16; ++i) net[i] = p.addr.bytes[i] & mask[i];
      Prefix6& q = t.kernel_only6[t.n_kernel_only6++];
      std::memcpy(&q.hi, net.data(), 8);
      std::memcpy(&q.lo, net.data() + 8, 8);
      std::memcpy(&q.mask_hi, mask.data(), 8);
      std::memcpy(&q.mask_lo, mask.data() + 8, 8);
    }
  });
  return true;
}

}  // namespace tp
