// The `sessions` section: named policies for the clients their selectors match.
#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cctype>

#include "yaml_field.hpp"

namespace tp::conf {

namespace {

// The selectors of `a` that `b` also has, as words (the same MAC, the same prefix, the same
// downstream): with equal priorities, which of them wins a client would be a coin toss.
std::string shared_selector(const SessionMatch& a, const SessionMatch& b) {
  for (const auto& m : a.macs)
    if (std::find(b.macs.begin(), b.macs.end(), m) != b.macs.end()) return "MAC " + mac_string(m);
  for (const Prefix& p : a.addresses)
    for (const Prefix& q : b.addresses)
      if (p.len == q.len && p.overlaps(q)) return "address " + p.str();
  for (const auto& d : a.downstreams)
    if (std::find(b.downstreams.begin(), b.downstreams.end(), d) != b.downstreams.end())
      return "downstream " + d;
  for (uint32_t u : a.uids)
    if (std::find(b.uids.begin(), b.uids.end(), u) != b.uids.end())
      return "uid " + std::to_string(u);
  for (uint32_t g : a.gids)
    if (std::find(b.gids.begin(), b.gids.end(), g) != b.gids.end())
      return "gid " + std::to_string(g);
  for (const auto& c : a.cgroups)
    if (std::find(b.cgroups.begin(), b.cgroups.end(), c) != b.cgroups.end()) return "cgroup " + c;
  return "";
}

SessionMatch parse_match(const Field& f, const Config& c) {
  f.only_keys({"macs", "addresses", "downstreams", "uids", "gids", "cgroups"});
  SessionMatch m;
  if (auto v = f.child("macs")) v->each([&](const Field& e) { m.macs.push_back(parse_mac(e)); });
  if (auto v = f.child("addresses"))
    v->each([&](const Field& e) { m.addresses.push_back(e.prefix()); });
  if (auto v = f.child("downstreams"))
    v->each(
        [&](const Field& e) { m.downstreams.push_back(e.port_name(c.ports, Role::downstream)); });
  for (const char* key : {"uids", "gids"})
    if (auto v = f.child(key))
      v->each([&](const Field& e) {
        const bool group = key[0] == 'g';
        const auto id = parse_owner(e.string(), group);
        if (!id)
          e.fail(std::string("expected a ") + (group ? "group" : "user") +
                 " (a number or a name this system knows), got '" + e.string() + "'");
        (group ? m.gids : m.uids).push_back(*id);
      });
  if (auto v = f.child("cgroups"))
    v->each([&](const Field& e) {
      if (const std::string why = cgroup_path_refusal(e.string()); !why.empty()) e.fail(why);
      m.cgroups.push_back(e.string());
    });
  if (m.size() == 0)
    f.fail("expected at least one of macs, addresses, downstreams, uids, gids, cgroups");
  if (m.size() > 64) f.fail("at most 64 selectors per session");
  return m;
}

}  // namespace

std::string session_quota_refusal(const SessionConfig& s) {
  if ((s.warning_bytes || s.limit_bytes) && s.match.local())
    return "a data warning or limit counts forwarded traffic: a session with uids, gids or "
           "cgroups (the box's own, local traffic) cannot have one";
  return "";
}

std::string cgroup_path_refusal(const std::string& path) {
  if (path.empty() || path.size() > 255) return "expected a cgroup path of 1 to 255 characters";
  if (path.front() == '/' || path.back() == '/')
    return "expected a cgroup path below the cgroup2 root, without a leading or trailing '/' "
           "(\"system.slice/ota.service\"), got '" +
           path + "'";
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find('/', start), path.size());
    const std::string part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      return "'" + path + "': a cgroup path has no empty, '.' or '..' parts";
    for (char c : part)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' &&
          c != '@' && c != ':' && c != '+')
        return "'" + path + "': a cgroup path has only letters, digits and . - _ @ : +";
    start = end + 1;
  }
  return "";
}

std::optional<uint32_t> parse_owner(const std::string& text, bool group) {
  if (text.empty()) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    // (uid_t)-1 means "no change" to the kernel: never an owner.
    if (text.size() > 10 || std::stoull(text) >= 0xffffffffull) return std::nullopt;
    return static_cast<uint32_t>(std::stoull(text));
  }
  std::vector<char> buf(16384);
  if (group) {
    struct group g, *found = nullptr;
    if (getgrnam_r(text.c_str(), &g, buf.data(), buf.size(), &found) != 0 || !found)
      return std::nullopt;
    return found->gr_gid;
  }
  struct passwd p, *found = nullptr;
  if (getpwnam_r(text.c_str(), &p, buf.data(), buf.size(), &found) != 0 || !found)
    return std::nullopt;
  return found->pw_uid;
}

