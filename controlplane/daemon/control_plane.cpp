#include "control_plane.hpp"

#include "session_policy.hpp"

#include <net/if.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <future>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <unordered_set>

#include "daemon_log.hpp"
#include "elapsed.hpp"
#include "interface_admin.hpp"
#include "keepalive.hpp"
#include "state_file.hpp"

namespace tp {
namespace {

// A rule's address as tetherctl shows it: a client's address, or its downstream /64.
std::string rule_text(const Ipv6Rules::View& r) {
  return r.addr.str() + (r.kind == Rule6::client ? "" : "/64");
}
const char* rule_kind(const Ipv6Rules::View& r) {
  return r.kind == Rule6::client ? "client" : "prefix";
}

}  // namespace

ControlPlane::ControlPlane(boost::asio::io_context& io, Dataplane& rt, const conf::Config& cfg)
    : io_(io),
      rt_(rt),
      cfg_(cfg),
      rtnl_sd_(io),
      ct_sd_(io),
      keepalive_timer_(io),
      link_timer_(io),
      persist_timer_(io),
      limits_timer_(io),
      vehicle_(cfg.vehicle) {
  // The ports and engine are the local file's; a signed configuration stored by a previous run
  // may run instead if it still verifies (it cannot differ in those).
  local_path_ = cfg.source;
  const std::string signed_file = cfg.state_dir + "/" + kSignedStateFile;
  if (auto saved = read_state_file(signed_file)) {
    try {
      signed_ = parse_state(Json::parse(*saved));
    } catch (const std::exception& e) {
      log::err() << signed_file << ": ignored (" << e.what() << "): any serial is accepted again";
    }
  }
  std::string dropped;
  cfg_ = running_config(cfg, dropped);
  if (!dropped.empty()) forget_signed(dropped);
  vehicle_.configure(cfg_.vehicle);  // the running configuration's
  log::notice() << "configuration: " << cfg_.source;
  log::info() << enable_conntrack_events();
  rtnl_ = std::make_unique<RtnlMirror>();
  writer_ = std::make_unique<ConntrackWriter>();
  topo_ = std::make_unique<TopologySync>(rt_.fast_path());
  api_ = std::make_unique<OffloadApi>(cfg_, static_cast<OffloadHost&>(*this));
  api_->on_event = [this](const Json& e) { publish(e); };
  flows_ = std::make_unique<FlowManager>(rt_.fast_path(), *topo_, *rtnl_, policy_from(cfg_),
                                         writer_.get());
  traffic_ = std::make_unique<TrafficStats>();
  flows_->on_removed = [this](const FlowView& v) { traffic_->flow_removed(v); };
  {
    std::vector<std::string> downstreams;
    for (const auto& p : cfg_.ports)
      if (p.role == conf::Role::downstream) downstreams.push_back(p.name);
    if (const std::string e =
            traffic_->install(downstreams, cfg_.offload.ipv6 == conf::Ipv6Mode::conntrack);
        !e.empty())
      log::warning() << "per-client statistics count the fast path only: " << e;
  }
  ConntrackMirror::Sink sink{
      [this](const CtEntry& e) {
        if (claiming_ && claim_moved(e)) return;  // to be deleted: nothing to decide
        if (offloading_) flows_->upsert(e);
        // A masqueraded connection says which uplink its client is on (sticky mapping).
        if (monitor_ && e.family == AF_INET && !(e.reply.dst == e.orig.src))
          monitor_->saw_connection(e.orig.src, e.reply.dst);
      },
      [this](const CtEntry& e) { flows_->destroyed(e); },
      [this] { flows_->resync_begin(); },
      [this] {
        flows_->resync_end();
        settle_previous_run();
      },
      [this] { flows_->resync_abandoned(); },
  };
  ct_ = std::make_unique<ConntrackMirror>(
      sink, static_cast<int>(cfg_.offload.conntrack_rcvbuf_kb * 1024),
      static_cast<int>(cfg_.offload.conntrack_rcvbuf_max_kb * 1024));
  ct_->ignore_events_from(writer_->portid());
  if (rt_.has_rules6()) rules6_ = std::make_unique<Ipv6Rules>(rt_.fast_path(), *topo_, *rtnl_);
  rtnl_->on_neighbour = [this](int ifindex, const IpAddr& a, std::optional<MacAddr> mac) {
    flows_->neighbour_changed(ifindex, a, mac);
    if (rules6_ && offloading_) rules6_->neighbour_changed(ifindex, a, mac);
  };
  rtnl_->on_change = [this] {
    // Routes and addresses change in bursts (an interface coming up brings several messages):
    // decide every flow again once the burst has been read.
    if (reevaluate_queued_) return;
    reevaluate_queued_ = true;
    boost::asio::post(io_, [this] {
      reevaluate_queued_ = false;
      poll_links();  // a link change of a kernel-engine port is known now, not at the next poll
      sync_local_addresses();
      if (monitor_) monitor_->interfaces_changed();
      redecide_all();  // TAP ifindexes may have changed too
    });
  };
  rt_.on_port_down = [this](uint8_t port) {
    hand_back(port, "port " + cfg_.ports[port].name + " down");
    if (rules6_) rules6_->port_down(port);
    api_->link_changed(port, false);
    if (monitor_) monitor_->link_changed(cfg_.ports[port].name, false);
  };
  rt_.on_port_up = [this](uint8_t port) {
    rebuild_rules6();
    api_->link_changed(port, true);
    if (monitor_) monitor_->link_changed(cfg_.ports[port].name, true);
  };
  UplinkMonitor::Host mh;
  mh.link_up = [this](const std::string& iface) {
    const auto port = api_->port_index(iface, conf::Role::upstream);
    return !port || api_->link_up(*port);  // not a port of ours: probes tell
  };
  mh.health_changed = [this](const conf::UplinkConfig& u, Health was, Health now) {
    health_changed(u, was, now);
  };
  mh.active_changed = [this](const std::vector<std::string>& active) {
    publish(Json{{"event", "uplinks_active"}, {"uplinks", active}});
  };
  monitor_ = std::make_unique<UplinkMonitor>(io_, std::move(mh));
  sync_local_addresses();

  rtnl_sd_.assign(::dup(rtnl_->event_fd()));
  ct_sd_.assign(::dup(ct_->event_fd()));
  watch_kernel();
  api_server_ = std::make_unique<ApiServer>(
      io_, cfg_.api,
      [this](const Json& req, const api::Caller& caller) { return api_->handle(req, caller); });
  if (cfg_.metrics.enabled)
    metrics_server_ =
        std::make_unique<MetricsServer>(io_, cfg_.metrics, [this] { return metrics(); });
  // The admin states applications asked for in a previous run, for the ports that keep them.
  links_ = std::make_unique<PortLinks>(cfg_.ports, cfg_.state_dir + "/interfaces.json");
  for (const auto& why : links_->ignored())
    log::warning() << cfg_.state_dir << "/interfaces.json: ignored " << why;
  for (const auto& [port, enabled] : links_->saved()) {
    const std::string error = set_interface_up(cfg_.ports[port].name, enabled);
    log::Line(error.empty() ? log::Priority::notice : log::Priority::err)
        << "port " << cfg_.ports[port].name << " set " << (enabled ? "up" : "down")
        << " as last asked (persist_enabled)" << (error.empty() ? "" : ": " + error);
  }
  poll_links();  // records the links as they start: no event
  schedule_links();
  // What the configuration says to apply at start (offload starts if enabled), then the
  // accounting a previous run left: usage counters survive a restart.
  api_->apply_config(cfg_, nullptr);
  configure_uplinks();
  traffic_->set_scene(traffic_scene());
  publish_quota_events(session_limits_.configure(api_->sessions(), traffic_->session_totals()));
  const std::string session_usage_file = cfg_.state_dir + "/session_usage.json";
  if (auto saved = read_state_file(session_usage_file)) {
    const Json j = Json::parse(*saved, nullptr, false);
    for (const auto& why : j.is_discarded()
                               ? std::vector<std::string>{"not JSON, usage starts from zero"}
                               : session_limits_.restore(j))
      log::warning() << session_usage_file << ": ignored " << why;
    charge_session_limits();
  }
  enforce_session_limits();
  if (!session_limits_.reached().empty()) redecide_all();
  const std::string usage_file = cfg_.state_dir + "/usage.json";
  if (auto saved = read_state_file(usage_file)) {
    const Json j = Json::parse(*saved, nullptr, false);
    if (j.is_discarded())
      log::warning() << usage_file << ": not JSON, data usage starts from zero";
    else
      for (const auto& why : api_->restore_usage(j))
        log::warning() << usage_file << ": ignored " << why;
  }
  persist_usage();
  schedule_persist();
  watch_silent_mode();
}

ControlPlane::~ControlPlane() {
  boost::system::error_code ec;
  rtnl_sd_.close(ec);
  ct_sd_.close(ec);
  rules6_.reset();
  if (flows_) flows_->release_all();
  flows_->on_removed = nullptr;
  traffic_->remove();
  rt_.on_port_down = nullptr;
  rt_.on_port_up = nullptr;
}

void ControlPlane::watch_kernel() {
  watch(rtnl_sd_, [this] { rtnl_->on_readable(); });
  watch(ct_sd_, [this] { ct_->on_readable(); });
}

void ControlPlane::watch(boost::asio::posix::stream_descriptor& sd,
                         std::function<void()> on_readable) {
  sd.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                [this, &sd, on_readable](const boost::system::error_code& ec) {
                  if (ec) return;
                  on_readable();
                  watch(sd, on_readable);
                });
}

