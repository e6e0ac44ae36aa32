#include "session_policy.hpp"

#include <algorithm>
#include <cstdio>

namespace tp {

std::vector<std::size_t> session_route(const conf::SessionConfig& s,
                                       const std::vector<SessionUplink>& uplinks, SteadyTime now) {
  if (s.connection == conf::Connection::local) return {};
  std::vector<UplinkCandidate> candidates;
  std::vector<std::size_t> index;  // candidate -> uplink
  for (std::size_t rank = 0; rank < s.uplinks.size(); ++rank) {
    const std::string& entry = s.uplinks[rank];
    for (std::size_t i = 0; i < uplinks.size(); ++i) {
      const SessionUplink& u = uplinks[i];
      if (u.name != entry && conf::to_string(u.kind) != entry) continue;
      if (!conf::roaming_allows(s.roaming, u.roaming)) continue;
      if (std::find(index.begin(), index.end(), i) != index.end())
        continue;  // a name, then its kind
      UplinkCandidate c = u.now;
      c.metric = static_cast<uint32_t>(rank);
      candidates.push_back(c);
      index.push_back(i);
    }
  }
  std::vector<std::size_t> out;
  for (std::size_t c : choose_active(candidates, now)) out.push_back(index[c]);
  return out;
}

uint32_t session_mark(std::size_t j, uint32_t mask) {
  return static_cast<uint32_t>(j + 1) << conf::mark_shift(mask);
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
  }
  std::stable_sort(out.begin(), out.end(), [&](const SessionSelector& a, const SessionSelector& b) {
    if (a.kind != b.kind) return a.kind < b.kind;
    if (a.prefix_len != b.prefix_len) return a.prefix_len > b.prefix_len;
    return sessions[a.session].priority > sessions[b.session].priority;
  });
  return out;
}

std::string session_table(const std::vector<conf::SessionConfig>& sessions, uint32_t mask) {
  if (sessions.empty() || !mask) return "";
  char keep[16];
  std::snprintf(keep, sizeof keep, "0x%08x", ~mask);
  const auto set_mark = [&](std::size_t j) {
    char v[16];
    std::snprintf(v, sizeof v, "0x%08x", session_mark(j, mask));
    return std::string("ct mark set ct mark and ") + keep + " or " + v +
           " meta mark set meta mark and " + keep + " or " + v;
  };
  // Conntrack keeps the session a connection started in: a policy change re-routes new
  // connections, and running ones only as the policy's update says (never by accident).
  std::string t =
      "  chain prerouting {\n    type filter hook prerouting priority mangle; policy accept;\n";
  for (std::size_t j = 0; j < sessions.size(); ++j) {
    char v[16], m[16];
    std::snprintf(v, sizeof v, "0x%08x", session_mark(j, mask));
    std::snprintf(m, sizeof m, "0x%08x", mask);
    t += std::string("    ct state != new ct mark and ") + m + " == " + v +
         " meta mark set meta mark and " + keep + " or " + v + " return\n";
  }
  for (const SessionSelector& s : ordered_selectors(sessions)) {
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
    }
    t += "    ct state new " + match + " " + set_mark(s.session) + " return\n";
  }
  t += "  }\n";
  return t;
}

}  // namespace tp
