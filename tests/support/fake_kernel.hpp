// The lab box's kernel state as plain tables, for control-plane unit tests: connected subnets on
// the TAPs, a default route via the modem's gateway, resolved neighbours, the box's addresses.
#pragma once

#include <map>
#include <set>
#include <tuple>
#include <vector>

#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>

#include "conntrack_entry.hpp"
#include "offload_policy.hpp"

namespace tp::test {

constexpr int kModemIf = 10, kWifiIf = 11, kUsbIf = 12, kOtherIf = 13, kPhoneIf = 14;

inline IpAddr ip(const char* s) { return *IpAddr::parse(s); }
inline uint16_t be(uint16_t v) { return htons(v); }

// A box like the lab's: connected subnets on the TAPs, default route via the modem gateway.
class FakeKernel : public KernelView {
 public:
  std::optional<RouteResult> route(const IpAddr& dst) const override {
    for (const auto& [prefix, len, oif] : connected)
      if (dst.in(ip(prefix), len)) return RouteResult{oif, dst};
    if (dst.family == AF_INET) return RouteResult{kModemIf, ip("100.64.0.1"), default_route_mtu};
    return RouteResult{kModemIf, ip("2001:db8:100::1"), default_route_mtu};
  }
  // The kernel's decision for a forwarded packet: the main table, unless a test made the packet's
  // source take another route (a policy rule) or its destination refused (a blackhole).
  Forwarding forward(const RouteQuery& q) const override {
    if (++lookups == 1) first_query = q;
    last_query = q;
    if (auto it = refused.find(q.dst); it != refused.end()) return {it->second, {}};
    if (auto it = policy.find(q.src); it != policy.end()) {
      RouteResult r = it->second;
      if (r.next_hop.family == 0) r.next_hop = q.dst;
      return {"", r};
    }
    auto r = route(q.dst);
    if (!r) return {"route_unreachable", {}};
    return {"", *r};
  }
  bool has_address(int ifindex, const IpAddr& a) const override {
    auto it = addresses.find(a);
    return it != addresses.end() && it->second == ifindex;
  }
  std::optional<MacAddr> neighbour(int ifindex, const IpAddr& a) const override {
    auto it = neigh.find({ifindex, a});
    if (it == neigh.end()) return std::nullopt;
    return it->second;
  }
  bool is_local(const IpAddr& a) const override { return local.count(a) > 0; }
  std::vector<IpAddr> local_addresses() const override { return {local.begin(), local.end()}; }
  std::vector<std::pair<IpAddr, MacAddr>> neighbours_of(int ifindex) const override {
    std::vector<std::pair<IpAddr, MacAddr>> out;
    for (const auto& [k, mac] : neigh)
      if (k.first == ifindex) out.emplace_back(k.second, mac);
    return out;
  }

  std::vector<std::tuple<const char*, int, int>> connected = {
      {"100.64.0.0", 24, kModemIf},   {"192.168.50.0", 24, kWifiIf},
      {"192.168.60.0", 24, kUsbIf},   {"2001:db8:100::", 64, kModemIf},
      {"2001:db8:50::", 64, kWifiIf}, {"10.9.0.0", 16, kOtherIf}};
  std::map<std::pair<int, IpAddr>, MacAddr> neigh = {
      {{kModemIf, ip("100.64.0.1")}, {2, 0, 0, 0, 0, 0xfe}},
      {{kWifiIf, ip("192.168.50.10")}, {2, 0, 0, 0, 1, 0x0a}},
      {{kModemIf, ip("2001:db8:100::1")}, {2, 0, 0, 0, 0, 0xfe}},
      {{kPhoneIf, ip("100.65.0.1")}, {2, 0, 0, 0, 2, 0xfe}},
      {{kWifiIf, ip("2001:db8:50::10")}, {2, 0, 0, 0, 1, 0x0a}},
  };
  std::set<IpAddr> local = {ip("100.64.0.2"), ip("192.168.50.1"), ip("2001:db8:50::1")};
  uint16_t default_route_mtu = 0;              // RouteResult::mtu of the default routes
  std::map<IpAddr, std::string_view> refused;  // destination -> the kernel's refusal
  std::map<IpAddr, RouteResult> policy;        // source -> its route out (an ip rule)
  std::map<IpAddr, int> addresses = {{ip("100.64.0.2"), kModemIf},
                                     {ip("100.65.0.2"), kPhoneIf},
                                     {ip("192.168.50.1"), kWifiIf},
                                     {ip("2001:db8:50::1"), kWifiIf}};
  mutable uint64_t lookups = 0;
  mutable RouteQuery first_query, last_query;  // since lookups was last 0
};

inline PolicyConfig config() {
  PolicyConfig c;
  auto prefix = [](const char* p) { return *Prefix::parse(p); };
  c.ports = {{kModemIf, {0, true, false, {}}},
             {kWifiIf, {1, false, false, {prefix("192.168.50.0/24"), prefix("2001:db8:50::/64")}}},
             {kUsbIf, {2, false, false, {prefix("192.168.60.0/24")}}}};
  return c;
}

// Client 192.168.50.10:40000 -> 203.0.113.10:80, masqueraded to 100.64.0.2:61000.
inline CtEntry masqueraded_tcp(uint16_t cport = 40000, uint16_t nat_port = 61000) {
  CtEntry e;
  e.family = AF_INET;
  e.proto = IPPROTO_TCP;
  e.orig = {ip("192.168.50.10"), ip("203.0.113.10"), be(cport), be(80)};
  e.reply = {ip("203.0.113.10"), ip("100.64.0.2"), be(80), be(nat_port)};
  e.status = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT;
  e.tcp_state = 3;  // ESTABLISHED
  e.present = CtEntry::kStatus | CtEntry::kTcpState | CtEntry::kMark;
  return e;
}

}  // namespace tp::test