PolicyConfig ControlPlane::policy_from(const conf::Config& cfg) const {
  PolicyConfig p;
  p.tcp = cfg.offload.tcp;
  p.udp = cfg.offload.udp;
  p.icmp = cfg.offload.icmp;
  p.no_offload_mark = cfg.offload.no_offload_mark;
  p.no_offload_mask = cfg.offload.no_offload_mask;
  // The marks tetherpath's classifier gives a connection (its session, its uplink) route it:
  // the fast path asks the kernel with them.
  p.route_mark_mask = cfg.offload.route_mark_mask;
  if (cfg.routing.manage)
    p.original_mark_mask = cfg.routing.session_mark_mask | cfg.routing.mark_mask;
  p.ipv6_conntrack = cfg.offload.ipv6 == conf::Ipv6Mode::conntrack;
  p.local_prefixes = api_->local_prefixes();
  for (auto& [port, role] : api_->roles()) {
    const int ifindex = rtnl_->ifindex(cfg.ports[port].name);
    if (ifindex) p.ports[ifindex] = std::move(role);
  }
  const SessionSet* set = monitor_ ? &monitor_->sessions() : nullptr;
  const std::set<std::string> limited = session_limits_.reached();
  for (std::size_t j = 0; set && j < set->sessions().size(); ++j)
    if (limited.count(set->sessions()[j].name)) {
      p.limited_mask = cfg.routing.session_mark_mask;
      p.limited_marks.push_back(conf::mark_value(set->slot(j), p.limited_mask));
    }
  for (std::size_t j = 0; emergency_ && set && j < set->sessions().size(); ++j) {
    if (set->sessions()[j].name != *emergency_) continue;
    p.emergency_mask = cfg.routing.session_mark_mask;
    p.emergency_mark = conf::mark_value(set->slot(j), p.emergency_mask);
    for (const conf::UplinkConfig& u : api_->uplinks())
      if (u.kind == conf::UplinkKind::cellular)
        if (auto it = p.ports.find(rtnl_->ifindex(u.iface)); it != p.ports.end())
          it->second.emergency_only = true;
  }
  if (const auto passing = garage_passing(); passing && set) {
    p.garage = true;
    p.garage_mask = cfg.routing.session_mark_mask;
    for (std::size_t j = 0; j < set->sessions().size(); ++j)
      if (passing->count(set->sessions()[j].name))
        p.garage_marks.push_back(conf::mark_value(set->slot(j), p.garage_mask));
  }
  return p;
}

void ControlPlane::sync_local_addresses() {
  for (std::size_t i = 0; i < cfg_.ports.size(); ++i) {
    const int ifindex = rtnl_->ifindex(cfg_.ports[i].name);
    topo_->set_local_addresses(static_cast<uint8_t>(i),
                               ifindex ? rtnl_->addresses_of(ifindex) : std::vector<IpAddr>{});
  }
}

void ControlPlane::start_offload() {
  // After shutdown_prepare the flows stay with the kernel; shutdown_cancel starts again (and
  // resume after suspend).
  if (offloading_ || shutdown_prepared_ || vehicle_.suspended()) return;
  offloading_ = true;
  // Events first (the socket is already subscribed), then the dump: nothing falls in between.
  ct_->resync();
  rebuild_rules6();
  schedule_keepalive();
}

void ControlPlane::stop_offload() {
  if (!offloading_) return;
  offloading_ = false;
  keepalive_timer_.cancel();
  flows_->release_all();
  if (rules6_) rules6_->clear();
  settle_previous_run();  // nothing a previous run left stays in the fast path either
}

// The timeouts are read from the sysctls every round (an integrator may change them at run time)
// and set the round's period (keepalive.hpp).
void ControlPlane::schedule_keepalive() {
  const ConntrackTimeouts t = ConntrackTimeouts::read_sysctls();
  const auto& o = cfg_.offload;
  const uint32_t tick = keepalive_tick_s(o.keepalive_interval_s, t, o.tcp, o.udp, o.icmp);
  const auto beat = std::chrono::duration_cast<std::chrono::milliseconds>(rt_.link_poll_interval());
  const uint32_t bound =
      liveness_bound_ms(t, o.tcp, o.udp, o.icmp, tick, static_cast<uint32_t>(beat.count()));
  if (bound != liveness_bound_ms_) {
    liveness_bound_ms_ = bound;
    rt_.set_liveness_bound(bound);
    log::info() << "the fast path hands everything to the kernel " << bound
                << " ms after the control loop's last heartbeat";
  }
  if (tick != keepalive_tick_s_) {
    if (tick < o.keepalive_interval_s)
      log::warning() << "offload.keepalive_interval_s " << o.keepalive_interval_s
                     << " s is too long for the kernel's conntrack timeouts (udp " << t.udp << "/"
                     << t.udp_stream << " s, icmp " << t.icmp << " s, tcp " << t.tcp_established
                     << " s): keepalive rounds run every " << tick
                     << " s, each protocol's flows refreshed within a third of its timeout";
    keepalive_tick_s_ = tick;
  }
  keepalive_timer_.expires_after(std::chrono::seconds(tick));
  keepalive_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !offloading_) return;
    // Read again now: refreshing to a timeout the integrator has since lowered would keep the
    // entry alive long after its traffic stopped.
    flows_->keepalive_round(*writer_, ConntrackTimeouts::read_sysctls(),
                            cfg_.offload.keepalive_interval_s, FlowManager::steady_ms());
    schedule_keepalive();
  });
}

void ControlPlane::schedule_links() {
  if (vehicle_.suspended()) return;
  link_timer_.expires_after(rt_.link_poll_interval());
  link_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || vehicle_.suspended()) return;  // (a completion queued before suspend's cancel)
    rt_.heartbeat();
    poll_links();
    api_->poll();
    if (monitor_) monitor_->recheck_cgroups();
    if (offloading_ && ct_->resync_pending()) {  // an earlier resync found no complete dump
      ct_->resync();
    }
    schedule_links();
  });
}

void ControlPlane::schedule_persist() {
  if (vehicle_.suspended()) return;
  persist_timer_.expires_after(std::chrono::seconds(cfg_.limits.persist_interval_s));
  persist_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || vehicle_.suspended()) return;
    persist_usage();
    schedule_persist();
  });
}

