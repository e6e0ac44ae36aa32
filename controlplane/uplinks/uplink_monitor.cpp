#include "uplink_monitor.hpp"

#include "daemon_log.hpp"
#include "session_policy.hpp"

#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <iostream>

namespace tp {

UplinkMonitor::UplinkMonitor(boost::asio::io_context& io, Host host)
    : io_(io), host_(std::move(host)), hold_timer_(io), retry_timer_(io), sticky_timer_(io) {}

UplinkMonitor::~UplinkMonitor() {
  hold_timer_.cancel();
  retry_timer_.cancel();
  sticky_timer_.cancel();
}

namespace {

// Whether two uplink lists route alike: they differ at most in what only sessions look at.
bool same_routing(std::vector<conf::UplinkConfig> a, std::vector<conf::UplinkConfig> b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    b[i].roaming = a[i].roaming;
    b[i].kind = a[i].kind;
    b[i].metered = a[i].metered;
  }
  return a == b;
}

}  // namespace

std::vector<std::string> UplinkMonitor::configure(
    const conf::RoutingConfig& routing, const std::vector<conf::UplinkConfig>& cfgs,
    const std::vector<conf::SessionConfig>& sessions) {
  // A session's data warning and limit are not routing: changing only them holds nothing.
  std::vector<conf::SessionConfig> next_sessions;
  for (const auto& s : routing.manage ? sessions : std::vector<conf::SessionConfig>{}) {
    next_sessions.push_back(s);
    next_sessions.back().warning_bytes.reset();
    next_sessions.back().limit_bytes.reset();
  }
  const bool same_routes = configured_ && routing == routing_cfg_ &&
                           same_routing(cfgs, configured_uplinks_) && routing.manage && routing_;
  moved_.clear();
  if (configured_ && routing == routing_cfg_ && cfgs == configured_uplinks_ &&
      next_sessions == sessions_.sessions())
    return routing_errors_;  // another role change: nothing here to redo
  // The changed sessions' new connections wait while the classifier and their tables are
  // replaced, and until the caller has dealt with their running ones (release_sessions).
  std::set<std::size_t> updated =
      sessions_.assign(next_sessions, conf::mark_values(routing.session_mark_mask));
  if (same_routes) {
    // Only the policy, or what the uplinks are (roaming, kind, metered), changed: the uplinks'
    // rules and tables stay as they are. Sessions whose allowed uplinks changed are updated too.
    configured_uplinks_ = cfgs;
    for (std::size_t i = 0; i < uplinks_.size(); ++i) uplinks_[i]->cfg = cfgs[i];
    note_allowed();
    for (std::size_t j = 0; j < sessions_.sessions().size(); ++j)
      if (moved_.count(sessions_.sessions()[j].name)) updated.insert(sessions_.slot(j));
    for (const auto& e : sessions_.hold(routing_.get(), updated)) routing_errors_.push_back(e);
    for (const auto& e : routing_->program_sessions(sessions_.slots()))
      routing_errors_.push_back(e);
    classify();
    reselect();
    return routing_errors_;
  }
  // The uplinks' routing changes: which uplinks every session may use may change with it.
  for (std::size_t slot : sessions_.slots()) updated.insert(slot);
  for (const auto& e : sessions_.hold(routing_.get(), updated)) routing_errors_.push_back(e);
  const bool first = !configured_;
  configured_ = true;
  configured_uplinks_ = cfgs;
  std::vector<std::unique_ptr<Tracked>> next;
  for (const conf::UplinkConfig& c : cfgs) {
    auto same = std::find_if(uplinks_.begin(), uplinks_.end(), [&](const auto& t) {
      return t && t->cfg.name == c.name && t->cfg.iface == c.iface && t->cfg.track == c.track;
    });
    if (same != uplinks_.end()) {  // its health so far stands
      (*same)->cfg = c;
      next.push_back(std::move(*same));
      continue;
    }
    auto t = std::make_unique<Tracked>(Tracked{c, HealthTracker(c.track), nullptr, {}, 0, 0});
    if (host_.link_up && !host_.link_up(c.iface)) t->tracker.link(false);
    if (!c.track.targets.empty()) {
      Tracked* raw = t.get();
      try {
        auto on_round = [this, raw](const ProbeRound& r) {
          const Health was = raw->tracker.state();
          changed(*raw, raw->tracker.feed(r), was);
        };
        const std::chrono::milliseconds interval(c.track.interval_ms), timeout(c.track.timeout_ms);
        if (c.track.method == conf::TrackMethod::arp)
          t->prober = std::make_unique<ArpProber>(io_, c.iface, c.track.targets, interval, timeout,
                                                  std::move(on_round));
        else
          t->prober = std::make_unique<IcmpProber>(io_, c.iface, c.track.targets, interval, timeout,
                                                   std::move(on_round));
        if (suspended_) t->prober->pause();
      } catch (const std::exception& e) {
        log::warning() << "uplink " << c.name << ": not tracked: " << e.what();
      }
    }
    next.push_back(std::move(t));
  }
  uplinks_ = std::move(next);

  const bool was_managed = routing_cfg_.manage;
  routing_cfg_ = routing;
  if (routing.manage) {
    if (!routing_) routing_ = std::make_unique<UplinkRouting>();
    if (!masquerade_) masquerade_ = std::make_unique<UplinkMasquerade>();
    if (!classifier_) classifier_ = std::make_unique<SessionClassifier>();
    reprogram();
  } else if (was_managed) {
    retry_timer_.cancel();
    pins_.clear();
    if (classifier_) classifier_->remove();
    if (routing_) routing_->remove();
    if (masquerade_) masquerade_->remove();
    sessions_.release();
    routing_errors_.clear();
  } else if (first) {
    // A run that crashed during an emergency must not leave its drop rules behind.
    try {
      SessionClassifier().remove();
    } catch (const std::exception&) {  // no nftables: nothing of ours can be there
    }
  }
  note_allowed();
  active_.clear();  // chosen afresh (and the shared default route written) below
  reselect();
  return routing_errors_;
}

