// The control thread's services on one Boost.Asio loop: the rtnetlink and conntrack mirrors, the
// flow manager, NAT keepalives, link-state polling, data limits, the management API and metrics.
// Everything here runs on that one thread, so nothing in it needs a lock; the dataplane sees only
// what the runtime publishes.
#pragma once

#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <unordered_set>
#include "asio.hpp"

#include "api_server.hpp"
#include "config.hpp"
#include "conntrack_mirror.hpp"
#include "conntrack_writer.hpp"
#include "dataplane.hpp"
#include "flow_manager.hpp"
#include "ipv6_rules.hpp"
#include "metrics_server.hpp"
#include "offload_api.hpp"
#include "port_links.hpp"
#include "rtnl_mirror.hpp"
#include "session_limits.hpp"
#include "signed_config.hpp"
#include "silent_mode_file.hpp"
#include "topology_sync.hpp"
#include "traffic_stats.hpp"
#include "uplink_monitor.hpp"
#include "vehicle_modes.hpp"

namespace tp {

class ControlPlane : private OffloadHost {
 public:
  ControlPlane(boost::asio::io_context& io, Dataplane& rt, const conf::Config& cfg);  // throws
  ~ControlPlane() override;

  // Offload on: dump conntrack and follow it. Off: every flow goes back to the kernel.
  void start_offload() override;
  void stop_offload() override;
  bool offloading() const { return offloading_; }
  // Re-reads the configuration file (SIGHUP, the API's reload). Empty, or why nothing changed.
  std::string reload() override;
  // A signed remote configuration, and back to the one before it (signed_config_ops.cpp): the
  // reply's details, or ApiError with the refusal's code; a refusal changes nothing.
  Json apply_signed_config(const Json& bundle) override;
  Json restore_config() override;
  bool kernel_has_interface(const std::string& iface) override;
  // Writes the data-limit accounting to the state directory (periodically and at shutdown):
  // false if a file could not be written (logged).
  bool persist_usage();

  void report(std::ostream& out) const;
  std::string metrics() const;
  FlowManager& flows() { return *flows_; }
  const ConntrackMirror& conntrack() const { return *ct_; }

 private:
  void watch(boost::asio::posix::stream_descriptor& sd, std::function<void()> on_readable);
  void watch_kernel();  // the rtnetlink and conntrack event sockets
  void schedule_keepalive();
  void schedule_links();
  void schedule_persist();
  PolicyConfig policy_from(const conf::Config& cfg) const;
  void publish(const Json& event);
  // Why `next` cannot replace the running configuration now ("busy: ..." during an emergency),
  // or empty; then adopt() applies it as a reload does, without dropping a flow.
  std::string change_refusal(const conf::Config& next) const;
  void adopt(conf::Config next);
  // Signed configuration (signed_config_ops.cpp). The configuration to run with this local
  // file: the stored signed one if it still verifies against its trust anchors, else the file
  // (`dropped` says why the stored one is not used).
  conf::Config running_config(const conf::Config& local, std::string& dropped) const;
  void forget_signed(const std::string& dropped);  // the stored one no longer runs
  void save_signed_state(const SignedState& s);    // throws SignedConfigRefusal
  Json signed_status() const;
  [[noreturn]] void signed_refused(const char* action, const SignedConfigRefusal& r,
                                   const std::optional<SignedBundle>& b);  // throws ApiError