// Written only when it changed (each write is an fsync on the box's flash), at most once per
// persist interval, and at shutdown.
bool ControlPlane::persist_usage() {
  charge_session_limits();  // the sessions' usage as of now, not as of the last threshold
  auto save = [&](const char* file, const Json& usage, std::string& persisted) {
    const std::string text = usage.dump(2) + "\n";
    if (text == persisted) return true;
    try {
      std::filesystem::create_directories(cfg_.state_dir);
      write_state_file(cfg_.state_dir + "/" + file, text);
      persisted = text;
      ++usage_writes_;
      return true;
    } catch (const std::exception& e) {
      log::err() << "cannot save " << file << ": " << e.what();
      return false;
    }
  };
  const bool usage = save("usage.json", api_->usage(), persisted_usage_);
  return save("session_usage.json", session_limits_.usage(), persisted_session_usage_) && usage;
}

void ControlPlane::publish(const Json& event) {
  log::info() << "event " << event.dump();
  if (api_server_) api_server_->publish(event);
}

bool ControlPlane::kernel_has_interface(const std::string& iface) {
  return if_nametoindex(iface.c_str()) != 0;
}

// The local file again, or the signed configuration it still trusts (running_config).
std::string ControlPlane::reload() {
  // Asleep, nothing may start timers or probes; the power manager resumes first.
  if (vehicle_.suspended()) {
    ++reloads_refused_;
    log::warning() << "reload refused while suspended (resume first)";
    return "busy: suspended (resume first)";
  }
  conf::Config next;
  std::string dropped;
  try {
    next = running_config(conf::load_file(local_path_), dropped);
  } catch (const conf::ConfigError& e) {
    ++reloads_refused_;
    log::err() << "reload refused, nothing changed: " << e.what();
    return e.what();
  }
  if (const std::string why = change_refusal(next); !why.empty()) {
    ++reloads_refused_;
    if (why.rfind("busy: ", 0) == 0) return why;
    log::err() << "reload refused, nothing changed: " << next.source << ": " << why;
    return next.source + ": " + why;
  }
  if (!dropped.empty()) forget_signed(dropped);
  adopt(std::move(next));
  ++reloads_;
  log::notice() << "reloaded " << cfg_.source;
  return "";
}

std::string ControlPlane::change_refusal(const conf::Config& next) const {
  // The marks and tables an emergency relies on stay as they are while it lasts.
  if (emergency_ && (next.sessions != cfg_.sessions || next.routing != cfg_.routing ||
                     next.uplinks != cfg_.uplinks))
    return "busy: session '" + *emergency_ +
           "' is the active emergency: sessions, uplinks and routing cannot change until it ends";
  // Sessions the API set stay unless the file's changed: they must fit the new routing too.
  if (next.sessions == cfg_.sessions && !api_->sessions().empty()) {
    std::string why = conf::session_room_refusal(api_->sessions().size(), next.routing);
    for (const auto& s : api_->sessions())
      if (why.empty() && s.existing_flows == conf::ExistingFlows::keep && !next.routing.mark_mask)
        why = "session '" + s.name +
              "' (set through the API) keeps its connections: "
              "routing.mark_mask is needed";
    if (!why.empty()) return why;
  }
  return conf::live_change_refusal(cfg_, next);
}

void ControlPlane::adopt(conf::Config next) {
  const conf::Config previous = cfg_;
  cfg_ = std::move(next);
  api_->apply_config(cfg_, &previous);
  roles_changed();  // protocols, marks
  if (offloading_ && cfg_.offload.keepalive_interval_s != previous.offload.keepalive_interval_s)
    schedule_keepalive();  // replaces the pending wait
  if (cfg_.limits.persist_interval_s != previous.limits.persist_interval_s) schedule_persist();
  if (cfg_.vehicle != previous.vehicle) {
    const bool was_garage = vehicle_.garage();
    if (vehicle_.ports_off()) switch_silent_ports(false);  // the new list decides
    vehicle_.configure(cfg_.vehicle);
    if (cfg_.vehicle.silent_file != previous.vehicle.silent_file) watch_silent_mode();
    vehicle_changed("configuration", was_garage, false);
  }
}

void ControlPlane::roles_changed() {
  // A policy change: the changed sessions' new connections are held while their running ones on
  // uplinks they may no longer use are torn down, then released; every flow is decided again.
  StepTimes times;
  configure_uplinks();
  times.lap("routing");
  // What was counted so far belongs to the policy and roaming states before it. Reading every
  // counter costs as much as the rest of an update, so only when the attribution changes or a
  // session's data limit starts counting from here.
  TrafficScene scene = traffic_scene();
  if (scene != traffic_->scene() || session_limits_.recounts(api_->sessions())) {
    sample_traffic();
    traffic_->set_scene(std::move(scene));
  }
  publish_quota_events(session_limits_.configure(api_->sessions(), traffic_->session_totals()));
  enforce_session_limits();
  times.lap("counters");
  reset_moved_flows();
  times.lap("reset");
  if (monitor_) monitor_->release_sessions();
  claiming_ = !moving_.empty();
  bool dumped = false;
  try {
    dumped = redecide_all();
  } catch (...) {  // no later dump or event may be claimed for this update
    claiming_ = false;
    moving_.clear();
    throw;
  }
  claiming_ = false;
  finish_resets(dumped);
  times.lap("decide");
  // The kernel's marks and routes are written and every flow decided again by them: the kernel
  // and the fast path agree on the new policy. A connection manager waits for this event.
  if (applied_sessions_ && *applied_sessions_ == api_->sessions()) return;
  // Without sessions there is no policy to announce (HAL clients count their events).
  const bool none = api_->sessions().empty() && (!applied_sessions_ || applied_sessions_->empty());
  applied_sessions_ = api_->sessions();
  if (none) return;
  ++policy_generation_;
  Json names = Json::array();
  for (const auto& s : api_->sessions()) names.push_back(s.name);
  Json e{{"event", "policy_applied"},
         {"generation", policy_generation_},
         {"sessions", names},
         {"applied_ms", times.total_ms()},
         {"steps_ms", times.steps()}};
  // What the kernel refused of it, if anything (status.routing_errors keeps it too).
  if (monitor_ && !monitor_->routing_errors().empty())
    e["routing_errors"] = monitor_->routing_errors();
  publish(e);
}

// An emergency call: only its session crosses the cellular uplinks. The others' flows there
// leave the fast path and the classifier drops their packets, their conntrack entries living
// on: they resume, without reconnecting, when it ends (if the kernel has not timed them out).
void ControlPlane::set_emergency(const std::string& session, bool active) {
  const auto& sessions = api_->sessions();
  const auto it = std::find_if(sessions.begin(), sessions.end(),
                               [&](const conf::SessionConfig& s) { return s.name == session; });
  if (it == sessions.end()) throw api::ApiError("unknown_session", "no session '" + session + "'");
  if (!it->emergency)
    throw api::ApiError("not_emergency", "session '" + session +
                                             "' is not an emergency session (the integrator "
                                             "marks those: sessions[].emergency)");
  if (emergency_ && *emergency_ != session)
    throw api::ApiError("busy", "session '" + *emergency_ + "' is the active emergency");
  if (active == (emergency_ == session)) return;
  emergency_ = active ? std::optional<std::string>(session) : std::nullopt;
  if (monitor_ && vehicle_.garage()) monitor_->set_garage(garage_passing());
  monitor_->set_emergency(emergency_);
  redecide_all();
  publish(Json{{"event", "emergency"}, {"session", session}, {"active", active}});
  log::notice() << "emergency " << (active ? "on" : "off") << ": session " << session;
}