// Each session's allowed uplinks now; those that differ from the last configure()'s are moved_.
void UplinkMonitor::note_allowed() {
  const std::vector<SessionUplink> candidates = session_candidates();
  std::map<std::string, std::set<std::string>> now;
  for (const conf::SessionConfig& s : sessions_.sessions()) {
    now[s.name] = allowed_uplink_names(s, candidates);
    if (auto was = allowed_.find(s.name); was != allowed_.end() && was->second != now[s.name])
      moved_[s.name] = now[s.name];
  }
  allowed_ = std::move(now);
}

void UplinkMonitor::reprogram() {
  const std::vector<std::string> before = routing_errors_;
  pins_.clear();  // their rules go with the rest; tables may have moved
  for (auto& t : uplinks_) t->ifindex = static_cast<int>(if_nametoindex(t->cfg.iface.c_str()));
  std::vector<std::size_t> all(uplinks_.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  // The sessions' tables hold until route_sessions() writes them; the marks come after the rules.
  routing_errors_ = routing_->program(routing_cfg_, managed(all), sessions_.slots());
  sessions_.forget();
  classify();
  std::vector<std::string> ifaces;
  for (const auto& t : uplinks_) ifaces.push_back(t->cfg.iface);
  if (routing_cfg_.masquerade) {
    if (auto e = masquerade_->apply(ifaces); !e.empty()) routing_errors_.push_back(e);
  } else {
    masquerade_->remove();
  }
  if (routing_errors_ != before)  // retried every second while they last: said once
    for (const auto& e : routing_errors_) log::err() << "routing: " << e;
  active_.clear();  // the shared default route is written afresh by the next reselect()
}

std::vector<ManagedUplink> UplinkMonitor::managed(const std::vector<std::size_t>& which) const {
  std::vector<ManagedUplink> out;
  for (std::size_t i : which) {
    const Tracked& t = *uplinks_[i];
    if (t.ifindex == 0) continue;  // not there (yet): no route can name it
    out.push_back({t.cfg.name, t.ifindex, t.cfg.ipv4_addr, t.cfg.ipv4_gateway, t.cfg.ipv6_gateways,
                   t.cfg.weight, t.cfg.ipv6_prefixes, i});
  }
  return out;
}

// A device that goes down takes its IPv4 routes with it: they are written again when it returns.
void UplinkMonitor::link_changed(const std::string& iface, bool up) {
  for (auto& t : uplinks_)
    if (t->cfg.iface == iface) {
      const Health was = t->tracker.state();
      if (up && routing_cfg_.manage && routing_) reprogram();
      changed(*t, t->tracker.link(up), was);
      if (up) reselect();
    }
}

// A gateway can be routed to only once its interface has the address of its subnet: what the
// kernel refused is tried again a second later, not at every route event (ours among them).
void UplinkMonitor::interfaces_changed() {
  if (!routing_cfg_.manage || !routing_ || suspended_) return;  // resume programs afresh
  const bool moved = std::any_of(uplinks_.begin(), uplinks_.end(), [](const auto& t) {
    return t->ifindex != static_cast<int>(if_nametoindex(t->cfg.iface.c_str()));
  });
  if (moved) {
    reprogram();
    reselect();
    return;
  }
  if (routing_errors_.empty() || retry_pending_) return;
  retry_pending_ = true;
  retry_timer_.expires_after(std::chrono::seconds(1));
  retry_timer_.async_wait([this](const boost::system::error_code& ec) {
    retry_pending_ = false;
    if (ec || !routing_cfg_.manage || !routing_) return;
    reprogram();
    reselect();
  });
}

void UplinkMonitor::changed(Tracked& t, std::optional<Health> now, Health was) {
  if (!now) return;
  ++t.changes;
  // Back from an outage: new connections wait for the failback hold (running ones never moved).
  if (was == Health::down)
    t.held_until = std::chrono::steady_clock::now() + std::chrono::seconds(routing_cfg_.failback_s);
  // New connections are routed elsewhere before the failed uplink's flows are handed back, so
  // none of them makes a new mapping through it; its sticky clients go with the rest.
  if (*now != Health::up) unpin_uplink(t.cfg.name);
  reselect();
  if (host_.health_changed) host_.health_changed(t.cfg, was, *now);
}

void UplinkMonitor::reselect() {
  const SteadyTime now = std::chrono::steady_clock::now();
  std::vector<UplinkCandidate> c;
  for (const auto& t : uplinks_) c.push_back({t->cfg.metric, t->tracker.state(), t->held_until});
  const std::vector<std::size_t> pick = choose_active(c, now);
  std::vector<std::string> names;
  for (std::size_t i : pick) names.push_back(uplinks_[i]->cfg.name);

  // The next failback hold to end may change the choice.
  std::optional<SteadyTime> wake;
  for (const auto& u : c)
    if (u.health == Health::up && u.held_until > now && (!wake || u.held_until < *wake))
      wake = u.held_until;
  if (wake && !suspended_) {  // resume chooses again
    hold_timer_.expires_at(*wake);
    hold_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) reselect();
    });
  } else {
    hold_timer_.cancel();
  }

  route_sessions();
  if (names == active_ && !uplinks_.empty()) return;
  active_ = names;
  if (routing_cfg_.manage && routing_) {
    for (const auto& e : routing_->set_active(managed(pick))) {
      log::err() << "routing: " << e;
      routing_errors_.push_back(e);
    }
  }
  if (host_.active_changed) host_.active_changed(active_);
}