  // OffloadHost
  void roles_changed() override;
  ByteCounts forwarded_bytes(uint8_t port) override;
  void arm_limit(uint8_t port, uint64_t limit, uint64_t used) override;
  void disarm_limit(uint8_t port) override;
  uint64_t limit_used(uint8_t port) override;
  Json describe(const std::string& what) override;
  Json uplink_state(const std::string& name, std::optional<uint8_t> port) const override;
  Json port_traffic(uint8_t port) const;
  mutable std::array<std::array<uint64_t, 2>, kMaxPorts> kernel_rx_seen_{};  // port_traffic
  // Uplink health: events, and a failed uplink's flows fail over as if its link had gone.
  void health_changed(const conf::UplinkConfig& u, Health was, Health now);
  void configure_uplinks();
  Json api_json() const;
  Json sessions_json() const;
  // A session's connections on uplinks it may no longer use: reset_moved_flows() takes them out
  // of the fast path and has the kernel flush its marked ones; the kernel-only ones the flushes
  // cannot name are claimed from the dump that decides every flow again (claim_moved: one walk
  // of the kernel's table, not two), or found by a dump of their own if that one failed
  // (finish_resets), and deleted.
  struct MovedConnections {
    std::string session;
    uint32_t value = 0, mask = 0;               // the kernel-only ones: (mark & mask) == value
    std::vector<int> gone_ifindexes;            // the uplinks it may no longer use
    std::vector<std::size_t> gone_uplinks;      // ...by position (their uplink marks)
    std::unordered_set<CtKey, CtKeyHash> done;  // deleted already
    std::vector<CtEntry> found;                 // kernel-only, to delete
    uint64_t removed = 0;
    double ms = 0, fast_path_ms = 0, flush_wait_ms = 0;  // for the log
  };
  void reset_moved_flows();
  bool on_gone_uplink(const MovedConnections& m, const CtEntry& e, std::optional<int> out) const;
  bool claim_moved(const CtEntry& e);
  void finish_resets(bool dumped);
  std::vector<MovedConnections> moving_;
  bool claiming_ = false;  // the dump of a policy update runs: claim_moved() looks at its entries
  // The uplink (its position) a connection's mark pins it to (routing.mark_mask), if any.
  std::optional<std::size_t> uplink_of_mark(uint32_t mark) const;
  void set_emergency(const std::string& session, bool active) override;
  std::string set_interface_enabled(uint8_t port, bool enabled) override;
  // The vehicle's states (vehicle_power.cpp).
  Json shutdown_prepare(uint32_t deadline_ms) override;
  void shutdown_cancel() override;
  Json set_vehicle_state(const std::string& what, bool value) override;
  Json suspend() override;
  Json resume() override;
  void silent_changed(bool silent);
  // What a change of the vehicle's states means for forwarding, then its event.
  void vehicle_changed(const std::string& what, bool was_garage, bool was_off);
  Json publish_vehicle(const std::string& changed, const Json& details);
  std::optional<std::set<std::string>> garage_passing() const;
  void switch_silent_ports(bool off);
  void watch_silent_mode();  // (again, after a reload that changed the file)
  // The dataplane's link poll, then an event for each port whose admin state or carrier changed.
  void poll_links();
  std::optional<std::string> active_emergency() const override { return emergency_; }
  void sync_local_addresses();
  // Per-client statistics: what they are attributed by now, and a reading of every counter.
  TrafficScene traffic_scene() const;
  void sample_traffic() const;
  Json clients_json() const;
  // The sessions' data warnings and limits: usage from the ledger, events, and a reached limit
  // stops the session's forwarding (the classifier drops, the offload policy refuses).
  void charge_session_limits();
  void schedule_session_limits();
  void enforce_session_limits();
  void publish_quota_events(const std::vector<SessionQuotaEvent>& events);
  // Every flow decided again by the current configuration: true if by a complete conntrack dump.
  bool redecide_all();
  // After a complete conntrack dump (or with offload stopped): what a previous run left in the
  // fast path (the kernel engine's pinned state) and did not install again goes, and its next
  // hops are free.
  void settle_previous_run();
  // A port whose link went, or an uplink tracking took down: its flows leave the fast path.
  void hand_back(uint8_t port, const std::string& why);
  // A failed uplink's flows: handed back already (`gone`), their conntrack entries deleted.
  void fail_over(uint8_t port, std::vector<CtEntry> gone);
  // The IPv6 address rules made to match the current roles, while offloading.
  void rebuild_rules6();

  boost::asio::io_context& io_;
  Dataplane& rt_;
  conf::Config cfg_;
  std::unique_ptr<RtnlMirror> rtnl_;
  std::unique_ptr<ConntrackWriter> writer_;
  uint64_t failover_removed_ = 0;  // conntrack entries of failed uplinks' flows deleted
  std::unique_ptr<TopologySync> topo_;
  std::unique_ptr<FlowManager> flows_;
  std::unique_ptr<Ipv6Rules> rules6_;  // offload.ipv6 "neighbours" only
  std::unique_ptr<ConntrackMirror> ct_;
  boost::asio::posix::stream_descriptor rtnl_sd_;
  boost::asio::posix::stream_descriptor ct_sd_;
  boost::asio::steady_timer keepalive_timer_;
  boost::asio::steady_timer link_timer_;
  boost::asio::steady_timer persist_timer_;
  std::unique_ptr<OffloadApi> api_;
  std::unique_ptr<UplinkMonitor> monitor_;
  std::unique_ptr<ApiServer> api_server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<PortLinks> links_;
  // Reading counters changes only the ledger, never what the daemon reports elsewhere: const
  // reports (metrics) sample through the pointer.
  std::unique_ptr<TrafficStats> traffic_;
  SessionLimits session_limits_;
  boost::asio::steady_timer limits_timer_;
  bool limits_timer_armed_ = false;
  std::string persisted_session_usage_;  // what session_usage.json holds
  uint64_t reloads_ = 0, reloads_refused_ = 0, usage_writes_ = 0;
  std::string persisted_usage_;  // what usage.json holds
  bool offloading_ = false;
  uint32_t keepalive_tick_s_ = 0;   // the keepalive round's current period
  uint32_t liveness_bound_ms_ = 0;  // as last given to the dataplane
  bool reevaluate_queued_ = false;
  std::optional<std::vector<conf::SessionConfig>> applied_sessions_;  // policy_applied's
  uint64_t policy_generation_ = 0;
  uint64_t sessions_reset_ = 0;           // connections reset by a policy update
  std::optional<std::string> emergency_;  // the active emergency session
  // shutdown_prepare answered: nothing is offloaded until shutdown_cancel.
  bool shutdown_prepared_ = false;
  VehicleModes vehicle_;
  std::unique_ptr<SilentModeFile> silent_file_;
  uint64_t resumes_ = 0;
  std::vector<std::string> silent_switched_;  // the ports silent mode switched off
  bool suspended() const override { return vehicle_.suspended(); }
  // The file the daemon was started with (reload reads it), the signed configurations' state
  // (state_dir/signed_config.json), and how many were applied and refused since the start.
  std::string local_path_;
  SignedState signed_;
  uint64_t signed_applied_ = 0, signed_refused_ = 0;
};

}  // namespace tp
