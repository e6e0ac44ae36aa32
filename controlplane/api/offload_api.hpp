// The management API's operations, with the tethering offload HAL's semantics (Android's
// IOffloadControl): the state check first, then strict argument checks, then the effect. JSON in,
// JSON out (docs/api.md); the transport is api_server. It owns what the connection manager said
// (upstream, downstreams, local prefixes, data limits) and turns it into the offload policy's port
// roles; the daemon does the work through OffloadHost. Control thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api_args.hpp"
#include "config.hpp"
#include "offload_policy.hpp"

namespace tp {

using Json = nlohmann::json;

struct ByteCounts {
  uint64_t rx = 0, tx = 0;
};

// What the API needs from the daemon. The ControlPlane implements it; unit tests record it.
class OffloadHost {
 public:
  virtual ~OffloadHost() = default;
  virtual void start_offload() = 0;
  virtual void stop_offload() = 0;
  // The upstream, a downstream, the local prefixes or a limit state changed: decide every flow
  // again (flows that no longer qualify go back to the kernel; none is dropped).
  virtual void roles_changed() = 0;
  // Fast-path bytes received from (rx) and sent to (tx) a port since the daemon started.
  virtual ByteCounts forwarded_bytes(uint8_t port) = 0;
  virtual void arm_limit(uint8_t port, uint64_t limit, uint64_t used) = 0;
  virtual void disarm_limit(uint8_t port) = 0;
  virtual uint64_t limit_used(uint8_t port) = 0;
  // status details, flows, ports, counters: the daemon's own views.
  virtual Json describe(const std::string& what) = 0;
  // Re-reads the configuration file; an error message, or empty when it was applied.
  virtual std::string reload() = 0;
  // A signed remote configuration (docs/api.md, "Signed configuration"), and back to the one that
  // ran before: the reply's details; throw ApiError with the refusal's code.
  virtual Json apply_signed_config(const Json& /*bundle*/) {
    throw api::ApiError("unsupported", "apply_signed_config: not supported here");
  }
  virtual Json restore_config() {
    throw api::ApiError("unsupported", "restore_config: not supported here");
  }
  // Whether the kernel (the box's network namespace) has an interface of this name.
  virtual bool kernel_has_interface(const std::string& iface) = 0;
  // An uplink's health and whether it takes new connections (the uplink monitor's), and the
  // traffic of its port (`port`: none while it has no fast-path port), for status.
  virtual Json uplink_state(const std::string& /*name*/, std::optional<uint8_t> /*port*/) const {
    return Json::object();
  }
  // Makes the named session the active emergency (or ends it): throws ApiError (unknown_session,
  // not_emergency, busy).
  virtual void set_emergency(const std::string& /*session*/, bool /*active*/) {
    throw api::ApiError("unsupported", "set_emergency: no sessions here");
  }
  virtual std::optional<std::string> active_emergency() const { return std::nullopt; }
  // The power manager is about to cut the power (shutdown_prepare): accounting saved, flows back
  // to the kernel, within deadline_ms; the reply's details. shutdown_cancel undoes it (the vehicle
  // is in use again). Both throw ApiError (illegal_state).
  virtual Json shutdown_prepare(uint32_t /*deadline_ms*/) {
    throw api::ApiError("unsupported", "shutdown_prepare: not supported here");
  }
  virtual void shutdown_cancel() {
    throw api::ApiError("unsupported", "shutdown_cancel: not supported here");
  }
  // The vehicle's states (docs/api.md, "The vehicle"): `in_use` or `garage` set, the box
  // suspended or resumed. Each answers the details, or throws ApiError (busy, not_configured,
  // illegal_state).
  virtual Json set_vehicle_state(const std::string& /*what*/, bool /*value*/) {
    throw api::ApiError("unsupported", "vehicle states: not supported here");
  }
  virtual Json suspend() { throw api::ApiError("unsupported", "suspend: not supported here"); }
  virtual bool suspended() const { return false; }
  virtual Json resume() { throw api::ApiError("unsupported", "resume: not supported here"); }
  // Brings a port's kernel interface administratively up or down: an error message, or empty.
  virtual std::string set_interface_enabled(uint8_t /*port*/, bool /*enabled*/) {
    return "set_interface_enabled: not supported here";
  }
};

class OffloadApi {
 public:
  OffloadApi(const conf::Config& cfg, OffloadHost& host);