// Sessions with `existing_flows: reset` whose allowed uplinks changed (a policy update, an uplink's
// roaming state): their connections on an uplink no longer allowed go, from the fast path and
// from conntrack, before policy_applied (the next packet makes a new connection by an allowed
// uplink). The fast path's are found in the flow manager and leave in batches. The kernel's:
// with routing.mark_mask every connection's mark names its uplink, so the kernel deletes them by
// mark, one message per uplink; those without (and all of them without the mask) are claimed
// from the update's dump and deleted one by one (claim_moved, finish_resets).
void ControlPlane::reset_moved_flows() {
  moving_.clear();
  if (!monitor_ || !ct_ || !writer_) return;
  const SessionSet& set = monitor_->sessions();
  const uint32_t mask = cfg_.routing.session_mark_mask;
  const uint32_t uplink_mask = cfg_.routing.mark_mask;
  const auto& uplinks = api_->uplinks();
  for (std::size_t j = 0; j < set.sessions().size(); ++j) {
    const conf::SessionConfig& s = set.sessions()[j];
    const auto moved = monitor_->moved_sessions().find(s.name);
    if (s.existing_flows != conf::ExistingFlows::reset || moved == monitor_->moved_sessions().end())
      continue;
    const auto began = std::chrono::steady_clock::now();
    MovedConnections m;
    m.session = s.name;
    const uint32_t value = conf::mark_value(set.slot(j), mask);
    m.value = value;
    // Without uplink marks: all of the session's; with them, those whose mark has no uplink
    // (made before the uplink's mark rule was). The flushes below take the rest.
    m.mask = uplink_mask ? mask | uplink_mask : mask;
    for (std::size_t i = 0; i < uplinks.size(); ++i)
      if (!moved->second.count(uplinks[i].name)) {
        m.gone_ifindexes.push_back(rtnl_->ifindex(uplinks[i].iface));
        m.gone_uplinks.push_back(i);
      }
    // With uplink marks the kernel's flushes run on a thread of their own meanwhile: its walk of
    // the table and the fast path's removals take about as long, and nothing else uses the
    // writer until they are done. Whichever order packets meet the two in, none leaves by the
    // old uplink after policy_applied.
    std::vector<std::size_t> flushing;
    if (uplink_mask)
      for (std::size_t i : m.gone_uplinks)
        if (conf::mark_fits(i, uplink_mask)) flushing.push_back(i);
    const auto flush = [w = writer_.get(), flushing, value, mask, uplink_mask] {
      std::vector<int> errs;
      for (std::size_t i : flushing)
        errs.push_back(
            w->delete_marked(value | conf::mark_value(i, uplink_mask), mask | uplink_mask));
      return errs;
    };
    std::future<std::vector<int>> flushed_by;
    try {
      flushed_by = std::async(std::launch::async, flush);
    } catch (const std::system_error&) {  // no thread to be had: one after the other
      flushed_by = std::async(std::launch::deferred, flush);
    }
    const std::vector<CtEntry> taken = flows_->take_where([&](const CtEntry& e, int out) {
      return (e.mark & mask) == value && on_gone_uplink(m, e, out);
    });
    m.fast_path_ms = ms_since(began);
    const auto waited = std::chrono::steady_clock::now();
    const std::vector<int> errs = flushed_by.get();
    m.flush_wait_ms = ms_since(waited);
    bool flush_failed = false;
    for (std::size_t k = 0; k < errs.size(); ++k)
      if (errs[k]) {
        log::err() << "session " << s.name << ": deleting its connections on "
                   << uplinks[flushing[k]].name << " failed: " << std::strerror(-errs[k]);
        flush_failed = true;
      }
    std::vector<ConntrackWriter::Update> dels;
    for (const CtEntry& e : taken) {
      const auto up = uplink_of_mark(e.mark);
      if (up && !flush_failed && std::find(flushing.begin(), flushing.end(), *up) != flushing.end())
        ++m.removed;  // the kernel's flush took it (it does not count them)
      else if (m.done.insert(CtKey::of(e)).second)
        dels.push_back({e, 0, false, true});  // out of the fast path already: its entry must go
    }
    const auto results = writer_->apply(dels);
    m.removed += static_cast<uint64_t>(std::count(results.begin(), results.end(), 0));
    m.ms = ms_since(began);
    moving_.push_back(std::move(m));
  }
}

// Which uplink a connection is on: the one its mark pins it to (routing.mark_mask; what the
// kernel's flushes go by), else an IPv4 one's NAT address says, else an IPv6 one (routed, not
// translated) has the fast path's plan. Else unknown, and left as it is.
bool ControlPlane::on_gone_uplink(const MovedConnections& m, const CtEntry& e,
                                  std::optional<int> out) const {
  const auto& ifs = m.gone_ifindexes;
  if (const auto i = uplink_of_mark(e.mark))
    return std::find(m.gone_uplinks.begin(), m.gone_uplinks.end(), *i) != m.gone_uplinks.end();
  if (e.family == AF_INET)
    return std::any_of(ifs.begin(), ifs.end(),
                       [&](int ifindex) { return rtnl_->has_address(ifindex, e.reply.dst); });
  return out && std::find(ifs.begin(), ifs.end(), *out) != ifs.end();
}

bool ControlPlane::claim_moved(const CtEntry& e) {
  for (MovedConnections& m : moving_)
    if ((e.mark & m.mask) == m.value && !m.done.count(CtKey::of(e)) &&
        on_gone_uplink(m, e, flows_->out_ifindex(e))) {
      m.done.insert(CtKey::of(e));
      m.found.push_back(e);
      return true;
    }
  return false;
}

void ControlPlane::finish_resets(bool dumped) {
  for (MovedConnections& m : moving_) {
    const auto began = std::chrono::steady_clock::now();
    if (!dumped) {  // the update's dump did not show them all: one of their own
      const auto entries = ct_->marked(m.value, m.mask);
      if (!entries)
        log::warning() << "session " << m.session
                       << ": conntrack dump failed, only its offloaded connections reset";
      for (const CtEntry& e : entries ? *entries : std::vector<CtEntry>{})
        if (!m.done.count(CtKey::of(e)) && on_gone_uplink(m, e, flows_->out_ifindex(e)))
          m.found.push_back(e);
    }
    std::vector<ConntrackWriter::Update> dels;
    for (const CtEntry& e : m.found) dels.push_back({e, 0, false, true});
    const auto results = writer_->apply(dels);
    m.removed += static_cast<uint64_t>(std::count(results.begin(), results.end(), 0));
    sessions_reset_ += m.removed;
    m.ms += ms_since(began);
    log::notice() << "session " << m.session << ": " << m.removed
                  << " connections on uplinks it may no longer use reset (" << m.found.size()
                  << " kernel-only), " << std::round(m.ms * 10) / 10
                  << " ms besides the update's dump (the fast path's "
                  << std::round(m.fast_path_ms * 10) / 10
                  << " ms, then waiting for the kernel's flush "
                  << std::round(m.flush_wait_ms * 10) / 10 << " ms)";
  }
  moving_.clear();
}

std::optional<std::size_t> ControlPlane::uplink_of_mark(uint32_t mark) const {
  const uint32_t mask = cfg_.routing.mark_mask;
  if (!mask) return std::nullopt;
  const uint32_t v = (mark & mask) >> conf::mark_shift(mask);
  if (!v) return std::nullopt;
  return v - 1;
}

TrafficScene ControlPlane::traffic_scene() const {
  TrafficScene s;
  for (const auto& p : cfg_.ports) s.ports.push_back({p.name, p.role == conf::Role::downstream});
  s.session_mask = cfg_.routing.session_mark_mask;
  if (monitor_ && s.session_mask) {
    const SessionSet& set = monitor_->sessions();
    for (std::size_t j = 0; j < set.sessions().size(); ++j)
      s.session_by_mark[conf::mark_value(set.slot(j), s.session_mask)] = set.sessions()[j].name;
  }
  for (const auto& u : api_->uplinks()) s.uplinks[u.iface] = {u.name, u.roaming};
  return s;
}

void ControlPlane::sample_traffic() const {
  const std::string before = traffic_->error();
  traffic_->sample(*flows_);
  if (!traffic_->error().empty() && traffic_->error() != before)  // once, not at every reading
    log::warning() << "kernel-path statistics not read: " << traffic_->error();
}