void UplinkMonitor::classify() {
  std::vector<std::string> ifaces;  // by position, as the mark rules (empty: not there)
  for (const auto& t : uplinks_) ifaces.push_back(t->ifindex ? t->cfg.iface : std::string());
  ClassifierPlan plan = sessions_.plan(routing_cfg_, ifaces);
  for (std::size_t j = 0; emergency_ && j < plan.sessions.size(); ++j)
    if (plan.sessions[j].name == *emergency_) plan.emergency_slot = plan.slots[j];
  if (garage_) {
    plan.garage_slots.emplace();
    for (std::size_t j = 0; j < plan.sessions.size(); ++j)
      if (garage_->count(plan.sessions[j].name)) plan.garage_slots->push_back(plan.slots[j]);
  }
  for (std::size_t j = 0; j < plan.sessions.size(); ++j)
    if (limited_.count(plan.sessions[j].name)) plan.limited_slots.push_back(plan.slots[j]);
  for (const auto& t : uplinks_)
    if (t->cfg.kind == conf::UplinkKind::cellular) plan.cellular_ifaces.push_back(t->cfg.iface);
  const auto paths = session_cgroups();
  cgroups_ = cgroup_paths_.resolve_all(paths);
  plan.cgroups = cgroups_;
  // Not a routing error: those are retried at every interface change, and this one lasts.
  if (!paths.empty() && !cgroup_paths_.error().empty() && !cgroup_error_logged_) {
    log::warning() << "sessions' cgroups are not matched: " << cgroup_paths_.error();
    cgroup_error_logged_ = true;
  }
  if (auto e = classifier_->apply(plan); !e.empty()) routing_errors_.push_back(e);
}