  // {"op": "...", ...arguments} -> {"ok": true, ...} or {"ok": false, "error": CODE, "message"}.
  // Never throws: anything unexpected becomes an error reply. A caller that may only read gets
  // permission_denied for anything else; every other operation is logged with who asked.
  Json handle(const Json& request, const api::Caller& caller);

  // The configuration's upstream, downstreams, local prefixes and limits. At start everything in
  // it applies (and offload starts if enabled); on reload only what differs from `previous`, so a
  // reload does not undo what the connection manager set through the API.
  void apply_config(const conf::Config& cfg, const conf::Config* previous);

  // Every ~100 ms: data warning and limit events.
  void poll();
  // A port lost or regained its link (events for the upstream and the uplinks).
  void link_changed(uint8_t port, bool up);
  // Whether a port's flows fail over when its link goes: it is an uplink and another one is
  // configured (set_upstream's counts) to take new connections.
  bool fails_over(uint8_t port) const;
  bool link_up(uint8_t port) const { return links_down_.count(port) == 0; }
  // A port of the configuration with this name and role.
  std::optional<uint8_t> port_index(const std::string& name, conf::Role role) const;

  // Persisted data-limit state (usage.json): what survives a restart. restore_usage keeps what
  // it can use and returns what it ignored (a mistyped field costs that field, not the start).
  Json usage() const;
  std::vector<std::string> restore_usage(const Json& saved);

  bool started() const { return started_; }
  // The uplinks as status shows them.
  Json uplinks_json() const;
  const std::vector<conf::UplinkConfig>& uplinks() const { return uplinks_; }
  // The sessions: the configuration's, as set_session and remove_session changed them since.
  const std::vector<conf::SessionConfig>& sessions() const { return sessions_; }
  // The policy's view: roles by port index.
  std::map<uint8_t, PortRole> roles() const;
  const std::vector<Prefix>& local_prefixes() const { return local_prefixes_; }

  std::function<void(const Json& event)> on_event;

 private:
  struct Limit {
    uint64_t warning = 0, limit = 0;
    bool warned = false, reached = false;
  };

  Json dispatch(const std::string& op, const Json& request);
  Json init();
  Json stop();
  Json set_local_prefixes(const Json& req);
  Json set_upstream(const Json& req);
  Json downstream(const Json& req, bool add);
  Json get_forwarded_stats(const Json& req);
  Json set_data_warning_and_limit(const Json& req);
  Json status();
  // Multi-uplink mode (uplinks.cpp).
  Json add_uplink(const Json& req);
  Json update_uplink(const Json& req);
  Json remove_uplink(const Json& req);
  Json set_session(const Json& req);
  Json remove_session(const Json& req);
  Json set_interface_enabled(const Json& req);
  void no_emergency_but(const std::string& session) const;  // throws busy
  void check_uplink(const conf::UplinkConfig& u, const std::string& replacing) const;
  void emit_uplink(const std::string& event, const conf::UplinkConfig& u,
                   const std::string& detail = "");
  bool is_uplink(const std::string& iface) const;

  void set_limit(uint8_t port, uint64_t warning, uint64_t limit, uint64_t used, bool warned = false,
                 bool reached = false);
  void drop_limit(uint8_t port);
  void emit(const std::string& event, const std::string& upstream, const std::string& detail = "");

  std::vector<conf::PortConfig> ports_;
  OffloadHost& host_;
  bool started_ = false;
  std::optional<conf::UpstreamConfig> upstream_;
  // The HAL's "moved to a RAT without offload": the upstream is a kernel interface that is not
  // one of our ports. Nothing is offloaded until set_upstream names an upstream port again.
  std::optional<conf::UpstreamConfig> unsupported_upstream_;
  std::vector<conf::UplinkConfig> uplinks_;  // next to upstream_, in the order added
  std::vector<conf::SessionConfig> sessions_;
  conf::RoutingConfig routing_;
  std::set<uint8_t> links_down_;  // ports whose link is down, as last told
  std::vector<conf::DownstreamConfig> downstreams_;
  std::vector<Prefix> local_prefixes_;
  std::map<uint8_t, Limit> limits_;
  // Limits on upstreams without a fast-path port: accepted and reported, not enforced.
  std::map<std::string, Limit> kernel_limits_;
  // Since init: whether set_upstream has named an upstream (an empty iface then clears it).
  bool upstream_ever_set_ = false;
  std::map<uint8_t, ByteCounts> stats_base_;  // forwarded bytes at the previous stats call
};

}  // namespace tp