// A session's limit is watched from the counters, every 200 ms while a threshold is ahead (an
// idle box without limits never wakes for it): the overshoot is what the session's clients move
// in that time (docs/sessions.md).
void ControlPlane::schedule_session_limits() {
  if (limits_timer_armed_ || !session_limits_.counting() || vehicle_.suspended()) return;
  limits_timer_armed_ = true;
  limits_timer_.expires_after(std::chrono::milliseconds(200));
  limits_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || vehicle_.suspended()) return;
    limits_timer_armed_ = false;
    try {
      charge_session_limits();
    } catch (const std::exception& e) {
      // Enforcement must outlive a failed reading: the next one is 200 ms away.
      log::warning() << "session limits not checked: " << e.what();
      schedule_session_limits();
    }
  });
}

void ControlPlane::charge_session_limits() {
  sample_traffic();
  const auto events = session_limits_.charge(traffic_->session_totals());
  publish_quota_events(events);
  if (std::any_of(events.begin(), events.end(),
                  [](const SessionQuotaEvent& e) { return e.event == "limit_reached"; })) {
    enforce_session_limits();
    redecide_all();  // its flows leave the fast path, where nothing would stop them
  }
  schedule_session_limits();
}

void ControlPlane::publish_quota_events(const std::vector<SessionQuotaEvent>& events) {
  for (const auto& e : events)
    publish(Json{{"event", e.event},
                 {"session", e.session},
                 {"used", e.used},
                 {e.event == "limit_reached" ? "limit" : "warning", e.threshold}});
}

void ControlPlane::enforce_session_limits() {
  if (monitor_) monitor_->set_limited(session_limits_.reached());
  schedule_session_limits();
}

Json ControlPlane::clients_json() const {
  sample_traffic();
  std::vector<std::pair<std::string, int>> downstreams;
  for (const auto& p : cfg_.ports)
    if (p.role == conf::Role::downstream) downstreams.emplace_back(p.name, rtnl_->ifindex(p.name));
  return traffic_->clients_json([&](const IpAddr& a) {
    for (const auto& [name, ifindex] : downstreams)
      if (const auto mac = ifindex ? rtnl_->neighbour(ifindex, a) : std::nullopt)
        return ClientPlace{conf::mac_string(*mac), name};
    return ClientPlace{};
  });
}

Json ControlPlane::sessions_json() const {
  Json out = Json::array();
  const SessionSet& set = monitor_->sessions();
  for (std::size_t j = 0; j < set.sessions().size(); ++j) {
    const conf::SessionConfig& s = set.sessions()[j];
    Json match{
        {"macs", Json::array()}, {"addresses", Json::array()}, {"downstreams", s.match.downstreams},
        {"uids", s.match.uids},  {"gids", s.match.gids},       {"cgroups", s.match.cgroups}};
    for (const auto& m : s.match.macs) match["macs"].push_back(conf::mac_string(m));
    for (const auto& a : s.match.addresses) match["addresses"].push_back(a.str());
    out.push_back({{"name", s.name},
                   {"match", match},
                   {"uplinks", s.uplinks},
                   {"connection", conf::to_string(s.connection)},
                   {"priority", s.priority},
                   {"roaming", conf::to_string(s.roaming)},
                   {"existing_flows", conf::to_string(s.existing_flows)},
                   {"emergency", s.emergency},
                   {"mark", conf::mark_value(set.slot(j), cfg_.routing.session_mark_mask)},
                   {"routed_by", monitor_->session_uplinks(j)}});
    const auto opt = [](const std::optional<uint64_t>& v) { return v ? Json(*v) : Json(nullptr); };
    Json& row = out.back();
    const auto quota = session_limits_.view(s.name);  // the monitor's copy has no quota
    row["warning_bytes"] = opt(quota ? quota->warning : std::nullopt);
    row["limit_bytes"] = opt(quota ? quota->limit : std::nullopt);
    row["used_bytes"] = quota ? Json(quota->used) : Json(nullptr);
    row["warning_reached"] = quota && quota->warned;
    row["limit_reached"] = quota && quota->reached;
    if (!s.match.cgroups.empty()) {  // not matched until they exist (looked up every link poll)
      Json missing = Json::array();
      for (const auto& c : s.match.cgroups)
        if (!monitor_->cgroups().count(c)) missing.push_back(c);
      row["cgroups_missing"] = missing;
      if (!monitor_->cgroup_error().empty()) row["cgroups_error"] = monitor_->cgroup_error();
    }
  }
  return out;
}

// The monitor keeps what did not change (health so far, the kernel's routes); errors of
// programming the kernel are logged and in status, the uplinks stand.
void ControlPlane::configure_uplinks() {
  if (monitor_) monitor_->configure(cfg_.routing, api_->uplinks(), api_->sessions());
}

void ControlPlane::health_changed(const conf::UplinkConfig& u, Health was, Health now) {
  Json e{{"event", "uplink_health"}, {"uplink", u.name},
         {"iface", u.iface},         {"state", to_string(now)},
         {"was", to_string(was)},    {"detail", to_string(was) + " -> " + to_string(now)}};
  if (const auto st = monitor_->status(u.name)) {
    e["loss_pct"] = st->loss_pct;
    if (st->rtt_ms) e["rtt_ms"] = *st->rtt_ms;
  }
  publish(e);
  // A lost link hands its flows back itself (on_port_down); here the link is up but the path
  // behind it is not.
  const auto port = api_->port_index(u.iface, conf::Role::upstream);
  if (now != Health::down || !port || !api_->link_up(*port)) return;
  hand_back(*port, "uplink " + u.name + " down by tracking");
}

// The port's flows go back to the kernel; with another uplink to take over, their conntrack
// entries go too (fail_over).
void ControlPlane::hand_back(uint8_t port, const std::string& why) {
  std::vector<CtEntry> gone = flows_->port_down(port);
  log::notice() << why << ", " << gone.size() << " flows handed back";
  if (writer_ && api_->fails_over(port)) fail_over(port, std::move(gone));
}

// Both paths' traffic: what arrives is counted before the fast path decides; what leaves, by the
// fast path and by the kernel's path apart.
Json ControlPlane::port_traffic(uint8_t port) const {
  const PortTotals t = rt_.port_totals(port);
  // A packet counted as arriving may not be counted as forwarded yet.
  auto& seen = kernel_rx_seen_[port % kernel_rx_seen_.size()];
  const uint64_t kernel_rx_packets = never_decreasing(seen[0], t.rx_packets - t.fwd_rx_packets);
  const uint64_t kernel_rx_bytes = never_decreasing(seen[1], t.rx_ip_bytes - t.fwd_rx_bytes);
  return {{"rx_packets", t.rx_packets},
          {"rx_bytes", t.rx_ip_bytes},
          {"tx_packets", t.fwd_tx_packets + t.kernel_tx_packets},
          {"tx_bytes", t.fwd_tx_bytes + t.kernel_tx_bytes},
          {"fast_path",
           {{"rx_packets", t.fwd_rx_packets},
            {"rx_bytes", t.fwd_rx_bytes},
            {"tx_packets", t.fwd_tx_packets},
            {"tx_bytes", t.fwd_tx_bytes}}},
          {"kernel_path",
           {{"rx_packets", kernel_rx_packets},
            {"rx_bytes", kernel_rx_bytes},
            {"tx_packets", t.kernel_tx_packets},
            {"tx_bytes", t.kernel_tx_bytes}}}};
}

Json ControlPlane::uplink_state(const std::string& name, std::optional<uint8_t> port) const {
  Json j = Json::object();
  if (port) j["traffic"] = port_traffic(*port);
  const auto st = monitor_ ? monitor_->status(name) : std::nullopt;
  if (!st) return j;
  j.update(Json{{"health", to_string(st->health)},
                {"tracked", st->tracked},
                {"takes_new_connections", st->active},
                {"health_changes", st->health_changes},
                {"sticky_clients", st->sticky_clients}});
  if (st->tracked) {
    j["probe_loss_pct"] = std::round(st->loss_pct * 10) / 10;
    j["probe_rtt_ms"] = st->rtt_ms ? Json(*st->rtt_ms) : Json(nullptr);
    j["probes_sent"] = st->probes_sent;
    j["probes_answered"] = st->probes_answered;
  }
  return j;
}

