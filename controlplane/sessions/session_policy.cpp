#include "session_policy.hpp"

#include <algorithm>
#include <cstdio>

namespace tp {

std::vector<AllowedUplink> allowed_uplinks(const conf::SessionConfig& s,
                                           const std::vector<SessionUplink>& uplinks) {
  std::vector<AllowedUplink> out;
  if (s.connection == conf::Connection::local) return out;
  for (std::size_t rank = 0; rank < s.uplinks.size(); ++rank)
    for (std::size_t i = 0; i < uplinks.size(); ++i) {
      const SessionUplink& u = uplinks[i];
      if (u.name != s.uplinks[rank] && conf::to_string(u.kind) != s.uplinks[rank]) continue;
      if (!conf::roaming_allows(s.roaming, u.roaming)) continue;
      const bool listed = std::any_of(out.begin(), out.end(),
                                      [&](const AllowedUplink& a) { return a.uplink == i; });
      if (!listed) out.push_back({i, rank});  // a name, then its kind: the name's rank
    }
  return out;
}

std::set<std::string> allowed_uplink_names(const conf::SessionConfig& s,
                                           const std::vector<SessionUplink>& uplinks) {
  std::set<std::string> out;
  for (const AllowedUplink& a : allowed_uplinks(s, uplinks)) out.insert(uplinks[a.uplink].name);
  return out;
}

std::vector<std::size_t> session_route(const conf::SessionConfig& s,
                                       const std::vector<SessionUplink>& uplinks, SteadyTime now) {
  const std::vector<AllowedUplink> allowed = allowed_uplinks(s, uplinks);
  std::vector<UplinkCandidate> candidates;
  for (const AllowedUplink& a : allowed) {
    UplinkCandidate c = uplinks[a.uplink].now;
    c.metric = static_cast<uint32_t>(a.rank);
    candidates.push_back(c);
  }
  std::vector<std::size_t> out;
  for (std::size_t c : choose_active(candidates, now)) out.push_back(allowed[c].uplink);
  return out;
}

std::vector<SessionSelector> ordered_selectors(const std::vector<conf::SessionConfig>& sessions) {
  std::vector<SessionSelector> out;
  for (std::size_t j = 0; j < sessions.size(); ++j) {
    const conf::SessionMatch& m = sessions[j].match;
    for (const auto& mac : m.macs)
      out.push_back({SessionSelector::mac, conf::mac_string(mac), 0, j});
    for (const Prefix& p : m.addresses) {
      Prefix network = p;  // nft refuses a prefix with host bits set
      for (int b = p.len; b < p.addr.length() * 8; ++b)
        network.addr.bytes[static_cast<std::size_t>(b / 8)] &=
            static_cast<uint8_t>(~(0x80u >> (b % 8)));
      out.push_back({SessionSelector::address, network.str(), p.len, j});
    }
    for (const auto& d : m.downstreams) out.push_back({SessionSelector::downstream, d, 0, j});
    for (uint32_t u : m.uids) out.push_back({SessionSelector::uid, std::to_string(u), 0, j});
    for (uint32_t g : m.gids) out.push_back({SessionSelector::gid, std::to_string(g), 0, j});
    for (const auto& c : m.cgroups)  // deeper first: a service's cgroup before its slice's
      out.push_back({SessionSelector::cgroup, c,
                     1 + static_cast<int>(std::count(c.begin(), c.end(), '/')), j});
  }
  std::stable_sort(out.begin(), out.end(), [&](const SessionSelector& a, const SessionSelector& b) {
    if (a.kind != b.kind) return a.kind < b.kind;
    if (a.prefix_len != b.prefix_len) return a.prefix_len > b.prefix_len;
    return sessions[a.session].priority > sessions[b.session].priority;
  });
  return out;
}

namespace {

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// "ct mark set …" or "meta mark set …": the bits of `mask` become `value`, the others stay.
std::string set_bits(const char* what, uint32_t mask, uint32_t value) {
  return std::string(what) + " mark set " + what + " mark and " + hex(~mask) + " or " + hex(value);
}

// An nft set's elements: "a", "b" (names not there now, empty, left out).
std::string quoted_names(const std::vector<std::string>& names) {
  std::string set;
  for (const auto& n : names)
    if (!n.empty()) set += (set.empty() ? "\"" : ", \"") + n + "\"";
  return set;
}

}  // namespace

std::string session_table(const ClassifierPlan& p) {
  const bool sessions = !p.sessions.empty() && p.session_mask;
  const bool uplinks = !p.uplink_ifaces.empty() && p.uplink_mask;
  if (!sessions && !uplinks) return "";
  std::string t;
  if (sessions && p.emergency_slot && !p.cellular_ifaces.empty()) {
    // Held, not torn down: every other connection's packets across a cellular uplink are
    // dropped, both ways, while their conntrack entries live on.
    const std::string set = quoted_names(p.cellular_ifaces);
    const std::string others = " ct mark and " + hex(p.session_mask) +
                               " != " + hex(conf::mark_value(*p.emergency_slot, p.session_mask)) +
                               " drop\n";
    t += "  chain emergency {\n    type filter hook forward priority -10; policy accept;\n";
    t += "    oifname { " + set + " }" + others + "    iifname { " + set + " }" + others;
    t += "  }\n";
  }
  if (sessions && p.garage_slots) {
    // A remote task's sessions pass; the others' new connections across the uplinks are refused
    // (the client learns at once), their running ones held (dropped, conntrack entries live on).
    const std::string set = quoted_names(p.uplink_ifaces);
    t += "  chain garage {\n    type filter hook forward priority -10; policy accept;\n";
    for (std::size_t slot : *p.garage_slots)
      if (conf::mark_fits(slot, p.session_mask))
        t += "    ct mark and " + hex(p.session_mask) +
             " == " + hex(conf::mark_value(slot, p.session_mask)) + " accept\n";
    if (!set.empty()) {  // (no uplink interface: nothing reaches the internet anyway)
      t += "    oifname { " + set + " } ct state new reject with icmpx admin-prohibited\n";
      t += "    oifname { " + set + " } drop\n    iifname { " + set + " } drop\n";
    }
    t += "  }\n";
  }
  if (sessions && !p.limited_slots.empty()) {
    // Both ways, new connections too: the limit stops the session's forwarding, nothing else.
    t += "  chain limits {\n    type filter hook forward priority -10; policy accept;\n";
    for (std::size_t slot : p.limited_slots)
      if (conf::mark_fits(slot, p.session_mask))
        t += "    ct mark and " + hex(p.session_mask) +
             " == " + hex(conf::mark_value(slot, p.session_mask)) + " drop\n";
    t += "  }\n";
  }
  // A running connection keeps its uplink and its session; only new connections follow a
  // policy change (unless the update resets them).
  std::string restore;
  const std::string running = "    ct state != new ct direction original ct mark and ";
  for (std::size_t i = 0; uplinks && i < p.uplink_ifaces.size(); ++i) {
    if (!conf::mark_fits(i, p.uplink_mask)) break;
    const uint32_t v = conf::mark_value(i, p.uplink_mask);
    restore += running + hex(p.uplink_mask) + " == " + hex(v) + " " +
               set_bits("meta", p.uplink_mask, v) + "\n";
  }
  for (std::size_t j = 0; sessions && j < p.sessions.size(); ++j) {
    if (!conf::mark_fits(p.slots[j], p.session_mask)) continue;
    const uint32_t v = conf::mark_value(p.slots[j], p.session_mask);
    restore += running + hex(p.session_mask) + " == " + hex(v) + " " +
               set_bits("meta", p.session_mask, v) + " return\n";
  }
  // Clients' selectors classify what arrives (prerouting); the box's own applications' (socket
  // owners) what it sends, in a route chain: a mark set there routes the packet again.
  std::string forwarded, local;
  for (const SessionSelector& s :
       sessions ? ordered_selectors(p.sessions) : std::vector<SessionSelector>{}) {
    std::string match;
    switch (s.kind) {
      case SessionSelector::mac:
        match = "ether saddr " + s.text;
        break;
      case SessionSelector::address:
        match = (s.text.find(':') == std::string::npos ? "ip saddr " : "ip6 saddr ") + s.text;
        break;
      case SessionSelector::downstream:
        match = "iifname \"" + s.text + "\"";
        break;
      case SessionSelector::uid:
        match = "meta skuid " + s.text;
        break;
      case SessionSelector::gid:
        match = "meta skgid " + s.text;
        break;
      case SessionSelector::cgroup:
        if (const auto c = p.cgroups.find(s.text); c != p.cgroups.end())
          match = "socket cgroupv2 level " + std::to_string(c->second.level) + " \"" +
                  c->second.nft_path + "\"";
        break;
    }
    if (match.empty()) continue;  // a cgroup that does not exist (yet)
    if (!conf::mark_fits(p.slots[s.session], p.session_mask))
      continue;  // never bits outside the mask
    const uint32_t v = conf::mark_value(p.slots[s.session], p.session_mask);
    const bool owner = s.kind == SessionSelector::uid || s.kind == SessionSelector::gid ||
                       s.kind == SessionSelector::cgroup;
    (owner ? local : forwarded) += "    ct state new " + match + " " +
                                   set_bits("ct", p.session_mask, v) + " " +
                                   set_bits("meta", p.session_mask, v) + " return\n";
  }
  t += "  chain prerouting {\n    type filter hook prerouting priority mangle; policy accept;\n" +
       restore + forwarded + "  }\n";
  if (!local.empty())
    t += "  chain output {\n    type route hook output priority mangle; policy accept;\n" +
         restore + local + "  }\n";
  if (uplinks) {
    t +=
        "  chain postrouting {\n    type filter hook postrouting priority mangle; policy accept;\n";
    for (std::size_t i = 0; i < p.uplink_ifaces.size() && conf::mark_fits(i, p.uplink_mask); ++i)
      if (!p.uplink_ifaces[i].empty())
        t += "    ct state new oifname \"" + p.uplink_ifaces[i] + "\" " +
             set_bits("ct", p.uplink_mask, conf::mark_value(i, p.uplink_mask)) + "\n";
    t += "  }\n";
  }
  return t;
}

}  // namespace tp
