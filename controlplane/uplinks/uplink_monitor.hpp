// The uplinks' health and which of them take new connections: a tracker (and, with targets, a
// prober) per uplink; with routing.manage, the kernel's policy routing and masquerade follow.
// Runs on the control thread's loop; what it decides reaches the fast path only through the
// kernel's routing, which the offload decision follows like any other route change.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "arp_prober.hpp"
#include "asio.hpp"
#include "cgroup_paths.hpp"
#include "config.hpp"
#include "icmp_prober.hpp"
#include "session_classifier.hpp"
#include "session_set.hpp"
#include "uplink_health.hpp"
#include "uplink_masquerade.hpp"
#include "uplink_routing.hpp"

namespace tp {

class UplinkMonitor {
 public:
  struct Host {
    std::function<bool(const std::string& iface)> link_up;
    // A change of health (the monitor's state is already the new one).
    std::function<void(const conf::UplinkConfig&, Health was, Health now)> health_changed;
    std::function<void(const std::vector<std::string>& active)> active_changed;
  };
  struct Status {
    Health health = Health::up;
    bool tracked = false;
    bool active = false;  // takes new connections
    double loss_pct = 0;
    std::optional<double> rtt_ms;
    uint64_t probes_sent = 0, probes_answered = 0, health_changes = 0;
    std::size_t sticky_clients = 0;
  };

  UplinkMonitor(boost::asio::io_context& io, Host host);
  ~UplinkMonitor();

  // The uplinks, the sessions and the routing configuration now (start, reload, the API).
  // Trackers of uplinks whose tracking did not change keep their state. The sessions whose policy
  // changed are held (their new connections wait) until release_sessions(). Errors of
  // programming the kernel, if any.
  std::vector<std::string> configure(const conf::RoutingConfig& routing,
                                     const std::vector<conf::UplinkConfig>& uplinks,
                                     const std::vector<conf::SessionConfig>& sessions = {});
  void release_sessions();
  // Only this session's traffic crosses the cellular uplinks (none: everyone's again).
  void set_emergency(std::optional<std::string> session);
  // Garage mode: only these sessions' traffic crosses the uplinks (none: everyone's again).
  void set_garage(std::optional<std::set<std::string>> sessions);
  // Suspended: no probes, no timers; on resume the kernel's routing is programmed afresh (the
  // interfaces may have changed while the box slept).
  void set_suspended(bool suspended);
  // These sessions' data limits are reached: the classifier drops their packets.
  void set_limited(std::set<std::string> sessions);
  void link_changed(const std::string& iface, bool up);
  // A connection of a client NATed to `nat` (a conntrack event). With routing.sticky_s, the
  // client's new connections keep that uplink until sticky_s after its last connection there,
  // or until the uplink stops being up.
  void saw_connection(const IpAddr& client, const IpAddr& nat);
  // Clients pinned to an uplink.
  std::size_t sticky_clients(const std::string& uplink) const;
  // Interfaces appeared or went (a phone plugged in again has a new ifindex): routes follow.
  void interfaces_changed();
  // The sessions' cgroups looked up again (a service started, stopped or restarted): the
  // classifier is written again when what exists changed.
  void recheck_cgroups();
  // Of the sessions' cgroups, those that exist now (the classifier matches only these), and
  // why none can be matched, if that is so.
  const std::map<std::string, CgroupRef>& cgroups() const { return cgroups_; }
  const std::string& cgroup_error() const { return cgroup_paths_.error(); }

  std::optional<Status> status(const std::string& name) const;
  const std::vector<std::string>& active() const { return active_; }
  // The uplinks session j's new connections take now (empty: refused).
  const std::vector<std::string>& session_uplinks(std::size_t j) const {
    return sessions_.routed_by(j);
  }
  const SessionSet& sessions() const { return sessions_; }
  // What sessions' policies see of the uplinks now (in the configuration's order).
  std::vector<SessionUplink> session_candidates() const;
  // The sessions whose allowed uplinks the last configure() changed (a policy update, an
  // uplink's roaming or kind), with the uplinks they may use now: their running connections
  // elsewhere are the caller's to reset.
  const std::map<std::string, std::set<std::string>>& moved_sessions() const { return moved_; }
  // Errors of the last programming of the kernel (routes, rules, masquerade).
  const std::vector<std::string>& routing_errors() const { return routing_errors_; }

 private:
  struct Tracked {
    conf::UplinkConfig cfg;
    HealthTracker tracker;
    std::unique_ptr<Prober> prober;
    SteadyTime held_until{};
    uint64_t changes = 0;
    int ifindex = 0;
  };
  void changed(Tracked& t, std::optional<Health> now, Health was);
  void reselect();
  void route_sessions();
  void classify();
  std::vector<std::string> session_cgroups() const;
  void note_allowed();
  std::vector<ManagedUplink> managed(const std::vector<std::size_t>& which) const;
  void reprogram();
  template <class Pred>
  void unpin_if(Pred gone);  // the pins `gone` picks, rules and all
  void unpin_uplink(const std::string& name);
  void sweep_pins();

  boost::asio::io_context& io_;
  Host host_;
  conf::RoutingConfig routing_cfg_;
  bool configured_ = false;
  std::vector<conf::UplinkConfig> configured_uplinks_;
  std::vector<std::unique_ptr<Tracked>> uplinks_;  // in the configuration's order
  std::vector<std::string> active_;
  std::unique_ptr<UplinkRouting> routing_;
  std::unique_ptr<UplinkMasquerade> masquerade_;
  SessionSet sessions_;
  std::optional<std::string> emergency_;
  std::optional<std::set<std::string>> garage_;
  std::set<std::string> limited_;
  std::map<std::string, std::set<std::string>> allowed_, moved_;  // per session name
  std::unique_ptr<SessionClassifier> classifier_;
  CgroupPaths cgroup_paths_;
  std::map<std::string, CgroupRef> cgroups_;
  bool cgroup_error_logged_ = false;
  std::vector<std::string> routing_errors_;
  boost::asio::steady_timer hold_timer_;
  boost::asio::steady_timer retry_timer_;
  struct Pin {
    std::string uplink;
    uint32_t table = 0;
    SteadyTime until{};
  };
  std::unordered_map<IpAddr, Pin, IpAddrHash> pins_;
  boost::asio::steady_timer sticky_timer_;
  bool sweeping_ = false;
  bool retry_pending_ = false;
  bool suspended_ = false;
};

}  // namespace tp