// Installed flows are decided again from what the flow manager holds; entries refused before
// (no upstream yet, outside every downstream prefix, no route) live only in the kernel, so a
// dump brings them back to be decided under the new rules.
bool ControlPlane::redecide_all() {
  // The dump decides again every entry the kernel has, the installed ones too: deciding them
  // first as well would ask the kernel's routing every question twice.
  flows_->set_config(policy_from(cfg_), !offloading_);
  const bool dumped = offloading_ && ct_->resync();
  if (offloading_ && !dumped) flows_->reevaluate_all();
  rebuild_rules6();
  return dumped;
}

// With other uplinks to take over, a failed uplink's flows are also forgotten by conntrack: their
// NAT mapping leads nowhere, and the clients' next packets (or reconnects) make new ones through
// the uplink the kernel picks. Only these entries, never a flush. The route change that came with
// the link loss may have taken some out of the fast path already (their NAT address no longer on
// their way out): they are the uplink's by that address.
void ControlPlane::fail_over(uint8_t port, std::vector<CtEntry> gone) {
  const std::string& name = cfg_.ports[port].name;
  const auto waiting = flows_->take_natted_to(rtnl_->addresses_of(rtnl_->ifindex(name)));
  gone.insert(gone.end(), waiting.begin(), waiting.end());
  if (gone.empty()) return;
  std::vector<ConntrackWriter::Update> dels;
  for (const CtEntry& e : gone) dels.push_back({e, 0, false, true});
  const auto results = writer_->apply(dels);
  const auto removed = std::count(results.begin(), results.end(), 0);
  failover_removed_ += static_cast<uint64_t>(removed);
  log::notice() << name << " failed over to the other uplinks: " << removed << " of " << gone.size()
                << " of its conntrack entries removed";
}

void ControlPlane::settle_previous_run() {
  rt_.resync_complete();
  topo_->release_inherited();
}

void ControlPlane::rebuild_rules6() {
  if (!rules6_ || !offloading_) return;
  // IPv6 address rules forward whole clients, past the kernel's garage chain: none meanwhile.
  if (vehicle_.garage())
    rules6_->clear();
  else
    rules6_->rebuild(flows_->config());
}

ByteCounts ControlPlane::forwarded_bytes(uint8_t port) {
  const PortTotals t = rt_.port_totals(port);
  return ByteCounts{t.fwd_rx_bytes, t.fwd_tx_bytes};
}

void ControlPlane::arm_limit(uint8_t port, uint64_t limit, uint64_t used) {
  rt_.fast_path().arm_limit(port, limit, used);
}

void ControlPlane::disarm_limit(uint8_t port) { rt_.fast_path().disarm_limit(port); }

uint64_t ControlPlane::limit_used(uint8_t port) { return rt_.fast_path().limit_used(port); }

void ControlPlane::report(std::ostream& out) const {
  const FlowStats& s = flows_->stats();
  out << "offload: " << (offloading_ ? "on" : "off") << ", " << flows_->size() << " flows, "
      << flows_->pending() << " waiting for a neighbour; installed " << s.installed << ", removed "
      << s.removed << ", install failed " << s.install_failed << ", handed back " << s.handed_back
      << "; " << flows_->parked() << " refused by routes (decided again when routes change)\n";
  out << "conntrack: " << ct_->events << " events, " << ct_->overruns << " overruns, "
      << ct_->resyncs << " resyncs, rcvbuf " << ct_->rcvbuf_bytes() << "; keepalive rounds "
      << s.keepalive_rounds << ", refreshed " << s.keepalives << ", gone " << s.keepalive_gone
      << '\n';
  out << "keepalive: every " << keepalive_tick_s_ << " s, probed " << s.keepalive_probes
      << "; own events filtered " << writer_->applied << ", dump restarts " << ct_->dump_restarts
      << ", stale events dropped " << ct_->stale_dropped << '\n';
  out << "not offloaded:";
  for (const auto& [reason, n] : s.refused) out << ' ' << reason << '=' << n;
  out << '\n';
  if (rules6_) {
    out << "ipv6 rules: " << rules6_->size() << ", router unresolved "
        << rules6_->waiting_for_router() << " times\n";
    rules6_->for_each([&](const Ipv6Rules::View& r) {
      out << "rule " << rule_kind(r) << ' ' << rule_text(r) << " in " << int(r.in_port) << " out "
          << int(r.out_port) << ' ' << r.packets << " pkts " << r.bytes << " bytes\n";
    });
  }
  // The most recently active flows first: what an operator (or a test) looks for among thousands.
  std::vector<FlowView> views;
  flows_->for_each([&](const FlowView& f) { views.push_back(f); });
  const std::size_t shown = std::min<std::size_t>(views.size(), 50);
  std::partial_sort(views.begin(), views.begin() + static_cast<long>(shown), views.end(),
                    [](const FlowView& a, const FlowView& b) { return a.last_seen > b.last_seen; });
  for (std::size_t i = 0; i < shown; ++i) {
    const FlowView& f = views[i];
    const CtEntry& e = *f.ct;
    out << "flow proto " << int(e.proto) << ' ' << e.orig.src.str() << ':' << ntohs(e.orig.sport)
        << " -> " << e.orig.dst.str() << ':' << ntohs(e.orig.dport) << " orig " << f.orig_packets
        << " pkts " << f.orig_bytes << " bytes, reply " << f.reply_packets << " pkts "
        << f.reply_bytes << " bytes\n";
  }
}

namespace {

Json flow_json(const FlowView& f) {
  const CtEntry& e = *f.ct;
  return Json{{"proto", e.proto},
              {"src", e.orig.src.str()},
              {"sport", ntohs(e.orig.sport)},
              {"dst", e.orig.dst.str()},
              {"dport", ntohs(e.orig.dport)},
              {"reply_dst", e.reply.dst.str()},
              {"reply_dport", ntohs(e.reply.dport)},
              {"orig_packets", f.orig_packets},
              {"orig_bytes", f.orig_bytes},
              {"reply_packets", f.reply_packets},
              {"reply_bytes", f.reply_bytes}};
}

}  // namespace

std::string ControlPlane::set_interface_enabled(uint8_t port, bool enabled) {
  const std::string& name = cfg_.ports[port].name;
  if (std::string error = set_interface_up(name, enabled); !error.empty()) return error;
  if (const std::string error = links_->asked(port, enabled); !error.empty())
    log::err() << "port " << name << ": its admin state is not kept across restarts: " << error;
  // Known now, not at the next poll: the reply comes after the port has followed, and the event.
  poll_links();
  return "";
}

void ControlPlane::poll_links() {
  rt_.poll_links();
  if (!links_) return;
  std::vector<Dataplane::LinkState> now;
  for (std::size_t i = 0; i < rt_.port_count(); ++i) now.push_back(rt_.link_state(i));
  for (const Json& e : links_->changes(now)) publish(e);
}