std::vector<std::string> UplinkMonitor::session_cgroups() const {
  std::vector<std::string> paths;
  for (const auto& s : sessions_.sessions())
    paths.insert(paths.end(), s.match.cgroups.begin(), s.match.cgroups.end());
  return paths;
}

void UplinkMonitor::recheck_cgroups() {
  if (!routing_cfg_.manage || !classifier_) return;
  const auto paths = session_cgroups();
  if (paths.empty() || cgroup_paths_.resolve_all(paths) == cgroups_) return;
  classify();
  log::info() << "sessions' cgroups changed (" << cgroups_.size() << " of " << paths.size()
              << " exist): classifier written again";
}

void UplinkMonitor::set_limited(std::set<std::string> sessions) {
  if (sessions == limited_) return;
  limited_ = std::move(sessions);
  if (routing_cfg_.manage && classifier_) classify();
}

void UplinkMonitor::set_emergency(std::optional<std::string> session) {
  emergency_ = std::move(session);
  if (routing_cfg_.manage && classifier_) classify();
}

void UplinkMonitor::set_garage(std::optional<std::set<std::string>> sessions) {
  garage_ = std::move(sessions);
  if (routing_cfg_.manage && classifier_) classify();
}

void UplinkMonitor::set_suspended(bool suspended) {
  suspended_ = suspended;
  for (auto& t : uplinks_)
    if (t->prober) suspended ? t->prober->pause() : t->prober->resume();
  if (suspended) {
    hold_timer_.cancel();
    retry_timer_.cancel();
    retry_pending_ = false;
    sticky_timer_.cancel();
    return;
  }
  if (routing_cfg_.manage && routing_) reprogram();  // pins go too: chosen afresh after the sleep
  if (configured_) reselect();                       // failback holds may have ended meanwhile
}

std::vector<SessionUplink> UplinkMonitor::session_candidates() const {
  std::vector<SessionUplink> ups;
  for (const auto& t : uplinks_)
    ups.push_back({t->cfg.name,
                   t->cfg.kind,
                   t->cfg.roaming,
                   {t->cfg.metric, t->tracker.state(), t->held_until}});
  return ups;
}

