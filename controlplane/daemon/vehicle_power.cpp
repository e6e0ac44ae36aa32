// The vehicle's life as the control plane lives it (#17): the power manager's shutdown_prepare
// and suspend/resume, whether the vehicle is in use, garage mode (a remote task) and silent mode.
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "control_plane.hpp"
#include "daemon_log.hpp"
#include "elapsed.hpp"
#include "interface_admin.hpp"

namespace tp {

namespace {

[[noreturn]] void refuse(const std::string& op, const std::string& why) {
  if (why.rfind("busy: ", 0) == 0) throw api::ApiError("busy", op + ": " + why.substr(6));
  throw api::ApiError("not_configured", op + ": " + why);
}

}  // namespace

Json ControlPlane::shutdown_prepare(uint32_t deadline_ms) {
  if (shutdown_prepared_)
    throw api::ApiError("illegal_state",
                        "shutdown_prepare: already prepared (shutdown_cancel "
                        "to carry on)");
  // The power manager asks only once the vehicle is not in use; if it says otherwise, someone
  // is still tethered through the box.
  if (const std::string why = vehicle_.shutdown_refusal(); !why.empty())
    refuse("shutdown_prepare", why + " (set_vehicle_in_use false first)");
  const auto began = std::chrono::steady_clock::now();
  // The counters first, while every flow still has them: what the fast path carried up to now is
  // in the files before anything else can fail.
  bool saved = false;
  try {
    saved = persist_usage();
  } catch (const std::exception& e) {  // the flows go back all the same
    log::err() << "shutdown_prepare: accounting not saved: " << e.what();
  }
  const std::size_t flows = flows_->size();
  // The kernel engine asked to keep forwarding across restarts leaves its pinned state as it is:
  // consistent by construction (each map entry is written whole), and the heartbeat hands
  // everything to the kernel once the daemon is gone. Otherwise every flow goes back now, TCP
  // marked liberal, and the kernel carries the connections through the power-down.
  const bool keep = rt_.keeps_forwarding_on_exit();
  if (!keep) stop_offload();
  shutdown_prepared_ = true;
  const double took = ms_since(began);
  const bool ready = took <= deadline_ms;
  Json details{
      {"ready", ready},       {"took_ms", std::round(took * 10) / 10}, {"deadline_ms", deadline_ms},
      {"usage_saved", saved}, {"flows_handed_back", keep ? 0 : flows}, {"fast_path_kept", keep}};
  log::Line(ready ? log::Priority::notice : log::Priority::err)
      << "shutdown prepared in " << details["took_ms"].get<double>() << " ms (deadline "
      << deadline_ms << " ms): usage " << (saved ? "saved" : "NOT saved") << ", "
      << (keep ? "the fast path kept as pinned" : std::to_string(flows) + " flows handed back");
  Json e = details;
  e["event"] = "shutdown_prepared";
  publish(e);
  return details;
}

void ControlPlane::shutdown_cancel() {
  if (!shutdown_prepared_)
    throw api::ApiError("illegal_state", "shutdown_cancel: no shutdown is being prepared");
  shutdown_prepared_ = false;
  // Offload runs whenever the API's state says it is started (init, or the configuration at
  // start): a complete dump installs what still runs.
  if (api_->started()) start_offload();
  log::notice() << "shutdown cancelled: offload " << (offloading_ ? "resumed" : "stays stopped");
  publish(Json{{"event", "shutdown_cancelled"}, {"offloading", offloading_}});
}

Json ControlPlane::set_vehicle_state(const std::string& what, bool value) {
  // (While suspended the API refuses it before it gets here.)
  const std::string op = what == "in_use" ? "set_vehicle_in_use" : "set_garage";
  const bool was_garage = vehicle_.garage(), was_off = vehicle_.ports_off();
  const std::string why =
      what == "in_use" ? vehicle_.set_in_use(value) : vehicle_.set_garage(value);
  if (!why.empty()) refuse(op, why);
  vehicle_changed(what, was_garage, was_off);
  return vehicle_.describe();
}

void ControlPlane::silent_changed(bool silent) {
  const bool was_garage = vehicle_.garage(), was_off = vehicle_.ports_off();
  vehicle_.set_silent(silent);
  vehicle_changed("silent", was_garage, was_off);
}

// Garage mode: the classifier refuses the other sessions' new connections and drops their
// running ones' packets (held: conntrack keeps them), and the offload decision takes their flows
// out of the fast path (garage_hold), before the event says garage mode runs.
void ControlPlane::vehicle_changed(const std::string& what, bool was_garage, bool was_off) {
  const bool garage = vehicle_.garage();
  if (garage != was_garage || (garage && what == "configuration")) {
    if (monitor_) monitor_->set_garage(garage_passing());
    redecide_all();
  }
  if (vehicle_.ports_off() != was_off) switch_silent_ports(vehicle_.ports_off());
  const Json e = publish_vehicle(what, Json::object());
  log::notice() << "vehicle: " << what << " changed: in use "
                << (e["in_use"].is_null() ? std::string("unknown") : e["in_use"].dump())
                << ", garage " << (garage ? "on" : "off") << ", silent "
                << (vehicle_.silent() ? "on" : "off");
}

// Whose traffic crosses the uplinks in garage mode (none: not in garage mode): the remote task's
// sessions, and an emergency call, remote task or not.
std::optional<std::set<std::string>> ControlPlane::garage_passing() const {
  if (!vehicle_.garage()) return std::nullopt;
  const auto& names = vehicle_.config().garage_sessions;
  std::set<std::string> passing(names.begin(), names.end());
  if (emergency_) passing.insert(*emergency_);
  return passing;
}

// The vehicle_state event: the state after the change, and the details of the change.
Json ControlPlane::publish_vehicle(const std::string& changed, const Json& details) {
  Json e = vehicle_.describe();
  e.update(details);
  e["event"] = "vehicle_state";
  e["changed"] = changed;
  publish(e);
  return e;
}

// Silent mode's ports (a hotspot) go dark and come back: only those it switched off, so a port
// that was down already (an application's set_interface_enabled false, `ip link`) stays down.
void ControlPlane::switch_silent_ports(bool off) {
  std::vector<std::string> names;
  if (off) {
    for (const std::string& name : vehicle_.config().silent_ports)
      if (const conf::PortConfig* p = cfg_.port(name);
          p && rt_.link_state(p - cfg_.ports.data()).admin)
        names.push_back(name);
    silent_switched_ = names;
  } else {
    names.swap(silent_switched_);
  }
  for (const std::string& name : names) {
    if (const std::string error = set_interface_up(name, !off); !error.empty())
      log::err() << "silent mode: port " << name << " not switched " << (off ? "off" : "on") << ": "
                 << error;
  }
  poll_links();
}

void ControlPlane::watch_silent_mode() {
  silent_file_.reset();
  const std::string& path = vehicle_.config().silent_file;
  if (!path.empty()) {
    silent_file_ = std::make_unique<SilentModeFile>(
        io_, path, [this](bool silent) { silent_changed(silent); });
    if (!silent_file_->watched())
      log::info() << "silent mode not watched: " << silent_file_->error();
  }
  // Nothing watched (any more): not silent, or silent mode would have no way to end.
  const bool now = silent_file_ && silent_file_->watched() && silent_file_->silent();
  if (now != vehicle_.silent()) silent_changed(now);
}

// The box is about to sleep: the accounting is saved, every flow goes back to the kernel (which
// keeps the connections; their timeouts are the kernel's), and nothing of the daemon runs until
// resume: no timer, no probe, no keepalive, no kernel event, the DPDK workers asleep (docs/api.md,
// "suspend", lists what can still wake the loop).
Json ControlPlane::suspend() {
  if (vehicle_.suspended()) throw api::ApiError("illegal_state", "suspend: already suspended");
  // Prepared, the flows are where the power-down wants them (the kernel engine may keep them
  // pinned); suspend would hand them back behind shutdown_prepare's answer.
  if (shutdown_prepared_)
    throw api::ApiError("illegal_state", "suspend: shutdown is prepared (shutdown_cancel first)");
  const auto began = std::chrono::steady_clock::now();
  bool saved = false;
  try {
    saved = persist_usage();
  } catch (const std::exception& e) {
    log::err() << "suspend: accounting not saved: " << e.what();
  }
  const std::size_t flows = flows_->size();
  stop_offload();
  vehicle_.set_suspended(true);
  // The kernel's events wait in their sockets: resume reads the kernel afresh anyway. Out of the
  // loop's epoll set altogether (a cancelled wait alone still wakes the loop on each event).
  ::close(rtnl_sd_.release());
  ::close(ct_sd_.release());
  link_timer_.cancel();
  persist_timer_.cancel();
  limits_timer_.cancel();
  limits_timer_armed_ = false;
  if (monitor_) monitor_->set_suspended(true);
  rt_.set_suspended(true);
  Json details{{"took_ms", std::round(ms_since(began) * 10) / 10},
               {"usage_saved", saved},
               {"flows_handed_back", flows}};
  log::notice() << "suspended in " << details["took_ms"].get<double>() << " ms: " << flows
                << " flows handed back, usage " << (saved ? "saved" : "NOT saved");
  publish_vehicle("suspended", details);
  return details;
}

// Awake again: the kernel's routes, neighbours and links are read afresh (they may have changed
// while the box slept), the timers run again, and a complete conntrack dump offloads what still
// runs. The reply comes once the flows are back in the fast path.
Json ControlPlane::resume() {
  if (!vehicle_.suspended()) throw api::ApiError("illegal_state", "resume: not suspended");
  StepTimes times;
  vehicle_.set_suspended(false);
  rt_.set_suspended(false);
  rt_.heartbeat();
  schedule_links();
  schedule_persist();
  schedule_session_limits();
  rtnl_sd_.assign(::dup(rtnl_->event_fd()));
  ct_sd_.assign(::dup(ct_->event_fd()));
  watch_kernel();
  try {
    // What came while asleep first, then a complete dump, which supersedes it.
    rtnl_->on_readable();
    ct_->on_readable();
    times.lap("events");
    rtnl_->dump_all();
  } catch (const std::exception& e) {  // the events that follow keep the mirror going
    log::err() << "resume: the kernel's routes and neighbours not read again: " << e.what();
  }
  times.lap("routes");
  sync_local_addresses();
  poll_links();
  times.lap("links");
  if (monitor_) monitor_->set_suspended(false);
  if (silent_file_) silent_file_->read();
  times.lap("uplinks");
  if (api_->started()) start_offload();
  times.lap("offload");
  ++resumes_;
  Json details{{"took_ms", times.total_ms()},
               {"steps_ms", times.steps()},
               {"flows_offloaded", flows_->size()},
               {"offloading", offloading_}};
  log::notice() << "resumed in " << details["took_ms"].get<double>() << " ms "
                << times.steps().dump() << ": " << flows_->size() << " flows offloaded again";
  publish_vehicle("resumed", details);
  return details;
}

}  // namespace tp