Json ControlPlane::describe(const std::string& what) {
  const FlowStats& fs = flows_->stats();
  if (what == "status") {
    charge_session_limits();  // sessions' usage as of now (the timer stops past the thresholds)
    Json attachments = Json::array();
    for (std::size_t i = 0; i < rt_.port_count(); ++i) {
      const PortTotals t = rt_.port_totals(i);
      attachments.push_back({{"name", t.name},
                             {"engine", t.attachment.engine},
                             {"hook", t.attachment.hook},
                             {"program_id", t.attachment.program_id},
                             {"attach_mode", t.attachment.mode},
                             {"attach_note", t.attachment.note}});
    }
    return Json{{"flows", flows_->size()},
                {"flows_waiting_for_neighbour", flows_->pending()},
                {"flows_waiting_for_route", flows_->parked()},
                {"failover_conntrack_removed", failover_removed_},
                {"routing_managed", cfg_.routing.manage},
                {"routing_errors", monitor_->routing_errors()},
                {"uplinks_taking_new_connections", monitor_->active()},
                {"sessions", sessions_json()},
                {"policy_generation", policy_generation_},
                {"session_connections_reset", sessions_reset_},
                {"emergency", emergency_ ? Json(*emergency_) : Json(nullptr)},
                {"shutdown_prepared", shutdown_prepared_},
                {"vehicle", vehicle_.describe()},
                {"resumes", resumes_},
                {"ipv6_offload",
                 cfg_.offload.ipv6 == conf::Ipv6Mode::conntrack ? "conntrack" : "neighbours"},
                {"ipv6_rules", rules6_ ? rules6_->size() : 0},
                {"ports", rt_.port_count()},
                {"workers", rt_.worker_count()},
                {"engine", rt_.engine()},
                {"port_attachments", attachments},
                {"config", cfg_.source},
                {"reloads", reloads_},
                {"reloads_refused", reloads_refused_},
                {"signed_config", signed_status()}};
  }
  if (what == "clients") return Json{{"clients", clients_json()}};
  if (what == "vehicle") return vehicle_.describe();
  if (what == "session_stats") {
    sample_traffic();
    return Json{{"sessions", traffic_->sessions_json()}};
  }
  if (what == "flows") {
    // The most recently active first, at most kMaxFlows of them: a reply stays a few MB.
    constexpr std::size_t kMaxFlows = 10000;
    std::vector<FlowView> views;
    flows_->for_each([&](const FlowView& f) { views.push_back(f); });
    const std::size_t shown = std::min(views.size(), kMaxFlows);
    std::partial_sort(
        views.begin(), views.begin() + static_cast<long>(shown), views.end(),
        [](const FlowView& a, const FlowView& b) { return a.last_seen > b.last_seen; });
    Json list = Json::array();
    for (std::size_t i = 0; i < shown; ++i) list.push_back(flow_json(views[i]));
    Json rules = Json::array();
    if (rules6_)
      rules6_->for_each([&](const Ipv6Rules::View& r) {
        rules.push_back({{"kind", rule_kind(r)},
                         {"addr", rule_text(r)},
                         {"in", cfg_.ports[r.in_port].name},
                         {"out", cfg_.ports[r.out_port].name},
                         {"packets", r.packets},
                         {"bytes", r.bytes}});
      });
    return Json{{"total", views.size()}, {"flows", list}, {"ipv6_rules", rules}};
  }
  if (what == "ports") {
    Json list = Json::array();
    for (std::size_t i = 0; i < rt_.port_count(); ++i) {
      const PortTotals t = rt_.port_totals(i);
      const Dataplane::LinkState l = rt_.link_state(i);
      const std::optional<bool> asked = links_->requested(static_cast<uint8_t>(i));
      list.push_back({{"name", t.name},
                      {"role", conf::to_string(cfg_.ports[i].role)},
                      {"link", t.link},
                      {"admin", l.admin ? "up" : "down"},
                      {"carrier", l.carrier},
                      {"enabled_asked", asked ? Json(*asked) : Json(nullptr)},
                      {"rx_packets", t.rx_packets},
                      {"rx_ip_bytes", t.rx_ip_bytes},
                      {"fast_rx_packets", t.fwd_rx_packets},
                      {"fast_rx_bytes", t.fwd_rx_bytes},
                      {"fast_tx_packets", t.fwd_tx_packets},
                      {"fast_tx_bytes", t.fwd_tx_bytes},
                      {"punted", t.punted},
                      {"dropped", t.dropped},
                      {"to_kernel", t.to_kernel},
                      {"from_kernel", t.from_kernel},
                      {"exception_drops", t.exception_drops},
                      {"rx_missed", t.rx_missed},
                      {"rx_nombuf", t.rx_nombuf},
                      {"engine", t.attachment.engine},
                      {"hook", t.attachment.hook},
                      {"attach_mode", t.attachment.mode},
                      {"program_id", t.attachment.program_id},
                      {"attach_note", t.attachment.note},
                      {"xdp", nullptr}});
      const PortAttachment& a = t.attachment;
      if (a.hook == "af_xdp")
        list.back()["xdp"] = {{"mode", a.mode},
                              {"program", a.program},
                              {"program_id", a.program_id},
                              {"programs", a.programs}};
    }
    return Json{{"ports", list}};
  }
  // counters
  Json workers = Json::array();
  for (std::size_t w = 0; w < rt_.worker_count(); ++w) {
    const WorkerTotals t = rt_.worker_totals(w);
    workers.push_back({{"lcore", t.lcore},
                       {"packets", t.packets},
                       {"injected", t.injected},
                       {"busy_cycles", t.busy_cycles},
                       {"idle_cycles", t.idle_cycles},
                       {"clocks_per_packet", t.clocks_per_packet()},
                       {"sleeps", t.sleeps},
                       {"punt_ring_full", t.punt_ring_full},
                       {"tx_dropped", t.tx_dropped}});
  }
  Json reasons = Json::object();
  const auto r = rt_.reason_totals();
  for (std::size_t i = 0; i < kReasonCount; ++i)
    reasons[std::string(name(static_cast<Reason>(i)))] = r[i];
  Json refused = Json::object();
  for (const auto& [reason, n] : fs.refused) refused[reason] = n;
  Json free_mbufs = nullptr;
  if (const auto m = rt_.free_mbufs())
    free_mbufs = {{"ports", m->first}, {"exception_path", m->second}};
  return Json{{"workers", workers},
              {"free_mbufs", free_mbufs},
              {"exceptions", reasons},
              {"conntrack",
               {{"events", ct_->events},
                {"overruns", ct_->overruns},
                {"resyncs", ct_->resyncs},
                {"dump_restarts", ct_->dump_restarts},
                {"resync_failures", ct_->resync_failures},
                {"stale_dropped", ct_->stale_dropped},
                {"own_events_filtered", writer_->applied},
                {"keepalive_rounds", fs.keepalive_rounds},
                {"keepalives", fs.keepalives},
                {"keepalive_gone", fs.keepalive_gone},
                {"keepalive_probes", fs.keepalive_probes},
                {"keepalive_tick_s", keepalive_tick_s_}}},
              {"flow_manager",
               {{"installed", fs.installed},
                {"removed", fs.removed},
                {"install_failed", fs.install_failed},
                {"handed_back", fs.handed_back},
                {"not_offloaded", refused}}},
              {"api", api_json()}};
}

Json ControlPlane::api_json() const {
  if (!api_server_) return Json::object();
  const ApiServer::Counters& c = api_server_->counters();
  return Json{{"clients", api_server_->clients()},
              {"malformed", c.malformed},
              {"oversized", c.oversized},
              {"rejected_peers", c.rejected_peers},
              {"busy", c.busy},
              {"idle_closed", c.idle_closed},
              {"slow_subscribers", c.slow_subscribers},
              {"handler_errors", c.handler_errors},
              {"accept_errors", c.accept_errors}};
}

