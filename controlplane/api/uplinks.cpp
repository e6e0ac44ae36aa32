// Multi-uplink mode's operations: add_uplink, update_uplink, remove_uplink. Uplinks live next to
// set_upstream's single upstream, all of them upstream roles at once; which one a flow leaves by
// is the kernel's routing decision, which the offload policy follows. An operation either applies
// whole or changes nothing.
#include <algorithm>

#include "api_args.hpp"
#include "offload_api.hpp"

namespace tp {

using namespace api;

namespace {

// Tracking as the YAML's `track` says it; null or {} turns it off.
conf::TrackConfig track_from(const Json& req) {
  const Json& t = req["track"];
  conf::TrackConfig c;
  if (t.is_null() || (t.is_object() && t.empty())) return c;
  if (!t.is_object()) illegal_argument("track: expected an object (targets, interval_ms, ...)");
  for (const auto& [k, v] : t.items())
    if (k != "targets" && k != "method" && k != "interval_ms" && k != "timeout_ms" &&
        k != "reliability" && k != "down" && k != "up" && k != "max_loss_pct" && k != "max_rtt_ms")
      illegal_argument("track: unknown key '" + k + "'");
  c.method = choice_arg(t, "method", conf::track_methods(), c.method);
  for (const auto& a : string_list_arg(t, "targets"))
    c.targets.push_back(
        address_arg(a, c.method == conf::TrackMethod::arp ? AF_INET : 0, "track.targets"));
  if (c.targets.empty() || c.targets.size() > 8)
    illegal_argument("track.targets: expected 1 to 8 addresses");
  c.interval_ms = uint_arg(t, "interval_ms", 100, 600000, c.interval_ms);
  c.timeout_ms = uint_arg(t, "timeout_ms", 10, c.interval_ms, std::min(c.interval_ms, 1000u));
  c.reliability = uint_arg(t, "reliability", 1, static_cast<uint32_t>(c.targets.size()), 1);
  c.down = uint_arg(t, "down", 1, 100, c.down);
  c.up = uint_arg(t, "up", 1, 100, c.up);
  c.max_loss_pct = uint_arg(t, "max_loss_pct", 0, 100, c.max_loss_pct);
  c.max_rtt_ms = uint_arg(t, "max_rtt_ms", 0, 600000, c.max_rtt_ms);
  return c;
}

// The request's fields over `base` (update_uplink changes only what it names).
conf::UplinkConfig uplink_from(const Json& req, conf::UplinkConfig u) {
  if (req.contains("iface")) u.iface = string_arg(req, "iface");
  u.kind = choice_arg(req, "kind", conf::uplink_kinds(), u.kind);
  u.metered = bool_arg(req, "metered", u.metered);
  u.roaming = choice_arg(req, "roaming", conf::roaming_states(), u.roaming);
  u.metric = uint_arg(req, "metric", 0, UINT32_MAX, u.metric);
  u.weight = uint_arg(req, "weight", 1, 256, u.weight);
  if (req.contains("ipv4_addr")) {
    const std::string v = string_arg(req, "ipv4_addr");
    u.ipv4_addr = v.empty() ? std::nullopt : std::optional(address_arg(v, AF_INET, "ipv4_addr"));
  }
  if (req.contains("ipv4_gateway")) {
    const std::string v = string_arg(req, "ipv4_gateway");
    u.ipv4_gateway =
        v.empty() ? std::nullopt : std::optional(address_arg(v, AF_INET, "ipv4_gateway"));
  }
  if (req.contains("ipv6_gateways")) {
    u.ipv6_gateways.clear();
    for (const auto& g : string_list_arg(req, "ipv6_gateways"))
      u.ipv6_gateways.push_back(address_arg(g, AF_INET6, "ipv6_gateways"));
  }
  if (req.contains("ipv6_prefixes")) {
    u.ipv6_prefixes.clear();
    for (const auto& p : string_list_arg(req, "ipv6_prefixes")) {
      const Prefix mine = prefix_arg(p);
      if (const std::string why = conf::bad_uplink_prefix(mine); !why.empty())
        illegal_argument("ipv6_prefixes: " + why + ", got '" + p + "'");
      for (const Prefix& q : u.ipv6_prefixes)
        if (mine.overlaps(q))
          illegal_argument("ipv6_prefixes: " + p + " overlaps " + q.str() + " listed before");
      u.ipv6_prefixes.push_back(mine);
    }
    if (u.ipv6_prefixes.size() > 8) illegal_argument("ipv6_prefixes: at most 8 prefixes");
  }
  if (req.contains("track")) u.track = track_from(req);
  return u;
}

}  // namespace

bool OffloadApi::is_uplink(const std::string& iface) const {
  return std::any_of(uplinks_.begin(), uplinks_.end(),
                     [&](const conf::UplinkConfig& u) { return u.iface == iface; });
}

// `replacing`: the uplink an update changes, which may keep its own interface.
void OffloadApi::check_uplink(const conf::UplinkConfig& u, const std::string& replacing) const {
  if (u.iface.empty()) illegal_argument("iface: the uplink's interface is required");
  if (port_index(u.iface, conf::Role::downstream))
    illegal_argument("iface: '" + u.iface + "' is a downstream port of this box");
  if (!port_index(u.iface, conf::Role::upstream) && !host_.kernel_has_interface(u.iface))
    illegal_argument("iface: the box has no interface '" + u.iface + "'");
  if (upstream_ && upstream_->iface == u.iface)
    illegal_argument("iface: '" + u.iface + "' is the upstream (set_upstream's single uplink)");
  for (const auto& other : uplinks_) {
    if (other.name == replacing) continue;
    if (other.iface == u.iface)
      illegal_argument("iface: '" + u.iface + "' is already uplink '" + other.name + "'");
    for (const Prefix& p : u.ipv6_prefixes)
      for (const Prefix& q : other.ipv6_prefixes)
        if (p.overlaps(q))
          illegal_argument("ipv6_prefixes: " + p.str() + " overlaps " + q.str() + " of uplink '" +
                           other.name + "'");
  }
}

Json OffloadApi::add_uplink(const Json& req) {
  conf::UplinkConfig u;
  u.name = string_arg(req, "name");
  if (!conf::valid_uplink_name(u.name))
    illegal_argument("name: expected 1 to 32 of A-Z a-z 0-9 _ -, got '" + u.name + "'");
  for (const auto& other : uplinks_)
    if (other.name == u.name)
      illegal_argument("name: uplink '" + u.name + "' exists (update_uplink changes it)");
  u = uplink_from(req, u);
  check_uplink(u, "");
  uplinks_.push_back(u);
  host_.roles_changed();
  emit_uplink("uplink_added", u);
  return ok();
}

Json OffloadApi::update_uplink(const Json& req) {
  const std::string name = string_arg(req, "name");
  auto it = std::find_if(uplinks_.begin(), uplinks_.end(),
                         [&](const conf::UplinkConfig& u) { return u.name == name; });
  if (it == uplinks_.end()) illegal_argument("name: no uplink '" + name + "'");
  const conf::UplinkConfig u = uplink_from(req, *it);
  check_uplink(u, name);
  if (u == *it) return ok({{"changed", false}});
  *it = u;
  host_.roles_changed();
  emit_uplink("uplink_updated", u);
  return ok({{"changed", true}});
}

// Its flows go back to the kernel (which keeps routing them while the interface lives).
Json OffloadApi::remove_uplink(const Json& req) {
  const std::string name = string_arg(req, "name");
  auto it = std::find_if(uplinks_.begin(), uplinks_.end(),
                         [&](const conf::UplinkConfig& u) { return u.name == name; });
  if (it == uplinks_.end()) illegal_argument("name: no uplink '" + name + "'");
  const conf::UplinkConfig gone = *it;
  uplinks_.erase(it);
  host_.roles_changed();
  emit_uplink("uplink_removed", gone);
  return ok();
}

bool OffloadApi::fails_over(uint8_t port) const {
  if (port >= ports_.size()) return false;
  const std::string& name = ports_[port].name;
  const bool upstream = upstream_ && upstream_->iface == name;
  if (!upstream && !is_uplink(name)) return false;
  return uplinks_.size() + (upstream_ ? 1 : 0) >= 2;
}

Json OffloadApi::uplinks_json() const {
  Json out = Json::array();
  for (const auto& u : uplinks_) {
    Json j{{"name", u.name},
           {"iface", u.iface},
           {"kind", conf::to_string(u.kind)},
           {"metered", u.metered},
           {"roaming", conf::to_string(u.roaming)},
           {"metric", u.metric},
           {"weight", u.weight},
           {"offloaded", port_index(u.iface, conf::Role::upstream).has_value()}};
    if (const auto p = port_index(u.iface, conf::Role::upstream))
      j["link"] = links_down_.count(*p) ? "down" : "up";
    if (u.ipv4_addr) j["ipv4_addr"] = u.ipv4_addr->str();
    if (u.ipv4_gateway) j["ipv4_gateway"] = u.ipv4_gateway->str();
    j["ipv6_gateways"] = Json::array();
    for (const auto& g : u.ipv6_gateways) j["ipv6_gateways"].push_back(g.str());
    j["ipv6_prefixes"] = Json::array();
    for (const auto& p : u.ipv6_prefixes) j["ipv6_prefixes"].push_back(p.str());
    if (!u.track.targets.empty()) {
      Json t{{"method", conf::to_string(u.track.method)},
             {"interval_ms", u.track.interval_ms},
             {"timeout_ms", u.track.timeout_ms},
             {"reliability", u.track.reliability},
             {"down", u.track.down},
             {"up", u.track.up},
             {"max_loss_pct", u.track.max_loss_pct},
             {"max_rtt_ms", u.track.max_rtt_ms},
             {"targets", Json::array()}};
      for (const auto& a : u.track.targets) t["targets"].push_back(a.str());
      j["track"] = std::move(t);
    }
    j.update(host_.uplink_state(u.name, port_index(u.iface, conf::Role::upstream)));
    out.push_back(std::move(j));
  }
  return out;
}

void OffloadApi::emit_uplink(const std::string& event, const conf::UplinkConfig& u,
                             const std::string& detail) {
  if (!on_event) return;
  Json e{{"event", event}, {"uplink", u.name}, {"iface", u.iface}};
  if (!detail.empty()) e["detail"] = detail;
  on_event(e);
}

}  // namespace tp