// Each session's table follows its policy and the uplinks' health; only changes are written.
void UplinkMonitor::route_sessions() {
  if (!routing_cfg_.manage || !routing_ || sessions_.sessions().empty()) return;
  std::vector<ManagedUplink> managed_each;
  for (std::size_t i = 0; i < uplinks_.size(); ++i) {
    const auto m = managed({i});
    managed_each.push_back(m.empty() ? ManagedUplink{} : m.front());
  }
  for (const auto& e : sessions_.route(*routing_, session_candidates(), managed_each,
                                       std::chrono::steady_clock::now())) {
    log::err() << "routing: " << e;
    routing_errors_.push_back(e);
  }
}

void UplinkMonitor::release_sessions() {
  sessions_.release();
  route_sessions();
}

std::optional<UplinkMonitor::Status> UplinkMonitor::status(const std::string& name) const {
  for (const auto& t : uplinks_) {
    if (t->cfg.name != name) continue;
    Status s;
    s.health = t->tracker.state();
    s.tracked = t->prober != nullptr;
    s.active = std::find(active_.begin(), active_.end(), name) != active_.end();
    s.loss_pct = t->tracker.loss_pct();
    s.rtt_ms = t->tracker.last_rtt_ms();
    if (t->prober) {
      s.probes_sent = t->prober->sent();
      s.probes_answered = t->prober->answered();
    }
    s.health_changes = t->changes;
    s.sticky_clients = sticky_clients(name);
    return s;
  }
  return std::nullopt;
}

void UplinkMonitor::saw_connection(const IpAddr& client, const IpAddr& nat) {
  if (!routing_cfg_.manage || !routing_ || routing_cfg_.sticky_s == 0 || client == nat) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(routing_cfg_.sticky_s);
  if (auto it = pins_.find(client); it != pins_.end()) {
    // Its connections keep it there; one by another uplink (an older one, an integrator's rule)
    // does not move it.
    const auto& pinned = it->second.uplink;
    const auto at = std::find_if(uplinks_.begin(), uplinks_.end(),
                                 [&](const auto& t) { return t->cfg.name == pinned; });
    if (at != uplinks_.end() && (*at)->cfg.ipv4_addr == nat) it->second.until = until;
    return;
  }
  for (std::size_t i = 0; i < uplinks_.size(); ++i) {
    const Tracked& t = *uplinks_[i];
    if (t.cfg.ipv4_addr != nat || t.tracker.state() != Health::up) continue;
    const uint32_t table = routing_cfg_.table + 1 + static_cast<uint32_t>(i);
    if (const int err = routing_->pin(client, table); err != 0 && err != -EEXIST) return;
    pins_[client] = {t.cfg.name, table, until};
    if (!sweeping_) sweep_pins();
    return;
  }
}

template <class Pred>
void UplinkMonitor::unpin_if(Pred gone) {
  for (auto it = pins_.begin(); it != pins_.end();) {
    if (gone(it->second)) {
      routing_->unpin(it->first, it->second.table);
      it = pins_.erase(it);
    } else {
      ++it;
    }
  }
}

void UplinkMonitor::unpin_uplink(const std::string& name) {
  unpin_if([&](const Pin& p) { return p.uplink == name; });
}

// Once a second while there are pins: the ones whose time is up go.
void UplinkMonitor::sweep_pins() {
  const SteadyTime now = std::chrono::steady_clock::now();
  unpin_if([&](const Pin& p) { return p.until <= now; });
  sweeping_ = !pins_.empty() && !suspended_;
  if (!sweeping_) return;
  sticky_timer_.expires_after(std::chrono::seconds(1));
  sticky_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      sweeping_ = false;
      return;
    }
    sweep_pins();
  });
}

std::size_t UplinkMonitor::sticky_clients(const std::string& uplink) const {
  return static_cast<std::size_t>(std::count_if(
      pins_.begin(), pins_.end(), [&](const auto& p) { return p.second.uplink == uplink; }));
}

}  // namespace tp