// Prometheus text exposition: one HELP/TYPE header per family, then its samples.
std::string ControlPlane::metrics() const {
  std::ostringstream out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out << "# HELP tetherpath_" << name << ' ' << help << "\n# TYPE tetherpath_" << name << ' '
        << type << '\n';
  };
  auto sample = [&](const char* name, const std::string& labels, auto v) {
    out << "tetherpath_" << name;
    if (!labels.empty()) out << '{' << labels << '}';
    out << ' ' << v << '\n';
  };
  std::vector<PortTotals> ports;
  for (std::size_t i = 0; i < rt_.port_count(); ++i) ports.push_back(rt_.port_totals(i));
  auto port_family = [&](const char* name, const char* help, uint64_t PortTotals::*field) {
    family(name, "counter", help);
    for (const auto& t : ports) sample(name, "port=\"" + t.name + "\"", t.*field);
  };
  port_family("port_rx_packets_total", "Frames received on the port.", &PortTotals::rx_packets);
  port_family("port_rx_ip_bytes_total", "IP bytes received on the port, fast path or punted.",
              &PortTotals::rx_ip_bytes);
  port_family("port_fast_rx_bytes_total", "IP bytes the fast path forwarded in from the port.",
              &PortTotals::fwd_rx_bytes);
  port_family("port_fast_tx_bytes_total", "IP bytes the fast path forwarded out of the port.",
              &PortTotals::fwd_tx_bytes);
  port_family("port_fast_rx_packets_total", "Packets the fast path forwarded in from the port.",
              &PortTotals::fwd_rx_packets);
  port_family("port_fast_tx_packets_total", "Packets the fast path forwarded out of the port.",
              &PortTotals::fwd_tx_packets);
  port_family("port_punted_total", "Packets sent to the kernel.", &PortTotals::punted);
  port_family("port_dropped_total", "Packets dropped by the engine.", &PortTotals::dropped);
  port_family("port_to_kernel_total", "Frames written to the port's TAP.", &PortTotals::to_kernel);
  port_family("port_from_kernel_total", "Frames from the TAP sent out of the port.",
              &PortTotals::from_kernel);
  port_family("port_exception_drops_total", "Frames the exception path could not pass on.",
              &PortTotals::exception_drops);
  family("port_up", "gauge", "1 when the port is administratively up with carrier.");
  for (const auto& t : ports) sample("port_up", "port=\"" + t.name + "\"", t.link == "up");

  std::vector<WorkerTotals> workers;
  for (std::size_t w = 0; w < rt_.worker_count(); ++w) workers.push_back(rt_.worker_totals(w));
  auto worker_family = [&](const char* name, const char* type, const char* help, auto get) {
    family(name, type, help);
    for (std::size_t w = 0; w < workers.size(); ++w)
      sample(name, "worker=\"" + std::to_string(w) + "\"", get(workers[w]));
  };
  worker_family("worker_packets_total", "counter", "Packets the worker's engine processed.",
                [](const WorkerTotals& t) { return t.packets; });
  worker_family("worker_busy_cycles_total", "counter", "TSC cycles in loops that moved packets.",
                [](const WorkerTotals& t) { return t.busy_cycles; });
  worker_family("worker_idle_cycles_total", "counter", "TSC cycles in loops that did not.",
                [](const WorkerTotals& t) { return t.idle_cycles; });
  worker_family("worker_clocks_per_packet", "gauge", "Busy cycles per packet since start.",
                [](const WorkerTotals& t) { return t.clocks_per_packet(); });

  family("exceptions_total", "counter", "Packets not forwarded, by reason.");
  const auto reasons = rt_.reason_totals();
  for (std::size_t i = 0; i < kReasonCount; ++i)
    sample("exceptions_total", "reason=\"" + std::string(name(static_cast<Reason>(i))) + "\"",
           reasons[i]);

  const FlowStats& fs = flows_->stats();
  family("offload_started", "gauge", "1 while offload is started (init).");
  sample("offload_started", "", api_->started());
  family("flows", "gauge", "Flows in the fast path.");
  sample("flows", "", flows_->size());
  family("ipv6_rules", "gauge", "IPv6 address rules (offload.ipv6: neighbours).");
  sample("ipv6_rules", "", rules6_ ? rules6_->size() : 0);
  family("flows_installed_total", "counter", "Flows installed in the fast path.");
  sample("flows_installed_total", "", fs.installed);
  family("flows_removed_total", "counter", "Flows removed from the fast path.");
  sample("flows_removed_total", "", fs.removed);
  family("conntrack_events_total", "counter", "Conntrack events read.");
  sample("conntrack_events_total", "", ct_->events);
  family("conntrack_overruns_total", "counter", "Conntrack event socket overruns (ENOBUFS).");
  sample("conntrack_overruns_total", "", ct_->overruns);
  family("conntrack_resyncs_total", "counter", "Full conntrack dumps after an overrun.");
  sample("conntrack_resyncs_total", "", ct_->resyncs);
  family("keepalives_total", "counter", "Conntrack timeouts refreshed for offloaded flows.");
  sample("keepalives_total", "", fs.keepalives);

  // Uplinks: what each is, and whether its link is up; its traffic is its port's (port=iface).
  const Json uplinks = api_->uplinks_json();
  family("uplink_info", "gauge", "1 per uplink (multi-uplink mode), labelled with what it is.");
  for (const Json& u : uplinks)
    sample("uplink_info",
           "uplink=\"" + u["name"].get<std::string>() + "\",iface=\"" +
               u["iface"].get<std::string>() + "\",kind=\"" + u["kind"].get<std::string>() +
               "\",roaming=\"" + u["roaming"].get<std::string>() + "\",metered=\"" +
               (u["metered"].get<bool>() ? "true" : "false") + "\"",
           1);
  family("uplink_up", "gauge", "1 when the uplink's port has its link.");
  for (const Json& u : uplinks)
    sample("uplink_up", "uplink=\"" + u["name"].get<std::string>() + "\"",
           u.value("link", "down") == "up");
  family("uplink_health", "gauge", "1 for the uplink's health state (up, degraded, down).");
  for (const Json& u : uplinks)
    for (const char* st : {"up", "degraded", "down"})
      sample("uplink_health",
             "uplink=\"" + u["name"].get<std::string>() + "\",state=\"" + st + "\"",
             u.value("health", "") == st);
  family("uplink_takes_new_connections", "gauge",
         "1 when new connections are routed to the uplink (routing.manage).");
  for (const Json& u : uplinks)
    sample("uplink_takes_new_connections", "uplink=\"" + u["name"].get<std::string>() + "\"",
           u.value("takes_new_connections", false));
  family("uplink_probe_loss_ratio", "gauge", "Probes lost over the last ten per target.");
  for (const Json& u : uplinks)
    if (u.value("tracked", false))
      sample("uplink_probe_loss_ratio", "uplink=\"" + u["name"].get<std::string>() + "\"",
             u["probe_loss_pct"].get<double>() / 100);
  for (const char* unit : {"bytes", "packets"}) {
    const std::string metric = std::string("uplink_") + unit + "_total";
    const std::string help = std::string(unit) +
                             " of the uplink (rx: from it, tx: to it), by the fast path and the "
                             "kernel's path (bytes: IP bytes; packets: frames, ARP and ND too).";
    family(metric.c_str(), "counter", help.c_str());
    for (const Json& u : uplinks) {
      if (!u.contains("traffic")) continue;
      const std::string l = "uplink=\"" + u["name"].get<std::string>() + "\",direction=";
      for (const auto& [key, path] : {std::pair{"fast_path", "fast"}, {"kernel_path", "kernel"}})
        for (const char* dir : {"rx", "tx"})
          sample(metric.c_str(), l + "\"" + dir + "\",path=\"" + path + "\"",
                 u["traffic"][key][std::string(dir) + "_" + unit].get<uint64_t>());
    }
  }
  family("failover_conntrack_removed_total", "counter",
         "Conntrack entries of a failed uplink's offloaded flows deleted.");
  sample("failover_conntrack_removed_total", "", failover_removed_);

  const Json usage = api_->usage();
  family("limit_bytes", "gauge", "Data limit of the upstream, bytes.");
  for (const auto& [iface, u] : usage.items())
    sample("limit_bytes", "upstream=\"" + iface + "\"", u["limit"].get<uint64_t>());
  family("limit_warning_bytes", "gauge", "Data warning threshold of the upstream, bytes.");
  for (const auto& [iface, u] : usage.items())
    sample("limit_warning_bytes", "upstream=\"" + iface + "\"", u["warning"].get<uint64_t>());
  family("limit_used_bytes", "gauge", "Bytes counted against the upstream's limit.");
  for (const auto& [iface, u] : usage.items())
    sample("limit_used_bytes", "upstream=\"" + iface + "\"", u["used"].get<uint64_t>());
  family("limit_reached", "gauge", "1 once the upstream's limit is reached.");
  for (const auto& [iface, u] : usage.items())
    sample("limit_reached", "upstream=\"" + iface + "\"", u["limit_reached"].get<bool>());
  sample_traffic();
  traffic_->metrics(out);
  return out.str();
}

}  // namespace tp
