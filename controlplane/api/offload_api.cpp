#include "offload_api.hpp"

#include <algorithm>
#include <iostream>
#include <stdexcept>
#include <type_traits>

#include "api_args.hpp"
#include "api_server.hpp"
#include "daemon_log.hpp"

namespace tp {

using namespace api;

OffloadApi::OffloadApi(const conf::Config& cfg, OffloadHost& host)
    : ports_(cfg.ports), host_(host) {}

Json OffloadApi::handle(const Json& request, const api::Caller& caller) {
  std::string op;
  try {
    if (!request.is_object()) illegal_argument("a request is a JSON object with an 'op'");
    auto op_it = request.find("op");
    if (op_it == request.end() || !op_it->is_string())
      illegal_argument("missing 'op' (a string naming the operation)");
    op = op_it->get<std::string>();
    // The daemon's own views answer in any state, to any caller.
    if (op == "status") return status();
    if (op == "flows" || op == "ports" || op == "counters" || op == "clients" ||
        op == "session_stats" || op == "vehicle")
      return ok(host_.describe(op));
    if (!caller.control)
      throw ApiError("permission_denied", op + ": uid " + std::to_string(caller.uid) +
                                              " may only read (control needs api.control_group)");
    if (op == "set_emergency" && !caller.emergency)
      throw ApiError("permission_denied",
                     "set_emergency: only root (the integrator) and api.emergency_group may "
                     "start or end an emergency, not uid " +
                         std::to_string(caller.uid));
    // Asleep, nothing changes but the power state: a change would start timers and probes.
    if (host_.suspended() && op != "resume" && op != "suspend" && op != "shutdown_prepare" &&
        op != "shutdown_cancel")
      throw ApiError("illegal_state", op + ": suspended (resume first)");
    // The HAL's statistics read and reset (the next call counts from here): a control operation.
    if (op == "get_forwarded_stats") return get_forwarded_stats(request);
    Json reply = dispatch(op, request);
    log::notice() << "api: uid " << caller.uid << " pid " << caller.pid << ": "
                  << request.dump().substr(0, 300) << ": ok";
    return reply;
  } catch (const ApiError& e) {
    if (!op.empty())
      log::notice() << "api: uid " << caller.uid << " pid " << caller.pid << ": " << op
                    << ": refused: " << e.code;
    return Json{{"ok", false}, {"error", e.code}, {"message", e.what()}};
  } catch (const std::exception& e) {
    return Json{{"ok", false}, {"error", "internal"}, {"message", e.what()}};
  }
}

// The operations that change something.
Json OffloadApi::dispatch(const std::string& op, const Json& request) {
  if (op == "reload") {
    const std::string err = host_.reload();
    if (err.rfind("busy: ", 0) == 0) throw ApiError("busy", err.substr(6));
    if (!err.empty()) throw ApiError("reload_failed", err);
    return ok();
  }
  if (op == "apply_signed_config") {
    if (!request.contains("bundle")) illegal_argument("bundle: required (the signed bundle)");
    return ok(host_.apply_signed_config(request["bundle"]));
  }
  if (op == "restore_config") return ok(host_.restore_config());
  if (op == "set_emergency") {
    host_.set_emergency(string_arg(request, "session"), bool_arg(request, "active", true));
    return ok();
  }
  if (op == "init") return init();
  // Interface control is the box's, not offload's: it answers whether offload runs or not.
  if (op == "set_interface_enabled") return set_interface_enabled(request);
  // The vehicle's power states, likewise.
  if (op == "shutdown_prepare") {
    if (auto d = request.find("deadline_ms"); d == request.end() || d->is_null())
      illegal_argument("deadline_ms: required (how long the power manager waits for ready)");
    return ok(host_.shutdown_prepare(uint_arg(request, "deadline_ms", 1, 600000, 0)));
  }
  if (op == "shutdown_cancel") {
    host_.shutdown_cancel();
    return ok();
  }
  if (op == "set_vehicle_in_use")
    return ok(host_.set_vehicle_state("in_use", required_bool_arg(request, "in_use")));
  if (op == "set_garage")
    return ok(host_.set_vehicle_state("garage", required_bool_arg(request, "active")));
  if (op == "suspend") return ok(host_.suspend());
  if (op == "resume") return ok(host_.resume());
  static const char* const kStarted[] = {
      "stop",           "set_local_prefixes", "set_upstream",
      "add_downstream", "remove_downstream",  "set_data_warning_and_limit",
      "add_uplink",     "update_uplink",      "remove_uplink",
      "set_session",    "remove_session"};
  bool known = false;
  for (const char* k : kStarted) known = known || op == k;
  if (!known) throw ApiError("unknown_op", "no operation '" + op + "'");
  // The HAL's rule: the state check comes before any argument is looked at.
  if (!started_) throw ApiError("illegal_state", op + ": offload is not started (call init)");
  if (op == "stop") return stop();
  if (op == "set_local_prefixes") return set_local_prefixes(request);
  if (op == "set_upstream") return set_upstream(request);
  if (op == "add_downstream") return downstream(request, true);
  if (op == "remove_downstream") return downstream(request, false);
  if (op == "add_uplink") return add_uplink(request);
  if (op == "update_uplink") return update_uplink(request);
  if (op == "remove_uplink") return remove_uplink(request);
  if (op == "set_session") return set_session(request);
  if (op == "remove_session") return remove_session(request);
  return set_data_warning_and_limit(request);
}

Json OffloadApi::init() {
  if (started_) throw ApiError("illegal_state", "init: offload is already started");
  started_ = true;
  host_.start_offload();
  emit("offload_started", upstream_ ? upstream_->iface : "");
  return ok();
}

// The HAL's stop tears everything down: the next init starts from nothing, as a HAL client
// expects (it sends upstream, downstreams, prefixes and limits again after init).
Json OffloadApi::stop() {
  started_ = false;
  host_.stop_offload();
  for (const auto& [port, l] : limits_) host_.disarm_limit(port);
  limits_.clear();
  kernel_limits_.clear();
  upstream_.reset();
  unsupported_upstream_.reset();
  upstream_ever_set_ = false;
  uplinks_.clear();
  downstreams_.clear();
  local_prefixes_.clear();
  for (uint8_t p = 0; p < ports_.size(); ++p) stats_base_[p] = host_.forwarded_bytes(p);
  host_.roles_changed();
  return ok();
}

Json OffloadApi::set_local_prefixes(const Json& req) {
  if (!req.contains("prefixes")) illegal_argument("missing 'prefixes' (a non-empty list)");
  const auto texts = string_list_arg(req, "prefixes");
  if (texts.empty()) illegal_argument("prefixes: the list must not be empty");
  std::vector<Prefix> prefixes;
  for (const auto& t : texts) prefixes.push_back(prefix_arg(t));
  local_prefixes_ = std::move(prefixes);
  host_.roles_changed();
  return ok();
}

Json OffloadApi::set_upstream(const Json& req) {
  conf::UpstreamConfig u;
  u.iface = string_arg(req, "iface");
  const std::string v4 = string_arg(req, "ipv4_addr"), gw = string_arg(req, "ipv4_gateway");
  const auto v6gws = string_list_arg(req, "ipv6_gateways");
  if (u.iface.empty()) {
    // Android's framework clears the upstream with ("", "0.0.0.0", "0.0.0.0", []) and ignores
    // the result; VTS wants an empty iface refused. Qualcomm's HAL does both: it clears an
    // upstream that was set, and refuses when none ever was. So do we.
    if (!upstream_ever_set_) illegal_argument("iface: the upstream interface is required");
    upstream_.reset();
    unsupported_upstream_.reset();
    host_.roles_changed();
    emit("upstream_cleared", "");
    return ok();
  }
  if (is_uplink(u.iface))
    illegal_argument("iface: '" + u.iface + "' is an uplink (remove_uplink it first)");
  const bool ours = port_index(u.iface, conf::Role::upstream).has_value();
  if (!ours && port_index(u.iface, conf::Role::downstream))
    illegal_argument("iface: '" + u.iface + "' is a downstream port of this box");
  if (!ours && !host_.kernel_has_interface(u.iface))
    illegal_argument("iface: the box has no interface '" + u.iface + "'");
  if (v4.empty() && gw.empty() && v6gws.empty())
    illegal_argument("give ipv4_addr/ipv4_gateway, ipv6_gateways, or both");
  if (!v4.empty()) u.ipv4_addr = address_arg(v4, AF_INET, "ipv4_addr");
  if (!gw.empty()) u.ipv4_gateway = address_arg(gw, AF_INET, "ipv4_gateway");
  for (const auto& g : v6gws) u.ipv6_gateways.push_back(address_arg(g, AF_INET6, "ipv6_gateways"));
  upstream_ever_set_ = true;
  if (!ours) {
    // An upstream the fast path has no port for (another modem, Wi-Fi as upstream): every flow
    // goes back to the kernel, which routes it there.
    upstream_.reset();
    unsupported_upstream_ = u;
    host_.roles_changed();
    emit("offload_stopped_unsupported", u.iface, "not a fast-path port; the kernel forwards");
    return ok();
  }
  if (unsupported_upstream_) {
    unsupported_upstream_.reset();
    emit("support_available", u.iface);
  }
  // The HAL: after OFFLOAD_STOPPED_LIMIT_REACHED the client resumes by programming the upstream
  // again (and sends a new quota). The spent limit goes; offloading through the upstream resumes.
  const uint8_t port = *port_index(u.iface, conf::Role::upstream);
  if (auto l = limits_.find(port); l != limits_.end() && l->second.reached) {
    host_.disarm_limit(port);
    limits_.erase(l);
  }
  upstream_ = std::move(u);
  host_.roles_changed();
  return ok();
}

Json OffloadApi::downstream(const Json& req, bool add) {
  const std::string iface = string_arg(req, "iface");
  if (iface.empty()) illegal_argument("iface: the downstream interface is required");
  if (!port_index(iface, conf::Role::downstream))
    illegal_argument("iface: '" + iface + "' is not a downstream port of this box");
  const conf::DownstreamConfig d{iface, prefix_arg(string_arg(req, "prefix"))};
  auto it = std::find(downstreams_.begin(), downstreams_.end(), d);
  if (add && it == downstreams_.end()) downstreams_.push_back(d);
  if (!add && it != downstreams_.end()) downstreams_.erase(it);
  host_.roles_changed();
  return ok();
}

Json OffloadApi::get_forwarded_stats(const Json& req) {
  std::string iface;
  if (req.contains("iface") && req["iface"].is_string()) iface = req["iface"].get<std::string>();
  const auto port = port_index(iface, conf::Role::upstream);
  if (!started_ || !port) return ok({{"iface", iface}, {"rx_bytes", 0}, {"tx_bytes", 0}});
  const ByteCounts now = host_.forwarded_bytes(*port);
  ByteCounts& base = stats_base_[*port];
  const Json reply =
      ok({{"iface", iface}, {"rx_bytes", now.rx - base.rx}, {"tx_bytes", now.tx - base.tx}});
  base = now;
  return reply;
}

Json OffloadApi::set_data_warning_and_limit(const Json& req) {
  const std::string iface = string_arg(req, "iface");
  if (iface.empty()) illegal_argument("iface: the upstream interface is required");
  const auto port = port_index(iface, conf::Role::upstream);
  if (!port && port_index(iface, conf::Role::downstream))
    illegal_argument("iface: '" + iface + "' is a downstream port of this box");
  if (!port && !host_.kernel_has_interface(iface))
    illegal_argument("iface: the box has no interface '" + iface + "'");
  const uint64_t warning = bytes_arg(req, "warning"), limit = bytes_arg(req, "limit");
  if (!port) {
    // An upstream the fast path does not carry: the kernel forwards all of it and the fast path
    // cannot count it. Refusing would make Android's framework stop every offload ("we don't
    // want to blow through the data limit"), so the limit is accepted and kept, shown in status
    // as not enforced, and dropped with stop like any other.
    kernel_limits_[iface] = Limit{warning, limit, false, false};
    return ok({{"enforced", false}});
  }
  set_limit(*port, warning, limit, 0);
  return ok({{"enforced", true}});
}

void OffloadApi::set_limit(uint8_t port, uint64_t warning, uint64_t limit, uint64_t used,
                           bool warned, bool reached) {
  const bool was_reached = limits_.count(port) && limits_[port].reached;
  limits_[port] = Limit{warning, limit, warned, reached};
  host_.arm_limit(port, limit, used);
  if (was_reached != reached) host_.roles_changed();  // offloading through it resumes or stops
  poll();
}

Json OffloadApi::status() {
  Json s = host_.describe("status");
  s["offload"] = started_ ? "started" : "stopped";
  const auto& up = upstream_ ? upstream_ : unsupported_upstream_;
  if (up) {
    Json u{{"iface", up->iface}, {"offloaded", upstream_.has_value()}};
    if (up->ipv4_addr) u["ipv4_addr"] = up->ipv4_addr->str();
    if (up->ipv4_gateway) u["ipv4_gateway"] = up->ipv4_gateway->str();
    u["ipv6_gateways"] = Json::array();
    for (const auto& g : up->ipv6_gateways) u["ipv6_gateways"].push_back(g.str());
    s["upstream"] = u;
  } else {
    s["upstream"] = nullptr;
  }
  s["uplinks"] = uplinks_json();
  s["downstreams"] = Json::array();
  for (const auto& d : downstreams_)
    s["downstreams"].push_back({{"iface", d.iface}, {"prefix", d.prefix.str()}});
  s["local_prefixes"] = Json::array();
  for (const auto& p : local_prefixes_) s["local_prefixes"].push_back(p.str());
  s["limits"] = Json::array();
  const Json used = usage();
  for (const auto& [iface, l] : used.items()) {
    Json limit = l;
    limit["iface"] = iface;
    for (const auto& u : uplinks_)
      if (u.iface == iface) limit["uplink"] = u.name;
    limit["enforced"] = true;
    s["limits"].push_back(std::move(limit));
  }
  for (const auto& [iface, l] : kernel_limits_) {
    Json limit{{"iface", iface}, {"warning", l.warning}, {"limit", l.limit}, {"enforced", false}};
    for (const auto& u : uplinks_)
      if (u.iface == iface) limit["uplink"] = u.name;
    s["limits"].push_back(std::move(limit));
  }
  return ok(s);
}

void OffloadApi::apply_config(const conf::Config& cfg, const conf::Config* previous) {
  const bool at_start = previous == nullptr;
  const bool enable = cfg.offload.enabled && (at_start || !previous->offload.enabled);
  const bool disable = !at_start && !cfg.offload.enabled && previous->offload.enabled;
  if (disable && started_) stop();
  // Offload turned on by this configuration starts from what it says, as at start (a stop in
  // between cleared everything); otherwise only what the file changed is applied, so a reload
  // does not undo what the connection manager set through the API.
  const bool fresh = at_start || enable;
  bool changed = false;
  if (fresh || cfg.upstream != previous->upstream) {
    if (cfg.upstream) {
      upstream_ = cfg.upstream;
      unsupported_upstream_.reset();
      upstream_ever_set_ = true;
    }
    changed = true;
  }
  if (fresh || cfg.uplinks != previous->uplinks) {
    uplinks_ = cfg.uplinks;
    changed = true;
  }
  routing_ = cfg.routing;
  if (fresh || cfg.sessions != previous->sessions) {
    sessions_ = cfg.sessions;
    changed = true;
  }
  if (fresh || cfg.downstreams != previous->downstreams) {
    downstreams_ = cfg.downstreams;
    changed = true;
  }
  if (fresh || cfg.local_prefixes != previous->local_prefixes) {
    local_prefixes_ = cfg.local_prefixes;
    changed = true;
  }
  // The roles first, so that offload starts (a conntrack dump) under them.
  if (changed) host_.roles_changed();
  if (enable && !started_) init();
  if (!started_) return;
  const std::vector<conf::LimitConfig> none;
  const auto& before = fresh ? none : previous->limits.upstreams;
  auto find = [](const std::vector<conf::LimitConfig>& v, const std::string& iface) {
    return std::find_if(v.begin(), v.end(), [&](const auto& l) { return l.iface == iface; });
  };
  for (const auto& l : cfg.limits.upstreams) {
    const auto port = port_index(l.iface, conf::Role::upstream);
    const auto was = find(before, l.iface);
    if (!port || (was != before.end() && *was == l)) continue;
    if (was == before.end() || !limits_.count(*port)) {
      set_limit(*port, l.warning_bytes, l.limit_bytes, 0);  // a new limit counts from zero
      continue;
    }
    // New thresholds for the same upstream: the bytes already used still count, and an event
    // already sent is not sent again unless the new threshold is not reached yet.
    const Limit old = limits_[*port];
    const uint64_t used = host_.limit_used(*port);
    set_limit(*port, l.warning_bytes, l.limit_bytes, used, old.warned && used >= l.warning_bytes,
              old.reached && used >= l.limit_bytes);
  }
  for (const auto& l : before) {
    const auto port = port_index(l.iface, conf::Role::upstream);
    if (port && find(cfg.limits.upstreams, l.iface) == cfg.limits.upstreams.end())
      drop_limit(*port);
  }
}

void OffloadApi::drop_limit(uint8_t port) {
  auto it = limits_.find(port);
  if (it == limits_.end()) return;
  const bool was_reached = it->second.reached;
  host_.disarm_limit(port);
  limits_.erase(it);
  if (was_reached) host_.roles_changed();  // offloading through it resumes
}

void OffloadApi::poll() {
  for (auto& [port, l] : limits_) {
    const uint64_t used = host_.limit_used(port);
    if (!l.warned && used >= l.warning) {
      l.warned = true;
      emit("warning_reached", ports_[port].name, std::to_string(used) + " bytes");
    }
    if (!l.reached && used >= l.limit) {
      l.reached = true;
      emit("limit_reached", ports_[port].name, std::to_string(used) + " bytes");
      host_.roles_changed();
    }
  }
}

void OffloadApi::link_changed(uint8_t port, bool up) {
  if (port >= ports_.size()) return;
  if (up)
    links_down_.erase(port);
  else
    links_down_.insert(port);
  for (const auto& u : uplinks_)
    if (started_ && u.iface == ports_[port].name) emit_uplink(up ? "uplink_up" : "uplink_down", u);
  if (!started_ || !upstream_ || port >= ports_.size() || ports_[port].name != upstream_->iface)
    return;
  if (up)
    emit("support_available", upstream_->iface);
  else
    emit("offload_stopped_error", upstream_->iface, "link down");
}

Json OffloadApi::usage() const {
  Json out = Json::object();
  for (const auto& [port, l] : limits_)
    out[ports_[port].name] = {{"warning", l.warning},
                              {"limit", l.limit},
                              {"used", host_.limit_used(port)},
                              {"warning_reached", l.warned},
                              {"limit_reached", l.reached}};
  return out;
}

std::vector<std::string> OffloadApi::restore_usage(const Json& saved) {
  std::vector<std::string> ignored;
  if (!started_) return ignored;
  if (!saved.is_object()) return {"not a JSON object: nothing restored"};
  for (const auto& item : saved.items()) {
    const std::string name = item.key();
    const Json& v = item.value();
    const auto port = port_index(name, conf::Role::upstream);
    if (!port) {
      ignored.push_back(name + ": not an upstream port (any more)");
      continue;
    }
    if (!v.is_object()) {
      ignored.push_back(name + ": not an object");
      continue;
    }
    auto field = [&](const char* key, auto fallback) {
      using T = decltype(fallback);
      const auto it = v.find(key);
      if (it == v.end()) return fallback;
      const bool fits = std::is_same_v<T, bool> ? it->is_boolean() : it->is_number_unsigned();
      if (fits) return it->template get<T>();
      ignored.push_back(name + "." + key + ": expected " +
                        (std::is_same_v<T, bool> ? "true or false" : "bytes >= 0") + ", got " +
                        json_line(*it).substr(0, 40));
      return fallback;
    };
    const uint64_t used = field("used", uint64_t{0});
    const bool warned = field("warning_reached", false), reached = field("limit_reached", false);
    if (auto now = limits_.find(*port); now != limits_.end()) {
      // The configuration's limit stands (it may have changed while the daemon was down); the
      // bytes used carry over, and an event already sent is not sent again.
      const Limit l = now->second;
      set_limit(*port, l.warning, l.limit, used, warned && used >= l.warning,
                reached && used >= l.limit);
    } else {
      set_limit(*port, field("warning", uint64_t{0}), field("limit", uint64_t{0}), used, warned,
                reached);
    }
  }
  return ignored;
}

std::map<uint8_t, PortRole> OffloadApi::roles() const {
  std::map<uint8_t, PortRole> out;
  for (uint8_t p = 0; p < ports_.size(); ++p) {
    PortRole r;
    r.port = p;
    r.upstream = (upstream_ && upstream_->iface == ports_[p].name) || is_uplink(ports_[p].name);
    auto l = limits_.find(p);
    r.limited = l != limits_.end() && l->second.reached;
    for (const auto& d : downstreams_)
      if (d.iface == ports_[p].name) r.prefixes.push_back(d.prefix);
    out[p] = std::move(r);
  }
  return out;
}

Json OffloadApi::set_interface_enabled(const Json& req) {
  const std::string iface = string_arg(req, "iface");
  auto it = req.find("enabled");
  if (it == req.end() || !it->is_boolean())
    illegal_argument("enabled: expected true or false (required)");
  auto port = port_index(iface, conf::Role::upstream);
  if (!port) port = port_index(iface, conf::Role::downstream);
  if (!port)
    illegal_argument("iface: '" + iface +
                     "' is not one of tetherpath's ports (the configuration's ports)");
  const std::string error = host_.set_interface_enabled(*port, it->get<bool>());
  if (!error.empty()) throw ApiError("interface_error", error);
  return ok();
}

std::optional<uint8_t> OffloadApi::port_index(const std::string& name, conf::Role role) const {
  for (uint8_t p = 0; p < ports_.size(); ++p)
    if (ports_[p].name == name && ports_[p].role == role) return p;
  return std::nullopt;
}

void OffloadApi::emit(const std::string& event, const std::string& upstream,
                      const std::string& detail) {
  if (!on_event) return;
  Json e{{"event", event}, {"upstream", upstream}};
  if (!detail.empty()) e["detail"] = detail;
  // A limit of an uplink's interface is that uplink's: the event names it too.
  for (const auto& u : uplinks_)
    if (u.iface == upstream) e["uplink"] = u.name;
  on_event(e);
}

}  // namespace tp