std::string session_uplink_refusal(const std::string& entry,
                                   const std::vector<UplinkConfig>& uplinks) {
  for (const UplinkConfig& u : uplinks)
    if (u.name == entry) return "";
  for (const auto& [kind, value] : uplink_kinds())
    if (entry == kind) return "";
  std::string have;
  for (const UplinkConfig& u : uplinks) have += (have.empty() ? "" : ", ") + u.name;
  std::string kinds;
  for (const auto& [kind, value] : uplink_kinds())
    kinds += (kinds.empty() ? "" : ", ") + std::string(kind);
  return "expected an uplink's name (" + (have.empty() ? std::string("none configured") : have) +
         ") or a kind (" + kinds + "), got '" + entry + "'";
}

std::string session_conflict(const SessionConfig& s, const std::vector<SessionConfig>& others) {
  for (const auto& seen : others)
    if (seen.name != s.name && seen.priority == s.priority)
      if (const std::string both = shared_selector(s.match, seen.match); !both.empty())
        return both + " is also session '" + seen.name +
               "''s, with the same priority: give one of them a higher priority";
  return "";
}

std::string session_room_refusal(std::size_t sessions, const RoutingConfig& routing) {
  if (sessions == 0) return "";
  if (!routing.manage)
    return "sessions need routing.manage: true (tetherpath programs their routing)";
  const uint32_t values = mark_values(routing.session_mark_mask);
  if (values < sessions)
    return "routing.session_mark_mask has room for " + std::to_string(values) + " sessions, " +
           std::to_string(sessions) + " are listed (session i is mark value i + 1)";
  return "";
}

std::vector<SessionConfig> parse_sessions(const Field& f, const Config& c) {
  std::vector<SessionConfig> out;
  if (!f.node.IsSequence()) f.fail("expected a list");
  if (f.node.size() == 0) return out;
  if (const std::string why = session_room_refusal(f.node.size(), c.routing); !why.empty())
    f.fail(why);
  f.each([&](const Field& e) {
    e.only_keys({"name", "match", "uplinks", "connection", "priority", "roaming", "existing_flows",
                 "emergency", "warning_bytes", "limit_bytes"});
    SessionConfig s;
    auto name = e.child("name");
    auto match = e.child("match");
    if (!name) e.fail("missing key 'name'");
    if (!match) e.fail("missing key 'match' (the clients this session is for)");
    s.name = name->string();
    if (!valid_uplink_name(s.name)) name->fail("expected 1 to 32 of A-Z a-z 0-9 _ -");
    for (const auto& seen : out)
      if (seen.name == s.name) name->fail("session '" + s.name + "' is listed twice");
    s.match = parse_match(*match, c);
    if (auto v = e.child("uplinks"))
      v->each([&](const Field& u) {
        s.uplinks.push_back(u.string());
        if (const std::string why = session_uplink_refusal(s.uplinks.back(), c.uplinks);
            !why.empty())
          u.fail(why);
        if (std::count(s.uplinks.begin(), s.uplinks.end(), s.uplinks.back()) > 1)
          u.fail("'" + s.uplinks.back() + "' is listed twice");
      });
    if (auto v = e.child("connection")) s.connection = named_choice(*v, connections());
    if (auto v = e.child("priority")) s.priority = v->integer<int32_t>(-1000, 1000);
    if (auto v = e.child("roaming")) s.roaming = named_choice(*v, roaming_policies());
    if (auto v = e.child("existing_flows")) {
      s.existing_flows = named_choice(*v, existing_flows_choices());
      if (s.existing_flows == ExistingFlows::keep && !c.routing.mark_mask)
        v->fail("keep needs routing.mark_mask (the connection's uplink goes into its mark)");
    }
    if (auto v = e.child("emergency")) s.emergency = v->boolean();
    if (auto v = e.child("warning_bytes"))
      s.warning_bytes = v->integer<uint64_t>(0, kMaxSessionBytes);
    if (auto v = e.child("limit_bytes")) s.limit_bytes = v->integer<uint64_t>(0, kMaxSessionBytes);
    if (const std::string why = session_quota_refusal(s); !why.empty())
      (e.child("limit_bytes") ? *e.child("limit_bytes") : *e.child("warning_bytes")).fail(why);
    if (const std::string why = session_conflict(s, out); !why.empty()) match->fail(why);
    out.push_back(std::move(s));
  });
  return out;
}

}  // namespace tp::conf
