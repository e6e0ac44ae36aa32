// The sessions' operations: set_session (create or replace by name) and remove_session. They
// follow the YAML's rules (conf's shared checks) and apply like a reload of the sessions section:
// atomically, with policy_applied once the kernel and the fast path agree.
#include <algorithm>

#include "api_args.hpp"
#include "offload_api.hpp"

namespace tp {

using namespace api;

namespace {

// The request's session over `base` (set_session on an existing one changes only what it names).
conf::SessionConfig session_from(const Json& req, conf::SessionConfig s,
                                 const std::vector<conf::UplinkConfig>& uplinks,
                                 const std::vector<std::string>& downstreams) {
  if (req.contains("emergency"))
    illegal_argument(
        "emergency: only the configuration (the integrator) marks a session as the "
        "emergency call's");
  if (req.contains("match")) {
    const Json& m = req["match"];
    if (!m.is_object())
      illegal_argument(
          "match: expected an object of macs, addresses, downstreams, uids, gids, cgroups");
    for (const auto& [key, value] : m.items())
      if (key != "macs" && key != "addresses" && key != "downstreams" && key != "uids" &&
          key != "gids" && key != "cgroups")
        illegal_argument(
            "match." + key +
            ": unknown key (known: macs, addresses, downstreams, uids, gids, cgroups)");
    s.match = {};
    for (const auto& text : string_list_arg(m, "macs")) {
      const auto mac = conf::parse_mac_text(text);
      if (!mac || ((*mac)[0] & 1))
        illegal_argument("match.macs: expected a unicast MAC address, got '" + text + "'");
      s.match.macs.push_back(*mac);
    }
    for (const auto& text : string_list_arg(m, "addresses"))
      s.match.addresses.push_back(prefix_arg(text));
    for (const auto& d : string_list_arg(m, "downstreams")) {
      if (std::find(downstreams.begin(), downstreams.end(), d) == downstreams.end())
        illegal_argument("match.downstreams: '" + d + "' is not a downstream port");
      s.match.downstreams.push_back(d);
    }
    for (const std::string key : {"uids", "gids"}) {
      if (!m.contains(key)) continue;
      const bool group = key == "gids";
      const std::string what = group ? "group" : "user";
      if (!m[key].is_array()) illegal_argument("match." + key + ": expected a list");
      for (const Json& v : m[key]) {
        const auto id = conf::parse_owner(v.is_number_unsigned() ? std::to_string(v.get<uint64_t>())
                                          : v.is_string()        ? v.get<std::string>()
                                                                 : std::string(),
                                          group);
        if (!id)
          illegal_argument("match." + key + ": expected a " + what +
                           " (a number or a name this system knows), got " + v.dump());
        (group ? s.match.gids : s.match.uids).push_back(*id);
      }
    }
    for (const auto& path : string_list_arg(m, "cgroups")) {
      if (const std::string why = conf::cgroup_path_refusal(path); !why.empty())
        illegal_argument("match.cgroups: " + why);
      s.match.cgroups.push_back(path);
    }
  }
  if (s.match.size() == 0)
    illegal_argument(
        "match: expected at least one of macs, addresses, downstreams, uids, gids, cgroups");
  if (s.match.size() > 64) illegal_argument("match: at most 64 selectors per session");
  if (req.contains("uplinks")) {
    s.uplinks = string_list_arg(req, "uplinks");
    for (std::size_t i = 0; i < s.uplinks.size(); ++i) {
      if (const std::string why = conf::session_uplink_refusal(s.uplinks[i], uplinks); !why.empty())
        illegal_argument("uplinks: " + why);
      if (std::count(s.uplinks.begin(), s.uplinks.end(), s.uplinks[i]) > 1)
        illegal_argument("uplinks: '" + s.uplinks[i] + "' is listed twice");
    }
  }
  s.connection = choice_arg(req, "connection", conf::connections(), s.connection);
  s.roaming = choice_arg(req, "roaming", conf::roaming_policies(), s.roaming);
  s.existing_flows =
      choice_arg(req, "existing_flows", conf::existing_flows_choices(), s.existing_flows);
  if (req.contains("priority")) {
    const Json& p = req["priority"];
    // A huge unsigned number is no int64_t: its own check, before any conversion.
    const bool fits = p.is_number_unsigned() ? p.get<uint64_t>() <= 1000
                      : p.is_number_integer()
                          ? p.get<int64_t>() >= -1000 && p.get<int64_t>() <= 1000
                          : false;
    if (!fits) illegal_argument("priority: expected an integer from -1000 to 1000");
    s.priority = static_cast<int32_t>(p.get<int64_t>());
  }
  for (const char* key : {"warning_bytes", "limit_bytes"}) {
    if (!req.contains(key)) continue;
    std::optional<uint64_t>& field =
        std::string(key) == "warning_bytes" ? s.warning_bytes : s.limit_bytes;
    const Json& v = req[key];
    if (v.is_null())
      field.reset();
    else if (v.is_number_unsigned() && v.get<uint64_t>() <= conf::kMaxSessionBytes)
      field = v.get<uint64_t>();
    else
      illegal_argument(std::string(key) +
                       ": expected bytes (an integer from 0 to 2^60), or null "
                       "for none");
  }
  return s;
}

}  // namespace

void OffloadApi::no_emergency_but(const std::string& session) const {
  if (const auto e = host_.active_emergency(); e && *e != session)
    throw ApiError("busy", "session '" + *e +
                               "' is the active emergency: other sessions cannot "
                               "change until it ends");
}

Json OffloadApi::set_session(const Json& req) {
  const std::string name = string_arg(req, "name");
  if (!conf::valid_uplink_name(name)) illegal_argument("name: expected 1 to 32 of A-Z a-z 0-9 _ -");
  no_emergency_but(name);
  auto it = std::find_if(sessions_.begin(), sessions_.end(),
                         [&](const conf::SessionConfig& s) { return s.name == name; });
  conf::SessionConfig base;
  base.name = name;
  if (it != sessions_.end()) base = *it;
  std::vector<std::string> downstreams;
  for (const auto& p : ports_)
    if (p.role == conf::Role::downstream) downstreams.push_back(p.name);
  const conf::SessionConfig s = session_from(req, base, uplinks_, downstreams);
  if (s.existing_flows == conf::ExistingFlows::keep && !routing_.mark_mask)
    illegal_argument(
        "existing_flows: keep needs routing.mark_mask (the connection's uplink goes "
        "into its mark)");
  if (const std::string why = conf::session_conflict(s, sessions_); !why.empty())
    illegal_argument("match: " + why);
  if (const std::string why = conf::session_quota_refusal(s); !why.empty())
    illegal_argument("limit_bytes: " + why);
  const std::size_t count = sessions_.size() + (it == sessions_.end() ? 1 : 0);
  if (const std::string why = conf::session_room_refusal(count, routing_); !why.empty())
    throw ApiError("illegal_state", why);
  if (it != sessions_.end() && *it == s) return ok({{"changed", false}});
  const bool added = it == sessions_.end();
  if (added)
    sessions_.push_back(s);
  else
    *it = s;
  host_.roles_changed();
  if (on_event)
    on_event(
        {{"event", "session_update"}, {"session", name}, {"action", added ? "added" : "updated"}});
  return ok({{"changed", true}});
}

Json OffloadApi::remove_session(const Json& req) {
  const std::string name = string_arg(req, "name");
  auto it = std::find_if(sessions_.begin(), sessions_.end(),
                         [&](const conf::SessionConfig& s) { return s.name == name; });
  if (it == sessions_.end()) illegal_argument("name: no session '" + name + "'");
  no_emergency_but(name);
  if (host_.active_emergency() == name)
    throw ApiError("busy", "session '" + name + "' is the active emergency: end it first");
  sessions_.erase(it);
  host_.roles_changed();
  if (on_event) on_event({{"event", "session_update"}, {"session", name}, {"action", "removed"}});
  return ok();
}

}  // namespace tp
