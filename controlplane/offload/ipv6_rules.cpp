#include "ipv6_rules.hpp"

#include <netinet/in.h>

#include <iostream>

#include "daemon_log.hpp"

namespace tp {
namespace {

// Any global unicast address: the route to it is the default route (the upstream's router).
const IpAddr kSomewhereGlobal = *IpAddr::parse("2000::");

bool link_local(const IpAddr& a) { return a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80; }

bool usable_prefix(const Prefix& p) {
  return p.addr.family == AF_INET6 && p.len == 64 && !link_local(p.addr);
}

// Link-local, loopback and multicast addresses never reach the rules (the engine punts them first).
bool reaches_rules(const IpAddr& a) {
  static const IpAddr kLoopback = *IpAddr::parse("::1"), kUnspecified = *IpAddr::parse("::");
  return !link_local(a) && a.bytes[0] != 0xff && a != kLoopback && a != kUnspecified;
}

// What no rule may forward to or from: the local prefixes and the box's addresses, IPv6 only,
// without those another one contains.
std::vector<Prefix> kernel_only(const std::vector<Prefix>& local_prefixes,
                                const std::vector<IpAddr>& box) {
  std::vector<Prefix> all;
  for (const Prefix& p : local_prefixes)
    if (p.addr.family == AF_INET6) all.push_back(p);
  for (const IpAddr& a : box)
    if (a.family == AF_INET6 && reaches_rules(a)) all.push_back(Prefix{a, 128});
  std::vector<Prefix> out;
  for (std::size_t i = 0; i < all.size(); ++i) {
    bool covered = false;
    for (std::size_t j = 0; j < all.size() && !covered; ++j)
      covered = j != i && all[j].len <= all[i].len && all[j].contains(all[i].addr) &&
                (all[j].len < all[i].len || j < i);  // of two equal ones, the first stays
    if (!covered) out.push_back(all[i]);
  }
  return out;
}

}  // namespace

Ipv6Rules::Ipv6Rules(FastPath& engine, TopologySync& topo, const KernelView& kernel)
    : engine_(engine), topo_(topo), kernel_(kernel) {}

Ipv6Rules::~Ipv6Rules() { clear(); }

void Ipv6Rules::rebuild(const PolicyConfig& cfg) {
  cfg_ = cfg;
  std::map<RuleKey6, std::optional<Hop>, KeyLess> want;
  int up_ifindex = 0;
  const PortRole* up = upstream(up_ifindex);
  // Published before any rule that depends on it is installed (publishing waits until every
  // worker sees it). Too many to check: no rule at all rather than one forwarding local traffic.
  const bool was_published = local_published_;
  const auto local = kernel_only(cfg_.local_prefixes, kernel_.local_addresses());
  local_published_ = topo_.set_kernel_only6(local);
  if (!local_published_) {
    if (was_published || !too_many_local_)
      log::warning() << local.size() << " IPv6 local prefixes and box addresses, "
                     << "more than the fast path checks (" << kMaxKernelOnly6
                     << "): IPv6 address rules are off, the kernel forwards IPv6";
    ++too_many_local_;
  }
  if (up && !up->limited && local_published_) {
    std::optional<Hop> router;
    const auto r = kernel_.route(kSomewhereGlobal);
    if (r && r->oif == up_ifindex)
      if (const auto mac = kernel_.neighbour(up_ifindex, r->next_hop))
        router = Hop{up->port, r->next_hop, *mac, r->mtu};
    if (!router) ++waiting_for_router_;
    for (const auto& [ifindex, role] : cfg_.ports) {
      if (role.upstream) continue;
      for (const Prefix& p : role.prefixes) {
        if (!usable_prefix(p)) continue;
        want[rule_key6(p.addr.bytes.data(), Rule6::to_prefix, kAnyPort, 0)] = std::nullopt;
        if (router) want[rule_key6(p.addr.bytes.data(), Rule6::from_prefix, role.port, 0)] = router;
      }
      for (const auto& [addr, mac] : kernel_.neighbours_of(ifindex))
        if (downstream_of(ifindex, addr))
          want[rule_key6(addr.bytes.data(), Rule6::client, up->port, 0)] =
              Hop{role.port, addr, mac, route_mtu(addr)};
    }
  }
  for (auto it = rules_.begin(); it != rules_.end();) {
    auto next = std::next(it);
    if (!want.count(it->first)) remove(it);
    it = next;
  }
  for (const auto& [key, hop] : want) put(key, hop);
}

void Ipv6Rules::neighbour_changed(int ifindex, const IpAddr& addr, std::optional<MacAddr> mac) {
  if (addr.family != AF_INET6) return;
  int up_ifindex = 0;
  const PortRole* up = upstream(up_ifindex);
  if (!up) return;
  if (ifindex == up_ifindex) {  // possibly the router: its rules depend on it
    rebuild(cfg_);
    return;
  }
  const PortRole* down = downstream_of(ifindex, addr);
  if (!down || up->limited || !local_published_) return;
  const RuleKey6 key = rule_key6(addr.bytes.data(), Rule6::client, up->port, 0);
  if (mac)
    put(key, Hop{down->port, addr, *mac, route_mtu(addr)});
  else if (auto it = rules_.find(key); it != rules_.end())
    remove(it);
}

void Ipv6Rules::port_down(uint8_t port) {
  for (auto it = rules_.begin(); it != rules_.end();) {
    auto next = std::next(it);
    if (it->second.nexthop && (it->second.out_port == port || it->first.port == port)) remove(it);
    it = next;
  }
}

void Ipv6Rules::clear() {
  while (!rules_.empty()) remove(rules_.begin());
}

void Ipv6Rules::put(const RuleKey6& key, const std::optional<Hop>& hop) {
  if (auto it = rules_.find(key); it != rules_.end()) {
    if (!hop) return;  // markers never change
    if (it->second.nexthop && it->second.out_port == hop->port &&
        it->second.hop_addr == hop->addr && it->second.hop_mtu == hop->mtu) {
      topo_.update_mac(hop->port, hop->addr, hop->mac);  // the same neighbour: the MAC follows
      return;
    }
    remove(it);
  }
  Rule r;
  RulePlan6 plan{key, 0};  // a marker's (no next hop): never forwarded, only found
  if (hop) {
    r.out_port = hop->port;
    r.hop_addr = hop->addr;
    r.hop_mtu = hop->mtu;
    r.nexthop = topo_.acquire(hop->port, hop->addr, hop->mac, hop->mtu);
    if (!r.nexthop) return;  // next-hop table full: the kernel keeps forwarding it
    plan.nexthop = r.nexthop;
  }
  if (engine_.add_rule(plan) != 0) {
    topo_.release(r.nexthop);
    return;
  }
  rules_.emplace(key, r);
}

void Ipv6Rules::remove(Rules::iterator it) {
  engine_.remove_rule(it->first);
  topo_.release(it->second.nexthop);
  rules_.erase(it);
}

const PortRole* Ipv6Rules::upstream(int& ifindex) const {
  for (const auto& [i, role] : cfg_.ports)
    if (role.upstream) {
      ifindex = i;
      return &role;
    }
  return nullptr;
}

const PortRole* Ipv6Rules::downstream_of(int ifindex, const IpAddr& addr) const {
  auto it = cfg_.ports.find(ifindex);
  if (it == cfg_.ports.end() || it->second.upstream || link_local(addr)) return nullptr;
  for (const Prefix& p : it->second.prefixes)
    if (usable_prefix(p) && p.contains(addr)) return &it->second;
  return nullptr;
}

uint16_t Ipv6Rules::route_mtu(const IpAddr& addr) const {
  const auto r = kernel_.route(addr);
  return r ? r->mtu : 0;
}

void Ipv6Rules::for_each(const std::function<void(const View&)>& fn) const {
  for (const auto& [key, r] : rules_) {
    if (key.kind == Rule6::to_prefix) continue;
    IpAddr a = IpAddr::v6(key.addr.data());
    const FlowUsage u = engine_.usage(key).value_or(FlowUsage{});
    fn(View{key.kind, a, key.port, r.out_port, u.packets, u.bytes});
  }
}

}  // namespace tp
